//! authstore's integration tests, in one binary: each linked the whole
//! crate when it was a binary of its own (18 links per change). nextest
//! still runs every test in a process of its own; `scripts/test-all` picks
//! the PostgreSQL ones by module (`test(/^adapter::/)`).
//!
//! Every module talks to the real server through its API (`common` starts
//! one in process on a temp database, or the binary itself with deadlines).

// Tests wait for processes and copy fixtures freely (clippy.toml).
#![allow(clippy::disallowed_methods)]

mod common;

mod adapter;
mod cli;
mod console;
mod ephemeral;
mod events;
mod failures;
mod http;
mod import;
mod issuer;
mod litestream;
mod metrics;
mod migration;
mod nodes;
mod operations;
mod postgres;
mod processes;
mod proxy;
mod secrets;
mod sessions;
mod webhooks;
