//! Circuit breakers scoped to what fails together: one per upstream
//! operation (HostBill's ticket module fails apart from its billing, DNA's
//! create apart from its activate), and one for the upstream as a whole,
//! which only connection faults (refused, unreachable, TLS, connect timeout)
//! open. A dead upstream therefore fails fast for every operation after one
//! threshold, and is not probed once per operation; a failing operation
//! fails fast alone.

use std::{
    marker::PhantomData,
    sync::{Mutex, MutexGuard, PoisonError},
    time::{Duration, Instant},
};

use serde::Serialize;
use utoipa::ToSchema;

use super::{Upstream, UpstreamError, operation::ClientOperation};
use crate::checked::later;

/// The `operation` label of the breaker for the upstream as a whole.
pub const WHOLE_UPSTREAM: &str = "*";

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

impl BreakerState {
    /// The value of `gateway_breaker_state`.
    pub fn gauge(self) -> f64 {
        match self {
            BreakerState::Closed => 0.0,
            BreakerState::HalfOpen => 1.0,
            BreakerState::Open => 2.0,
        }
    }
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
    /// The operation (`GET /tickets`), or [`WHOLE_UPSTREAM`].
    operation: &'static str,
    threshold: u32,
    pause: Duration,
    state: Mutex<State>,
}

impl Breaker {
    pub fn new(
        upstream: Upstream,
        operation: &'static str,
        threshold: u32,
        pause: Duration,
    ) -> Self {
        Self {
            upstream,
            operation,
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

    fn open_error(&self, retry_after: Duration) -> UpstreamError {
        UpstreamError::CircuitOpen {
            upstream: self.upstream,
            operation: (self.operation != WHOLE_UPSTREAM).then_some(self.operation),
            retry_after,
        }
    }

    /// May a call go out now? `Ok(true)` when it is this breaker's probe.
    fn acquire(&self) -> Result<bool, UpstreamError> {
        let mut state = self.lock();
        match &*state {
            State::Closed { .. } => Ok(false),
            State::Open { until } => {
                let now = Instant::now();
                if now < *until {
                    Err(self.open_error(until.saturating_duration_since(now)))
                } else {
                    tracing::info!(upstream = %self.upstream, operation = self.operation,
                        "circuit breaker half-open: sending one probe");
                    *state = State::HalfOpen { probing: true };
                    Ok(true)
                }
            }
            State::HalfOpen { probing: true } => Err(self.open_error(Duration::from_secs(1))),
            State::HalfOpen { probing: false } => {
                *state = State::HalfOpen { probing: true };
                Ok(true)
            }
        }
    }

    fn record(&self, fault: bool) {
        let mut state = self.lock();
        let (upstream, operation) = (self.upstream, self.operation);
        let next = match (&*state, fault) {
            (State::Closed { .. }, false) => State::Closed { failures: 0 },
            (State::Closed { failures }, true) if failures.saturating_add(1) >= self.threshold => {
                tracing::warn!(upstream = %upstream, operation, failures = failures.saturating_add(1),
                    pause_ms = self.pause.as_millis() as u64, "circuit breaker opened");
                metrics::counter!("gateway_breaker_opened_total",
                    "upstream" => upstream.as_str(), "operation" => operation)
                .increment(1);
                State::Open {
                    until: later(Instant::now(), self.pause),
                }
            }
            (State::Closed { failures }, true) => State::Closed {
                failures: failures.saturating_add(1),
            },
            (State::HalfOpen { .. }, false) => {
                tracing::info!(upstream = %upstream, operation, "circuit breaker closed: the probe succeeded");
                State::Closed { failures: 0 }
            }
            (State::HalfOpen { .. }, true) => {
                tracing::warn!(upstream = %upstream, operation, "circuit breaker re-opened: the probe failed");
                State::Open {
                    until: later(Instant::now(), self.pause),
                }
            }
            // A call that started before the breaker opened: its outcome changes nothing.
            (State::Open { until }, _) => State::Open { until: *until },
        };
        *state = next;
    }

    /// A call that was let through as the probe but whose outcome says
    /// nothing about this breaker (never made, or failed for another
    /// breaker's reason): give the probe back.
    fn abandon(&self) {
        let mut state = self.lock();
        if let State::HalfOpen { probing: true } = &*state {
            *state = State::HalfOpen { probing: false };
        }
    }
}

/// What one call's outcome says to the breakers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// An answer came (a success, or an answer such as a 404): the upstream
    /// and the operation are healthy.
    Healthy,
    /// The operation failed (5xx, timeout, reset, throttled) with the
    /// upstream reachable.
    OperationFault,
    /// The upstream could not be reached at all: nothing about the operation.
    UpstreamFault,
    /// The call was never made (no permit, no time): nothing about either.
    NotMade,
}

impl Verdict {
    pub fn of(error: Option<&UpstreamError>) -> Self {
        match error {
            None => Verdict::Healthy,
            Some(e) if e.is_whole_upstream() => Verdict::UpstreamFault,
            Some(e) if e.is_transient() => Verdict::OperationFault,
            Some(_) => Verdict::Healthy,
        }
    }
}

/// A call let through by [`Breakers::acquire`], until its outcome is
/// recorded. A pass dropped unrecorded (the caller went away mid-call, as
/// when a client disconnects) gives back any probe it held: otherwise a
/// half-open breaker would wait for that probe's verdict forever.
#[must_use]
pub struct Pass<'a> {
    whole: &'a Breaker,
    operation: &'a Breaker,
    /// Whether this call is the half-open probe of the whole upstream's
    /// breaker, of its operation's.
    probes: (bool, bool),
}

