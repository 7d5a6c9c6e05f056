//! Integration tests: the gateway on a random loopback port against the
//! sandbox simulators, called over real HTTP.

mod account;
mod auth;
mod config;
mod errors;
mod health;
mod helpers;
mod openapi;
mod sandbox_dna;
mod sandbox_slitz;
mod telemetry;
