//! `betanet authority`: run a directory authority, make its keys, and the
//! client side (fetch and check the consensus, upload a descriptor).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use clap::{Args, Subcommand};
use rand::TryRng;
use rand::rngs::SysRng;

use super::Failure;
use crate::authority::config::{AuthoritiesFile, AuthorityConfig};
use crate::authority::daemon::AuthorityDaemon;
use crate::authority::{AuthorityInfo, AuthoritySet, AuthorityState, ConsensusParams};
use crate::clock::{SystemClock, unix_now};
use crate::keys::IDENTITY_KEY_FILE;
use crate::topology::NodeDescriptor;

#[derive(Subcommand, Debug)]
pub enum AuthorityCommand {
    /// Make an authority's identity key (DIR/identity.key, mode 0600) and
    /// its entry for the network's authorities.json (DIR/authority.json).
    Keygen(KeygenArgs),
    /// Merge authority.json files into one authorities.json for the network.
    Combine(CombineArgs),
    /// Run a directory authority until SIGTERM or Ctrl-C.
    Run(RunArgs),
    /// Fetch the consensus, check its signatures and print a summary.
    Fetch(FetchArgs),
    /// Upload a node's descriptor (node.json) to every authority.
    Upload(UploadArgs),
}

#[derive(Args, Debug)]
pub struct KeygenArgs {
    /// Directory for identity.key and authority.json (created mode 0700).
    #[arg(long, value_name = "DIR")]
    out: PathBuf,
    /// Address nodes, clients and the other authorities reach it at.
    #[arg(long, value_name = "IP:PORT")]
    addr: SocketAddr,
}

#[derive(Args, Debug)]
pub struct CombineArgs {
    /// Where to write the combined file.
    #[arg(long, value_name = "PATH")]
    out: PathBuf,
    /// The authorities' authority.json files.
    #[arg(required = true)]
    files: Vec<PathBuf>,
}

#[derive(Args, Debug)]
pub struct RunArgs {
    /// The authority's configuration (authority.toml).
    #[arg(long, value_name = "PATH")]
    config: PathBuf,
}

#[derive(Args, Debug)]
pub struct FetchArgs {
    /// The network's authorities.json.
    #[arg(long, value_name = "PATH")]
    authorities: PathBuf,
    /// Also write the verified document here.
    #[arg(long, value_name = "PATH")]
    out: Option<PathBuf>,
}

#[derive(Args, Debug)]
pub struct UploadArgs {
    /// The network's authorities.json.
    #[arg(long, value_name = "PATH")]
    authorities: PathBuf,
    /// The node's signed descriptor.
    #[arg(long, value_name = "PATH")]
    descriptor: PathBuf,
}

pub fn run(command: AuthorityCommand) -> Result<(), Failure> {
    match command {
        AuthorityCommand::Keygen(args) => keygen(args),
        AuthorityCommand::Combine(args) => combine(args),
        AuthorityCommand::Run(args) => run_daemon(args),
        AuthorityCommand::Fetch(args) => fetch(args),
        AuthorityCommand::Upload(args) => upload(args),
    }
}

fn os_random() -> Result<[u8; 32], Failure> {
    let mut seed = [0u8; 32];
    SysRng.try_fill_bytes(&mut seed).map_err(|e| {
        Failure::general(format!(
            "cannot get randomness from the operating system: {e}"
        ))
    })?;
    Ok(seed)
}

fn keygen(args: KeygenArgs) -> Result<(), Failure> {
    use std::os::unix::fs::DirBuilderExt;
    let key_path = args.out.join(IDENTITY_KEY_FILE);
    let info_path = args.out.join("authority.json");
    for p in [&key_path, &info_path] {
        if p.exists() {
            return Err(Failure::general(format!(
                "{} exists; keys are never overwritten (choose another --out)",
                p.display()
            )));
        }
    }
    if args.addr.ip().is_unspecified() || args.addr.port() == 0 {
        return Err(Failure::general(format!(
            "--addr {} is not an address others can reach; give the authority's public IP and port",
            args.addr
        )));
    }
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(&args.out)
        .map_err(|e| Failure::general(format!("cannot create {}: {e}", args.out.display())))?;
    let key = crate::authority::key::write_new(&args.out, zeroize::Zeroizing::new(os_random()?))
        .map_err(Failure::general)?;
    let set = AuthoritySet::new(vec![AuthorityInfo {
        identity_key: key.verifying_key().to_bytes(),
        addr: args.addr,
    }])
    .map_err(Failure::general)?;
    AuthoritiesFile::write(&info_path, &set)
        .map_err(|e| Failure::general(format!("cannot write {}: {e}", info_path.display())))?;
    println!(
        "authority {} key written to {}; give {} to the network's operators \
         (`betanet authority combine` merges them)",
        hex::encode(key.verifying_key().to_bytes()),
        key_path.display(),
        info_path.display()
    );
    Ok(())
}

