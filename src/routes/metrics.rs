//! `/metrics`: Prometheus text exposition of the gateway's own counters.

use std::sync::OnceLock;

use actix_web::{HttpResponse, web};
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};

use crate::{
    cache::ResponseCache,
    upstream::{breaker::WHOLE_UPSTREAM, dna::DnaClient, slitz::SlitzClient},
};

/// Latency buckets in seconds, from a cache hit to a slow upstream.
const BUCKETS: &[f64] = &[
    0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
];

const UPKEEP_EVERY: std::time::Duration = std::time::Duration::from_secs(5);

/// The process-wide recorder: installed once, shared by every server in the
/// process (tests run several).
pub fn recorder() -> PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE
        .get_or_init(|| {
            let builder = PrometheusBuilder::new()
                .set_buckets(BUCKETS)
                .unwrap_or_else(|_| PrometheusBuilder::new());
            let handle = match builder.install_recorder() {
                Ok(handle) => handle,
                // Another recorder is installed (an embedding program): keep
                // a private one so /metrics still answers.
                Err(_) => PrometheusBuilder::new().build_recorder().handle(),
            };
            // Histogram samples pile up until drained into their buckets; the
            // exporter only drains when scraped, so an unscraped gateway would
            // grow without bound. Drain on a schedule instead.
            let upkeep = handle.clone();
            let _ = std::thread::Builder::new()
                .name("metrics-upkeep".into())
                .spawn(move || {
                    loop {
                        std::thread::sleep(UPKEEP_EVERY);
                        upkeep.run_upkeep();
                    }
                });
            describe();
            ::metrics::gauge!(
                "gateway_build_info",
                "version" => env!("CARGO_PKG_VERSION"),
                "commit" => env!("GATEWAY_COMMIT"),
            )
            .set(1.0);
            handle
        })
        .clone()
}

/// HELP text (and units) of every family, so the exposition passes
/// `promtool check metrics`; a family appears once it has a sample.
fn describe() {
    use ::metrics::{Unit, describe_counter, describe_gauge, describe_histogram};
    describe_counter!(
        "gateway_http_requests_total",
        "HTTP requests answered, by method, route pattern and status."
    );
    describe_histogram!(
        "gateway_http_request_duration_seconds",
        Unit::Seconds,
        "Time to answer an HTTP request, by method and route pattern."
    );
    describe_histogram!(
        "gateway_registry_write_seconds",
        Unit::Seconds,
        "Time the registry took to record a DNA write, by step (intent, before the call; outcome, after it)."
    );
    describe_counter!(
        "gateway_registry_outcome_retries_total",
        "Attempts to record an outcome again after the registry's database refused it."
    );
    describe_counter!(
        "gateway_registry_outcomes_refused_total",
        "Outcomes the registry's database refuses for good (a constraint): the entry stays without one, shown unknown; each is logged as an error."
    );
    describe_gauge!(
        "gateway_registry_outcomes_pending",
        "Outcomes waiting to be recorded (retried in the background)."
    );
    describe_counter!(
        "gateway_admissions_total",
        "Requests admitted to a keyed route, by kind of caller (key, service); never one series per caller."
    );
    describe_counter!(
        "gateway_session_renewals_total",
        "People's sessions renewed with the identity provider, by outcome (renewed; refused, which ends the session; unavailable, tried again later)."
    );
    describe_counter!(
        "gateway_jwks_fetches_total",
        "Fetches of the identity provider's signing keys (discovery, then its JWKS), by outcome (ok, error); a failed fetch keeps the keys held."
    );
    describe_counter!(
        "gateway_upstream_calls_total",
        "Calls to an upstream by operation and outcome (ok, 4xx, 5xx, timeout, reset, unreachable, malformed, breaker_open, saturated); each retry is a call."
    );
    describe_histogram!(
        "gateway_upstream_call_duration_seconds",
        Unit::Seconds,
        "Time one upstream call took, by upstream and operation."
    );
    describe_counter!(
        "gateway_upstream_retries_total",
        "Retries of idempotent upstream calls, by upstream and operation."
    );
    describe_gauge!(
        "gateway_upstream_in_flight",
        "Upstream calls in flight now, by upstream."
    );
    describe_gauge!(
        "gateway_upstream_concurrency_limit",
        "The most upstream calls allowed in flight now, by upstream: max_concurrency, or the adaptive limit under it."
    );
    describe_gauge!(
        "gateway_breaker_state",
        "Circuit breaker state by upstream and operation (operation=\"*\": the whole upstream, opened by connection faults): 0 closed, 1 half-open, 2 open."
    );
    describe_counter!(
        "gateway_breaker_opened_total",
        "Times a circuit breaker opened, by upstream and operation (\"*\": the whole upstream)."
    );
    describe_counter!(
        "gateway_cache_lookups_total",
        "Slitz cache lookups by route and outcome (hit, shared_hit, coalesced, miss, stale, error)."
    );
    describe_gauge!(
        "gateway_cache_entries",
        "Answers held in this instance's Slitz cache."
    );
    describe_gauge!(
        "gateway_cache_size_bytes",
        Unit::Bytes,
        "Weight of the answers held in this instance's Slitz cache (bounded by cache.max_bytes)."
    );
    describe_counter!(
        "gateway_cache_evictions_total",
        "Answers that left this instance's Slitz cache, by cause (size, expired)."
    );
    describe_counter!(
        "gateway_cache_fallbacks_total",
        "Cache reads that went past Redis, by reason (unavailable, error, lock_expired)."
    );
    describe_counter!(
        "gateway_cache_invalidations_total",
        "Writes' invalidations sent to every instance, by outcome (confirmed, unconfirmed, failed)."
    );
    describe_counter!(
        "gateway_dna_token_requests_total",
        "DNA token requests by grant (password, refresh) and outcome (ok, error)."
    );
    describe_gauge!(
        "gateway_dna_token_expires_in_seconds",
        Unit::Seconds,
        "Seconds until the DNA token this instance holds expires (0 once expired)."
    );
    describe_counter!(
        "gateway_idempotency_keys_total",
        "Creates carrying an Idempotency-Key, by outcome (claimed, replayed, conflict, body_mismatch, unavailable)."
    );
    describe_counter!(
        "gateway_rate_limited_total",
        "Requests refused with 429, by the configured key name."
    );
    describe_counter!(
        "gateway_rate_limit_fallbacks_total",
        "Rate-limit decisions taken on the local budget because Redis could not answer."
    );
    describe_counter!(
        "gateway_redis_errors_total",
        "Redis calls that failed or timed out, by operation."
    );
    describe_gauge!(
        "gateway_redis_up",
        "1 while calls go to Redis; 0 after consecutive failures, while calls skip it (local fallbacks) and a background ping waits for it to answer."
    );
    describe_counter!(
        "gateway_redis_skipped_total",
        "Redis calls not made because Redis stopped answering (the caller took its fallback at once), by operation."
    );
    describe_counter!(
        "gateway_access_log_dropped_total",
        "Access log lines dropped because stdout could not keep up (more than 4 MiB of lines waiting); requests are never held up by the log."
    );
    describe_counter!(
        "gateway_panics_total",
        "Panics caught while serving a request (each answered with a 500 problem)."
    );
    describe_counter!(
        "gateway_upstream_drift_total",
        "Fields of successful upstream answers that differ from the documented shape, by upstream, operation and kind (unknown, missing, retyped); the answer is still served."
    );
    describe_counter!(
        "gateway_config_reloads_total",
        "Configuration reloads on SIGHUP, by outcome (ok, failed)."
    );
    describe_counter!(
        "gateway_events_published_total",
        "Change events published on this instance, by type (customer.created, ticket.updated, …)."
    );
    describe_gauge!(
        "gateway_event_subscribers",
        "Event streams (GET /v1/events) open on this instance."
    );
    describe_counter!(
        "gateway_event_subscribers_dropped_total",
        "Event streams ended because their reader fell further behind than events.buffer (each got a reset event)."
    );
    describe_counter!(
        "gateway_events_lost_total",
        "Events that could not be added to the shared stream on Redis (or heard from it): this instance's subscribers got a reset event."
    );
    describe_gauge!(
        "gateway_event_watcher_leader",
        "1 while this instance holds the watcher lease and polls Slitz for the cluster (with [redis]); 0 otherwise."
    );
    describe_counter!(
        "gateway_event_polls_total",
        "Reads of a Slitz list by the event watcher, by list (invoices, tickets, domains, services) and outcome (ok, failed)."
    );
    describe_gauge!(
        "gateway_build_info",
        "Always 1; the labels say which build runs."
    );
}

