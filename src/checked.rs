//! Time arithmetic that cannot panic. `Instant + Duration` panics on
//! overflow, and durations here come from configuration, upstream answers
//! (a token's `expires_in`) and requests; these saturate instead.

use std::time::{Duration, Instant};

/// About a century: "never", for an instant that would overflow.
const FAR: Duration = Duration::from_secs(100 * 365 * 24 * 3600);

/// `now + after`, or as far ahead as the clock goes.
pub fn later(now: Instant, after: Duration) -> Instant {
    now.checked_add(after)
        .or_else(|| now.checked_add(FAR))
        .unwrap_or(now)
}

/// A duration from seconds as upstreams send them (`expires_in`: any JSON
/// number): negative, NaN and zero are zero; huge and infinite are capped.
pub fn seconds(value: f64, cap: Duration) -> Duration {
    if value.is_nan() || value <= 0.0 {
        return Duration::ZERO;
    }
    Duration::try_from_secs_f64(value).map_or(cap, |d| d.min(cap))
}

/// Whole seconds for `Retry-After`, rounded up, at least 1.
pub fn retry_after_seconds(after: Duration) -> u64 {
    after
        .as_secs()
        .saturating_add(u64::from(after.subsec_nanos() > 0))
        .max(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nothing_here_panics_on_extreme_values() {
        let now = Instant::now();
        assert!(later(now, Duration::MAX) > now);
        assert_eq!(later(now, Duration::ZERO), now);
        let cap = Duration::from_secs(3600);
        for v in [
            f64::NAN,
            f64::INFINITY,
            f64::NEG_INFINITY,
            -1.0,
            0.0,
            1e300,
            f64::MAX,
            f64::MIN_POSITIVE,
        ] {
            assert!(seconds(v, cap) <= cap, "{v}");
        }
        assert_eq!(seconds(1200.0, cap), Duration::from_secs(1200));
        assert_eq!(retry_after_seconds(Duration::from_millis(1)), 1);
        assert_eq!(retry_after_seconds(Duration::from_millis(1500)), 2);
        assert_eq!(retry_after_seconds(Duration::MAX), u64::MAX);
    }
}
