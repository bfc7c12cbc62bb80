# Multi-stage build of the runfleet binaries; the runtime image runs as a
# non-root user.
FROM rust:1-bookworm AS build
WORKDIR /src
COPY . .
RUN cargo build --release --locked -p runfleet-worker -p runfleet-cli

FROM debian:bookworm-slim
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates curl \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --system --uid 10001 --no-create-home --shell /usr/sbin/nologin runfleet
COPY --from=build /src/target/release/runfleet-worker /usr/local/bin/runfleet-worker
COPY --from=build /src/target/release/runfleet /usr/local/bin/runfleet
USER runfleet:runfleet
ENTRYPOINT ["runfleet-worker"]
CMD ["run"]
