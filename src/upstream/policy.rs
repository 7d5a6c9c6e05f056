//! What every upstream call goes through: a bound on calls in flight (so a
//! hanging upstream cannot hold the gateway's resources), a circuit breaker
//! (so a failing one is not hammered and callers fail fast), and retries with
//! exponential backoff and full jitter for idempotent calls only, within an
//! overall deadline.

use std::{
    future::Future,
    sync::{Mutex, MutexGuard, PoisonError},
    time::{Duration, Instant},
};

use rand::Rng;
use serde::Serialize;
use tokio::sync::Semaphore;
use utoipa::ToSchema;

use super::{Upstream, UpstreamError};
use crate::checked::later;
use crate::configuration::UpstreamSettings;
use crate::otel::ClientSpan;

/// First retry waits up to this long; each next one up to twice as long.
const BASE_BACKOFF: Duration = Duration::from_millis(100);
const MAX_BACKOFF: Duration = Duration::from_secs(2);

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum BreakerState {
    /// Calls flow.
    Closed,
    /// Calls fail fast until the pause is over.
    Open,
    /// One probe call decides between closed and open.
    HalfOpen,
}

#[derive(Debug)]
enum State {
    Closed { failures: u32 },
    Open { until: Instant },
    HalfOpen { probing: bool },
}

/// Opens after `threshold` consecutive faults, fails fast for `pause`, then
/// lets a single probe through: success closes it, failure opens it again.
#[derive(Debug)]
pub struct Breaker {
    upstream: Upstream,
    threshold: u32,
    pause: Duration,
    state: Mutex<State>,
}

