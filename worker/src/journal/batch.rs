//! Batches: many journal calls of one kind, one prepared statement.
//!
//! Every command costs journal work (begin and complete, or one fused
//! settle), and every commit waits for its WAL flush. Calls are therefore
//! gathered instead of run one by one: while earlier batches commit, the
//! next one collects whatever calls arrive (it never waits to fill up), then
//! sends them as arrays to one statement (`unnest(...) CROSS JOIN LATERAL`
//! the journal function), which PostgreSQL runs as one transaction. Each
//! caller is answered only after that commit.
//!
//! - **Lock order.** Calls are sorted by run (tenant, run id, then seq)
//!   before they are sent, and every batch is a single statement, so
//!   concurrent batches lock runs in one global order and cannot deadlock.
//! - **Prepared once.** The statements are prepared once per connection
//!   ([`Connections`]); the hot path has no per-checkout test.
//! - **Split on failure.** A batch that fails as a whole (one call's error
//!   aborts the statement) is retried call by call, so one bad call never
//!   fails its neighbours; each failing call gets its own error.

use std::future::Future;
use std::sync::{Arc, Mutex};

use tokio::sync::{Semaphore, mpsc, oneshot};
use tokio_postgres::Statement;

use crate::db::{Context, DbError};

/// Most calls in one statement.
pub(crate) const MAX_BATCH: usize = 512;

/// A journal connection with its prepared statements.
pub(crate) struct Conn {
    /// The client.
    pub client: tokio_postgres::Client,
    /// Its statements, with their SQL text (the ops' own constants).
    statements: Vec<(&'static str, Statement)>,
}

impl Conn {
    /// The prepared statement of `sql`, one of those the connections were
    /// made for ([`Connections::new`]).
    pub(crate) fn statement(&self, sql: &'static str) -> Result<&Statement, DbError> {
        let prepared = self.statements.iter().find(|(text, _)| *text == sql);
        prepared.map(|(_, statement)| statement).ok_or_else(|| {
            DbError::Unexpected(format!(
                "a journal statement was not prepared: {}",
                crate::text::head(sql.trim(), 80)
            ))
        })
    }
}

/// A kind of batched call: its request, its answer, and the statement that
/// runs many of them.
pub(crate) trait Op: Send + Sync + 'static {
    /// One call's input.
    type Request: Send + Sync + 'static;
    /// One call's answer.
    type Answer: Send + 'static;
    /// The journal function it calls (named in errors).
    const CALL: &'static str;
    /// The lock order: the run the call locks, then its seq.
    fn order(request: &Self::Request) -> (&str, &str, i64);
    /// Runs `requests` (already in lock order) as one statement; one answer
    /// per request, in order.
    fn run<'a>(
        conn: &'a Conn,
        requests: &'a [&'a Self::Request],
    ) -> impl Future<Output = Result<Vec<Self::Answer>, DbError>> + Send + 'a;
}

/// Journal connections, each with its statements prepared, shared by the
/// batchers; at most `size` batches are in flight at once.
#[derive(Clone)]
pub(crate) struct Connections {
    /// The database URL.
    url: String,
    /// The statements each connection prepares.
    statements: &'static [&'static str],
    /// Idle connections.
    idle: Arc<Mutex<Vec<Conn>>>,
    /// One permit per batch in flight.
    slots: Arc<Semaphore>,
}

impl std::fmt::Debug for Connections {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Connections")
            .field("slots", &self.slots.available_permits())
            .finish_non_exhaustive()
    }
}

impl Connections {
    /// Up to `size` connections to `url`, opened when first needed, each
    /// with `statements` prepared.
    pub(crate) fn new(url: &str, size: usize, statements: &'static [&'static str]) -> Connections {
        Connections {
            url: url.to_owned(),
            statements,
            idle: Arc::new(Mutex::new(Vec::new())),
            slots: Arc::new(Semaphore::new(size.max(1))),
        }
    }

    /// An idle connection, or a new one.
    async fn take(&self) -> Result<Conn, DbError> {
        let idle = self.idle.lock().unwrap_or_else(|e| e.into_inner()).pop();
        match idle {
            Some(conn) if !conn.client.is_closed() => Ok(conn),
            _ => connect(&self.url, self.statements).await,
        }
    }

    /// Gives a connection back, unless it broke.
    fn put(&self, conn: Conn) {
        if !conn.client.is_closed() {
            self.idle
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .push(conn);
        }
    }
}

async fn connect(url: &str, sqls: &'static [&'static str]) -> Result<Conn, DbError> {
    let (client, connection) = crate::db::connect(url).await?;
    tokio::spawn(async move {
        if let Err(err) = connection.await {
            tracing::warn!(error = %DbError::from(err), "journal connection ended");
        }
    });
    // The batch statements are planned once: a custom plan per execution
    // (PostgreSQL's choice for the first ones) costs more than it saves for
    // statements whose shape never changes.
    client
        .batch_execute("SET plan_cache_mode = force_generic_plan")
        .await?;
    let mut statements = Vec::with_capacity(sqls.len());
    for &sql in sqls {
        statements.push((sql, client.prepare(sql).await?));
    }
    Ok(Conn { client, statements })
}