crate::endpoint! {
    /// Metrics
    ///
    /// Every family the gateway keeps (requests, upstream calls, cache, token,
    /// breakers, idempotency, rate limits, Redis), in Prometheus text format.
    #[route(get "/metrics", public)]
    #[openapi(tag = "operations",)]
    #[responses((status = 200, description = "Prometheus text exposition format.", body = String, content_type = "text/plain"))]
    pub(crate) async fn metrics(
        handle: web::Data<PrometheusHandle>,
        dna: web::Data<DnaClient>,
        slitz: web::Data<SlitzClient>,
        cache: web::Data<ResponseCache>,
    ) -> HttpResponse {
        // States read at scrape time, so they are never stale.
        for (upstream, whole, operations, limit) in [
            ("dna", dna.breakers().upstream_state(), dna.breakers().operation_states(), dna.concurrency_limit()),
            ("slitz", slitz.breakers().upstream_state(), slitz.breakers().operation_states(), slitz.concurrency_limit()),
        ] {
            ::metrics::gauge!("gateway_breaker_state", "upstream" => upstream, "operation" => WHOLE_UPSTREAM)
                .set(whole.gauge());
            for (operation, state) in operations {
                ::metrics::gauge!("gateway_breaker_state", "upstream" => upstream, "operation" => operation)
                    .set(state.gauge());
            }
            ::metrics::gauge!("gateway_upstream_concurrency_limit", "upstream" => upstream)
                .set(limit as f64);
        }
        if let Some(left) = dna.token_expires_in() {
            ::metrics::gauge!("gateway_dna_token_expires_in_seconds").set(left.as_secs_f64());
        }
        if let Some(dropped) = crate::telemetry::access_log::dropped() {
            ::metrics::counter!("gateway_access_log_dropped_total").absolute(dropped);
        }
        let (entries, bytes) = cache.usage().await;
        ::metrics::gauge!("gateway_cache_entries").set(entries as f64);
        ::metrics::gauge!("gateway_cache_size_bytes").set(bytes as f64);
        HttpResponse::Ok()
            .content_type("text/plain; version=0.0.4; charset=utf-8")
            .body(handle.render())
    }
}
