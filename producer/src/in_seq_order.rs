//! A run's events in seq order, whatever order the events stream holds them in.
//!
//! The fleet journals a run's events with gap-free seqs (1, 2, 3, …) and
//! publishes them in that order, but the stream may still hold them
//! differently: a publish retried across a stream leader's failover lands
//! after the next one, and a redelivered command publishes again events
//! already stored (JetStream drops the copies inside its deduplication
//! window; outside it they are stored twice). Followers therefore order by
//! `seq`, never by stream position. [`in_seq_order`] does it for the
//! producer's followers:
//!
//! - an event ahead of the next expected seq is held until the ones before it
//!   arrive;
//! - an event at or behind a seq already yielded is a copy and is dropped;
//! - a missing seq the follower has waited [`GAP_WAIT`] for (the wait starts
//!   when it becomes the next one with a later one held) is skipped: it
//!   expired from the stream, or its publish comes later than that. The
//!   follower moves on to the lowest seq it holds rather than stall for ever.
//!   The wait covers the worker's own way back to a failed publish: a
//!   PubAck timeout (5 s), a NAK's delay, the redelivery that publishes the
//!   journaled events again, and a stream leader's failover (~5 s).
//!
//! Errors (an undecodable message, a broken consumer) pass through at once.

use std::collections::BTreeMap;
use std::time::Duration;

use futures::{Stream, StreamExt};
use runfleet_schemas::Event;
use tokio::time::Instant;

use crate::ProducerError;

/// How long a follower waits for a missing seq with a later one held.
pub const GAP_WAIT: Duration = Duration::from_secs(15);

/// The reorderer's state between two yielded items.
struct Reorder<S> {
    /// The events as the stream holds them.
    inner: S,
    /// Events ahead of `next`, by seq.
    held: BTreeMap<u64, Event>,
    /// The seq to yield next.
    next: u64,
    /// When the gap before the lowest held seq is given up on.
    gap_deadline: Option<Instant>,
    /// How long a gap is waited for.
    gap_wait: Duration,
    /// The inner stream has ended: yield what is held, in order, then end.
    ended: bool,
}

/// `events` (one run's, in stream order) as seqs `from_seq`, `from_seq + 1`,
/// …, each once; see the module docs for gaps and copies.
pub fn in_seq_order<S>(
    events: S,
    from_seq: u64,
    gap_wait: Duration,
) -> impl Stream<Item = Result<Event, ProducerError>>
where
    S: Stream<Item = Result<Event, ProducerError>> + Unpin,
{
    let state = Reorder {
        inner: events,
        held: BTreeMap::new(),
        next: from_seq.max(1),
        gap_deadline: None,
        gap_wait,
        ended: false,
    };
    futures::stream::unfold(state, |mut state| async move {
        let item = state.next_item().await?;
        Some((item, state))
    })
}

