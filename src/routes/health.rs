//! Liveness and readiness, for the orchestrator and the reverse proxy.

use std::{collections::BTreeMap, sync::Arc, time::Duration};

use actix_web::{HttpResponse, http::header, web};
use serde::Serialize;
use url::Url;
use utoipa::ToSchema;

use crate::{
    error::{ApiError, Problem},
    shared::SharedRedis,
    upstream::{
        breaker::{BreakerState, Breakers},
        dna::DnaClient,
        operation::ClientOperation,
        slitz::SlitzClient,
    },
};

/// What `/readyz` checks: that each upstream accepts TCP connections. It
/// costs the upstreams nothing (no login, no request), so probes can be frequent.
pub struct Readiness {
    /// Each upstream's name, host, port and connect timeout.
    upstreams: Vec<(&'static str, String, u16, Duration)>,
    redis: Option<Arc<SharedRedis>>,
}

impl Readiness {
    pub fn new(
        upstreams: &[(&'static str, &Url, Duration)],
        redis: Option<Arc<SharedRedis>>,
    ) -> Self {
        let upstreams = upstreams
            .iter()
            .filter_map(|(name, url, timeout)| {
                Some((
                    *name,
                    url.host_str()?.to_owned(),
                    url.port_or_known_default()?,
                    *timeout,
                ))
            })
            .collect();
        Self { upstreams, redis }
    }

    async fn check(&self) -> BTreeMap<&'static str, Check> {
        let probes = self
            .upstreams
            .iter()
            .map(|(name, host, port, timeout)| async move {
                let connect = tokio::net::TcpStream::connect((host.as_str(), *port));
                let check = match tokio::time::timeout(*timeout, connect).await {
                    Ok(Ok(_)) => Check::up(),
                    Ok(Err(e)) => Check::down(format!("cannot connect: {}", e.kind())),
                    Err(_) => {
                        Check::down(format!("no connection within {} ms", timeout.as_millis()))
                    }
                };
                (*name, check)
            });
        futures_util::future::join_all(probes)
            .await
            .into_iter()
            .collect()
    }
}

/// Checks `/readyz` shows but does not fail on: Redis is shared by every
/// instance, so judging it would take them all out of the balancer at once.
const SHOWN_NOT_JUDGED: [&str; 2] = ["redis", "cache_invalidations"];

/// One dependency's state.
#[derive(Debug, Serialize, ToSchema)]
pub struct Check {
    /// `up` or `down`.
    #[schema(example = "up")]
    pub status: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
    /// The circuit breaker of the upstream as a whole (opened by connection
    /// faults only): `closed`, `open` or `half_open`. While it is open the
    /// upstream is `down`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub breaker: Option<BreakerState>,
    /// Operations of the upstream (`GET /tickets`) whose own breaker is not
    /// closed: they fail fast, the upstream's other operations still work,
    /// so they do not make the gateway unready.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    #[schema(example = json!(["GET /tickets"]))]
    pub open_operations: Vec<&'static str>,
}

impl Check {
    fn up() -> Self {
        Self {
            status: "up",
            detail: None,
            breaker: None,
            open_operations: Vec::new(),
        }
    }
    fn down(detail: String) -> Self {
        Self {
            status: "down",
            detail: Some(detail),
            breaker: None,
            open_operations: Vec::new(),
        }
    }

