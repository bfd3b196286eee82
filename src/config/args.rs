//! Command-line flags: which config file to read, and overrides that beat
//! every other source.
//!
//! The most common keys get their own flags; `--set section.key=value`
//! reaches every other key, so no setting needs a rebuild or a file edit to
//! change for one run.

use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};

use figment::value::{Dict, Value};

use super::DEFAULT_CONFIG_PATH;
use super::env::process_env;
use super::error::ConfigError;
use super::layer::{Layer, is_string_key, parse_override};
use super::load::{load, load_for_node};
use super::schema::Config;
use crate::NodeRole;

/// Flags that select and override the configuration; flatten them into a
/// subcommand with `#[command(flatten)]`.
///
/// Precedence, lowest first: built-in defaults, the config file, the
/// environment, then these flags (`--set` first, then the named flags).
#[derive(clap::Args, Clone, Debug, Default, PartialEq)]
pub struct ConfigArgs {
    /// Config file to read [default: config/mixnode.toml if it exists]
    #[arg(long, value_name = "PATH")]
    pub config: Option<PathBuf>,

    /// Mixnet layer this node serves: entry, middle or exit (node.role)
    #[arg(long, value_name = "ROLE")]
    pub role: Option<NodeRole>,

    /// Port of the mix listeners; 0 picks a free port (node.port)
    #[arg(long, value_name = "PORT")]
    pub port: Option<u16>,

    /// IP address the mix listeners bind to (node.listen_addr)
    #[arg(long, value_name = "IP")]
    pub listen_addr: Option<IpAddr>,

    /// Address of the metrics and health endpoint (node.http_addr)
    #[arg(long, value_name = "IP:PORT")]
    pub http_addr: Option<SocketAddr>,

    /// The address node.json advertises, when the node sits behind NAT or a
    /// proxy and listens elsewhere (node.advertise_addr)
    #[arg(long, value_name = "IP:PORT")]
    pub advertised_addr: Option<SocketAddr>,

    /// Directory holding the node's key files (node.key_dir)
    #[arg(long, value_name = "DIR")]
    pub key_dir: Option<PathBuf>,

    /// Topology file listing the mixnet's nodes (node.topology)
    #[arg(long, value_name = "PATH")]
    pub topology: Option<PathBuf>,

    /// Directory for state kept across restarts (node.data_dir)
    #[arg(long, value_name = "DIR")]
    pub data_dir: Option<PathBuf>,

    /// Worker threads; 0 means one per CPU core (pipeline.workers)
    #[arg(long, value_name = "N")]
    pub workers: Option<usize>,

    /// Packets per processing batch (pipeline.batch_size)
    #[arg(long, value_name = "N")]
    pub batch_size: Option<usize>,

    /// Set any key, VALUE read as TOML or else as a string; repeatable
    #[arg(long = "set", value_name = "SECTION.KEY=VALUE")]
    pub set: Vec<String>,
}

impl ConfigArgs {
    /// Loads the configuration using the process environment.
    pub fn load(&self) -> Result<Config, ConfigError> {
        self.load_with_env(&process_env())
    }

    /// Loads the configuration with `env` standing in for the process
    /// environment, as `(name, value)` pairs.
    pub fn load_with_env(&self, env: &[(String, String)]) -> Result<Config, ConfigError> {
        load(self, env, Path::new(DEFAULT_CONFIG_PATH))
    }

    /// Loads the configuration of a node about to run: as
    /// [`load`](Self::load), then `node.role`, `node.listen_addr`,
    /// `node.port` and `node.http_addr` that no file, variable or flag set
    /// are taken from the node's own `node.json` (in `node.key_dir`), so a
    /// node listens where its descriptor tells peers to send.
    pub fn load_for_node(&self) -> Result<Config, ConfigError> {
        self.load_for_node_with_env(&process_env())
    }

    /// [`load_for_node`](Self::load_for_node) with `env` standing in for
    /// the process environment.
    pub fn load_for_node_with_env(&self, env: &[(String, String)]) -> Result<Config, ConfigError> {
        load_for_node(self, env, Path::new(DEFAULT_CONFIG_PATH))
    }

    /// One layer per override, lowest precedence first.
    pub(crate) fn layers(&self, defaults: &Dict) -> Result<Vec<Layer>, ConfigError> {
        let mut layers = Vec::new();
        for arg in &self.set {
            layers.push(set_layer(arg, defaults)?);
        }

        let text = |s: String| Value::from(s);
        let flags = [
            (
                "role",
                "node",
                "role",
                self.role.map(|r| text(r.to_string())),
            ),
            ("port", "node", "port", self.port.map(Value::from)),
            (
                "listen-addr",
                "node",
                "listen_addr",
                self.listen_addr.map(|a| text(a.to_string())),
            ),
            (
                "http-addr",
                "node",
                "http_addr",
                self.http_addr.map(|a| text(a.to_string())),
            ),
            (
                "advertised-addr",
                "node",
                "advertise_addr",
                self.advertised_addr.map(|a| text(a.to_string())),
            ),
            (
                "key-dir",
                "node",
                "key_dir",
                path_value("key-dir", self.key_dir.as_deref())?,
            ),
            (
                "topology",
                "node",
                "topology",
                path_value("topology", self.topology.as_deref())?,
            ),
            (
                "data-dir",
                "node",
                "data_dir",
                path_value("data-dir", self.data_dir.as_deref())?,
            ),
            (
                "workers",
                "pipeline",
                "workers",
                self.workers.map(Value::from),
            ),
            (
                "batch-size",
                "pipeline",
                "batch_size",
                self.batch_size.map(Value::from),
            ),
        ];
        for (flag, section, key, value) in flags {
            if let Some(value) = value {
                layers.push(Layer::setting(
                    format!("set by --{flag}"),
                    section,
                    key,
                    value,
                ));
            }
        }
        Ok(layers)
    }
}

/// The layer for one `--set section.key=value`.
fn set_layer(arg: &str, defaults: &Dict) -> Result<Layer, ConfigError> {
    let fail = |reason: &str| ConfigError::BadOverride {
        arg: format!("--set {arg}"),
        reason: reason.to_owned(),
    };
    let (path, raw) = arg
        .split_once('=')
        .ok_or_else(|| fail("expected SECTION.KEY=VALUE, e.g. mixing.mean_delay_ms=5"))?;
    let (section, key) = path
        .trim()
        .split_once('.')
        .filter(|(s, k)| !s.is_empty() && !k.is_empty() && !k.contains('.'))
        .ok_or_else(|| fail("the key must be SECTION.KEY, e.g. mixing.mean_delay_ms"))?;
    // Whether the key exists is the schema's call: it reports unknown keys
    // with the list of valid ones.
    let value = parse_override(raw.trim(), is_string_key(defaults, section, key));
    Ok(Layer::setting(
        format!("set by --set {arg}"),
        section,
        key,
        value,
    ))
}

/// A path flag as a config value. Config values are UTF-8 text, so a path
/// that is not is refused rather than silently altered.
fn path_value(flag: &str, path: Option<&Path>) -> Result<Option<Value>, ConfigError> {
    path.map(|p| {
        p.to_str()
            .map(Value::from)
            .ok_or_else(|| ConfigError::BadOverride {
                arg: format!("--{flag} {}", p.display()),
                reason: "the path is not valid UTF-8".to_owned(),
            })
    })
    .transpose()
}