impl Breaker {
    pub fn new(upstream: Upstream, threshold: u32, pause: Duration) -> Self {
        Self {
            upstream,
            threshold: threshold.max(1),
            pause,
            state: Mutex::new(State::Closed { failures: 0 }),
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    pub fn state(&self) -> BreakerState {
        match &*self.lock() {
            State::Closed { .. } => BreakerState::Closed,
            State::Open { until } if Instant::now() < *until => BreakerState::Open,
            State::Open { .. } | State::HalfOpen { .. } => BreakerState::HalfOpen,
        }
    }

    /// May a call go out now?
    fn acquire(&self) -> Result<(), UpstreamError> {
        let mut state = self.lock();
        match &*state {
            State::Closed { .. } => Ok(()),
            State::Open { until } => {
                let now = Instant::now();
                if now < *until {
                    Err(UpstreamError::CircuitOpen {
                        upstream: self.upstream,
                        retry_after: until.saturating_duration_since(now),
                    })
                } else {
                    tracing::info!(upstream = %self.upstream, "circuit breaker half-open: sending one probe");
                    *state = State::HalfOpen { probing: true };
                    Ok(())
                }
            }
            State::HalfOpen { probing: true } => Err(UpstreamError::CircuitOpen {
                upstream: self.upstream,
                retry_after: Duration::from_secs(1),
            }),
            State::HalfOpen { probing: false } => {
                *state = State::HalfOpen { probing: true };
                Ok(())
            }
        }
    }

    fn record(&self, fault: bool) {
        let mut state = self.lock();
        let next = match (&*state, fault) {
            (State::Closed { .. }, false) => State::Closed { failures: 0 },
            (State::Closed { failures }, true) if failures.saturating_add(1) >= self.threshold => {
                tracing::warn!(upstream = %self.upstream, failures = failures.saturating_add(1), pause_ms = self.pause.as_millis() as u64,
                    "circuit breaker opened");
                metrics::counter!("gateway_breaker_opened_total", "upstream" => self.upstream.as_str()).increment(1);
                State::Open {
                    until: later(Instant::now(), self.pause),
                }
            }
            (State::Closed { failures }, true) => State::Closed {
                failures: failures.saturating_add(1),
            },
            (State::HalfOpen { .. }, false) => {
                tracing::info!(upstream = %self.upstream, "circuit breaker closed: the probe succeeded");
                State::Closed { failures: 0 }
            }
            (State::HalfOpen { .. }, true) => {
                tracing::warn!(upstream = %self.upstream, "circuit breaker re-opened: the probe failed");
                State::Open {
                    until: later(Instant::now(), self.pause),
                }
            }
            // A call that started before the breaker opened: its outcome changes nothing.
            (State::Open { until }, _) => State::Open { until: *until },
        };
        *state = next;
    }

    /// A call that was let through but never made (no permit): give back the probe.
    fn abandon(&self) {
        let mut state = self.lock();
        if let State::HalfOpen { probing: true } = &*state {
            *state = State::HalfOpen { probing: false };
        }
    }
}

/// The policy of one upstream.
pub struct Policy {
    upstream: Upstream,
    breaker: Breaker,
    permits: Semaphore,
    max_concurrency: usize,
    retries: u32,
    deadline: Duration,
}

impl Policy {
    pub fn new(upstream: Upstream, settings: &UpstreamSettings) -> Self {
        Self {
            upstream,
            breaker: Breaker::new(
                upstream,
                settings.breaker_failures,
                Duration::from_millis(settings.breaker_open_ms),
            ),
            permits: Semaphore::new(settings.max_concurrency),
            max_concurrency: settings.max_concurrency,
            retries: settings.retries,
            deadline: Duration::from_millis(settings.deadline_ms),
        }
    }

    pub fn breaker_state(&self) -> BreakerState {
        self.breaker.state()
    }

    fn out_of_time(&self) -> UpstreamError {
        UpstreamError::Timeout {
            upstream: self.upstream,
            timeout_ms: u64::try_from(self.deadline.as_millis()).unwrap_or(u64::MAX),
        }
    }

    /// Runs `attempt` under the breaker and the concurrency bound; when
    /// `idempotent`, retries transient faults with backoff and jitter (or the
    /// upstream's `Retry-After`) while the deadline allows. `operation`
    /// (method and path template) labels the call's metrics.
    pub async fn run<T, F, Fut>(
        &self,
        operation: &'static str,
        idempotent: bool,
        mut attempt: F,
    ) -> Result<T, UpstreamError>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T, UpstreamError>>,
    {
        let upstream = self.upstream.as_str();
        // The request's own budget when serving one, else the configured deadline.
        let deadline = later(
            Instant::now(),
            crate::context::remaining_budget().unwrap_or(self.deadline),
        );
        let mut retry = 0;
        loop {
            let remaining = deadline.saturating_duration_since(Instant::now());
            if remaining.is_zero() {
                return Err(counted(operation, upstream, self.out_of_time()));
            }
            if let Err(open) = self.breaker.acquire() {
                return Err(counted(operation, upstream, open));
            }
            let permit = match tokio::time::timeout(
                remaining.min(Duration::from_secs(1)),
                self.permits.acquire(),
            )
            .await
            {
                Ok(Ok(permit)) => permit,
                _ => {
                    self.breaker.abandon();
                    let busy = UpstreamError::Busy {
                        upstream: self.upstream,
                    };
                    return Err(counted(operation, upstream, busy));
                }
            };
            let in_flight = InFlight::new(upstream);
            let started = Instant::now();
            let remaining = deadline.saturating_duration_since(Instant::now());
            let span = ClientSpan::start(upstream, operation);
            let call = ClientSpan::around(span.as_ref(), attempt());
            let result = match tokio::time::timeout(remaining, call).await {
                Ok(result) => result,
                Err(_) => Err(self.out_of_time()),
            };
            let ended = outcome(result.as_ref().err());
            if let Some(span) = span {
                span.finish(ended);
            }
            drop(in_flight);
            drop(permit);
            metrics::histogram!(
                "gateway_upstream_call_duration_seconds",
                "upstream" => upstream, "operation" => operation,
            )
            .record(started.elapsed().as_secs_f64());
            let fault = result
                .as_ref()
                .err()
                .is_some_and(UpstreamError::is_transient);
            self.breaker.record(fault);
            count(operation, upstream, ended);
            let error = match result {
                Ok(value) => return Ok(value),
                Err(error) => error,
            };
            if !(idempotent && fault && retry < self.retries) {
                return Err(error);
            }
            let wait = error.retry_after().unwrap_or_else(|| backoff(retry));
            if later(Instant::now(), wait) >= deadline {
                return Err(error);
            }
            tracing::info!(upstream = %self.upstream, retry = retry.saturating_add(1), wait_ms = wait.as_millis() as u64, error = %error,
                "retrying an idempotent call");
            metrics::counter!(
                "gateway_upstream_retries_total",
                "upstream" => upstream, "operation" => operation,
            )
            .increment(1);
            tokio::time::sleep(wait).await;
            retry = retry.saturating_add(1);
        }
    }

    /// The most calls this upstream may have in flight (`upstream.max_concurrency`).
    pub fn concurrency_limit(&self) -> usize {
        self.max_concurrency
    }
}

/// One call in `gateway_upstream_in_flight` for as long as it lives: a call
/// whose caller went away (its future dropped) is let go of too, as its
/// permit is.
struct InFlight(metrics::Gauge);

impl InFlight {
    fn new(upstream: &'static str) -> Self {
        let gauge = metrics::gauge!("gateway_upstream_in_flight", "upstream" => upstream);
        gauge.increment(1.0);
        Self(gauge)
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.decrement(1.0);
    }
}

fn count(operation: &'static str, upstream: &'static str, outcome: &'static str) {
    metrics::counter!(
        "gateway_upstream_calls_total",
        "upstream" => upstream, "operation" => operation, "outcome" => outcome,
    )
    .increment(1);
}

/// A call that never went out (breaker open, no permit, no time left) is
/// counted with its reason and handed back.
fn counted(operation: &'static str, upstream: &'static str, error: UpstreamError) -> UpstreamError {
    count(operation, upstream, outcome(Some(&error)));
    error
}

/// The outcome label of one call: a small fixed set.
fn outcome(error: Option<&UpstreamError>) -> &'static str {
    match error {
        None => "ok",
        Some(UpstreamError::Timeout { .. }) => "timeout",
        Some(UpstreamError::Unreachable { .. }) => "unreachable",
        Some(UpstreamError::Interrupted { .. }) => "reset",
        Some(UpstreamError::Malformed { .. }) => "malformed",
        Some(UpstreamError::CircuitOpen { .. }) => "breaker_open",
        Some(UpstreamError::Busy { .. }) => "saturated",
        Some(UpstreamError::Status { status, .. } | UpstreamError::Throttled { status, .. })
            if *status >= 500 =>
        {
            "5xx"
        }
        Some(_) => "4xx",
    }
}

/// Exponential backoff with full jitter: a random wait up to
/// `BASE_BACKOFF * 2^retry`, at most `MAX_BACKOFF`.
fn backoff(retry: u32) -> Duration {
    let ceiling = BASE_BACKOFF
        .saturating_mul(1 << retry.min(16))
        .min(MAX_BACKOFF);
    let millis = rand::rng().random_range(0..=ceiling.as_millis() as u64);
    Duration::from_millis(millis.max(1))
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicU32, Ordering};

