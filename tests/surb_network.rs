//! Requests and replies through a real local mixnet: the library
//! (`Client::request`, `Receiver::recv_incoming` → `reply`) and the issue's
//! bar, exactly as a user types it (`betanet testnet --dir D`, `betanet recv
//! --echo`, `betanet send --request`). Every wait has a deadline.

mod support;

use std::io::Read;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use betanet::client::{Client, Receiver, RequestError, RequestOptions};
use betanet::config::Config;
use betanet::testnet::LocalNet;
use betanet::topology::Topology;

fn betanet() -> Command {
    Command::new(env!("CARGO_BIN_EXE_betanet"))
}

fn free_port() -> u16 {
    std::net::UdpSocket::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn local_net(dir: &std::path::Path) -> LocalNet {
    let mut template = Config::default();
    template.pipeline.workers = 1;
    template.mixing.mean_delay_ms = 2.0;
    LocalNet::start(dir, 1, &template).unwrap()
}

/// An echo service on its own thread, answering `n` requests (or until
/// `deadline`), with replies `transform(request)`.
fn serve(
    mut receiver: Receiver,
    n: usize,
    transform: fn(&[u8]) -> Vec<u8>,
) -> std::thread::JoinHandle<Receiver> {
    std::thread::spawn(move || {
        let deadline = Instant::now() + Duration::from_secs(60);
        let mut answered = 0;
        while answered < n && Instant::now() < deadline {
            let Ok(incoming) = receiver.recv_incoming(Duration::from_millis(500)) else {
                continue;
            };
            if let Some(handle) = incoming.reply {
                handle.reply(&transform(&incoming.message)).unwrap();
                answered += 1;
            }
        }
        receiver
    })
}

#[test]
fn requests_get_replies_small_and_large() {
    let _serial = support::serial();
    let dir = tempfile::tempdir().unwrap();
    let net = local_net(dir.path());
    let receiver = Receiver::bind("127.0.0.1:0".parse().unwrap()).unwrap();
    let to = receiver.local_addr().unwrap();
    let server = serve(receiver, 2, |m| {
        let mut out = m.to_vec();
        out.reverse();
        out
    });
    let topology = Topology::load(&net.topology_path()).unwrap();
    let mut client = Client::new(topology).unwrap();

    let small = client
        .request(to, b"hello through the mixnet", Duration::from_secs(30))
        .unwrap();
    assert_eq!(small, b"tenxim eht hguorht olleh");

    // 5,000 bytes: five SURBs and reply packets, reassembled.
    let large: Vec<u8> = (0..5000u32).map(|i| (i % 251) as u8).collect();
    let response = client
        .request_with(to, &large, RequestOptions::new(Duration::from_secs(30)))
        .unwrap();
    let mut expected = large.clone();
    expected.reverse();
    assert_eq!(response.reply, expected);
    assert!(response.round_trip < Duration::from_secs(30));

    let receiver = server.join().unwrap();
    let stats = client.surb_stats();
    assert_eq!(stats.replies_delivered, 2);
    assert!(stats.surbs_used >= 6, "{stats:?}");
    assert_eq!(stats.replies_refused, 0, "{stats:?}");
    let served = receiver.stats();
    use std::sync::atomic::Ordering::Relaxed;
    assert_eq!(served.replies_sent.load(Relaxed), 2);
    assert!(served.surbs_used.load(Relaxed) >= 6);
    net.shutdown();
}

#[test]
fn a_request_nobody_answers_times_out_with_a_clear_error() {
    let _serial = support::serial();
    let dir = tempfile::tempdir().unwrap();
    let net = local_net(dir.path());
    // A plain receiver: it gets the request's body and never answers.
    let mut receiver = Receiver::bind("127.0.0.1:0".parse().unwrap()).unwrap();
    let to = receiver.local_addr().unwrap();
    let topology = Topology::load(&net.topology_path()).unwrap();
    let mut client = Client::new(topology).unwrap();
    let options = RequestOptions {
        timeout: Duration::from_secs(3),
        attempts: 2,
        reply_surbs: Some(2),
    };
    let err = client.request_with(to, b"anyone?", options).unwrap_err();
    assert!(
        matches!(err, RequestError::Timeout { attempts: 2, .. }),
        "{err}"
    );
    assert!(err.to_string().contains("betanet recv --echo"), "{err}");
    // Both attempts reached the receiver as plain bodies.
    assert_eq!(receiver.recv(Duration::from_secs(10)).unwrap(), b"anyone?");
    let stats = client.surb_stats();
    assert_eq!(stats.surbs_created, 4);
    assert_eq!(
        stats.surbs_expired, 4,
        "unused SURB keys are dropped: {stats:?}"
    );
    assert_eq!(stats.requests_timed_out, 1);
    net.shutdown();
}

fn wait_for_file(path: &std::path::Path, child: &mut Child, limit: Duration) {
    let deadline = Instant::now() + limit;
    while !path.exists() {
        assert!(
            child.try_wait().unwrap().is_none(),
            "betanet testnet exited early"
        );
        assert!(
            Instant::now() < deadline,
            "{} never appeared",
            path.display()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Waits for `child` at most `limit`; kills it (and fails) past that.
fn wait_with_deadline(mut child: Child, limit: Duration) -> (std::process::ExitStatus, String) {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            let mut out = String::new();
            if let Some(mut stdout) = child.stdout.take() {
                stdout.read_to_string(&mut out).unwrap();
            }
            return (status, out);
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("a betanet command did not finish within {limit:?}");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The bar, as a user types it.
#[test]
fn the_bar_testnet_recv_echo_and_send_request() {
    let _serial = support::serial();
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().join("net");
    let mut testnet = betanet()
        .args(["testnet", "--duration", "90", "--dir"])
        .arg(&d)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let topology = d.join("topology.json");
    wait_for_file(&topology, &mut testnet, Duration::from_secs(60));
    // The file appears before the nodes answer; give them a moment.
    std::thread::sleep(Duration::from_secs(2));

    let listen = format!("127.0.0.1:{}", free_port());
    let recv = betanet()
        .args(["recv", "--listen", &listen, "--echo", "--count", "1"])
        .args(["--timeout", "60", "--framing", "newline"])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(300));
    let send = betanet()
        .args(["send", "--topology"])
        .arg(&topology)
        .args([
            "--to",
            &listen,
            "--request",
            "--message",
            "ping through SURBs",
        ])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let (status, out) = wait_with_deadline(send, Duration::from_secs(60));
    let (recv_status, received) = wait_with_deadline(recv, Duration::from_secs(60));
    let _ = testnet.kill();
    let _ = testnet.wait();
    assert!(status.success(), "send --request failed");
    assert_eq!(out, "ping through SURBs");
    assert!(recv_status.success());
    assert_eq!(received, "ping through SURBs\n");
}

/// `send --request` without an answering receiver fails, saying what to
/// check, within its reply timeout.
#[test]
fn send_request_exits_1_when_no_reply_comes() {
    let _serial = support::serial();
    let dir = tempfile::tempdir().unwrap();
    let net = local_net(dir.path());
    // Nobody answers: a receiver that only prints.
    let mut plain = Receiver::bind("127.0.0.1:0".parse().unwrap()).unwrap();
    let to = plain.local_addr().unwrap().to_string();
    let mut send = betanet()
        .args(["send", "--topology"])
        .arg(net.topology_path())
        .args(["--to", &to, "--request", "--message", "hello?"])
        .args(["--reply-timeout", "3"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stderr_pipe = send.stderr.take().unwrap();
    let (status, stdout) = wait_with_deadline(send, Duration::from_secs(30));
    let mut stderr = String::new();
    stderr_pipe.read_to_string(&mut stderr).unwrap();
    assert!(!status.success());
    assert!(stdout.is_empty(), "no reply is printed");
    assert!(stderr.contains("no reply within"), "{stderr}");
    assert_eq!(plain.recv(Duration::from_secs(10)).unwrap(), b"hello?");
    net.shutdown();
}