impl<S> Reorder<S>
where
    S: Stream<Item = Result<Event, ProducerError>> + Unpin,
{
    /// The next item to yield; `None` once the inner stream ended and nothing is held.
    async fn next_item(&mut self) -> Option<Result<Event, ProducerError>> {
        loop {
            if let Some(event) = self.held.remove(&self.next) {
                self.next += 1;
                self.gap_deadline = None;
                self.watch_gap();
                return Some(Ok(event));
            }
            if self.ended {
                // Nothing more will come: what is held follows its gap.
                self.next = *self.held.keys().next()?;
                continue;
            }
            let received = match self.gap_deadline {
                Some(deadline) => {
                    match tokio::time::timeout_at(deadline, self.inner.next()).await {
                        Ok(received) => received,
                        Err(_elapsed) => {
                            self.skip_gap();
                            continue;
                        }
                    }
                }
                None => self.inner.next().await,
            };
            match received {
                None => self.ended = true,
                Some(Err(err)) => return Some(Err(err)),
                Some(Ok(event)) => {
                    if event.seq >= self.next {
                        self.held.entry(event.seq).or_insert(event);
                    }
                    self.watch_gap();
                }
            }
        }
    }

    /// Starts the gap timer when events are held but the next seq is missing.
    fn watch_gap(&mut self) {
        if self.gap_deadline.is_none()
            && !self.held.is_empty()
            && !self.held.contains_key(&self.next)
        {
            self.gap_deadline = Some(Instant::now() + self.gap_wait);
        }
    }

    /// Gives up on the missing seqs: the lowest held one is next.
    fn skip_gap(&mut self) {
        if let Some(&lowest) = self.held.keys().next() {
            tracing::warn!(
                missing_from = self.next,
                missing_to = lowest - 1,
                "events missing from the stream; skipping them"
            );
            self.next = lowest;
        }
        self.gap_deadline = None;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use runfleet_schemas::{EventBody, RunId, SchemaVersion, Tenant};

    fn event(seq: u64) -> Event {
        Event {
            schema: Default::default(),
            version: SchemaVersion,
            tenant: Tenant::new("acme").unwrap(),
            run_id: RunId::new("run-1").unwrap(),
            command_id: None,
            seq,
            attempt: None,
            at: chrono::Utc::now(),
            body: EventBody::Phase {
                name: format!("phase {seq}"),
            },
        }
    }

    /// The seqs `in_seq_order` yields for events arriving as `arrivals`
    /// (a seq, or `None` for a 100 ms pause), with a 50 ms gap wait, from a
    /// stream that stays open after them (time is paused in these tests:
    /// it jumps to the next timer, so the two never race). Collects `count`.
    async fn reordered(arrivals: &[Option<u64>], from_seq: u64, count: usize) -> Vec<u64> {
        let arrivals: Vec<Option<u64>> = arrivals.to_vec();
        let events = futures::stream::iter(arrivals)
            .then(|arrival| async move {
                match arrival {
                    Some(seq) => Some(Ok(event(seq))),
                    None => {
                        tokio::time::sleep(Duration::from_millis(100)).await;
                        None
                    }
                }
            })
            .filter_map(|item| async move { item })
            .chain(futures::stream::pending())
            .boxed();
        in_seq_order(events, from_seq, Duration::from_millis(50))
            .map(|e| e.unwrap().seq)
            .take(count)
            .collect()
            .await
    }

    #[tokio::test(start_paused = true)]
    async fn out_of_order_events_come_out_in_seq_order_once_each() {
        let arrivals = [
            Some(1),
            Some(3),
            Some(2),
            Some(2),
            Some(5),
            Some(4),
            Some(1),
            Some(6),
        ];
        assert_eq!(reordered(&arrivals, 1, 6).await, vec![1, 2, 3, 4, 5, 6]);
    }

    #[tokio::test(start_paused = true)]
    async fn events_before_from_seq_are_not_yielded() {
        let arrivals = [Some(1), Some(2), Some(4), Some(3), Some(5)];
        assert_eq!(reordered(&arrivals, 3, 3).await, vec![3, 4, 5]);
    }

    #[tokio::test(start_paused = true)]
    async fn a_gap_is_waited_for_then_skipped() {
        // 2 is late but within the wait: ordered. 5 never comes: after the
        // wait, 6 is yielded while the stream is still open (and nothing
        // else would release it).
        let arrivals = [Some(1), Some(3), Some(2), Some(4), Some(6)];
        assert_eq!(reordered(&arrivals, 1, 5).await, vec![1, 2, 3, 4, 6]);
    }

    #[tokio::test(start_paused = true)]
    async fn a_seq_arriving_after_its_gap_was_skipped_is_dropped() {
        let arrivals = [Some(1), Some(3), None, Some(2), Some(4)];
        assert_eq!(reordered(&arrivals, 1, 3).await, vec![1, 3, 4]);
    }

    #[tokio::test(start_paused = true)]
    async fn errors_pass_through_at_once() {
        let items = vec![
            Ok(event(2)),
            Err(ProducerError::Read {
                what: "x".into(),
                detail: "broken".into(),
            }),
            Ok(event(1)),
        ];
        let out: Vec<_> = in_seq_order(futures::stream::iter(items), 1, GAP_WAIT)
            .collect()
            .await;
        assert!(matches!(out[0], Err(ProducerError::Read { .. })));
        assert_eq!(out[1].as_ref().unwrap().seq, 1);
        assert_eq!(out[2].as_ref().unwrap().seq, 2);
    }
}
