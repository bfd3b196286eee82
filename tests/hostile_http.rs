//! Peers whose HTTP endpoint answers with hostile or broken responses, on
//! real loopback sockets: a descriptor fetch ends in an error within its
//! time limit (never a panic), a refresh still updates the other nodes, and
//! `betanet send` and `betanet audit` fail cleanly instead of panicking.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use betanet::NodeRole;
use betanet::directory_client::{fetch_descriptor, refresh_live};
use betanet::http::client::HttpError;
use betanet::keys::NodeKeys;
use betanet::sphinx::SphinxSecretKey;
use betanet::topology::{
    EgressProtocol, LiveTopology, NodeDescriptor, RefreshError, SphinxKeyEntry, Topology,
};
use rand_chacha::ChaCha20Rng;
use rand_chacha::rand_core::SeedableRng;

/// Time limit of each fetch in these tests.
const TIMEOUT: Duration = Duration::from_secs(1);

/// How long a fetch may overrun its time limit (a loaded machine).
const SLACK: Duration = Duration::from_secs(3);

/// How long a hostile server keeps a connection busy at most, so no test
/// thread outlives its purpose by much.
const SERVER_LIFETIME: Duration = Duration::from_secs(20);

/// What a hostile server does once it has read the request head.
#[derive(Clone, Copy, Debug)]
enum Hostile {
    /// The chunk size that overflowed the hand-written client.
    ChunkSizeOverflow,
    /// A chunk size larger than the cap, and its data never ending.
    HugeChunk,
    /// Headers without end.
    EndlessHeaders,
    /// A body without length and without end.
    EndlessBody,
    /// Chunks without end.
    EndlessChunks,
    /// A valid response, one byte every 100 ms.
    SlowDrip,
    /// Bytes that are not HTTP.
    Garbage,
    /// Closes right after the request.
    EarlyClose,
    /// Half a status line, then closes.
    TruncatedHead,
    /// Promises more body than it sends, then closes.
    ShortBody,
    /// Declares a length far over the cap.
    HugeContentLength,
    /// Declares the largest length there is.
    MaxContentLength,
    /// Two different lengths.
    ConflictingLengths,
    /// Answers before the request has arrived.
    AnswersFirst,
    /// Accepts, reads, never answers.
    Silent,
    /// Resets the connection.
    Reset,
}

const ALL: [Hostile; 16] = [
    Hostile::ChunkSizeOverflow,
    Hostile::HugeChunk,
    Hostile::EndlessHeaders,
    Hostile::EndlessBody,
    Hostile::EndlessChunks,
    Hostile::SlowDrip,
    Hostile::Garbage,
    Hostile::EarlyClose,
    Hostile::TruncatedHead,
    Hostile::ShortBody,
    Hostile::HugeContentLength,
    Hostile::MaxContentLength,
    Hostile::ConflictingLengths,
    Hostile::AnswersFirst,
    Hostile::Silent,
    Hostile::Reset,
];

/// A loopback server answering every connection the `hostile` way, until
/// the test process ends.
fn serve(hostile: Hostile) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(stream) = stream else { continue };
            std::thread::spawn(move || answer(stream, hostile));
        }
    });
    addr
}

