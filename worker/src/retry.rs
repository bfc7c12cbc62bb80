//! Retry delays for NAKs: exponential with jitter, keyed on the delivery
//! count, from `backon`'s schedule (the `backoff` crate is unmaintained,
//! RUSTSEC-2025-0012).
//!
//! The consumer's own `backoff` setting is not used: it would replace
//! `ack_wait`, the lease, with a per-attempt value.

use std::time::Duration;

use backon::{BackoffBuilder, ExponentialBuilder};

/// The first retry's delay.
const FIRST: Duration = Duration::from_millis(250);
/// The longest delay between two deliveries.
const LONGEST: Duration = Duration::from_secs(30);

/// The delay before delivery `attempt + 1`, after delivery `attempt` failed.
pub fn nak_delay(attempt: u64) -> Duration {
    let steps = usize::try_from(attempt.max(1)).unwrap_or(usize::MAX);
    ExponentialBuilder::default()
        .with_min_delay(FIRST)
        .with_max_delay(LONGEST)
        .with_factor(2.0)
        .with_jitter()
        .without_max_times()
        .build()
        .nth(steps - 1)
        .unwrap_or(LONGEST)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grows_with_attempts_and_stays_bounded() {
        // Jitter adds up to one base delay on top: bounds are [base, 2 * base].
        let first = nak_delay(1);
        assert!(first >= FIRST && first <= 2 * FIRST, "{first:?}");
        let fourth = nak_delay(4);
        assert!(fourth >= 8 * FIRST && fourth <= 16 * FIRST, "{fourth:?}");
        assert!(nak_delay(1_000) <= 2 * LONGEST);
    }
}