/// JSON text sent as it is (already serialized, or the message's own
/// bytes) to a `json` or `jsonb` parameter.
#[derive(Debug, Clone)]
pub(crate) struct RawJson(pub bytes::Bytes);

impl tokio_postgres::types::ToSql for RawJson {
    fn to_sql(
        &self,
        ty: &tokio_postgres::types::Type,
        out: &mut bytes::BytesMut,
    ) -> Result<tokio_postgres::types::IsNull, Box<dyn std::error::Error + Sync + Send>> {
        if *ty == tokio_postgres::types::Type::JSONB {
            out.extend_from_slice(&[1]); // jsonb's binary format version
        }
        out.extend_from_slice(&self.0);
        Ok(tokio_postgres::types::IsNull::No)
    }

    fn accepts(ty: &tokio_postgres::types::Type) -> bool {
        matches!(
            *ty,
            tokio_postgres::types::Type::JSON | tokio_postgres::types::Type::JSONB
        )
    }

    tokio_postgres::types::to_sql_checked!();
}

/// A call waiting for its batch.
struct Call<O: Op> {
    request: O::Request,
    reply: oneshot::Sender<Result<O::Answer, DbError>>,
}

/// Submits calls of one kind to be run in batches.
pub(crate) struct Batcher<O: Op> {
    /// Where calls queue.
    calls: mpsc::UnboundedSender<Call<O>>,
}

impl<O: Op> std::fmt::Debug for Batcher<O> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Batcher").finish_non_exhaustive()
    }
}

impl<O: Op> Clone for Batcher<O> {
    fn clone(&self) -> Self {
        Batcher {
            calls: self.calls.clone(),
        }
    }
}

impl<O: Op> Batcher<O> {
    /// Starts the collector on `connections`.
    pub(crate) fn start(connections: Connections) -> Batcher<O> {
        let (calls, queue) = mpsc::unbounded_channel();
        tokio::spawn(collect::<O>(connections, queue));
        Batcher { calls }
    }

    /// Runs `request` in the next batch; its answer once the batch committed.
    ///
    /// # Errors
    /// [`DbError`] when the call failed (on its own, outside the batch).
    pub(crate) async fn call(&self, request: O::Request) -> Result<O::Answer, DbError> {
        let (reply, answer) = oneshot::channel();
        self.calls
            .send(Call { request, reply })
            .map_err(|_| DbError::Pool("the journal batcher stopped".into()))?;
        answer
            .await
            .map_err(|_| DbError::Pool("the journal batch was dropped".into()))?
    }
}

/// Gathers calls into batches while earlier batches commit.
async fn collect<O: Op>(connections: Connections, mut queue: mpsc::UnboundedReceiver<Call<O>>) {
    while let Some(first) = queue.recv().await {
        let Ok(slot) = connections.slots.clone().acquire_owned().await else {
            return;
        };
        let mut batch = vec![first];
        while batch.len() < MAX_BATCH {
            match queue.try_recv() {
                Ok(call) => batch.push(call),
                Err(_) => break,
            }
        }
        let connections = connections.clone();
        tokio::spawn(async move {
            commit::<O>(&connections, batch).await;
            drop(slot);
        });
    }
}

async fn commit<O: Op>(connections: &Connections, mut batch: Vec<Call<O>>) {
    let conn = match connections.take().await {
        Ok(conn) => conn,
        Err(err) => {
            let message = err.to_string();
            for call in batch {
                let _ = call.reply.send(Err(DbError::Pool(message.clone())));
            }
            return;
        }
    };
    batch.sort_by(|a, b| O::order(&a.request).cmp(&O::order(&b.request)));
    let requests: Vec<&O::Request> = batch.iter().map(|c| &c.request).collect();
    let started = std::time::Instant::now();
    let together = O::run(&conn, &requests).await;
    tracing::debug!(
        op = std::any::type_name::<O>(),
        calls = requests.len(),
        ms = started.elapsed().as_secs_f64() * 1e3,
        "journal batch"
    );
    drop(requests);
    match together {
        Ok(answers) if answers.len() == batch.len() => {
            for (call, answer) in batch.into_iter().zip(answers) {
                let _ = call.reply.send(Ok(answer));
            }
        }
        Err(err) if batch.len() == 1 => {
            if let Some(call) = batch.pop() {
                let _ = call
                    .reply
                    .send(Err(err).during(O::CALL, || subject::<O>(&call.request)));
            }
        }
        outcome => {
            if let Err(err) = &outcome {
                tracing::debug!(error = %err, calls = batch.len(), "batch failed; retrying its calls one by one");
            }
            for call in batch {
                let answer = O::run(&conn, &[&call.request])
                    .await
                    .and_then(|mut a| {
                        a.pop()
                            .ok_or_else(|| DbError::Unexpected("no row returned".into()))
                    })
                    .during(O::CALL, || subject::<O>(&call.request));
                let _ = call.reply.send(answer);
            }
        }
    }
    connections.put(conn);
}

/// What one call was for, for errors: its run and seq.
fn subject<O: Op>(request: &O::Request) -> String {
    let (tenant, run_id, seq) = O::order(request);
    format!("seq {seq} of {}", crate::db::run_subject(tenant, run_id))
}