fn answer(mut stream: TcpStream, hostile: Hostile) {
    let until = Instant::now() + SERVER_LIFETIME;
    let _ = stream.set_write_timeout(Some(SERVER_LIFETIME));
    let _ = stream.set_read_timeout(Some(SERVER_LIFETIME));
    if !matches!(hostile, Hostile::AnswersFirst | Hostile::Reset) {
        read_head(&mut stream);
    }
    // Write errors mean the client gave up: the point of most cases.
    let _ = match hostile {
        Hostile::ChunkSizeOverflow => stream.write_all(
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nffffffffffffffff\r\n{}\r\n0\r\n\r\n",
        ),
        Hostile::HugeChunk => {
            let _ = stream.write_all(
                b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nfffffffffff\r\n",
            );
            repeat(&mut stream, b"{{{{{{{{", until)
        }
        Hostile::EndlessHeaders => {
            let _ = stream.write_all(b"HTTP/1.1 200 OK\r\n");
            repeat(&mut stream, b"X-Padding: aaaaaaaaaaaaaaaa\r\n", until)
        }
        Hostile::EndlessBody => {
            let _ = stream.write_all(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n\r\n");
            repeat(&mut stream, b"                ", until)
        }
        Hostile::EndlessChunks => {
            let _ = stream.write_all(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n");
            repeat(&mut stream, b"8\r\n        \r\n", until)
        }
        Hostile::SlowDrip => {
            let response = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n{}";
            for byte in response {
                std::thread::sleep(Duration::from_millis(100));
                if stream.write_all(&[*byte]).is_err() {
                    break;
                }
            }
            Ok(())
        }
        Hostile::Garbage => {
            // Deterministic noise (an LCG).
            let mut x: u32 = 12345;
            let noise: Vec<u8> = (0..4096)
                .map(|_| {
                    x = x.wrapping_mul(1_103_515_245).wrapping_add(12_345);
                    (x >> 16) as u8
                })
                .collect();
            stream.write_all(&noise)
        }
        Hostile::EarlyClose => Ok(()),
        Hostile::TruncatedHead => stream.write_all(b"HTTP/1.1 20"),
        Hostile::ShortBody => stream.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 5000\r\n\r\n{\"id\":"),
        Hostile::HugeContentLength => {
            let _ = stream.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 100000000\r\n\r\n");
            repeat(&mut stream, b"        ", until)
        }
        Hostile::MaxContentLength => {
            let _ = stream.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 18446744073709551615\r\n\r\n");
            repeat(&mut stream, b"        ", until)
        }
        Hostile::ConflictingLengths => stream.write_all(
            b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Length: 3\r\n\r\n{}}",
        ),
        Hostile::AnswersFirst => {
            stream.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n{}")
        }
        Hostile::Silent => {
            // Holds the connection open until the client gives up.
            let mut buf = [0u8; 64];
            while matches!(stream.read(&mut buf), Ok(n) if n > 0) {}
            Ok(())
        }
        Hostile::Reset => {
            // Closing with the request unread makes the kernel send RST.
            std::thread::sleep(Duration::from_millis(200));
            Ok(())
        }
    };
}

/// Reads up to the end of the request head (or EOF, or 64 KiB).
fn read_head(stream: &mut TcpStream) {
    let mut head = Vec::new();
    let mut buf = [0u8; 512];
    while !head.ends_with(b"\r\n\r\n") && head.len() < 64 << 10 {
        match stream.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => head.extend_from_slice(&buf[..n]),
        }
    }
}

/// Writes `chunk` over and over until the client hangs up or `until`.
fn repeat(stream: &mut TcpStream, chunk: &[u8], until: Instant) -> std::io::Result<()> {
    let block = chunk.repeat(4096 / chunk.len().max(1) + 1);
    while Instant::now() < until {
        stream.write_all(&block)?;
    }
    Ok(())
}

/// Deterministic keys for test node `n`.
fn keys(n: u8) -> NodeKeys {
    NodeKeys::generate(&mut ChaCha20Rng::seed_from_u64(u64::from(n)))
}

/// A signed descriptor of node `n`, mixing on a closed loopback port, with
/// HTTP at `http` and Sphinx keys for key epochs `epochs` (of an hour).
fn descriptor(n: u8, role: NodeRole, http: SocketAddr, epochs: &[u64]) -> NodeDescriptor {
    let mix = SocketAddr::from(([127, 0, 0, 1], 41_000 + u16::from(n)));
    let sphinx_keys = epochs
        .iter()
        .map(|&epoch| SphinxKeyEntry {
            epoch,
            public_key: SphinxSecretKey::from_bytes([n.wrapping_add(epoch as u8); 32]).public_key(),
        })
        .collect();
    NodeDescriptor::new_signed(&keys(n), role, mix, mix, http, sphinx_keys, 3600).unwrap()
}

#[test]
fn every_hostile_response_is_an_error_within_the_time_limit() {
    for hostile in ALL {
        let addr = serve(hostile);
        let started = Instant::now();
        let result = fetch_descriptor(addr, TIMEOUT);
        let took = started.elapsed();
        let error = match result {
            Ok(descriptor) => panic!("{hostile:?}: accepted {descriptor:?}"),
            Err(error) => error,
        };
        assert!(took < TIMEOUT + SLACK, "{hostile:?}: took {took:?}");
        eprintln!("{hostile:?} ({took:?}): {error}");
        // Each case fails for the reason it is built around.
        let fetch = match &error {
            RefreshError::Fetch { error, .. } => Some(error),
            _ => None,
        };
        let expected = match hostile {
            Hostile::HugeChunk
            | Hostile::EndlessBody
            | Hostile::EndlessChunks
            | Hostile::HugeContentLength => matches!(fetch, Some(HttpError::TooLarge(_))),
            Hostile::SlowDrip | Hostile::Silent => matches!(fetch, Some(HttpError::Timeout(_))),
            // hyper may also see a reset as an early close.
            Hostile::Reset => matches!(fetch, Some(HttpError::Io(_) | HttpError::Malformed(_))),
            // Refused as unexpected if it arrives before the request is
            // sent, else read as the answer (`{}`, not a descriptor).
            Hostile::AnswersFirst => fetch.is_some() || matches!(error, RefreshError::Parse { .. }),
            _ => matches!(fetch, Some(HttpError::Malformed(_))),
        };
        assert!(expected, "{hostile:?}: {error:?}");
        // The message says where and what.
        let text = error.to_string();
        assert!(text.contains(&addr.to_string()), "{hostile:?}: {text}");
    }
}

