//! `betanet testnet`: a whole mixnet on 127.0.0.1 with one command, a demo
//! sender and receiver, and a live status line.

use std::collections::HashSet;
use std::io::{IsTerminal, Write};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use clap::Args;

use super::Failure;
use crate::client::{Client, Receiver, RequestOptions};
use crate::config::Config;
use crate::role::NodeRole;
use crate::testnet::{LocalNet, ReplyDemo, StatusLine};
use crate::topology::Topology;

#[derive(Args, Debug)]
pub struct TestnetArgs {
    /// Nodes in each of the three layers.
    #[arg(long, default_value_t = 1)]
    nodes_per_layer: usize,
    /// Run this many seconds, then exit 0 only if every demo message arrived.
    /// Without it, run until Ctrl-C.
    #[arg(long, value_name = "SECS")]
    duration: Option<u64>,
    /// Directory for keys, data and topology.json (default: a fresh
    /// temporary directory, removed on exit). Must not hold keys already.
    #[arg(long, value_name = "DIR")]
    dir: Option<PathBuf>,
    /// Mean mixing delay per node, in milliseconds.
    #[arg(long, default_value_t = 20.0)]
    mean_delay_ms: f64,
    /// Demo messages per second.
    #[arg(long, default_value_t = 4.0)]
    demo_rate: f64,
}

pub fn run(args: TestnetArgs) -> Result<(), Failure> {
    let (dir, temporary) = match &args.dir {
        Some(dir) => (dir.clone(), false),
        None => (fresh_temp_dir(), true),
    };
    std::fs::create_dir_all(&dir)
        .map_err(|e| Failure::general(format!("cannot create {}: {e}", dir.display())))?;
    let result = run_in(&args, &dir);
    if temporary {
        let _ = std::fs::remove_dir_all(&dir);
    }
    result
}

