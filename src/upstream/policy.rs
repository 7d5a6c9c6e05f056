//! What every upstream call goes through: a bound on calls in flight (so a
//! hanging upstream cannot hold the gateway's resources, and, adaptively,
//! so a slow one is not queued behind), circuit breakers per operation and
//! for the whole upstream (so a failing one is not hammered and callers
//! fail fast), and retries with exponential backoff and full jitter for
//! idempotent calls only, within an overall deadline.

use std::{
    future::Future,
    sync::atomic::{AtomicUsize, Ordering},
    time::{Duration, Instant},
};

use rand::Rng;
use tokio::sync::{Semaphore, SemaphorePermit};

use super::{
    Upstream, UpstreamError,
    breaker::{Breakers, Verdict},
    limit::Gradient,
    operation::ClientOperation,
};
use crate::checked::later;
use crate::configuration::UpstreamSettings;
use crate::otel::ClientSpan;

/// First retry waits up to this long; each next one up to twice as long.
const BASE_BACKOFF: Duration = Duration::from_millis(100);
const MAX_BACKOFF: Duration = Duration::from_secs(2);
/// How long a caller waits for one of `max_concurrency`'s slots before a 503.
const SLOT_WAIT: Duration = Duration::from_secs(1);

/// The policy of one upstream.
pub struct Policy<O: ClientOperation> {
    upstream: Upstream,
    breakers: Breakers<O>,
    permits: Semaphore,
    max_concurrency: usize,
    /// With `adaptive_concurrency`: the limit under `max_concurrency` that
    /// follows the upstream's latency.
    adaptive: Option<Gradient>,
    /// Callers holding or asking for a slot now (what the adaptive limit is
    /// compared with).
    in_flight: AtomicUsize,
    retries: u32,
    deadline: Duration,
}

impl<O: ClientOperation> Policy<O> {
    /// The policy of the upstream `O` calls under `settings` (already
    /// resolved for it: [`UpstreamSettings::of`]).
    pub fn new(settings: &UpstreamSettings) -> Self {
        Self {
            upstream: O::UPSTREAM,
            breakers: Breakers::new(
                settings.breaker_failures,
                Duration::from_millis(settings.breaker_open_ms),
            ),
            permits: Semaphore::new(settings.max_concurrency),
            max_concurrency: settings.max_concurrency,
            adaptive: settings
                .adaptive_concurrency
                .then(|| Gradient::new(settings.max_concurrency)),
            in_flight: AtomicUsize::new(0),
            retries: settings.retries,
            deadline: Duration::from_millis(settings.deadline_ms),
        }
    }

    /// The circuit breakers: the whole upstream's and each operation's.
    pub fn breakers(&self) -> &Breakers<O> {
        &self.breakers
    }

    fn out_of_time(&self) -> UpstreamError {
        UpstreamError::Timeout {
            upstream: self.upstream,
            timeout_ms: u64::try_from(self.deadline.as_millis()).unwrap_or(u64::MAX),
        }
    }

    fn busy(&self) -> UpstreamError {
        UpstreamError::Busy {
            upstream: self.upstream,
        }
    }

