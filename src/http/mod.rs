//! The node's HTTP endpoint on the metrics port: `/metrics`, `/health`,
//! `/ready`, `/descriptor`, `/loops` and (when the node provides them)
//! `/vrf/…`; and
//! ([`client`]) the small blocking client that reads other nodes' endpoints.
//!
//! Deliberately small: HTTP/1.1 only (hyper's `http1` server), GET and HEAD
//! only, no request bodies, caps on concurrent connections (per source and
//! in total, the idlest making way when full) and timeouts on slow or idle
//! clients, so the port can face an untrusted network. The
//! handlers only read through [`NodeStatus`], which keeps this module
//! independent of how the node is put together.

pub mod client;
mod config;
mod exposure;
mod idle;
mod routes;
mod server;
mod status;

pub use config::HttpConfig;
pub use exposure::Exposure;
pub use routes::{Route, respond};
pub use server::{HttpServer, serve};
pub use status::{NodeStatus, VrfQuery};