fn run_in(args: &TestnetArgs, dir: &std::path::Path) -> Result<(), Failure> {
    let mut template = Config::default();
    template.pipeline.workers = 1;
    template.mixing.mean_delay_ms = args.mean_delay_ms;
    template.node.shutdown_grace_ms = 500;
    template.validate()?;
    let net = LocalNet::start(dir, args.nodes_per_layer, &template).map_err(Failure::general)?;

    println!(
        "betanet testnet: {} nodes on 127.0.0.1, files in {}",
        net.descriptors().len(),
        dir.display()
    );
    for d in net.descriptors() {
        println!(
            "  {:<6} {}  udp/tcp {}  metrics http://{}/metrics",
            d.role.as_str(),
            d.id,
            d.udp_addr,
            d.http_addr
        );
    }
    println!("  topology: {}", net.topology_path().display());
    if let Some(middle) = net
        .descriptors()
        .iter()
        .find(|d| d.role == NodeRole::Middle)
    {
        // The nodes publish their delays in their descriptors, so the audit
        // needs no parameters: this command passes as printed.
        println!(
            "  audit a node's mixing (in another terminal, while this runs):\n    {} audit --topology {} --node {}",
            program_name(),
            net.topology_path().display(),
            middle.id
        );
    }

    let stop = crate::node::stop_on_signal();

    // The demo pair: a receiver, and a sender writing numbered messages.
    let mut receiver = Receiver::bind("127.0.0.1:0".parse().expect("valid address"))
        .map_err(|e| Failure::general(format!("cannot bind the demo receiver: {e}")))?;
    let to = receiver
        .local_addr()
        .map_err(|e| Failure::general(format!("demo receiver: {e}")))?;
    let received: Arc<Mutex<HashSet<Vec<u8>>>> = Arc::default();
    let sent = Arc::new(AtomicU64::new(0));
    let receiving = {
        let received = Arc::clone(&received);
        let stop = Arc::clone(&stop);
        std::thread::spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                let Ok(incoming) = receiver.recv_incoming(Duration::from_millis(200)) else {
                    continue;
                };
                match incoming.reply {
                    // The request/response demo: answered with its content.
                    Some(handle) => {
                        let _ = handle.reply(&incoming.message);
                    }
                    None => {
                        received
                            .lock()
                            .unwrap_or_else(|e| e.into_inner())
                            .insert(incoming.message);
                    }
                }
            }
        })
    };
    let topology = Topology::load(&net.topology_path()).map_err(Failure::general)?;
    let mut client =
        Client::new(topology.clone()).map_err(|e| Failure::general(format!("demo sender: {e}")))?;
    let sending_for = args.duration.map(Duration::from_secs);
    let (replies, requesting) = request_demo(topology, to, sending_for, Arc::clone(&stop))?;
    let reply_state = |r: &Arc<Mutex<ReplyDemo>>| *r.lock().unwrap_or_else(|e| e.into_inner());

    let started = Instant::now();
    let sending_until = args.duration.map(|s| started + Duration::from_secs(s));
    let interval = Duration::from_secs_f64(1.0 / args.demo_rate.max(0.01));
    let mut next_send = started;
    let mut next_status = started + Duration::from_secs(1);
    let mut status = StatusLine::new();
    let terminal = std::io::stdout().is_terminal();
    let count = |s: &Arc<AtomicU64>| s.load(Ordering::Relaxed);
    let arrived =
        |r: &Arc<Mutex<HashSet<Vec<u8>>>>| r.lock().unwrap_or_else(|e| e.into_inner()).len() as u64;

    loop {
        let now = Instant::now();
        if stop.load(Ordering::Relaxed) {
            break;
        }
        let sending = sending_until.is_none_or(|until| now < until);
        if sending && now >= next_send {
            let n = count(&sent);
            let message = format!(
                "demo message {n} sent at {:.1}s",
                now.duration_since(started).as_secs_f64()
            );
            client
                .send(to, message.as_bytes())
                .map_err(Failure::general)?;
            sent.fetch_add(1, Ordering::Relaxed);
            next_send += interval;
        }
        if !sending {
            // Give the last messages time to cross three mixes.
            let all_in = arrived(&received) >= count(&sent);
            let waited = sending_until.is_some_and(|u| now > u + Duration::from_secs(10));
            if all_in || waited {
                break;
            }
        }
        if now >= next_status {
            let line = status.render_with_replies(
                net.nodes(),
                (count(&sent), arrived(&received)),
                Some(reply_state(&replies)),
            );
            if terminal {
                print!("\r\x1b[2K{line}");
            } else {
                println!("{line}");
            }
            let _ = std::io::stdout().flush();
            next_status += Duration::from_secs(1);
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    // The requester finishes its last request (bounded by its timeout)
    // while the receiver still answers.
    let _ = requesting.join();
    stop.store(true, Ordering::Relaxed);
    let _ = receiving.join();
    let (sent, arrived) = (count(&sent), arrived(&received));
    let replies = reply_state(&replies);
    println!(
        "\n{}",
        status.render_with_replies(net.nodes(), (sent, arrived), Some(replies))
    );
    net.shutdown();
    println!("stopped: {arrived} of {sent} demo messages arrived");
    println!(
        "         {} of {} demo requests answered",
        replies.answered, replies.requests
    );
    if args.duration.is_some() && arrived < sent {
        return Err(Failure::general(format!(
            "{} demo message(s) did not arrive",
            sent - arrived
        )));
    }
    if args.duration.is_some() && replies.answered < replies.requests {
        return Err(Failure::general(format!(
            "{} demo request(s) got no reply",
            replies.requests - replies.answered
        )));
    }
    Ok(())
}

/// The request/response demo: one request a second to the demo receiver
/// (which echoes it through the request's SURBs) for `sending_for` (or
/// until stopped), each reply checked and its round trip recorded.
#[allow(clippy::type_complexity)]
fn request_demo(
    topology: Topology,
    to: std::net::SocketAddr,
    sending_for: Option<Duration>,
    stop: Arc<std::sync::atomic::AtomicBool>,
) -> Result<(Arc<Mutex<ReplyDemo>>, std::thread::JoinHandle<()>), Failure> {
    let mut client =
        Client::new(topology).map_err(|e| Failure::general(format!("demo requester: {e}")))?;
    let state: Arc<Mutex<ReplyDemo>> = Arc::default();
    let shared = Arc::clone(&state);
    let started = Instant::now();
    let handle = std::thread::spawn(move || {
        let mut n = 0u64;
        while !stop.load(Ordering::Relaxed) && sending_for.is_none_or(|d| started.elapsed() < d) {
            let asked = Instant::now();
            let message = format!("demo request {n}");
            shared.lock().unwrap_or_else(|e| e.into_inner()).requests += 1;
            let options = RequestOptions::new(Duration::from_secs(10));
            let answered = client
                .request_with(to, message.as_bytes(), options)
                .is_ok_and(|r| r.reply == message.as_bytes());
            if answered {
                let mut s = shared.lock().unwrap_or_else(|e| e.into_inner());
                s.answered += 1;
                s.last_round_trip = Some(asked.elapsed());
            }
            n += 1;
            let next = asked + Duration::from_secs(1);
            while Instant::now() < next && !stop.load(Ordering::Relaxed) {
                std::thread::sleep(Duration::from_millis(20));
            }
        }
    });
    Ok((state, handle))
}

/// How to call this very binary again: its path, so a printed command works
/// whether `betanet` is on the PATH or was started by `cargo run`.
fn program_name() -> String {
    std::env::current_exe()
        .map(|p| p.display().to_string())
        .unwrap_or_else(|_| "betanet".to_owned())
}

fn fresh_temp_dir() -> PathBuf {
    let stamp = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    std::env::temp_dir().join(format!("betanet-testnet-{}-{stamp}", std::process::id()))
}
