//! What the gateway knows about each route: [`RouteSpec`]. The specs
//! themselves are written once per endpoint, on its handler, by
//! `routes::endpoint!`; `routes::ENDPOINTS` lists them.
//! Their users:
//!
//! - admission (`auth::admit`) enforces [`RouteSpec::scopes`] before any
//!   handler runs, and a route is public only when it says so;
//! - the OpenAPI document's `security`, auth errors, and the `304` answer and
//!   `ETag` / `X-Cache` / `Cache-Control` headers of cached reads are
//!   written from it (`openapi`);
//! - a write forgets the cached routes in [`RouteSpec::invalidates`];
//! - the `route` label of the request metrics is [`RouteSpec::path`].
//!
//! A leaf: it names configuration's enums and the upstream operations
//! (`upstream::operation`, itself a leaf) and nothing else.

use http::Method;

use crate::{
    configuration::{Route as Cached, Scope},
    upstream::operation::Operation,
};

/// One route.
#[derive(Debug)]
pub struct RouteSpec {
    /// The handler's name: the server's resource name and the OpenAPI operationId.
    pub name: &'static str,
    pub method: Method,
    /// The full path template, as in the OpenAPI document.
    pub path: &'static str,
    /// Every scope a caller needs; empty only for a route declared public.
    pub scopes: &'static [Scope],
    /// A scope that widens the answer (more fields) when the caller has it.
    pub widened_by: Option<Scope>,
    /// The cache route its answers are kept under, if it is a cached read.
    pub cached: Option<Cached>,
    /// A read no cache keeps whose answers still carry an `ETag` and get a
    /// `304` (from `representation`): the registry's reads.
    pub validated: bool,
    /// The upstream operations it calls.
    pub upstream: &'static [Operation],
    /// The cached routes whose answers its success changes.
    pub invalidates: &'static [Cached],
}

impl RouteSpec {
    /// Whether the route admits only a known caller.
    pub fn keyed(&self) -> bool {
        !self.scopes.is_empty()
    }
}

/// For each cached route (by its place in `Route::ALL`), whether some
/// route's success changes its answers: the cache asks on every hit.
#[derive(Debug, Clone, Copy)]
pub struct Written([bool; Cached::ALL.len()]);

impl Written {
    pub fn from_routes<'a>(routes: impl IntoIterator<Item = &'a RouteSpec>) -> Self {
        let mut written = [false; Cached::ALL.len()];
        for route in routes {
            for cached in route.invalidates {
                if let Some(slot) = written.get_mut(*cached as usize) {
                    *slot = true;
                }
            }
        }
        Self(written)
    }

    /// Whether a write through the gateway can change `route`'s answers.
    pub fn get(&self, route: Cached) -> bool {
        self.0.get(route as usize).copied().unwrap_or(true)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn written_routes_are_those_some_route_invalidates() {
        for (i, &route) in Cached::ALL.iter().enumerate() {
            assert_eq!(route as usize, i, "Route::ALL is in declaration order");
        }
        let spec = RouteSpec {
            name: "w",
            method: Method::PATCH,
            path: "/w",
            scopes: &[Scope::Write],
            widened_by: None,
            cached: None,
            validated: false,
            upstream: &[],
            invalidates: &[Cached::Account],
        };
        let written = Written::from_routes([&spec]);
        assert!(written.get(Cached::Account) && !written.get(Cached::Balance));
    }
}
