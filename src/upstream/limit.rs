//! How many calls one upstream may have in flight: a fixed ceiling
//! (`max_concurrency`, where callers wait up to a second for a slot), and,
//! with `adaptive_concurrency`, a limit under it that follows the upstream's
//! latency, in the manner of Netflix's Gradient2 limit and Envoy's adaptive
//! concurrency filter: when calls take longer than the upstream's usual
//! latency, fewer are let out, and callers beyond the limit get a 503 at once
//! instead of queueing behind a slow upstream; when latency recovers, the
//! limit grows back.
//!
//! The algorithm, per completed call (its round-trip time `rtt`):
//! - `recent`: the latency now, an average over the last ~10 calls;
//! - `usual`: the latency the upstream normally has, an average over the
//!   last ~500 calls that drops at once to any faster `recent`, so it is the
//!   upstream's unloaded latency, drifting to a new normal only slowly;
//! - `gradient = clamp((2 × usual + 25 ms) / recent, 0.5, 1)`: 1 while
//!   latency is within twice the usual (plus 25 ms, so scheduling noise on a
//!   sub-millisecond upstream is not a slowdown), down to 0.5 past that;
//! - `limit ← 0.8 × limit + 0.2 × (limit × gradient + √limit)`, within
//!   `[MIN_LIMIT, max_concurrency]`; the `√limit` lets it grow while the
//!   upstream keeps up.
//!
//! Written here rather than taken from a crate: the Rust ports of
//! concurrency-limits (tower-acc, 0.1) wrap a `tower::Service`, and the
//! gateway's calls are plain futures under its own policy; the algorithm is
//! the thirty lines below, unit-tested with made-up latencies.

use std::{
    sync::{
        Mutex, PoisonError,
        atomic::{AtomicUsize, Ordering},
    },
    time::Duration,
};

/// The limit never goes below this: a slow upstream still gets calls, so
/// its recovery is seen.
pub const MIN_LIMIT: usize = 2;
/// Latency up to this multiple of the usual is not a slowdown...
const TOLERANCE: f64 = 2.0;
/// ...nor is this much more, in seconds: a jitter of a few milliseconds is
/// noise, whatever the usual latency.
const ALLOWANCE: f64 = 0.025;
/// Weight of one call in `recent` (~10 calls).
const RECENT_WEIGHT: f64 = 0.1;
/// Weight of one call in `usual` (~500 calls).
const USUAL_WEIGHT: f64 = 0.002;
/// How far one call moves the limit towards its new estimate.
const SMOOTHING: f64 = 0.2;

#[derive(Debug)]
struct Estimate {
    limit: f64,
    /// Seconds; `None` before the first call.
    recent: Option<f64>,
    usual: Option<f64>,
}

/// The adaptive limit of one upstream.
#[derive(Debug)]
pub struct Gradient {
    ceiling: usize,
    estimate: Mutex<Estimate>,
    /// The current limit, read without the lock on every call.
    current: AtomicUsize,
}

impl Gradient {
    /// Starts at `ceiling`: until an upstream has shown its latency, it is
    /// allowed what `max_concurrency` allows.
    pub fn new(ceiling: usize) -> Self {
        let ceiling = ceiling.max(MIN_LIMIT);
        Self {
            ceiling,
            estimate: Mutex::new(Estimate {
                limit: ceiling as f64,
                recent: None,
                usual: None,
            }),
            current: AtomicUsize::new(ceiling),
        }
    }

    /// The calls allowed in flight now.
    pub fn limit(&self) -> usize {
        self.current.load(Ordering::Relaxed)
    }

    /// Takes one completed call's round-trip time into the limit.
    pub fn observe(&self, rtt: Duration) {
        let rtt = rtt.as_secs_f64().max(1e-6);
        let mut e = self.estimate.lock().unwrap_or_else(PoisonError::into_inner);
        let recent = match e.recent {
            None => rtt,
            Some(recent) => recent + RECENT_WEIGHT * (rtt - recent),
        };
        let usual = match e.usual {
            None => recent,
            Some(usual) if recent < usual => recent,
            Some(usual) => usual + USUAL_WEIGHT * (recent - usual),
        };
        let gradient = ((TOLERANCE * usual + ALLOWANCE) / recent).clamp(0.5, 1.0);
        let estimate = e.limit * gradient + e.limit.sqrt();
        let limit = (e.limit * (1.0 - SMOOTHING) + estimate * SMOOTHING)
            .clamp(MIN_LIMIT as f64, self.ceiling as f64);
        *e = Estimate {
            limit,
            recent: Some(recent),
            usual: Some(usual),
        };
        self.current.store(limit as usize, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(limit: &Gradient, ms: u64, calls: usize) {
        for _ in 0..calls {
            limit.observe(Duration::from_millis(ms));
        }
    }

    #[test]
    fn steady_latency_keeps_the_ceiling() {
        let limit = Gradient::new(64);
        run(&limit, 10, 1_000);
        assert_eq!(limit.limit(), 64);
    }

    #[test]
    fn a_latency_step_shrinks_the_limit_and_recovery_grows_it_back() {
        let limit = Gradient::new(64);
        run(&limit, 10, 200);
        run(&limit, 500, 100);
        let shrunk = limit.limit();
        assert!(shrunk <= 8, "{shrunk}");
        assert!(shrunk >= MIN_LIMIT);
        run(&limit, 10, 200);
        assert_eq!(limit.limit(), 64);
    }

    #[test]
    fn scheduling_noise_on_a_fast_upstream_is_not_a_slowdown() {
        let limit = Gradient::new(64);
        for i in 0..2_000u64 {
            // 0.2 ms, with now and then 15 ms of a busy machine.
            let micros = if i % 7 == 0 { 15_000 } else { 200 };
            limit.observe(Duration::from_micros(micros));
        }
        assert_eq!(limit.limit(), 64);
    }

    #[test]
    fn small_jitter_is_not_a_slowdown() {
        let limit = Gradient::new(64);
        for i in 0..2_000u64 {
            limit.observe(Duration::from_millis(10 + i % 8));
        }
        assert_eq!(limit.limit(), 64);
    }

    #[test]
    fn a_lasting_new_latency_becomes_the_usual_one() {
        let limit = Gradient::new(64);
        run(&limit, 10, 200);
        run(&limit, 100, 5_000);
        assert_eq!(limit.limit(), 64, "usual latency drifted to 100 ms");
    }

    #[test]
    fn never_below_the_floor_nor_above_the_ceiling() {
        let limit = Gradient::new(1);
        run(&limit, 1, 10);
        run(&limit, 10_000, 100);
        assert_eq!(limit.limit(), MIN_LIMIT);
    }
}