    /// A slot for one call: at once under the adaptive limit (or a 503 at
    /// once beyond it), then one of `max_concurrency`'s permits, waited for
    /// up to [`SLOT_WAIT`] within the time left.
    async fn slot(&self, remaining: Duration) -> Result<Slot<'_>, UpstreamError> {
        let taken = self.in_flight.fetch_add(1, Ordering::AcqRel);
        let mut slot = Slot {
            in_flight: &self.in_flight,
            call: None,
        };
        if let Some(adaptive) = &self.adaptive
            && taken >= adaptive.limit()
        {
            return Err(self.busy());
        }
        let wait = remaining.min(SLOT_WAIT);
        match tokio::time::timeout(wait, self.permits.acquire()).await {
            Ok(Ok(permit)) => {
                let gauge = metrics::gauge!("gateway_upstream_in_flight", "upstream" => self.upstream.as_str());
                gauge.increment(1.0);
                slot.call = Some((permit, gauge));
                Ok(slot)
            }
            _ => Err(self.busy()),
        }
    }

    /// Runs `attempt` under the breakers and the concurrency bound; when
    /// `idempotent`, retries transient faults with backoff and jitter (or the
    /// upstream's `Retry-After`) while the deadline allows. `operation`
    /// (method and path template) labels the call's metrics and chooses its
    /// breaker.
    pub async fn run<T, F, Fut>(
        &self,
        call: O,
        idempotent: bool,
        mut attempt: F,
    ) -> Result<T, UpstreamError>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T, UpstreamError>>,
    {
        let upstream = self.upstream.as_str();
        let operation = call.as_str();
        // This upstream's deadline, within what is left of the request's budget.
        let budget = crate::context::remaining_budget()
            .map_or(self.deadline, |left| left.min(self.deadline));
        let deadline = later(Instant::now(), budget);
        let mut retry = 0;
        loop {
            let remaining = deadline.saturating_duration_since(Instant::now());
            if remaining.is_zero() {
                return Err(counted(operation, upstream, self.out_of_time()));
            }
            let pass = match self.breakers.acquire(call) {
                Ok(pass) => pass,
                Err(open) => return Err(counted(operation, upstream, open)),
            };
            let slot = match self.slot(remaining).await {
                Ok(slot) => slot,
                Err(busy) => {
                    self.breakers.record(pass, Verdict::NotMade);
                    return Err(counted(operation, upstream, busy));
                }
            };
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
            drop(slot);
            let took = started.elapsed();
            metrics::histogram!(
                "gateway_upstream_call_duration_seconds",
                "upstream" => upstream, "operation" => operation,
            )
            .record(took.as_secs_f64());
            let verdict = Verdict::of(result.as_ref().err());
            // A connection that never opened says nothing of the upstream's latency.
            if let Some(adaptive) = &self.adaptive
                && verdict != Verdict::UpstreamFault
            {
                adaptive.observe(took);
            }
            self.breakers.record(pass, verdict);
            count(operation, upstream, ended);
            let error = match result {
                Ok(value) => return Ok(value),
                Err(error) => error,
            };
            let fault = error.is_transient();
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

    /// The most calls this upstream may have in flight now: the adaptive
    /// limit when on, else `max_concurrency`.
    pub fn concurrency_limit(&self) -> usize {
        self.adaptive.as_ref().map_or(self.max_concurrency, |a| {
            a.limit().min(self.max_concurrency)
        })
    }
}

/// One caller's place: counted against the adaptive limit from the moment
/// it asks for a slot, and, once it holds a permit, in
/// `gateway_upstream_in_flight`, for as long as it lives. A call whose
/// caller went away (its future dropped) lets go of all of it.
struct Slot<'a> {
    in_flight: &'a AtomicUsize,
    call: Option<(SemaphorePermit<'a>, metrics::Gauge)>,
}

impl Drop for Slot<'_> {
    fn drop(&mut self) {
        self.in_flight.fetch_sub(1, Ordering::AcqRel);
        if let Some((_, gauge)) = &self.call {
            gauge.decrement(1.0);
        }
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
    use crate::upstream::operation::SlitzOperation::{
        self, GetBalance, GetDetails, ListInvoices, PostDetails,
    };

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
        let policy = Policy::<SlitzOperation>::new(&settings(0, 100));
        let hanging = policy.run(GetBalance, true, || async {
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
        let policy = Policy::<SlitzOperation>::new(&settings(2, 100));
        let calls = AtomicU32::new(0);
        let result: Result<(), _> = policy
            .run(GetBalance, true, || async {
                calls.fetch_add(1, Ordering::SeqCst);
                Err(fault())
            })
            .await;
        assert!(result.is_err());
        assert_eq!(calls.load(Ordering::SeqCst), 3);
        calls.store(0, Ordering::SeqCst);
        let _: Result<(), _> = policy
            .run(PostDetails, false, || async {
                calls.fetch_add(1, Ordering::SeqCst);
                Err(fault())
            })
            .await;
        assert_eq!(calls.load(Ordering::SeqCst), 1);
    }

    #[tokio::test]
    async fn answers_are_not_retried() {
        let policy = Policy::<SlitzOperation>::new(&settings(2, 100));
        let calls = AtomicU32::new(0);
        let _: Result<(), _> = policy
            .run(GetBalance, true, || async {
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
    async fn beyond_the_adaptive_limit_callers_are_refused_at_once() {
        let policy = Policy::<SlitzOperation>::new(&UpstreamSettings {
            adaptive_concurrency: true,
            max_concurrency: 16,
            ..settings(0, 100)
        });
        // A fast upstream, then a slow one: the limit shrinks.
        let adaptive = policy.adaptive.as_ref().unwrap();
        for _ in 0..100 {
            adaptive.observe(Duration::from_millis(1));
        }
        for _ in 0..100 {
            adaptive.observe(Duration::from_millis(200));
        }
        let limit = policy.concurrency_limit();
        assert!(limit < 16, "{limit}");
        let hanging: Vec<_> = (0..limit)
            .map(|_| {
                Box::pin(policy.run(ListInvoices, true, || async {
                    std::future::pending::<Result<(), UpstreamError>>().await
                }))
            })
            .collect();
        let mut hanging = futures_util::future::select_all(hanging);
        // Let every hanging call take its slot.
        assert!(
            tokio::time::timeout(Duration::from_millis(50), &mut hanging)
                .await
                .is_err()
        );
        let refused = policy
            .run(GetDetails, true, || async { Ok::<_, UpstreamError>(()) })
            .await;
        assert!(
            matches!(refused, Err(UpstreamError::Busy { .. })),
            "{refused:?}"
        );
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
