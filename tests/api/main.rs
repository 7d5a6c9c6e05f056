//! Integration tests: the gateway on a random loopback port against the
//! sandbox simulators, called over real HTTP.

mod access_log;
mod account;
mod account_patch;
mod admission;
mod auth;
mod binary;
mod blast_radius;
mod cache;
mod config;
pub mod customers;
mod dna_token;
mod drift;
mod errors;
pub mod events;
mod health;
mod helpers;
mod identity;
mod nginx;
mod observability;
mod openapi;
mod otlp;
mod overview;
#[path = "../support/panicking.rs"]
mod panicking;
mod postgres;
mod problem_types;
mod registry;
mod reload;
mod representation;
mod resilience;
mod route_table;
mod sandbox_dna;
mod sandbox_slitz;
mod shared_cache;
mod shared_state;
mod shutdown;
mod slitz_routes;
mod telemetry;
