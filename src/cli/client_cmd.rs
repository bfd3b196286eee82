//! `betanet send` and `betanet recv`.

use std::io::{IsTerminal, Write};
use std::net::{SocketAddr, ToSocketAddrs};
use std::path::{Path, PathBuf};
use std::time::Duration;

use clap::{Args, ValueEnum};

use super::Failure;
use crate::client::{Client, Receiver, ReplyBudget, RequestOptions, Transport, read_stdin};
use crate::role::NodeRole;
use crate::topology::{RefreshReport, Topology};

#[derive(Args, Debug)]
pub struct SendArgs {
    /// The network's topology.json.
    #[arg(long, value_name = "PATH", required_unless_present = "authorities")]
    topology: Option<PathBuf>,
    /// The network's authorities.json instead of a topology: the nodes come
    /// from the consensus the authorities sign (verified against the keys
    /// in the file).
    #[arg(long, value_name = "PATH", conflicts_with = "topology")]
    authorities: Option<PathBuf>,
    /// Where the exit node delivers the message (UDP): an IP address or a
    /// host name, with a port.
    #[arg(long, value_name = "HOST:PORT")]
    to: String,
    /// The message; without --message or --file, standard input is sent.
    #[arg(long, value_name = "TEXT", conflicts_with = "file")]
    message: Option<String>,
    /// Send a file's contents.
    #[arg(long, value_name = "PATH")]
    file: Option<PathBuf>,
    /// Send an empty message (refused otherwise: it is usually a mistake,
    /// such as an empty pipe).
    #[arg(long)]
    allow_empty: bool,
    /// Send the message this many times.
    #[arg(long, default_value_t = 1)]
    count: u32,
    /// How to reach the entry node: an encrypted link session (default),
    /// or plaintext frames over UDP or TCP.
    #[arg(long, value_enum, default_value_t = Transport::Link)]
    transport: Transport,
    /// Most packets per second to send (0 = no limit). The default is an
    /// entry node's default budget per client (`rate_limit.per_source_pps`).
    #[arg(long, default_value_t = 1000)]
    rate: u32,
    /// Send the message as a request with single-use reply blocks (SURBs),
    /// print the reply to standard output, and exit 0 only if it came (the
    /// receiver must answer, e.g. `betanet recv --echo`).
    #[arg(long)]
    request: bool,
    /// With --request: how long to wait for the reply (over all attempts).
    #[arg(long, value_name = "SECS", default_value_t = 30, requires = "request")]
    reply_timeout: u64,
    /// With --request: where exit nodes deliver the reply (default: a free
    /// port on the local address that routes to the exit nodes).
    #[arg(long, value_name = "IP:PORT", requires = "request")]
    reply_listen: Option<SocketAddr>,
}

pub fn send(args: SendArgs) -> Result<(), Failure> {
    let to = resolve(&args.to)?;
    let topology = match (&args.topology, &args.authorities) {
        (Some(path), _) => Topology::load(path).map_err(Failure::general)?,
        (None, Some(path)) => consensus_topology(path)?,
        (None, None) => return Err(Failure::general("give --topology or --authorities")),
    };
    let message = match (&args.message, &args.file) {
        (Some(text), _) => text.clone().into_bytes(),
        (None, Some(path)) => std::fs::read(path)
            .map_err(|e| Failure::general(format!("cannot read {}: {e}", path.display())))?,
        (None, None) => {
            read_stdin().map_err(|e| Failure::general(format!("cannot read stdin: {e}")))?
        }
    };
    if message.is_empty() && !args.allow_empty {
        return Err(Failure::general(
            "the message is empty (nothing on standard input?); pass --allow-empty to send it anyway",
        ));
    }
    let mut client = Client::new(topology)
        .map_err(|e| Failure::general(format!("cannot open a socket: {e}")))?
        .with_transport(args.transport)
        .with_rate(args.rate);
    // Creating the client refreshed the descriptors; routes avoid nodes it
    // left without a current key, so this is a warning, not an error.
    warn_refresh_failures(client.last_refresh());
    // Over UDP nothing tells a sender that its datagram reached no one, so
    // an entry layer of which no node answered is the evidence.
    if let Some(failure) = no_entry_answered(client.topology(), client.last_refresh()) {
        return Err(failure);
    }
    if args.request {
        return request(client, to, &message, &args);
    }
    let mut packets = 0;
    for _ in 0..args.count {
        packets += client
            .send(to, &message)
            .map_err(|e| Failure::general(format!("nothing more was sent: {e}")))?
            .packets;
    }
    eprintln!("sent {} message(s) in {packets} packet(s)", args.count);
    Ok(())
}

/// `send --request`: each of `--count` requests must get its reply, which
/// is printed as it is (a newline after it at a terminal).
fn request(
    mut client: Client,
    to: SocketAddr,
    message: &[u8],
    args: &SendArgs,
) -> Result<(), Failure> {
    if let Some(addr) = args.reply_listen {
        client = client.with_reply_address(addr);
    }
    let options = RequestOptions::new(Duration::from_secs(args.reply_timeout));
    for n in 0..args.count {
        let response = client
            .request_with(to, message, options)
            .map_err(|e| Failure::general(format!("request {} of {}: {e}", n + 1, args.count)))?;
        let mut out = std::io::stdout().lock();
        out.write_all(&response.reply)
            .and_then(|()| {
                if out.is_terminal() {
                    out.write_all(b"\n")
                } else {
                    Ok(())
                }
            })
            .and_then(|()| out.flush())
            .map_err(|e| Failure::general(format!("cannot write: {e}")))?;
        eprintln!(
            "reply of {} byte(s) after {} ms (attempt {})",
            response.reply.len(),
            response.round_trip.as_millis(),
            response.attempt + 1
        );
    }
    Ok(())
}