fn combine(args: CombineArgs) -> Result<(), Failure> {
    let mut all = Vec::new();
    for f in &args.files {
        all.extend(
            AuthoritiesFile::load(f)
                .map_err(Failure::general)?
                .iter()
                .copied(),
        );
    }
    let set = AuthoritySet::new(all).map_err(Failure::general)?;
    AuthoritiesFile::write(&args.out, &set)
        .map_err(|e| Failure::general(format!("cannot write {}: {e}", args.out.display())))?;
    println!(
        "{} authorities (a consensus needs {} signatures) written to {}",
        set.len(),
        set.threshold(),
        args.out.display()
    );
    Ok(())
}

fn run_daemon(args: RunArgs) -> Result<(), Failure> {
    let config = AuthorityConfig::load(&args.config)
        .map_err(|m| Failure::with_code(m, super::EXIT_CONFIG))?;
    let set = AuthoritiesFile::load(&config.authorities)
        .map_err(|m| Failure::with_code(m, super::EXIT_CONFIG))?;
    let key = crate::authority::key::load(&config.key_dir).map_err(Failure::general)?;
    if !set.contains(&key.verifying_key().to_bytes()) {
        return Err(Failure::with_code(
            format!(
                "this authority's key {} is not in {}; add its authority.json with `betanet authority combine`",
                hex::encode(key.verifying_key().to_bytes()),
                config.authorities.display()
            ),
            super::EXIT_CONFIG,
        ));
    }
    let network = match &config.network_config {
        Some(path) => crate::config::ConfigArgs {
            config: Some(path.clone()),
            ..Default::default()
        }
        .load()?,
        None => crate::config::Config::default(),
    };
    let proposal = ConsensusParams::from_config(&network, config.max_nodes_per_layer);
    let state = AuthorityState::new(key, set, config.timing(), proposal, os_random()?);
    let listener = std::net::TcpListener::bind(config.listen_addr).map_err(|e| {
        Failure::general(format!(
            "cannot listen on {}: {e} (listen_addr in {})",
            config.listen_addr,
            args.config.display()
        ))
    })?;
    let daemon = AuthorityDaemon::spawn(state, listener, Arc::new(SystemClock))
        .map_err(|e| Failure::general(format!("cannot start the authority: {e}")))?;
    tracing::info!(addr = %daemon.local_addr(), epoch_seconds = config.epoch_seconds, "directory authority running");
    let stop = crate::node::stop_on_signal();
    while !stop.load(Ordering::SeqCst) {
        std::thread::sleep(Duration::from_millis(200));
    }
    tracing::info!("shutting down");
    daemon.stop();
    Ok(())
}

fn fetch(args: FetchArgs) -> Result<(), Failure> {
    let set = AuthoritiesFile::load(&args.authorities)
        .map_err(|m| Failure::with_code(m, super::EXIT_CONFIG))?;
    let doc = crate::directory_client::fetch_consensus(&set, unix_now(), Duration::from_secs(10))
        .map_err(Failure::general)?;
    let c = &doc.consensus;
    let verified = doc.verify(&set, unix_now()).map_err(Failure::general)?;
    println!(
        "consensus epoch {} (valid {}..{}), {} of {} authority signatures, {} voters, {} nodes \
         (entry {}, middle {}, exit {}); {}",
        c.epoch,
        c.valid_after,
        c.valid_until,
        verified.valid,
        set.len(),
        c.voters.len(),
        c.nodes.len(),
        c.layer(crate::role::NodeRole::Entry).count(),
        c.layer(crate::role::NodeRole::Middle).count(),
        c.layer(crate::role::NodeRole::Exit).count(),
        c.params.network
    );
    if let Some(out) = args.out {
        let json = doc.to_json().map_err(Failure::general)?;
        std::fs::write(&out, json)
            .map_err(|e| Failure::general(format!("cannot write {}: {e}", out.display())))?;
    }
    Ok(())
}

fn upload(args: UploadArgs) -> Result<(), Failure> {
    let set = AuthoritiesFile::load(&args.authorities)
        .map_err(|m| Failure::with_code(m, super::EXIT_CONFIG))?;
    let descriptor = NodeDescriptor::load(&args.descriptor).map_err(Failure::general)?;
    let results =
        crate::directory_client::upload_descriptor(&set, &descriptor, Duration::from_secs(10));
    let ok = results.iter().filter(|(_, r)| r.is_ok()).count();
    for (a, r) in &results {
        match r {
            Ok(()) => println!("{}: accepted", a.addr),
            Err(e) => println!("{}: {e}", a.addr),
        }
    }
    if ok < set.threshold() {
        return Err(Failure::general(format!(
            "only {ok} of {} authorities accepted the descriptor; a majority ({}) must list it",
            set.len(),
            set.threshold()
        )));
    }
    Ok(())
}
