//! A panic while serving a request is answered as a 500 problem, logged
//! once with the request's id and counted; the worker and the connection
//! live on. A panic anywhere else is logged through `tracing`, then
//! reported as before.

use actix_web::HttpResponse;

use crate::{context::current_request_id, error::ApiError};

thread_local! {
    /// Where the last panic on this thread happened, left by the panic hook
    /// for the request that catches it.
    static PANIC_LOCATION: std::cell::RefCell<Option<String>> = const { std::cell::RefCell::new(None) };
}

/// Routes panics through `tracing`: one inside a request is left to the
/// request's middleware to log (once, with the request id, as it answers the
/// 500); any other is logged here and then reported as before.
pub fn install_panic_hook() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            let location = info.location().map(ToString::to_string);
            if current_request_id().is_some() {
                PANIC_LOCATION.with(|slot| *slot.borrow_mut() = location);
            } else {
                tracing::error!(panic = panic_text(info.payload()), location, "panic");
                previous(info);
            }
        }));
    });
}

fn panic_text(payload: &(dyn std::any::Any + Send)) -> &str {
    payload
        .downcast_ref::<&str>()
        .copied()
        .or_else(|| payload.downcast_ref::<String>().map(String::as_str))
        .unwrap_or("a panic with a non-text payload")
}

/// The answer to a request whose handling panicked: logged once at error
/// level with the panic's message, counted, a 500 problem with the request id.
pub(super) fn panicked(payload: &(dyn std::any::Any + Send)) -> HttpResponse {
    let location = PANIC_LOCATION.with(|slot| slot.borrow_mut().take());
    tracing::error!(
        panic = panic_text(payload),
        location,
        "request panicked; answered 500"
    );
    metrics::counter!("gateway_panics_total").increment(1);
    ApiError::internal("the request panicked")
        .to_problem()
        .respond()
}
