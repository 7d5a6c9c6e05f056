//! Builds the HTTP server from settings: shared clients, middleware, routes,
//! Swagger UI, and problem+json for every framework-level error.

use std::{net::TcpListener, sync::Arc, time::Duration};

use actix_cors::Cors;
use actix_web::{
    App, HttpServer,
    dev::Server,
    http::{KeepAlive, header},
    middleware::{Condition, from_fn},
    web,
};
use anyhow::Context;
use utoipa_swagger_ui::SwaggerUi;

use crate::{
    auth::ApiKeys,
    cache::ResponseCache,
    configuration::{Settings, Upstream},
    context::Draining,
    error::{json_error, path_error},
    events::EventHub,
    idempotency::IdempotencyStore,
    openapi,
    reload::Reloader,
    representation,
    route_table::Written,
    routes::{self, AllowedMethods, health::Readiness},
    shared::SharedRedis,
    telemetry::{self, BodyLimit, Deadline, TrustedProxies},
    upstream::{dna::DnaClient, slitz::SlitzClient},
};

pub struct Application {
    port: u16,
    server: Server,
    draining: Draining,
    reloader: Reloader,
    registry: crate::registry::Registry,
}

/// Stops an [`Application`] gracefully, from another task.
#[derive(Clone)]
pub struct ShutdownHandle {
    server: actix_web::dev::ServerHandle,
    draining: Draining,
}

impl ShutdownHandle {
    /// Marks the gateway as going away: `/readyz` answers 503 from now on.
    pub fn drain(&self) {
        self.draining.set();
    }

    /// Drains, stops accepting connections, lets requests in flight finish
    /// within `server.shutdown_grace_seconds`, and returns when stopped.
    pub async fn shutdown(&self) {
        self.drain();
        tracing::info!(
            "shutting down: not ready, no new connections, finishing requests in flight"
        );
        self.server.stop(true).await;
    }
}

impl Application {
    /// Binds `server.listen` and prepares the server; nothing is served until
    /// [`Application::run_until_stopped`].
    pub fn build(settings: Settings) -> anyhow::Result<Self> {
        let listen = settings.server.listen;
        let listener =
            TcpListener::bind(listen).with_context(|| format!("Failed to listen on {listen}"))?;
        Self::build_with_listener(settings, listener)
    }

    pub fn build_with_listener(settings: Settings, listener: TcpListener) -> anyhow::Result<Self> {
        Self::build_with_routes(settings, listener, |_| {})
    }