#[test]
fn a_refresh_updates_the_others_when_some_nodes_are_hostile() {
    // Node 2 serves a newer descriptor; every other node is hostile.
    let good = TcpListener::bind("127.0.0.1:0").unwrap();
    let good_addr = good.local_addr().unwrap();
    let newer = descriptor(2, NodeRole::Middle, good_addr, &[11, 12]);
    let body = newer.to_json().unwrap();
    std::thread::spawn(move || {
        for stream in good.incoming() {
            let Ok(mut stream) = stream else { continue };
            read_head(&mut stream);
            let head = format!("HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n", body.len());
            let _ = stream.write_all(&[head.as_bytes(), &body].concat());
        }
    });
    let hostile = [
        Hostile::ChunkSizeOverflow,
        Hostile::SlowDrip,
        Hostile::EndlessBody,
        Hostile::Garbage,
    ];
    let mut nodes = vec![descriptor(2, NodeRole::Middle, good_addr, &[10, 11])];
    for (i, &h) in hostile.iter().enumerate() {
        let role = [NodeRole::Entry, NodeRole::Exit][i % 2];
        nodes.push(descriptor(10 + i as u8, role, serve(h), &[10, 11]));
    }
    let live = LiveTopology::new(Topology::build(nodes).unwrap(), EgressProtocol::Udp);

    let started = Instant::now();
    let report = refresh_live(&live, TIMEOUT);
    assert!(
        started.elapsed() < TIMEOUT + SLACK,
        "{:?}",
        started.elapsed()
    );
    assert_eq!(live.snapshot().get(&newer.id), Some(&newer));
    assert_eq!(
        (report.updated(), report.failures().count()),
        (1, hostile.len()),
        "{report:?}"
    );
    for (node, error) in report.failures() {
        assert!(
            matches!(error, RefreshError::Fetch { .. }),
            "{}: {error}",
            node.id
        );
    }
}

/// A topology file whose every node's HTTP endpoint is `hostile`, and the
/// id of its entry node.
fn hostile_topology(dir: &std::path::Path, hostile: Hostile) -> (std::path::PathBuf, String) {
    let nodes = [
        descriptor(1, NodeRole::Entry, serve(hostile), &[10, 11]),
        descriptor(2, NodeRole::Middle, serve(hostile), &[10, 11]),
        descriptor(3, NodeRole::Exit, serve(hostile), &[10, 11]),
    ];
    let entry = nodes[0].id.to_string();
    let path = dir.join("topology.json");
    Topology::build(nodes).unwrap().save(&path).unwrap();
    (path, entry)
}

/// Runs `betanet args…`, killing it (and failing) after `limit`.
fn betanet(args: &[&str], limit: Duration) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_betanet"))
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + limit;
    while child.try_wait().unwrap().is_none() {
        if Instant::now() >= deadline {
            let _ = child.kill();
            let out = child.wait_with_output().unwrap();
            panic!(
                "betanet {args:?} still running after {limit:?}; stderr: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    child.wait_with_output().unwrap()
}

#[test]
fn send_reports_hostile_nodes_instead_of_panicking() {
    for hostile in [Hostile::ChunkSizeOverflow, Hostile::EndlessHeaders] {
        let dir = tempfile::tempdir().unwrap();
        let (topology, _) = hostile_topology(dir.path(), hostile);
        let out = betanet(
            &[
                "send",
                "--topology",
                topology.to_str().unwrap(),
                "--to",
                "127.0.0.1:9",
                "--message",
                "hello",
            ],
            Duration::from_secs(60),
        );
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{hostile:?}: {stderr}");
        assert!(!stderr.contains("panicked"), "{hostile:?}: {stderr}");
        assert!(
            stderr.contains("malformed HTTP response"),
            "{hostile:?}: {stderr}"
        );
    }
}

#[test]
fn audit_reports_hostile_nodes_instead_of_panicking() {
    let dir = tempfile::tempdir().unwrap();
    let (topology, entry) = hostile_topology(dir.path(), Hostile::ChunkSizeOverflow);
    let out = betanet(
        &[
            "audit",
            "--topology",
            topology.to_str().unwrap(),
            "--node",
            &entry,
            "--samples",
            "3",
            "--interval-ms",
            "1",
            "--mean-delay-ms",
            "1",
            "--max-delay-ms",
            "10",
        ],
        Duration::from_secs(60),
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    let code = out.status.code();
    // No samples come back (nothing mixes here): a failed audit, not a
    // crash (101) or a signal (None).
    assert!(
        code.is_some() && code != Some(101) && code != Some(0),
        "{code:?}: {stderr}"
    );
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert!(stderr.contains("malformed HTTP response"), "{stderr}");
}
