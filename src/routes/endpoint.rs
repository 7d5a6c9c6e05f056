//! One declaration per endpoint: [`endpoint!`](crate::endpoint) writes a
//! handler's method, path, name, scopes, cache route, upstream operations
//! and documented `200` body once, and makes from them
//!
//! - the route's [`RouteSpec`] (what admission, the cache, the metrics and
//!   the document read),
//! - its registration: an actix-web resource named after the handler,
//!   guarded by its method and **wrapped in admission**
//!   ([`crate::auth::admit`]), so no handler is reachable without it, and
//! - its OpenAPI operation (utoipa's `#[utoipa::path]`, given the same
//!   method and path).
//!
//! The model is dropshot's endpoint macro: the facts sit on the handler,
//! written once, and nothing else registers or documents a route. A
//! declarative macro rather than a procedural one: it only rearranges what
//! it is given, so it stays readable where it is used and needs no crate of
//! its own.
//!
//! The macro makes a module named after the handler, which holds the
//! handler (`handler`, with every name of the module around it in scope)
//! and its declaration. Inside the handler, `ENDPOINT` is the route's [`Endpoint`],
//! `CACHE` its cache route (when declared `cached`: the cache key's route is
//! the declaration's, and a route that declares none has no `CACHE` to
//! key by) and `Body` the documented `200` type (when declared with `ok`),
//! which the handler's loader names.

use actix_web::{dev::HttpServiceFactory, web};
use utoipa::openapi::{OpenApi, RefOr, schema::Schema};

use crate::route_table::RouteSpec;

/// A declared endpoint: its facts, how to register it, how to document it.
pub struct Endpoint {
    pub spec: RouteSpec,
    /// Adds the admitted resource to an app.
    pub register: fn(&mut web::ServiceConfig),
    /// Adds its operation (and the schemas it names) to a document.
    pub document: fn(&mut OpenApi),
}

impl std::fmt::Debug for Endpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.spec.fmt(f)
    }
}

