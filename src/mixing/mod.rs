//! Mixing delays: how long a node holds each packet before sending it on.

pub mod delay;

pub use delay::{DelayPolicy, ExponentialDelay};