    use super::*;

    fn fault() -> UpstreamError {
        UpstreamError::Status {
            upstream: Upstream::Slitz,
            status: 500,
        }
    }

    fn settings(retries: u32, failures: u32) -> UpstreamSettings {
        UpstreamSettings {
            retries,
            breaker_failures: failures,
            breaker_open_ms: 60_000,
            ..UpstreamSettings::default()
        }
    }

    #[tokio::test]
    async fn a_call_dropped_mid_flight_leaves_the_in_flight_gauge() {
        let metrics = crate::routes::metrics::recorder();
        let policy = Policy::new(Upstream::Slitz, &settings(0, 100));
        let hanging = policy.run("GET /test", true, || async {
            std::future::pending::<Result<(), UpstreamError>>().await
        });
        // The caller gives up while the call is in flight.
        let gave_up = tokio::time::timeout(Duration::from_millis(20), hanging).await;
        assert!(gave_up.is_err());
        let scrape = metrics.render();
        assert!(
            scrape.contains("gateway_upstream_in_flight{upstream=\"slitz\"} 0\n"),
            "{scrape}"
        );
    }

    #[tokio::test]
    async fn idempotent_calls_are_retried_and_others_are_not() {
        let policy = Policy::new(Upstream::Slitz, &settings(2, 100));
        let calls = AtomicU32::new(0);
        let result: Result<(), _> = policy
            .run("GET /test", true, || async {
                calls.fetch_add(1, Ordering::SeqCst);
                Err(fault())
            })
            .await;
        assert!(result.is_err());
        assert_eq!(calls.load(Ordering::SeqCst), 3);
        calls.store(0, Ordering::SeqCst);
        let _: Result<(), _> = policy
            .run("POST /test", false, || async {
                calls.fetch_add(1, Ordering::SeqCst);
                Err(fault())
            })
            .await;
        assert_eq!(calls.load(Ordering::SeqCst), 1);
    }

    #[tokio::test]
    async fn answers_are_not_retried() {
        let policy = Policy::new(Upstream::Slitz, &settings(2, 100));
        let calls = AtomicU32::new(0);
        let _: Result<(), _> = policy
            .run("GET /test", true, || async {
                calls.fetch_add(1, Ordering::SeqCst);
                Err(UpstreamError::NotFound {
                    upstream: Upstream::Slitz,
                    detail: String::new(),
                })
            })
            .await;
        assert_eq!(calls.load(Ordering::SeqCst), 1);
    }

    #[tokio::test]
    async fn the_breaker_opens_fails_fast_and_a_probe_closes_it() {
        let breaker = Breaker::new(Upstream::Slitz, 3, Duration::ZERO);
        for _ in 0..3 {
            breaker.acquire().unwrap();
            breaker.record(true);
        }
        // With a zero pause the next acquire is the half-open probe...
        breaker.acquire().unwrap();
        assert_eq!(breaker.state(), BreakerState::HalfOpen);
        // ...and while it is out, others fail fast.
        assert!(matches!(
            breaker.acquire(),
            Err(UpstreamError::CircuitOpen { .. })
        ));
        breaker.record(false);
        assert_eq!(breaker.state(), BreakerState::Closed);
    }

    #[tokio::test]
    async fn an_open_breaker_says_when_to_retry() {
        let breaker = Breaker::new(Upstream::Dna, 1, Duration::from_secs(30));
        breaker.acquire().unwrap();
        breaker.record(true);
        assert_eq!(breaker.state(), BreakerState::Open);
        match breaker.acquire() {
            Err(UpstreamError::CircuitOpen { retry_after, .. }) => {
                assert!(retry_after <= Duration::from_secs(30))
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn backoff_grows_and_is_capped() {
        for retry in 0..20 {
            let wait = backoff(retry);
            assert!(wait >= Duration::from_millis(1));
            assert!(wait <= MAX_BACKOFF);
        }
    }
}
