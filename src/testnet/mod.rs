//! A whole mixnet on 127.0.0.1: every node's keys, the topology and the
//! nodes themselves, in this process. Used by `betanet testnet`, the
//! integration tests and the benchmark, so all three run the same setup.

mod status;

use std::net::{SocketAddr, TcpListener, UdpSocket};
use std::path::{Path, PathBuf};

pub use status::{ReplyDemo, StatusLine};

use crate::config::Config;
use crate::node::{Mixnode, NodeError, Sockets, TestHooks};
use crate::role::NodeRole;
use crate::sphinx::PathHop;
use crate::topology::{NodeDescriptor, Topology};

/// Why a local mixnet could not start.
#[derive(Debug, thiserror::Error)]
pub enum LocalNetError {
    /// A node failed to start.
    #[error(transparent)]
    Node(#[from] NodeError),
    /// Keys could not be generated.
    #[error("cannot generate keys: {0}")]
    Keygen(#[from] crate::keys::KeygenError),
    /// The topology could not be written.
    #[error(transparent)]
    Topology(#[from] crate::topology::TopologyError),
    /// A local port could not be reserved.
    #[error("cannot reserve a local port: {0}")]
    Io(#[from] std::io::Error),
}

/// A running local mixnet.
pub struct LocalNet {
    dir: PathBuf,
    nodes: Vec<Option<Mixnode>>,
    descriptors: Vec<NodeDescriptor>,
    configs: Vec<Config>,
    /// Each node's test hooks, kept for restarts.
    hooks: Vec<TestHooks>,
}

impl LocalNet {
    /// Starts `per_layer` nodes in each layer on 127.0.0.1 ephemeral ports,
    /// with keys, data and `topology.json` under `dir`. Every node gets
    /// `template` with its own role, key, data and topology paths filled in.
    pub fn start(
        dir: &Path,
        per_layer: usize,
        template: &Config,
    ) -> Result<LocalNet, LocalNetError> {
        Self::start_with_hooks(dir, per_layer, template, |_| TestHooks::default())
    }

    /// [`start`](Self::start) where `hooks(i)` gives node `i` test-only
    /// misbehaviour (for tests that must catch a cheating node).
    #[doc(hidden)]
    pub fn start_with_hooks(
        dir: &Path,
        per_layer: usize,
        template: &Config,
        hooks: impl Fn(usize) -> TestHooks,
    ) -> Result<LocalNet, LocalNetError> {
        let mut sockets = Vec::new();
        let mut descriptors = Vec::new();
        let mut configs = Vec::new();
        let topology_path = dir.join("topology.json");
        for role in NodeRole::ALL {
            for i in 0..per_layer.max(1) {
                let name = format!("{}-{}", role.as_str(), i + 1);
                let mut s = Sockets::bind(SocketAddr::from(([127, 0, 0, 1], 0)), true, true)?;
                s.http = Some(TcpListener::bind("127.0.0.1:0")?);
                let http_addr = local(s.http_addr())?;
                let (udp, tcp) = (local(s.udp_addr())?, local(s.tcp_addr())?);
                let key_dir = dir.join(&name).join("keys");
                // keygen refuses a directory that already holds keys.
                let params = crate::keys::KeygenParams {
                    role,
                    udp_addr: udp,
                    tcp_addr: tcp,
                    http_addr,
                    key_epoch_seconds: template.sphinx.key_epoch_seconds,
                    now_unix: hooks(configs.len()).now_unix(),
                    network: crate::topology::NetworkParams::from_config(template),
                };
                let descriptor = crate::keys::keygen(&key_dir, params)?;
                let mut config = template.clone();
                config.node.role = role;
                config.node.key_dir = key_dir;
                config.node.data_dir = dir.join(&name).join("data");
                config.node.topology = topology_path.clone();
                config.node.http_addr = http_addr;
                sockets.push(s);
                descriptors.push(descriptor);
                configs.push(config);
            }
        }
        Topology::build(descriptors.clone())?.save(&topology_path)?;
        let mut nodes = Vec::with_capacity(configs.len());
        for (i, (config, s)) in configs.iter().zip(sockets).enumerate() {
            nodes.push(Some(Mixnode::start_with_hooks(
                config.clone(),
                s,
                hooks(i),
            )?));
        }
        let hooks = (0..configs.len()).map(hooks).collect();
        Ok(LocalNet {
            dir: dir.to_owned(),
            nodes,
            descriptors,
            configs,
            hooks,
        })
    }

    /// Where keys, data and the topology live.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The topology file.
    pub fn topology_path(&self) -> PathBuf {
        self.dir.join("topology.json")
    }

    /// Every node's descriptor, entry layer first.
    pub fn descriptors(&self) -> &[NodeDescriptor] {
        &self.descriptors
    }

    /// The running nodes (a restarting node is briefly absent).
    pub fn nodes(&self) -> impl Iterator<Item = &Mixnode> {
        self.nodes.iter().flatten()
    }

    /// Node `i` (in descriptor order).
    pub fn node(&self, i: usize) -> Option<&Mixnode> {
        self.nodes.get(i).and_then(Option::as_ref)
    }

    /// The first node of a layer.
    pub fn first(&self, role: NodeRole) -> Option<&Mixnode> {
        let i = self.descriptors.iter().position(|d| d.role == role)?;
        self.node(i)
    }

    /// The path through the first node of each layer.
    pub fn first_path(&self) -> Vec<PathHop> {
        NodeRole::ALL
            .iter()
            .filter_map(|role| self.descriptors.iter().find(|d| d.role == *role))
            .filter_map(|d| {
                d.sphinx_key_now().map(|k| PathHop {
                    id: d.id,
                    public_key: k.public_key,
                })
            })
            .collect()
    }

    /// Stops node `i` (if running) and starts it again with the same keys,
    /// data and addresses (as an operator's restart would).
    pub fn restart(&mut self, i: usize) -> Result<(), LocalNetError> {
        if let Some(old) = self.nodes.get_mut(i).and_then(Option::take) {
            old.shutdown();
        }
        let d = &self.descriptors[i];
        let sockets = Sockets {
            udp: Some(UdpSocket::bind(d.udp_addr)?),
            tcp: Some(TcpListener::bind(d.tcp_addr)?),
            http: Some(TcpListener::bind(d.http_addr)?),
        };
        self.nodes[i] = Some(Mixnode::start_with_hooks(
            self.configs[i].clone(),
            sockets,
            self.hooks[i].clone(),
        )?);
        Ok(())
    }

    /// [`restart`](Self::restart) with node `i`'s configuration changed by
    /// `change` first (as an operator editing its config would).
    pub fn restart_with(
        &mut self,
        i: usize,
        change: impl FnOnce(&mut Config),
    ) -> Result<(), LocalNetError> {
        change(&mut self.configs[i]);
        self.restart(i)
    }

    /// Stops node `i` gracefully and leaves it stopped: its ports close and
    /// other nodes' packets to it are lost, as when a node dies.
    /// [`restart`](Self::restart) brings it back. Returns false if it was
    /// not running.
    pub fn stop(&mut self, i: usize) -> bool {
        match self.nodes.get_mut(i).and_then(Option::take) {
            Some(node) => {
                node.shutdown();
                true
            }
            None => false,
        }
    }

    /// Stops every node gracefully.
    pub fn shutdown(mut self) {
        for node in self.nodes.iter_mut().filter_map(Option::take) {
            node.shutdown();
        }
    }
}

fn local(addr: Option<SocketAddr>) -> std::io::Result<SocketAddr> {
    addr.ok_or_else(|| std::io::Error::other("socket has no local address"))
}