    /// Shows `breakers`; an open breaker of the whole upstream makes it
    /// `down` (its connections keep failing), open operations do not.
    fn show_breakers<O: ClientOperation>(&mut self, upstream: &str, breakers: &Breakers<O>) {
        let whole = breakers.upstream_state();
        self.breaker = Some(whole);
        self.open_operations = breakers.open_operations();
        if whole == BreakerState::Open && self.status == "up" {
            self.status = "down";
            self.detail = Some(format!(
                "connections to {upstream} failed repeatedly; every call to it is paused (circuit breaker open)"
            ));
        }
    }
}

/// The process is alive.
#[derive(Serialize, ToSchema)]
pub struct Health {
    #[schema(example = "ok")]
    pub status: &'static str,
}

/// The gateway can serve: configuration loaded and every upstream reachable.
#[derive(Serialize, ToSchema)]
#[schema(example = json!({"status": "ready", "checks": {"dna": {"status": "up", "breaker": "closed"}, "slitz": {"status": "up", "breaker": "closed"}}}))]
pub struct Ready {
    /// `ready`.
    pub status: &'static str,
    /// Each upstream by name.
    pub checks: BTreeMap<&'static str, Check>,
}

crate::endpoint! {
    /// Liveness
    ///
    /// Answers 200 while the process runs; it checks nothing else, so an
    /// orchestrator restarts the gateway only when it is truly stuck.
    #[route(get "/healthz", public)]
    #[openapi(tag = "operations",)]
    #[responses((status = 200, description = "Alive.", body = Health, example = json!({"status": "ok"})))]
    pub(crate) async fn healthz(
    ) -> web::Json<Health> {
        web::Json(Health { status: "ok" })
    }
}

crate::endpoint! {
    /// Readiness
    ///
    /// 200 when every upstream accepts connections; otherwise a 503 problem whose
    /// `checks` member says which one does not. An upstream whose connections
    /// failed until its breaker opened is down; operations whose own breaker is
    /// open are listed in `open_operations` and do not make the gateway unready.
    #[route(get "/readyz", public, ok = (Ready, "Ready to serve."))]
    #[openapi(tag = "operations",)]
    #[responses((status = 503, description = "An upstream is unreachable; `checks` tells which.", body = Problem,
         content_type = "application/problem+json"))]
    pub(crate) async fn readyz(
        readiness: web::Data<Readiness>,
        dna: web::Data<DnaClient>,
        slitz: web::Data<SlitzClient>,
        draining: Option<web::Data<crate::context::Draining>>,
        cache: Option<web::Data<crate::cache::ResponseCache>>,
    ) -> HttpResponse {
        if draining.is_some_and(|d| d.is_set()) {
            let mut response = ApiError::NotReady(
                "the gateway is shutting down; requests in flight are being finished".into(),
            )
            .to_problem()
            .respond();
            response.headers_mut().insert(
                header::CACHE_CONTROL,
                header::HeaderValue::from_static("no-store"),
            );
            return response;
        }
        let mut checks = readiness.check().await;
        // An operation's open breaker is shown, not judged: the upstream's other
        // operations (and stale cache) still serve. The whole upstream's is judged.
        if let Some(check) = checks.get_mut("dna") {
            check.show_breakers("dna", dna.breakers());
        }
        if let Some(check) = checks.get_mut("slitz") {
            check.show_breakers("slitz", slitz.breakers());
        }
        // Once DNA has refused the gateway's credentials, stay not-ready until a
        // token can be had again; each probe tries once, so a fixed secret heals.
        if dna.credentials_rejected() {
            let check = match dna.check_credentials().await {
                Ok(()) => Check::up(),
                Err(_) => Check::down(
                    "dna rejects the gateway's credentials (dna.client_id/secret, username/password)"
                        .into(),
                ),
            };
            checks.insert("dna_credentials", check);
        }
        // Redis is named, not judged: without it every instance still serves
        // reads (creates with an Idempotency-Key fail closed), and pulling every
        // instance out of the balancer at once would turn that into an outage.
        let redis = match &readiness.redis {
            None => None,
            Some(redis) => Some(match redis.ping().await {
                Ok(()) => Check::up(),
                Err(e) => Check::down(e.to_string()),
            }),
        };
        let invalidations = cache
            .and_then(|c| c.hears_invalidations())
            .map(|listening| match listening {
                true => Check::up(),
                false => Check::down(
                    "not subscribed to cache invalidations: account and invoice reads go to Slitz, account changes answer 503"
                        .into(),
                ),
            });
        let all_up = checks.values().all(|c| c.status == "up");
        if let Some(redis) = redis {
            checks.insert("redis", redis);
        }
        if let Some(invalidations) = invalidations {
            checks.insert("cache_invalidations", invalidations);
        }
        if all_up {
            return HttpResponse::Ok().json(Ready {
                status: "ready",
                checks,
            });
        }
        let down: Vec<&str> = checks
            .iter()
            .filter(|(name, c)| c.status != "up" && !SHOWN_NOT_JUDGED.contains(*name))
            .map(|(name, _)| *name)
            .collect();
        let mut response = ApiError::NotReady(format!("unreachable: {}", down.join(", ")))
            .to_problem()
            .with("checks", &checks)
            .respond();
        response.headers_mut().insert(
            header::CACHE_CONTROL,
            header::HeaderValue::from_static("no-store"),
        );
        response
    }
}
