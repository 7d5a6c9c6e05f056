//! The unified gateway: one normalized API in front of the Nexogy DNA and
//! Internetport Slitz APIs. README.md and docs/ are the contract; ARCHITECTURE.md maps the code.
#![warn(unreachable_pub)]
// No input may crash a connection: slicing, indexing, unwrap/expect and
// panic! are denied outside tests. Start-up code that may fail loudly says so
// with an `#[allow(..., reason = "...")]` at the site.
#![cfg_attr(
    not(test),
    deny(
        clippy::string_slice,
        clippy::indexing_slicing,
        clippy::unwrap_used,
        clippy::expect_used,
        clippy::panic,
        clippy::arithmetic_side_effects
    )
)]

pub mod auth;
pub mod cache;
pub mod checked;
pub mod cli;
pub mod configuration;
pub mod context;
pub mod domain;
pub mod error;
pub mod events;
pub mod idempotency;
pub mod identity;
pub mod model;
pub mod normalize;
pub mod openapi;
pub mod otel;
pub mod registry;
pub mod reload;
pub mod representation;
pub mod route_table;
pub mod routes;
pub mod sandbox;
pub mod shared;
pub mod startup;
pub mod telemetry;
pub mod upstream;
