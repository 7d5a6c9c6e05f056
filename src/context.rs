//! What a task knows of the request it serves: its id and its deadline,
//! carried in task-locals so every log line, upstream call and problem body
//! of the request can read them. A leaf: it depends on no other module.

use std::time::Instant;

/// The header that carries a request's id, to the gateway and from it upstream.
pub const REQUEST_ID_HEADER: &str = "x-request-id";

tokio::task_local! {
    pub(crate) static REQUEST_ID: String;
    pub(crate) static DEADLINE: Instant;
}

/// The id of the request being served on this task, if any.
pub fn current_request_id() -> Option<String> {
    REQUEST_ID.try_with(Clone::clone).ok()
}

/// What is left of the request's time budget (`upstream.deadline_ms`), if
/// this task serves a request. Upstream calls never run past it.
pub fn remaining_budget() -> Option<std::time::Duration> {
    DEADLINE
        .try_with(|deadline| deadline.saturating_duration_since(Instant::now()))
        .ok()
}

/// The request context of this task, to carry onto another task.
#[derive(Debug, Clone)]
pub struct RequestScope {
    id: Option<String>,
    deadline: Option<Instant>,
}

impl RequestScope {
    pub fn current() -> Self {
        Self {
            id: current_request_id(),
            deadline: DEADLINE.try_with(|d| *d).ok(),
        }
    }

    /// Runs `future` as part of this request: its id, its deadline.
    pub async fn run<T>(self, future: impl Future<Output = T>) -> T {
        match (self.id, self.deadline) {
            (Some(id), Some(deadline)) => {
                REQUEST_ID.scope(id, DEADLINE.scope(deadline, future)).await
            }
            (Some(id), None) => REQUEST_ID.scope(id, future).await,
            (None, Some(deadline)) => DEADLINE.scope(deadline, future).await,
            (None, None) => future.await,
        }
    }
}

/// Set once the gateway is shutting down: `/readyz` then answers 503.
#[derive(Debug, Clone, Default)]
pub struct Draining(std::sync::Arc<std::sync::atomic::AtomicBool>);

impl Draining {
    pub fn is_set(&self) -> bool {
        self.0.load(std::sync::atomic::Ordering::Relaxed)
    }

    pub fn set(&self) {
        self.0.store(true, std::sync::atomic::Ordering::Relaxed);
    }
}
