//! `betanet send` and `betanet recv`.

use std::io::Write;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::Args;

use super::Failure;
use crate::client::{Client, Receiver, Transport, read_stdin};
use crate::topology::{RefreshReport, Topology};

#[derive(Args, Debug)]
pub struct SendArgs {
    /// The network's topology.json.
    #[arg(long, value_name = "PATH")]
    topology: PathBuf,
    /// Where the exit node delivers the message (UDP).
    #[arg(long, value_name = "HOST:PORT")]
    to: SocketAddr,
    /// The message; without --message or --file, standard input is sent.
    #[arg(long, value_name = "TEXT", conflicts_with = "file")]
    message: Option<String>,
    /// Send a file's contents.
    #[arg(long, value_name = "PATH")]
    file: Option<PathBuf>,
    /// Send the message this many times.
    #[arg(long, default_value_t = 1)]
    count: u32,
    /// How to reach the entry node.
    #[arg(long, value_enum, default_value_t = Transport::Udp)]
    transport: Transport,
    /// Most packets per second to send (0 = no limit).
    #[arg(long, default_value_t = 5000)]
    rate: u32,
}

pub fn send(args: SendArgs) -> Result<(), Failure> {
    let topology = Topology::load(&args.topology).map_err(Failure::general)?;
    let message = match (&args.message, &args.file) {
        (Some(text), _) => text.clone().into_bytes(),
        (None, Some(path)) => std::fs::read(path)
            .map_err(|e| Failure::general(format!("cannot read {}: {e}", path.display())))?,
        (None, None) => {
            read_stdin().map_err(|e| Failure::general(format!("cannot read stdin: {e}")))?
        }
    };
    let mut client = Client::new(topology)
        .map_err(|e| Failure::general(format!("cannot open a socket: {e}")))?
        .with_transport(args.transport)
        .with_rate(args.rate);
    // Creating the client refreshed the descriptors; routes avoid nodes it
    // left without a current key, so this is a warning, not an error.
    warn_refresh_failures(client.last_refresh());
    let mut packets = 0;
    for _ in 0..args.count {
        packets += client
            .send(args.to, &message)
            .map_err(Failure::general)?
            .packets;
    }
    eprintln!("sent {} message(s) in {packets} packet(s)", args.count);
    Ok(())
}

/// Tells the user (on stderr) which nodes' descriptors could not be
/// refreshed and why; their descriptors from the topology file stay in use.
pub(super) fn warn_refresh_failures(report: &RefreshReport) {
    for (node, error) in report.failures() {
        eprintln!(
            "betanet: warning: descriptor of node {} not refreshed: {error}",
            node.id
        );
    }
}

#[derive(Args, Debug)]
pub struct RecvArgs {
    /// Address to receive delivered messages on.
    #[arg(long, value_name = "IP:PORT")]
    listen: SocketAddr,
    /// Exit after this many messages (default: run until interrupted).
    #[arg(long)]
    count: Option<u64>,
    /// Give up (exit 1) if no message arrives for this many seconds.
    #[arg(long, value_name = "SECS")]
    timeout: Option<u64>,
    /// Append messages to this file instead of printing them.
    #[arg(long, value_name = "PATH")]
    out: Option<PathBuf>,
}

pub fn recv(args: RecvArgs) -> Result<(), Failure> {
    let mut receiver = Receiver::bind(args.listen)
        .map_err(|e| Failure::general(format!("cannot listen on {}: {e}", args.listen)))?;
    let mut out: Box<dyn Write> = match &args.out {
        Some(path) => Box::new(
            std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(path)
                .map_err(|e| Failure::general(format!("cannot open {}: {e}", path.display())))?,
        ),
        None => Box::new(std::io::stdout()),
    };
    let wait = Duration::from_secs(args.timeout.unwrap_or(u64::MAX / 4));
    let mut received = 0u64;
    while args.count.is_none_or(|n| received < n) {
        let message = receiver
            .recv(wait)
            .map_err(|e| Failure::general(format!("after {received} message(s): {e}")))?;
        out.write_all(&message)
            .and_then(|()| out.write_all(b"\n"))
            .and_then(|()| out.flush())
            .map_err(|e| Failure::general(format!("cannot write: {e}")))?;
        received += 1;
    }
    Ok(())
}