impl Pass<'_> {
    /// Gives back the probes this pass holds, for breakers its outcome says
    /// nothing about.
    fn abandon(&mut self, whole: bool, operation: bool) {
        if whole && self.probes.0 {
            self.whole.abandon();
            self.probes.0 = false;
        }
        if operation && self.probes.1 {
            self.operation.abandon();
            self.probes.1 = false;
        }
    }
}

impl Drop for Pass<'_> {
    fn drop(&mut self) {
        self.abandon(true, true);
    }
}

/// Every breaker of one upstream: the whole upstream's, and one for each of
/// its client's operations, made at once so their state is in `/metrics`
/// before their first call.
pub struct Breakers<O: ClientOperation> {
    whole: Breaker,
    /// By [`ClientOperation::index`].
    operations: Box<[Breaker]>,
    _operation: PhantomData<O>,
}

impl<O: ClientOperation> Breakers<O> {
    pub fn new(threshold: u32, pause: Duration) -> Self {
        let upstream = O::UPSTREAM;
        Self {
            whole: Breaker::new(upstream, WHOLE_UPSTREAM, threshold, pause),
            operations: O::VARIANTS
                .iter()
                .map(|op| Breaker::new(upstream, op.as_str(), threshold, pause))
                .collect(),
            _operation: PhantomData,
        }
    }

    fn operation(&self, operation: O) -> &Breaker {
        // Made from `O::VARIANTS`, so every index is there (a unit test
        // checks `index` is the variant's place); the whole upstream's
        // breaker stands in rather than a panic.
        self.operations
            .get(operation.index())
            .unwrap_or(&self.whole)
    }

