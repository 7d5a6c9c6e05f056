//! The request metrics: `gateway_http_requests_total` and
//! `gateway_http_request_duration_seconds`, by method, route and status.

/// The `method` label: the standard methods by name, any other as `other`,
/// so a client inventing methods cannot mint label values.
pub(super) fn method_label(method: &actix_web::http::Method) -> &'static str {
    use actix_web::http::Method;
    match *method {
        Method::GET => "GET",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::PATCH => "PATCH",
        Method::DELETE => "DELETE",
        Method::HEAD => "HEAD",
        Method::OPTIONS => "OPTIONS",
        Method::TRACE => "TRACE",
        Method::CONNECT => "CONNECT",
        _ => "other",
    }
}

/// The request metrics of one method on one route, on one worker thread:
/// registered on first use, so a request neither formats nor hashes label strings.
struct MethodMetrics {
    method: &'static str,
    duration: metrics::Histogram,
    by_status: Vec<(u16, metrics::Counter)>,
}

thread_local! {
    /// Route patterns are the configured routes and `unmatched`, methods
    /// and statuses are few: this stays as small as the label sets it holds.
    static REQUEST_METRICS: std::cell::RefCell<std::collections::HashMap<String, Vec<MethodMetrics>>> =
        std::cell::RefCell::new(std::collections::HashMap::new());
}

/// Counts one answered request and records how long it took.
pub(super) fn record_request(method: &'static str, route: &str, status: u16, elapsed: f64) {
    REQUEST_METRICS.with_borrow_mut(|routes| match routes.get_mut(route) {
        Some(methods) => record_into(methods, method, route, status, elapsed),
        None => record_into(
            routes.entry(route.to_owned()).or_default(),
            method,
            route,
            status,
            elapsed,
        ),
    });
}

/// [`record_request`] on one route's handles, registering what is missing.
fn record_into(
    methods: &mut Vec<MethodMetrics>,
    method: &'static str,
    route: &str,
    status: u16,
    elapsed: f64,
) {
    let index = match methods.iter().position(|m| m.method == method) {
        Some(index) => index,
        None => {
            methods.push(MethodMetrics {
                method,
                duration: metrics::histogram!(
                    "gateway_http_request_duration_seconds",
                    "method" => method, "route" => route.to_owned()
                ),
                by_status: Vec::new(),
            });
            methods.len().saturating_sub(1)
        }
    };
    let Some(metrics) = methods.get_mut(index) else {
        return;
    };
    metrics.duration.record(elapsed);
    match metrics.by_status.iter().find(|(s, _)| *s == status) {
        Some((_, counter)) => counter.increment(1),
        None => {
            let counter = metrics::counter!(
                "gateway_http_requests_total",
                "method" => method, "route" => route.to_owned(), "status" => status.to_string()
            );
            counter.increment(1);
            metrics.by_status.push((status, counter));
        }
    }
}
