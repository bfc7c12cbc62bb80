//! OpenTelemetry trace export, behind the `otel` cargo feature (off by default).
//!
//! Producers put a W3C `traceparent` on every message; with this feature the
//! worker's spans continue that trace and are exported to an OTLP collector
//! over HTTP/protobuf.
//!
//! # Configuration
//!
//! Only the standard `OTEL_*` variables, read by the OpenTelemetry SDK:
//!
//! - `OTEL_EXPORTER_OTLP_ENDPOINT` (or `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`)
//!   turns export on, e.g. `http://otel-collector:4318`; unset, nothing is
//!   exported and [`otel_layer`] returns `None`. `OTEL_SDK_DISABLED=true`
//!   turns it off as well.
//! - `OTEL_SERVICE_NAME` (default `runfleet-worker`),
//!   `OTEL_RESOURCE_ATTRIBUTES`, `OTEL_EXPORTER_OTLP_HEADERS`,
//!   `OTEL_EXPORTER_OTLP_TIMEOUT`, `OTEL_TRACES_SAMPLER`, `OTEL_BSP_*`.
//!
//! # Wiring
//!
//! 1. Add [`otel_layer`] (or [`try_otel_layer`], to log why export is off)
//!    to the subscriber next to the fmt layer.
//! 2. Call [`set_parent`] on a message's span, with its `traceparent`
//!    header, before the span is first entered.
//! 3. Call [`shutdown`] before the process exits, so the last batch is sent.
//!
//! Without the feature every function here is a no-op and [`otel_layer`]
//! returns `None`, so callers need no `cfg` of their own.

use tracing::Subscriber;
use tracing_subscriber::Layer;
use tracing_subscriber::registry::LookupSpan;

/// The service name reported when neither `OTEL_SERVICE_NAME` nor
/// `OTEL_RESOURCE_ATTRIBUTES` names one.
pub const DEFAULT_SERVICE_NAME: &str = "runfleet-worker";

/// The boxed layer that [`otel_layer`] returns.
pub type BoxedLayer<S> = Box<dyn Layer<S> + Send + Sync>;

/// Why OpenTelemetry export could not be set up.
///
/// Without the `otel` feature this enum has no variants.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TelemetryError {
    /// The OTLP exporter rejected its configuration (an `OTEL_*` variable)
    /// or could not build its HTTP client.
    #[cfg(feature = "otel")]
    #[error("cannot build the OTLP span exporter: {0}")]
    Exporter(#[from] opentelemetry_otlp::ExporterBuildError),
}

/// The tracing layer that exports spans over OTLP, or `None` when export is
/// off (no endpoint configured, or built without the `otel` feature) or
/// could not be set up.
///
/// Call it once, before the subscriber is installed; it also sets the
/// global W3C trace-context propagator that [`set_parent`] uses. Use
/// [`try_otel_layer`] to learn why it failed.
pub fn otel_layer<S>() -> Option<BoxedLayer<S>>
where
    S: Subscriber + Send + Sync + for<'a> LookupSpan<'a>,
{
    try_otel_layer().ok().flatten()
}

/// Like [`otel_layer`], but says why export could not be set up.
///
/// # Errors
///
/// [`TelemetryError::Exporter`] when an endpoint is configured but the
/// exporter cannot be built (for example an invalid `OTEL_*` value).
pub fn try_otel_layer<S>() -> Result<Option<BoxedLayer<S>>, TelemetryError>
where
    S: Subscriber + Send + Sync + for<'a> LookupSpan<'a>,
{
    imp::layer()
}

/// Continues the producer's trace in `span`: its remote parent becomes the
/// one in `traceparent` (a W3C `traceparent` header value).
///
/// Call it before `span` is first entered. A missing or malformed value,
/// or a subscriber without the OpenTelemetry layer, leaves the span as it
/// is; without the `otel` feature this does nothing.
pub fn set_parent(span: &tracing::Span, traceparent: Option<&str>) {
    imp::set_parent(span, traceparent);
}

