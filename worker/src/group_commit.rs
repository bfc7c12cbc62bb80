//! Group commit: many journal calls, one transaction.
//!
//! Every command costs two journal transactions (begin, complete), and each
//! commit waits for its WAL flush. Under load the worker's concurrent
//! commands would queue for pool connections behind those flushes, so their
//! calls are gathered instead: while one batch commits, the next one
//! collects whatever calls arrive, then runs them pipelined on one
//! connection inside one transaction and answers each caller only after the
//! commit. Calls touch rows in a fixed order (sorted by run) so concurrent
//! batches cannot deadlock.
//!
//! A batch that fails as a whole (one call's error aborts the transaction)
//! is retried call by call, each in its own transaction, so one bad call
//! cannot fail the others.

use std::sync::Arc;

use futures::future::join_all;
use tokio::sync::{Semaphore, mpsc, oneshot};
use tokio_postgres::Row;
use tokio_postgres::types::ToSql;

use crate::db::{DbError, Pool};

/// Most calls in one transaction.
const MAX_BATCH: usize = 64;

/// A parameter of a batched call.
pub type Param = Box<dyn ToSql + Send + Sync>;

/// One call: a statement returning one row, its parameters, and who waits for it.
struct Call {
    /// The statement (a journal function call).
    sql: &'static str,
    /// Its parameters.
    params: Vec<Param>,
    /// Orders calls inside a batch (the run they lock).
    order: String,
    /// Gets the row once the batch committed.
    reply: oneshot::Sender<Result<Row, DbError>>,
}

/// Submits calls to be committed in groups.
#[derive(Debug, Clone)]
pub struct GroupCommit {
    /// Where calls queue.
    calls: mpsc::UnboundedSender<Call>,
}

impl std::fmt::Debug for Call {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Call")
            .field("sql", &self.sql)
            .field("order", &self.order)
            .finish()
    }
}

impl GroupCommit {
    /// Starts the collector; at most `concurrency` batches commit at once.
    pub fn start(pool: Pool, concurrency: usize) -> GroupCommit {
        let (calls, queue) = mpsc::unbounded_channel();
        tokio::spawn(collect(
            pool,
            queue,
            Arc::new(Semaphore::new(concurrency.max(1))),
        ));
        GroupCommit { calls }
    }

    /// Runs `sql` in the next batch; returns its row after the batch committed.
    ///
    /// # Errors
    /// [`DbError`] when the call failed (on its own, outside the batch).
    pub async fn query_one(
        &self,
        sql: &'static str,
        params: Vec<Param>,
        order: String,
    ) -> Result<Row, DbError> {
        let (reply, answer) = oneshot::channel();
        self.calls
            .send(Call {
                sql,
                params,
                order,
                reply,
            })
            .map_err(|_| DbError::Pool("the group-commit collector stopped".into()))?;
        answer
            .await
            .map_err(|_| DbError::Pool("the group-commit batch was dropped".into()))?
    }
}

/// Gathers calls into batches while earlier batches commit.
async fn collect(pool: Pool, mut queue: mpsc::UnboundedReceiver<Call>, slots: Arc<Semaphore>) {
    while let Some(first) = queue.recv().await {
        let Ok(slot) = slots.clone().acquire_owned().await else {
            return;
        };
        let mut batch = vec![first];
        while batch.len() < MAX_BATCH {
            match queue.try_recv() {
                Ok(call) => batch.push(call),
                Err(_) => break,
            }
        }
        let pool = pool.clone();
        tokio::spawn(async move {
            commit(&pool, batch).await;
            drop(slot);
        });
    }
}

async fn commit(pool: &Pool, mut batch: Vec<Call>) {
    batch.sort_by(|a, b| a.order.cmp(&b.order));
    if batch.len() > 1 {
        match together(pool, &batch).await {
            Ok(rows) => {
                for (call, row) in batch.into_iter().zip(rows) {
                    let _ = call.reply.send(Ok(row));
                }
                return;
            }
            Err(err) => {
                tracing::debug!(error = %err, calls = batch.len(), "batch failed; retrying its calls one by one");
            }
        }
    }
    for call in batch {
        let result = alone(pool, &call).await;
        let _ = call.reply.send(result);
    }
}

/// All calls in one transaction, pipelined on one connection.
async fn together(pool: &Pool, batch: &[Call]) -> Result<Vec<Row>, DbError> {
    let mut conn = pool.get().await?;
    let tx = conn.transaction().await?;
    let params: Vec<Vec<&(dyn ToSql + Sync)>> = batch.iter().map(params).collect();
    let results = join_all(
        batch
            .iter()
            .zip(&params)
            .map(|(call, params)| tx.query_one(call.sql, params)),
    )
    .await;
    let rows = results.into_iter().collect::<Result<Vec<_>, _>>()?;
    tx.commit().await?;
    Ok(rows)
}

async fn alone(pool: &Pool, call: &Call) -> Result<Row, DbError> {
    let conn = pool.get().await?;
    Ok(conn.query_one(call.sql, &params(call)).await?)
}

fn params(call: &Call) -> Vec<&(dyn ToSql + Sync)> {
    call.params
        .iter()
        .map(|p| p.as_ref() as &(dyn ToSql + Sync))
        .collect()
}