/// The resource for `spec`, serving `handler` behind admission.
pub fn resource<F, Args>(spec: &'static RouteSpec, handler: F) -> impl HttpServiceFactory
where
    F: actix_web::Handler<Args>,
    Args: actix_web::FromRequest + 'static,
    F::Output: actix_web::Responder + 'static,
{
    web::resource(spec.path)
        .name(spec.name)
        // A resource-level guard: another method falls through to the next
        // resource of the same path (`GET` and `PATCH /v1/account`), and
        // past the last one to the 405 of the fallback.
        .guard(actix_web::guard::Method(spec.method.clone()))
        .wrap(actix_web::middleware::from_fn(move |req, next| {
            crate::auth::admit(spec, req, next)
        }))
        .to(handler)
}

/// Adds `F`'s operation and schemas (from its `#[utoipa::path]`) to `doc`.
pub fn document<F>(doc: &mut OpenApi, factory: F)
where
    F: utoipa_actix_web::OpenApiFactory,
{
    let mut schemas = Vec::<(String, RefOr<Schema>)>::new();
    factory.schemas(&mut schemas);
    doc.paths.merge(factory.paths());
    doc.components
        .get_or_insert_with(Default::default)
        .schemas
        .extend(schemas);
}

/// `get` → `Method::GET`: the declaration's method, as utoipa writes it.
#[doc(hidden)]
#[macro_export]
macro_rules! __endpoint_method {
    (get) => {
        ::actix_web::http::Method::GET
    };
    (post) => {
        ::actix_web::http::Method::POST
    };
    (patch) => {
        ::actix_web::http::Method::PATCH
    };
    (put) => {
        ::actix_web::http::Method::PUT
    };
    (delete) => {
        ::actix_web::http::Method::DELETE
    };
}

/// `public` or `scopes`: nothing else is an access.
#[doc(hidden)]
#[macro_export]
macro_rules! __endpoint_public {
    (public) => {
        true
    };
    (scopes) => {
        false
    };
}

/// `Slitz(GetService)`: the upstream operation, of that client's enum.
#[doc(hidden)]
#[macro_export]
macro_rules! __endpoint_operation {
    (Slitz, $operation:ident) => {
        $crate::upstream::operation::Operation::Slitz(
            $crate::upstream::operation::SlitzOperation::$operation,
        )
    };
    (Dna, $operation:ident) => {
        $crate::upstream::operation::Operation::Dna(
            $crate::upstream::operation::DnaOperation::$operation,
        )
    };
}

/// `validated = true` when given, else `false`.
#[doc(hidden)]
#[macro_export]
macro_rules! __endpoint_validated {
    () => {
        false
    };
    ($validated:literal) => {
        $validated
    };
}

/// `Some(x)` when given, `None` when not.
#[doc(hidden)]
#[macro_export]
macro_rules! __endpoint_opt {
    () => {
        None
    };
    ($value:expr) => {
        Some($value)
    };
}

/// Declares one endpoint. The first attribute holds the route's facts, in
/// this order (each but the first optional):
///
/// ```text
/// #[route(get "/v1/services/{id}",
///     public | scopes = [Read],        // exactly one: a route is public only by saying so
///     widened_by = Secrets,
///     cached = Service,                // or `validated = true`: an uncached read with ETag and 304
///     upstream = [Slitz(GetService)],      // the client operations it calls
///     invalidates = [Account, Invoice],
///     ok = (ServiceDetail, "The service."))]
/// #[openapi(tag = "services", params(..),)]   // the rest of #[utoipa::path], each followed by a comma
/// #[responses(BadRequest, NotFound, UpstreamErrors)]   // besides the 200 and the auth errors
/// async fn get_service(..) -> Result<HttpResponse, ApiError> { .. }
/// ```
///
/// Keyed routes get their `security` and their 401/403/429 in the document
/// from `scopes` (`openapi`); cached reads their 304 and cache headers
/// from `cached`.
#[macro_export]
macro_rules! endpoint {
    (
        $(#[doc = $doc:literal])*
        #[route($method:ident $path:literal, $access:ident $(= [$($scope:ident),+ $(,)?])?
            $(, widened_by = $widened:ident)?
            $(, cached = $cached:ident)?
            $(, validated = $validated:literal)?
            $(, upstream = [$($upstream:ident($operation:ident)),+ $(,)?])?
            $(, invalidates = [$($invalidated:ident),+ $(,)?])?
            $(, ok = ($ok:ident $(<$ok_arg:ident>)?, $ok_description:literal))?
            $(,)?
        )]
        #[openapi($($openapi:tt)*)]
        #[responses($($responses:tt)*)]
        $vis:vis async fn $name:ident ($($args:tt)*) -> $ret:ty $body:block
    ) => {
        $(#[doc = $doc])*
        $vis mod $name {
            #[allow(unused_imports)]
            use super::*;

            $(
                /// The documented `200` body.
                #[allow(dead_code)]
                pub(crate) type Body = $ok $(<$ok_arg>)?;
            )?

            $(
                /// The cache route its answers are kept under.
                #[allow(dead_code)]
                pub(crate) const CACHE: $crate::configuration::Route =
                    $crate::configuration::Route::$cached;
            )?

            $(#[doc = $doc])*
            #[utoipa::path(
                $method,
                path = $path,
                impl_for = Doc,
                operation_id = stringify!($name),
                $($openapi)*
                responses(
                    $((status = 200, description = $ok_description, body = $ok $(<$ok_arg>)?),)?
                    $($responses)*
                )
            )]
            pub(crate) async fn handler($($args)*) -> $ret $body

            /// utoipa's `Path` for the handler (its `impl_for`).
            #[derive(Clone, Copy)]
            pub(crate) struct Doc;

            const PUBLIC: bool = $crate::__endpoint_public!($access);
            const SCOPES: &[$crate::configuration::Scope] =
                &[$($($crate::configuration::Scope::$scope),+)?];
            // Fails the build unless the route says either `public` or its
            // scopes: admission has nothing to fall back on.
            const _: () = assert!(
                PUBLIC == SCOPES.is_empty(),
                concat!("declare ", stringify!($name), " either `public` or with `scopes`"),
            );

            pub(crate) static ENDPOINT: $crate::routes::endpoint::Endpoint =
                $crate::routes::endpoint::Endpoint {
                    spec: $crate::route_table::RouteSpec {
                        name: stringify!($name),
                        method: $crate::__endpoint_method!($method),
                        path: $path,
                        scopes: SCOPES,
                        widened_by: $crate::__endpoint_opt!($($crate::configuration::Scope::$widened)?),
                        cached: $crate::__endpoint_opt!($($crate::configuration::Route::$cached)?),
                        validated: $crate::__endpoint_validated!($($validated)?),
                        upstream: &[$($($crate::__endpoint_operation!($upstream, $operation)),+)?],
                        invalidates: &[$($($crate::configuration::Route::$invalidated),+)?],
                    },
                    register: |cfg| {
                        cfg.service($crate::routes::endpoint::resource(
                            &ENDPOINT.spec,
                            handler,
                        ));
                    },
                    document: |doc| $crate::routes::endpoint::document(doc, Doc),
                };
        }
    };
}