    /// May a call of `operation` go out now? Fails fast while its own
    /// breaker or the whole upstream's is open.
    pub fn acquire(&self, operation: O) -> Result<Pass<'_>, UpstreamError> {
        let breaker = self.operation(operation);
        let probe = breaker.acquire()?;
        let mut pass = Pass {
            whole: &self.whole,
            operation: breaker,
            probes: (false, probe),
        };
        // On refusal, dropping `pass` gives back the operation's probe.
        pass.probes.0 = self.whole.acquire()?;
        Ok(pass)
    }

    /// Records what the call let through by `pass` came to.
    pub fn record(&self, mut pass: Pass<'_>, verdict: Verdict) {
        match verdict {
            Verdict::Healthy => {
                self.whole.record(false);
                pass.operation.record(false);
            }
            Verdict::OperationFault => {
                // It answered (or timed out after connecting): reachable.
                self.whole.record(false);
                pass.operation.record(true);
            }
            Verdict::UpstreamFault => {
                self.whole.record(true);
                pass.abandon(false, true);
            }
            Verdict::NotMade => pass.abandon(true, true),
        }
        // Recorded: nothing left to give back.
        pass.probes = (false, false);
    }

    /// The whole upstream's breaker (opened by connection faults only).
    pub fn upstream_state(&self) -> BreakerState {
        self.whole.state()
    }

    /// Every operation's breaker state, by operation, in a stable order.
    pub fn operation_states(&self) -> Vec<(&'static str, BreakerState)> {
        let mut states: Vec<_> = self
            .operations
            .iter()
            .map(|breaker| (breaker.operation, breaker.state()))
            .collect();
        states.sort_unstable_by_key(|(op, _)| *op);
        states
    }

    /// The operations whose breaker is not closed.
    pub fn open_operations(&self) -> Vec<&'static str> {
        self.operation_states()
            .into_iter()
            .filter(|(_, state)| *state != BreakerState::Closed)
            .map(|(op, _)| op)
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::upstream::operation::SlitzOperation::{
        self, GetBalance, GetDetails, GetInvoice, GetTicket, ListTickets,
    };

    fn status_500() -> UpstreamError {
        UpstreamError::Status {
            upstream: Upstream::Slitz,
            status: 500,
        }
    }

    fn refused() -> UpstreamError {
        UpstreamError::Unreachable {
            upstream: Upstream::Slitz,
            detail: "refused".into(),
            refused: true,
        }
    }

    fn fail(breakers: &Breakers<SlitzOperation>, operation: SlitzOperation, error: &UpstreamError) {
        let pass = breakers.acquire(operation).unwrap();
        breakers.record(pass, Verdict::of(Some(error)));
    }

    #[test]
    fn the_breaker_opens_fails_fast_and_a_probe_closes_it() {
        let breaker = Breaker::new(Upstream::Slitz, "GET /x", 3, Duration::ZERO);
        for _ in 0..3 {
            breaker.acquire().unwrap();
            breaker.record(true);
        }
        // With a zero pause the next acquire is the half-open probe...
        assert!(breaker.acquire().unwrap());
        assert_eq!(breaker.state(), BreakerState::HalfOpen);
        // ...and while it is out, others fail fast.
        assert!(matches!(
            breaker.acquire(),
            Err(UpstreamError::CircuitOpen { .. })
        ));
        breaker.record(false);
        assert_eq!(breaker.state(), BreakerState::Closed);
    }

    #[test]
    fn an_open_breaker_says_when_to_retry() {
        let breaker = Breaker::new(Upstream::Dna, "POST /x", 1, Duration::from_secs(30));
        breaker.acquire().unwrap();
        breaker.record(true);
        assert_eq!(breaker.state(), BreakerState::Open);
        match breaker.acquire() {
            Err(UpstreamError::CircuitOpen {
                retry_after,
                operation,
                ..
            }) => {
                assert!(retry_after <= Duration::from_secs(30));
                assert_eq!(operation, Some("POST /x"));
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_failing_operation_opens_only_its_own_breaker() {
        let breakers = Breakers::<SlitzOperation>::new(2, Duration::from_secs(30));
        for _ in 0..2 {
            fail(&breakers, ListTickets, &status_500());
        }
        assert!(matches!(
            breakers.acquire(ListTickets),
            Err(UpstreamError::CircuitOpen {
                operation: Some("GET /tickets"),
                ..
            })
        ));
        let pass = breakers
            .acquire(GetDetails)
            .expect("another operation flows");
        breakers.record(pass, Verdict::Healthy);
        assert_eq!(breakers.upstream_state(), BreakerState::Closed);
        assert_eq!(breakers.open_operations(), vec!["GET /tickets"]);
    }

    #[test]
    fn connection_faults_open_the_whole_upstream_across_operations() {
        let breakers = Breakers::<SlitzOperation>::new(3, Duration::from_secs(30));
        // Spread over operations: no single one reaches the threshold.
        for op in [GetInvoice, GetBalance, GetTicket] {
            fail(&breakers, op, &refused());
        }
        assert_eq!(breakers.upstream_state(), BreakerState::Open);
        assert!(matches!(
            breakers.acquire(GetDetails),
            Err(UpstreamError::CircuitOpen {
                operation: None,
                ..
            })
        ));
        // The operations themselves are not blamed.
        assert!(breakers.open_operations().is_empty());
    }

    #[test]
    fn one_probe_closes_the_whole_upstream() {
        let breakers = Breakers::<SlitzOperation>::new(1, Duration::ZERO);
        fail(&breakers, GetInvoice, &refused());
        let probe = breakers.acquire(GetInvoice).expect("the probe");
        // While the probe is out, other operations wait for its verdict.
        assert!(breakers.acquire(GetBalance).is_err());
        breakers.record(probe, Verdict::Healthy);
        assert_eq!(breakers.upstream_state(), BreakerState::Closed);
        assert!(breakers.acquire(GetBalance).is_ok());
    }

    #[test]
    fn a_probe_whose_caller_went_away_is_given_back() {
        let breakers = Breakers::<SlitzOperation>::new(1, Duration::ZERO);
        fail(&breakers, GetInvoice, &status_500());
        let probe = breakers.acquire(GetInvoice).expect("the probe");
        assert!(breakers.acquire(GetInvoice).is_err(), "one probe at a time");
        drop(probe);
        let probe = breakers.acquire(GetInvoice).expect("a new probe");
        breakers.record(probe, Verdict::Healthy);
        assert!(breakers.open_operations().is_empty());
    }

    #[test]
    fn a_pass_that_was_no_probe_leaves_the_probe_alone() {
        let breakers = Breakers::<SlitzOperation>::new(1, Duration::ZERO);
        let early = breakers.acquire(GetInvoice).expect("closed");
        fail(&breakers, GetInvoice, &status_500());
        let probe = breakers.acquire(GetInvoice).expect("the probe");
        drop(early);
        assert!(
            breakers.acquire(GetInvoice).is_err(),
            "the probe is still out"
        );
        breakers.record(probe, Verdict::Healthy);
    }

    #[test]
    fn an_operation_fault_proves_the_upstream_reachable() {
        let breakers = Breakers::<SlitzOperation>::new(2, Duration::from_secs(30));
        fail(&breakers, GetInvoice, &refused());
        fail(&breakers, GetBalance, &status_500());
        fail(&breakers, GetTicket, &refused());
        assert_eq!(
            breakers.upstream_state(),
            BreakerState::Closed,
            "consecutive connection faults only"
        );
    }
}