/// The nodes of the current consensus of the authorities in `path`
/// (`authorities.json`), fetched from any of them and verified.
fn consensus_topology(path: &std::path::Path) -> Result<Topology, Failure> {
    let set = crate::authority::config::AuthoritiesFile::load(path)
        .map_err(|m| Failure::with_code(m, super::EXIT_CONFIG))?;
    let now = crate::clock::unix_now();
    let doc =
        crate::directory_client::fetch_consensus(&set, now, std::time::Duration::from_secs(10))
            .map_err(Failure::general)?;
    tracing::info!(
        epoch = doc.consensus.epoch,
        nodes = doc.consensus.nodes.len(),
        "using the authorities' consensus"
    );
    doc.consensus.topology().map_err(|e| {
        Failure::general(format!(
            "the consensus of epoch {} is not a usable network: {e}",
            doc.consensus.epoch
        ))
    })
}

/// `HOST:PORT` to an address: an IP literal as it is, a host name by the
/// system resolver (its first address).
fn resolve(to: &str) -> Result<SocketAddr, Failure> {
    let bad = |why: String| Failure::general(format!("--to {to}: {why}"));
    if let Ok(addr) = to.parse() {
        return Ok(addr);
    }
    to.to_socket_addrs()
        .map_err(|e| bad(format!("{e} (expected HOST:PORT, e.g. localhost:7000)")))?
        .next()
        .ok_or_else(|| bad("the name has no address".to_owned()))
}

/// The failure to report when every entry node of `topology` failed its
/// descriptor refresh (so none is known to be up), with each one's reason.
fn no_entry_answered(topology: &Topology, report: &RefreshReport) -> Option<Failure> {
    let entries = topology.layer(NodeRole::Entry);
    let failed: Vec<String> = report
        .failures()
        .filter(|(node, _)| entries.iter().any(|d| d.id == node.id))
        .map(|(node, error)| format!("{} ({}): {error}", node.id, node.http_addr))
        .collect();
    (!entries.is_empty() && failed.len() == entries.len()).then(|| {
        Failure::general(format!(
            "no entry node answered, so nothing was sent; are the nodes running and \
             reachable from here? {}",
            failed.join("; ")
        ))
    })
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

/// How `recv` separates messages on standard output.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum Framing {
    /// `newline` at a terminal, `raw` otherwise.
    Auto,
    /// The bytes of each message exactly, nothing between them.
    Raw,
    /// Each message followed by a newline (for people reading text).
    Newline,
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
    /// Write each message, byte for byte, to its own file in this directory
    /// (`message-000001`, ...; created if missing, never overwriting)
    /// instead of standard output.
    #[arg(long, value_name = "DIR")]
    out: Option<PathBuf>,
    /// How messages are separated on standard output.
    #[arg(long, value_enum, default_value_t = Framing::Auto)]
    framing: Framing,
    /// Answer every request with its own content, through the SURBs it
    /// came with (requests are still printed or saved like messages).
    #[arg(long)]
    echo: bool,
    /// With --echo: reply packets per second at most, over all requests
    /// (requests beyond it go unanswered, with a warning).
    #[arg(long, value_name = "PPS", default_value_t = 1000.0, requires = "echo")]
    reply_rate: f64,
}

pub fn recv(args: RecvArgs) -> Result<(), Failure> {
    let mut receiver = Receiver::bind(args.listen)
        .map_err(|e| Failure::general(format!("cannot listen on {}: {e}", args.listen)))?
        .with_reply_budget(ReplyBudget::new(args.reply_rate, 1000));
    if let Some(dir) = &args.out {
        std::fs::create_dir_all(dir)
            .map_err(|e| Failure::general(format!("cannot create {}: {e}", dir.display())))?;
    }
    let newline = match args.framing {
        Framing::Auto => std::io::stdout().is_terminal(),
        Framing::Raw => false,
        Framing::Newline => true,
    };
    let wait = Duration::from_secs(args.timeout.unwrap_or(u64::MAX / 4));
    let mut received = 0u64;
    let mut next_file = 1u64;
    while args.count.is_none_or(|n| received < n) {
        let incoming = receiver
            .recv_incoming(wait)
            .map_err(|e| Failure::general(format!("after {received} message(s): {e}")))?;
        let message = incoming.message;
        if let (true, Some(handle)) = (args.echo, incoming.reply) {
            // One bad request must not stop the service: reported, not fatal.
            if let Err(e) = handle.reply(&message) {
                eprintln!("betanet: warning: cannot answer a request: {e}");
            }
        }
        match &args.out {
            Some(dir) => write_new_file(dir, &mut next_file, &message)?,
            None => {
                let mut out = std::io::stdout().lock();
                out.write_all(&message)
                    .and_then(|()| {
                        if newline {
                            out.write_all(b"\n")
                        } else {
                            Ok(())
                        }
                    })
                    .and_then(|()| out.flush())
                    .map_err(|e| Failure::general(format!("cannot write: {e}")))?;
            }
        }
        received += 1;
    }
    Ok(())
}

/// Writes `message` to the first free `message-NNNNNN` in `dir`.
fn write_new_file(dir: &Path, next: &mut u64, message: &[u8]) -> Result<(), Failure> {
    loop {
        let path = dir.join(format!("message-{:06}", *next));
        *next += 1;
        let created = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&path);
        match created {
            Ok(mut file) => {
                return file
                    .write_all(message)
                    .and_then(|()| file.sync_all())
                    .map_err(|e| {
                        Failure::general(format!("cannot write {}: {e}", path.display()))
                    });
            }
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
            Err(e) => {
                return Err(Failure::general(format!(
                    "cannot create {}: {e}",
                    path.display()
                )));
            }
        }
    }
}
