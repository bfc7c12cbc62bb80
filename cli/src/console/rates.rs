//! Throughput and latency of the last minutes, for the overview's charts:
//! a background reader of every receipt stored on `RUNFLEET_RECEIPTS` since
//! [`WINDOW`] before the console started, then live, counted per
//! [`BUCKET`] of finishing time. Latency is execution time (a receipt's
//! `started_at` to `finished_at`).

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_nats::jetstream;
use chrono::{DateTime, Utc};
use futures::StreamExt;
use runfleet_producer::follow;

/// How far back the charts reach.
pub(super) const WINDOW: Duration = Duration::from_secs(300);
/// The width of one bar of the charts.
pub(super) const BUCKET: Duration = Duration::from_secs(10);
/// At most this many latencies are kept per bucket (the percentiles of a
/// busier bucket are those of its first ones).
const MOST_SAMPLES: usize = 20_000;

/// One bucket's receipts.
#[derive(Debug, Default, Clone)]
struct Bucket {
    receipts: u64,
    failed: u64,
    latencies_ms: Vec<f64>,
}

/// One bar of the charts.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct Bar {
    /// When the bucket starts.
    pub(super) at: DateTime<Utc>,
    /// Receipts per second.
    pub(super) per_second: f64,
    /// Failed (not completed) receipts per second.
    pub(super) failed_per_second: f64,
    /// Execution time percentiles, when there were receipts.
    pub(super) p50_ms: Option<f64>,
    pub(super) p99_ms: Option<f64>,
}

/// The counts, filled by the reader.
#[derive(Debug, Clone, Default)]
pub(super) struct Rates {
    buckets: Arc<Mutex<BTreeMap<i64, Bucket>>>,
}

fn bucket_of(at: DateTime<Utc>) -> i64 {
    at.timestamp().div_euclid(BUCKET.as_secs() as i64)
}

fn percentile(sorted: &[f64], p: f64) -> Option<f64> {
    let last = sorted.len().checked_sub(1)?;
    let index = ((last as f64) * p).round() as usize;
    sorted.get(index.min(last)).copied()
}

impl Rates {
    /// Starts the reader (it reconnects after 5 s when the stream cannot be read).
    pub(super) fn start(js: jetstream::Context) -> Rates {
        let rates = Rates::default();
        let filled = rates.clone();
        tokio::spawn(async move {
            loop {
                let since = Utc::now() - chrono::TimeDelta::from_std(WINDOW).unwrap_or_default();
                match follow::receipts_since(&js, since).await {
                    Ok(receipts) => {
                        // Read again from the window's start: counted afresh.
                        filled.clear();
                        futures::pin_mut!(receipts);
                        while let Some(receipt) = receipts.next().await {
                            // One that is not a receipt of this contract counts for nothing.
                            if let Ok(receipt) = receipt {
                                filled.record(
                                    receipt.started_at,
                                    receipt.finished_at,
                                    receipt.failure.is_some(),
                                );
                            }
                        }
                    }
                    Err(err) => eprintln!("console: receipts not readable for the charts: {err}"),
                }
                tokio::time::sleep(Duration::from_secs(5)).await;
            }
        });
        rates
    }

    fn clear(&self) {
        if let Ok(mut buckets) = self.buckets.lock() {
            buckets.clear();
        }
    }

    fn record(&self, started: Option<DateTime<Utc>>, finished: DateTime<Utc>, failed: bool) {
        let Ok(mut buckets) = self.buckets.lock() else {
            return;
        };
        let bucket = buckets.entry(bucket_of(finished)).or_default();
        bucket.receipts += 1;
        bucket.failed += u64::from(failed);
        if let Some(started) = started
            && bucket.latencies_ms.len() < MOST_SAMPLES
        {
            bucket
                .latencies_ms
                .push((finished - started).num_microseconds().unwrap_or(0) as f64 / 1e3);
        }
        let oldest = bucket_of(Utc::now()) - (WINDOW.as_secs() / BUCKET.as_secs()) as i64 - 1;
        buckets.retain(|&b, _| b >= oldest);
    }

    /// The bars of the last [`WINDOW`], oldest first (the current, partial bucket excluded).
    pub(super) fn bars(&self) -> Vec<Bar> {
        let now = bucket_of(Utc::now());
        let count = (WINDOW.as_secs() / BUCKET.as_secs()) as i64;
        let seconds = BUCKET.as_secs_f64();
        let buckets = self.buckets.lock().map(|b| b.clone()).unwrap_or_default();
        (now - count..now)
            .map(|b| {
                let bucket = buckets.get(&b).cloned().unwrap_or_default();
                let mut sorted = bucket.latencies_ms;
                sorted.sort_by(f64::total_cmp);
                Bar {
                    at: DateTime::from_timestamp(b * BUCKET.as_secs() as i64, 0)
                        .unwrap_or_default(),
                    per_second: bucket.receipts as f64 / seconds,
                    failed_per_second: bucket.failed as f64 / seconds,
                    p50_ms: percentile(&sorted, 0.5),
                    p99_ms: percentile(&sorted, 0.99),
                }
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn receipts_land_in_their_bucket_with_percentiles() {
        let rates = Rates::default();
        let finished = Utc::now() - chrono::TimeDelta::seconds(20);
        for ms in 1..=100 {
            let started = finished - chrono::TimeDelta::milliseconds(ms);
            rates.record(Some(started), finished, ms == 100);
        }
        let bars = rates.bars();
        assert_eq!(bars.len(), 30);
        let bar = bars.iter().find(|b| b.per_second > 0.0).unwrap();
        assert!((bar.per_second - 10.0).abs() < 1e-9);
        assert!((bar.failed_per_second - 0.1).abs() < 1e-9);
        assert_eq!(bar.p50_ms, Some(51.0));
        assert_eq!(bar.p99_ms, Some(99.0));
    }
}