    /// As [`Application::build_with_listener`], with `extra` routes served
    /// beside the API under the same middleware: how tests reach code paths
    /// no real route may have (a handler that panics).
    pub fn build_with_routes(
        settings: Settings,
        listener: TcpListener,
        extra: fn(&mut web::ServiceConfig),
    ) -> anyhow::Result<Self> {
        telemetry::install_panic_hook();
        let port = listener.local_addr()?.port();
        let state = State::build(&settings)?;
        let (draining, reloader) = (state.draining.clone(), state.reloader.clone());
        let registry = state.registry.get_ref().clone();
        let document = openapi::document();
        let fieldsets = web::Data::new(representation::Fieldsets::from_document(
            &document,
            routes::routes(),
        ));
        let origins = settings.server.cors_allowed_origins.clone();
        let server = HttpServer::new(move || {
            App::new()
                .configure(routes::configure)
                .configure(|cfg| state.register(cfg))
                .app_data(fieldsets.clone())
                .service(
                    SwaggerUi::new("/docs/{_:.*}")
                        .external_url_unchecked("/openapi.json", document.clone()),
                )
                .route("/docs", web::get().to(routes::docs_redirect))
                .configure(extra)
                .default_service(web::to(routes::fallback))
                .wrap(from_fn(representation::represent))
                .wrap(Condition::new(!origins.is_empty(), cors(&origins)))
                .wrap(from_fn(telemetry::request_context))
        });
        // Signals are the caller's (see `shutdown_handle`), so `/readyz` can
        // say the gateway is going away before it stops.
        let limits = &settings.server;
        let mut server = server
            .disable_signals()
            .shutdown_timeout(limits.shutdown_grace_seconds)
            .client_request_timeout(Duration::from_millis(limits.client_request_timeout_ms))
            .keep_alive(match limits.keep_alive_seconds {
                0 => KeepAlive::Disabled,
                seconds => KeepAlive::Timeout(Duration::from_secs(seconds)),
            })
            .max_connections(limits.max_connections);
        if limits.workers > 0 {
            server = server.workers(limits.workers);
        }
        let server = server.listen(listener)?.run();
        Ok(Self {
            port,
            server,
            draining,
            reloader,
            registry,
        })
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// What applies a reloaded configuration (SIGHUP) to this application.
    pub fn reloader(&self) -> Reloader {
        self.reloader.clone()
    }

    /// A handle that stops this application gracefully.
    pub fn shutdown_handle(&self) -> ShutdownHandle {
        ShutdownHandle {
            server: self.server.handle(),
            draining: self.draining.clone(),
        }
    }

    /// The registry, to close once the server has stopped.
    pub fn registry(&self) -> crate::registry::Registry {
        self.registry.clone()
    }

    pub async fn run_until_stopped(self) -> std::io::Result<()> {
        self.server.await
    }
}

/// CORS for browsers on other origins. A disallowed origin is not blocked
/// here (same-origin callers such as Swagger UI send `Origin` too): it simply
/// gets no CORS headers, and the browser refuses the answer.
fn cors(origins: &[String]) -> Cors {
    let mut cors = Cors::default()
        .allowed_methods(["GET", "POST", "PATCH"])
        .allowed_headers([
            header::AUTHORIZATION,
            header::CONTENT_TYPE,
            header::IF_NONE_MATCH,
            header::HeaderName::from_static("idempotency-key"),
            header::HeaderName::from_static("x-request-id"),
            header::HeaderName::from_static("traceparent"),
        ])
        .expose_headers([
            header::ETAG,
            header::LOCATION,
            header::RETRY_AFTER,
            header::HeaderName::from_static("x-request-id"),
            header::HeaderName::from_static("x-cache"),
            header::HeaderName::from_static("idempotent-replayed"),
            header::HeaderName::from_static("ratelimit"),
            header::HeaderName::from_static("ratelimit-policy"),
        ])
        .max_age(600)
        .block_on_origin_mismatch(false);
    if origins.iter().any(|o| o == "*") {
        cors = cors.allow_any_origin();
    } else {
        for origin in origins {
            cors = cors.allowed_origin(origin);
        }
    }
    cors
}

/// What every worker's app shares: the clients, stores and settings its
/// handlers and middleware take as app data.
#[derive(Clone)]
struct State {
    metrics: web::Data<metrics_exporter_prometheus::PrometheusHandle>,
    slitz: web::Data<SlitzClient>,
    dna: web::Data<DnaClient>,
    cache: web::Data<ResponseCache>,
    idempotency: web::Data<IdempotencyStore>,
    overview: web::Data<crate::configuration::OverviewSettings>,
    deadline: web::Data<Deadline>,
    keys: web::Data<ApiKeys>,
    /// What the identity provider vouches for (service tokens, people's sessions).
    identity: web::Data<crate::identity::Identity>,
    readiness: web::Data<Readiness>,
    proxies: web::Data<TrustedProxies>,
    body_limit: web::Data<BodyLimit>,
    allowed: web::Data<AllowedMethods>,
    events: web::Data<EventHub>,
    /// The customer registry and audit trail.
    registry: web::Data<crate::registry::Registry>,
    draining: Draining,
    max_body: usize,
    reloader: Reloader,
}

impl State {
    fn build(settings: &Settings) -> anyhow::Result<Self> {
        // First: counters registered below (the cache's) need the recorder.
        let metrics = web::Data::new(routes::metrics::recorder());
        let (dna_policy, slitz_policy) = (
            settings.upstream.of(Upstream::Dna),
            settings.upstream.of(Upstream::Slitz),
        );
        let redis = settings
            .redis
            .as_ref()
            .map(SharedRedis::new)
            .transpose()?
            .map(Arc::new);
        // A load another instance holds the lock for is waited on at most as
        // long as that load may take.
        let upstream_deadline = Duration::from_millis(slitz_policy.deadline_ms);
        let written = Written::from_routes(routes::routes());
        let cache = match &redis {
            Some(redis) => ResponseCache::shared(
                &settings.cache,
                written,
                Arc::clone(redis),
                upstream_deadline.saturating_add(Duration::from_secs(1)),
            ),
            None => ResponseCache::new(&settings.cache, written),
        };
        let idempotency = match &redis {
            // A create runs within the request deadline; the lease outlasts it.
            Some(redis) => IdempotencyStore::shared(
                Arc::clone(redis),
                &settings.idempotency,
                Duration::from_millis(dna_policy.deadline_ms)
                    .saturating_add(Duration::from_secs(10)),
            ),
            None => IdempotencyStore::new(&settings.idempotency),
        };
        let keys = ApiKeys::new(&settings.auth.api_keys)
            .with_identity_limits(settings.identity.rate_per_second, settings.identity.burst);
        let keys = web::Data::new(match &redis {
            Some(redis) => keys.with_shared_limits(Arc::clone(redis)),
            None => keys,
        });
        let identity = web::Data::new(crate::identity::Identity::new(
            &settings.identity,
            redis.as_ref(),
        )?);
        if settings.identity.oidc.is_some()
            && let Ok(runtime) = tokio::runtime::Handle::try_current()
        {
            // The keys fetched ahead of the first caller; a provider down now
            // is tried again when one comes.
            let identity = identity.clone();
            runtime.spawn(async move { identity.warm().await });
        }
        let readiness = Readiness::new(
            &[
                (
                    "dna",
                    &settings.dna.base_url,
                    Duration::from_millis(dna_policy.connect_timeout_ms),
                ),
                (
                    "slitz",
                    &settings.slitz.base_url,
                    Duration::from_millis(slitz_policy.connect_timeout_ms),
                ),
            ],
            redis.clone(),
        );
        let registry = crate::registry::Registry::new(&settings.registry)?;
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            // Migrated ahead of the first write; a database down now is
            // tried again by the first use.
            let registry = registry.clone();
            runtime.spawn(async move {
                if let Err(error) = registry.ready().await {
                    tracing::error!(%error, "the registry's database cannot be used yet; DNA writes answer 503 until it can");
                }
                registry.spawn_upkeep();
            });
        }
        let draining = Draining::default();
        Ok(Self {
            registry: web::Data::new(registry),
            metrics,
            events: web::Data::new(
                EventHub::with_redis(&settings.events, draining.clone(), redis.clone())
                    .invalidating(routes::events::stream_events::ENDPOINT.spec.invalidates),
            ),
            slitz: web::Data::new(SlitzClient::new(&settings.slitz, &slitz_policy)?),
            dna: web::Data::new(DnaClient::new(&settings.dna, &dna_policy)?),
            cache: web::Data::new(cache),
            idempotency: web::Data::new(idempotency),
            overview: web::Data::new(settings.overview.clone()),
            // A request's budget: each upstream's calls are bounded by their
            // own deadline within it.
            deadline: web::Data::new(Deadline(Duration::from_millis(
                settings.upstream.longest_deadline_ms(),
            ))),
            reloader: Reloader::new(keys.clone(), settings),
            keys,
            identity,
            readiness: web::Data::new(readiness),
            proxies: web::Data::new(TrustedProxies(settings.server.trusted_proxies.clone())),
            body_limit: web::Data::new(BodyLimit(settings.server.max_body_bytes)),
            allowed: web::Data::new(AllowedMethods::from_routes()),
            draining,
            max_body: settings.server.max_body_bytes,
        })
    }

    /// Gives one worker's app the shared state, and problem+json for the
    /// extractors' errors.
    fn register(&self, cfg: &mut web::ServiceConfig) {
        cfg.app_data(self.slitz.clone())
            .app_data(self.cache.clone())
            .app_data(self.dna.clone())
            .app_data(self.idempotency.clone())
            .app_data(self.overview.clone())
            .app_data(self.deadline.clone())
            .app_data(self.keys.clone())
            .app_data(self.identity.clone())
            .app_data(self.readiness.clone())
            .app_data(self.proxies.clone())
            .app_data(self.body_limit.clone())
            .app_data(self.metrics.clone())
            .app_data(self.allowed.clone())
            .app_data(self.events.clone())
            .app_data(self.registry.clone())
            .app_data(web::Data::new(self.draining.clone()))
            .app_data(
                web::JsonConfig::default()
                    .limit(self.max_body)
                    .error_handler(json_error),
            )
            .app_data(web::PayloadConfig::new(self.max_body))
            .app_data(web::PathConfig::default().error_handler(path_error));
    }
}
