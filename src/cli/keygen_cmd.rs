//! `betanet keygen`.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::Args;

use super::Failure;
use crate::role::NodeRole;

#[derive(Args, Debug)]
pub struct KeygenArgs {
    /// Directory for identity.key, vrf.key, the Sphinx keys in sphinx/
    /// (mode 0600) and node.json. Existing keys are never overwritten.
    #[arg(long, value_name = "DIR")]
    out: PathBuf,
    /// The node's layer: entry, middle or exit.
    #[arg(long, value_name = "ROLE")]
    role: NodeRole,
    /// Address other nodes and clients reach this node at (UDP and TCP).
    #[arg(long, value_name = "IP:PORT")]
    addr: SocketAddr,
    /// TCP address, when it differs from --addr.
    #[arg(long, value_name = "IP:PORT")]
    tcp_addr: Option<SocketAddr>,
    /// Address of the HTTP endpoint (/metrics, /health, /descriptor);
    /// default: the --addr IP with the --addr port + 100 (9001 → 9101), so
    /// nodes sharing an IP get distinct ones. `betanet run` binds what
    /// node.json says unless told otherwise.
    #[arg(long, value_name = "IP:PORT")]
    http_addr: Option<SocketAddr>,
    /// The network's Sphinx key lifetime (`sphinx.key_epoch_seconds`): picks
    /// the key epochs of the first two Sphinx keys [default: the
    /// configuration's, 86400]
    #[arg(long, value_name = "SECONDS",
          value_parser = clap::value_parser!(u64).range(60..))]
    key_epoch_seconds: Option<u64>,
    /// The node's config file, whose network parameters (mixing delays, VRF
    /// epoch, neighbours, cover rates) go into the signed descriptor
    /// [default: config/mixnode.toml if it exists; the environment applies
    /// as for `betanet run`]
    #[arg(long, value_name = "PATH")]
    config: Option<PathBuf>,
}

pub fn run(args: KeygenArgs) -> Result<(), Failure> {
    // The same file and environment `betanet run` will read, so the
    // descriptor publishes the parameters the node will really use.
    let config = crate::config::ConfigArgs {
        config: args.config.clone(),
        ..Default::default()
    }
    .load()?;
    let tcp = args.tcp_addr.unwrap_or(args.addr);
    let http = args
        .http_addr
        .unwrap_or_else(|| SocketAddr::new(args.addr.ip(), args.addr.port().saturating_add(100)));
    let params = crate::keys::KeygenParams {
        role: args.role,
        udp_addr: args.addr,
        tcp_addr: tcp,
        http_addr: http,
        key_epoch_seconds: args
            .key_epoch_seconds
            .unwrap_or(config.sphinx.key_epoch_seconds),
        now_unix: crate::clock::unix_now(),
        network: crate::topology::NetworkParams::from_config(&config),
    };
    let descriptor = crate::keys::keygen(&args.out, params).map_err(Failure::general)?;
    println!(
        "node {} ({}) keys written to {}; publish {}",
        descriptor.id,
        descriptor.role,
        args.out.display(),
        args.out.join(crate::topology::DESCRIPTOR_FILE).display()
    );
    Ok(())
}
