//! Node configuration: the schema, where settings come from, and the rules
//! they must satisfy.
//!
//! Settings are layered, each layer replacing only the keys it sets
//! (lowest first):
//!
//! 1. built-in defaults ([`Config::default`]);
//! 2. the config file: `--config PATH` (which must exist), else
//!    [`DEFAULT_CONFIG_PATH`] in the working directory if present;
//! 3. the environment: the integration guide's variables
//!    ([`GUIDE_ENV_VARS`]) and `BETANET_<SECTION>__<KEY>` for any key;
//! 4. command-line flags ([`ConfigArgs`]).
//!
//! Loading fails, with a [`ConfigError`] naming the key and its source, on
//! unknown keys, wrong types and values out of range, so a typo never runs
//! a node with a setting silently ignored.
//!
//! ```no_run
//! use betanet::config::ConfigArgs;
//!
//! let config = ConfigArgs::default().load()?;
//! println!("{}", config.to_toml_string());
//! # Ok::<(), betanet::config::ConfigError>(())
//! ```

mod args;
mod env;
mod error;
mod from_descriptor;
mod layer;
mod load;
mod schema;
mod validate;

pub use args::ConfigArgs;
pub use env::{ENV_PREFIX, GUIDE_ENV_VARS, process_env};
pub use error::ConfigError;
pub use schema::{
    AuthoritiesConfig, Config, CoverTrafficConfig, ExitConfig, MixingConfig, NodeConfig,
    PerformanceConfig, PipelineConfig, RateLimitConfig, ReplayConfig, SphinxConfig,
    TransportConfig, VrfConfig,
};

/// The config file read when `--config` is not given, relative to the
/// working directory; it is optional.
pub const DEFAULT_CONFIG_PATH: &str = "config/mixnode.toml";

impl Config {
    /// Parses TOML text laid over the defaults and validates the result, as
    /// for a config file but without environment or flags.
    pub fn from_toml_str(text: &str) -> Result<Self, ConfigError> {
        load::from_toml_str(text)
    }

    /// Checks the range and consistency rules that loading enforces, for a
    /// `Config` built or changed in code.
    pub fn validate(&self) -> Result<(), ConfigError> {
        validate::check(self, &layer::Provenance::unknown())
    }

    /// The number of pipeline workers to start: `pipeline.workers`, or one
    /// per available CPU core when it is 0.
    pub fn effective_workers(&self) -> usize {
        match self.pipeline.workers {
            0 => std::thread::available_parallelism().map_or(1, |n| n.get()),
            n => n,
        }
    }

    /// The configuration as TOML, for `betanet config show`.
    ///
    /// The configuration holds no secrets (keys live in files under
    /// `node.key_dir`), so the output is safe to print and share. Keys that
    /// are unset options (`node.advertise_addr`, `vrf.delay_variance_ms`)
    /// are omitted. Feeding the output back in as a config file gives the
    /// same `Config`.
    pub fn to_toml_string(&self) -> String {
        // Every field is a number, string, bool, list or table, all of which
        // TOML can express, so this does not fail; a message beats a panic
        // should that ever change.
        toml::to_string(self)
            .unwrap_or_else(|e| format!("# the configuration cannot be shown as TOML: {e}\n"))
    }
}

#[cfg(test)]
mod tests;
