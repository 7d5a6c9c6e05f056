//! The unified gateway: one normalized API in front of the Nexogy DNA and
//! Internetport Slitz APIs. See DESIGN.md for the contract.
#![warn(unreachable_pub)]

pub mod auth;
pub mod cache;
pub mod cli;
pub mod configuration;
pub mod error;
pub mod idempotency;
pub mod normalize;
pub mod openapi;
pub mod routes;
pub mod sandbox;
pub mod startup;
pub mod telemetry;
pub mod upstream;