/// Flushes the spans still queued and shuts the exporter down. Call once,
/// before the process exits; a no-op when export is off.
pub fn shutdown() {
    imp::shutdown();
}

#[cfg(not(feature = "otel"))]
mod imp {
    use super::{BoxedLayer, TelemetryError};

    pub(super) fn layer<S>() -> Result<Option<BoxedLayer<S>>, TelemetryError> {
        Ok(None)
    }

    pub(super) fn set_parent(_span: &tracing::Span, _traceparent: Option<&str>) {}

    pub(super) fn shutdown() {}
}

#[cfg(feature = "otel")]
mod imp {
    use std::sync::OnceLock;

    use opentelemetry::propagation::Extractor;
    use opentelemetry::trace::{TraceContextExt, TracerProvider as _};
    use opentelemetry::{Context, Key, global};
    use opentelemetry_sdk::Resource;
    use opentelemetry_sdk::propagation::TraceContextPropagator;
    use opentelemetry_sdk::trace::SdkTracerProvider;
    use tracing::Subscriber;
    use tracing_opentelemetry::OpenTelemetrySpanExt;
    use tracing_subscriber::Layer;
    use tracing_subscriber::registry::LookupSpan;

    use super::{BoxedLayer, DEFAULT_SERVICE_NAME, TelemetryError};

    /// The W3C header name the propagator reads.
    const TRACEPARENT: &str = "traceparent";

    /// The provider behind the layer, kept so [`shutdown`] can flush it.
    static PROVIDER: OnceLock<SdkTracerProvider> = OnceLock::new();

    pub(super) fn layer<S>() -> Result<Option<BoxedLayer<S>>, TelemetryError>
    where
        S: Subscriber + Send + Sync + for<'a> LookupSpan<'a>,
    {
        if !export_configured() {
            return Ok(None);
        }
        if let Some(provider) = PROVIDER.get() {
            return Ok(Some(layer_for(provider)));
        }
        // reqwest is built with `rustls-no-provider`: it uses the process
        // default, which is ring, as everywhere else in the worker. An
        // already installed default is kept.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let exporter = opentelemetry_otlp::SpanExporter::builder()
            .with_http()
            .build()?;
        let provider = SdkTracerProvider::builder()
            .with_batch_exporter(exporter)
            .with_resource(resource())
            .build();
        global::set_text_map_propagator(TraceContextPropagator::new());
        let layer = layer_for(&provider);
        let _ = PROVIDER.set(provider);
        Ok(Some(layer))
    }

    /// The tracing layer feeding `provider`.
    pub(super) fn layer_for<S>(provider: &SdkTracerProvider) -> BoxedLayer<S>
    where
        S: Subscriber + Send + Sync + for<'a> LookupSpan<'a>,
    {
        tracing_opentelemetry::layer()
            .with_tracer(provider.tracer(DEFAULT_SERVICE_NAME))
            .boxed()
    }

    /// An endpoint is set and the SDK is not disabled.
    fn export_configured() -> bool {
        let set = |name: &str| std::env::var(name).is_ok_and(|value| !value.trim().is_empty());
        let disabled = std::env::var("OTEL_SDK_DISABLED")
            .is_ok_and(|value| value.trim().eq_ignore_ascii_case("true"));
        !disabled
            && (set("OTEL_EXPORTER_OTLP_ENDPOINT") || set("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"))
    }

    /// The detected resource (`OTEL_SERVICE_NAME`, `OTEL_RESOURCE_ATTRIBUTES`),
    /// named [`DEFAULT_SERVICE_NAME`] when neither gives a service name.
    fn resource() -> Resource {
        let detected = Resource::builder().build();
        let unnamed = detected
            .get(&Key::from_static_str("service.name"))
            .is_none_or(|name| name.as_str().starts_with("unknown_service"));
        if unnamed {
            Resource::builder()
                .with_service_name(DEFAULT_SERVICE_NAME)
                .build()
        } else {
            detected
        }
    }

