//! Mixing: how long a node holds each packet, the deterministic core that
//! holds and releases them, and the anonymity that buys.

pub mod core;
pub mod delay;
pub mod delay_queue;
pub mod entropy;

pub use self::core::{
    CoreConfig, CoreCounts, EgressKey, Event, Held, Input, MixCore, Occupancy, Transmit,
};
pub use delay::{DelayPolicy, ExponentialDelay};
pub use delay_queue::DelayQueue;
pub use entropy::{PoolEntropy, poisson_mix_bits};