    /// A carrier holding only the `traceparent` header.
    struct TraceParent<'a>(&'a str);

    impl Extractor for TraceParent<'_> {
        fn get(&self, key: &str) -> Option<&str> {
            key.eq_ignore_ascii_case(TRACEPARENT).then_some(self.0)
        }

        fn keys(&self) -> Vec<&str> {
            vec![TRACEPARENT]
        }
    }

    pub(super) fn set_parent(span: &tracing::Span, traceparent: Option<&str>) {
        let Some(traceparent) = traceparent else {
            return;
        };
        let cx = global::get_text_map_propagator(|propagator| {
            propagator.extract_with_context(&Context::new(), &TraceParent(traceparent))
        });
        if cx.span().span_context().is_valid() {
            // Fails only when the span is disabled, already started, or the
            // subscriber has no OpenTelemetry layer: the span stays as it is.
            let _ = span.set_parent(cx);
        }
    }

    pub(super) fn shutdown() {
        if let Some(provider) = PROVIDER.get() {
            // Failures are reported by the SDK's own (internal-logs) warnings.
            let _ = provider.force_flush();
            let _ = provider.shutdown();
        }
    }
}

#[cfg(all(test, feature = "otel"))]
mod tests {
    use std::sync::{Arc, Mutex};

    use opentelemetry::global;
    use opentelemetry_sdk::error::OTelSdkResult;
    use opentelemetry_sdk::propagation::TraceContextPropagator;
    use opentelemetry_sdk::trace::{SdkTracerProvider, SpanData, SpanExporter};
    use tracing_subscriber::layer::SubscriberExt;

    use super::{imp, set_parent};

    /// Keeps exported spans in memory (the SDK's own in-memory exporter needs
    /// its `testing` feature, which pulls in metrics and logs).
    #[derive(Debug, Clone, Default)]
    struct Collect(Arc<Mutex<Vec<SpanData>>>);

    impl SpanExporter for Collect {
        async fn export(&self, batch: Vec<SpanData>) -> OTelSdkResult {
            self.0
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner())
                .extend(batch);
            Ok(())
        }
    }

    #[test]
    fn set_parent_continues_the_producers_trace() {
        global::set_text_map_propagator(TraceContextPropagator::new());
        let exported = Collect::default();
        let provider = SdkTracerProvider::builder()
            .with_simple_exporter(exported.clone())
            .build();
        let subscriber = tracing_subscriber::registry().with(imp::layer_for(&provider));

        tracing::subscriber::with_default(subscriber, || {
            let span = tracing::info_span!("handle_message");
            set_parent(
                &span,
                Some("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"),
            );
            let _entered = span.enter();
            tracing::info!("inside");
        });
        provider.force_flush().expect("flush");

        let spans = exported.0.lock().expect("lock");
        assert_eq!(spans.len(), 1, "{spans:?}");
        let span = &spans[0];
        assert_eq!(span.name, "handle_message");
        assert_eq!(
            span.span_context.trace_id().to_string(),
            "4bf92f3577b34da6a3ce929d0e0e4736"
        );
        assert_eq!(span.parent_span_id.to_string(), "00f067aa0ba902b7");
        assert!(span.parent_span_is_remote);
    }

    #[test]
    fn a_malformed_traceparent_leaves_the_span_alone() {
        global::set_text_map_propagator(TraceContextPropagator::new());
        let exported = Collect::default();
        let provider = SdkTracerProvider::builder()
            .with_simple_exporter(exported.clone())
            .build();
        let subscriber = tracing_subscriber::registry().with(imp::layer_for(&provider));

        tracing::subscriber::with_default(subscriber, || {
            let span = tracing::info_span!("handle_message");
            set_parent(&span, Some("not-a-traceparent"));
            let _entered = span.enter();
        });
        provider.force_flush().expect("flush");

        let spans = exported.0.lock().expect("lock");
        assert_eq!(spans.len(), 1, "{spans:?}");
        assert_ne!(
            spans[0].span_context.trace_id().to_string(),
            "4bf92f3577b34da6a3ce929d0e0e4736"
        );
        assert!(!spans[0].parent_span_is_remote);
    }
}
