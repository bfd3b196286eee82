//! The HTTP endpoint over loopback with a fake node, spoken to with a raw
//! TCP client (no HTTP client dependency), the `/metrics` text checked
//! line by line against the OpenMetrics format, and `/loops`.

use std::collections::{BTreeMap, HashMap};
use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use betanet::NodeRole;
use betanet::http::{HttpConfig, HttpServer, NodeStatus, VrfQuery};
use betanet::metrics::{
    CONTENT_TYPE, MAX_LOSS_METRIC_NODES, MAX_NEXT_HOP_LABELS, MetricsSnapshot, PeerLoss,
    ProcessStats, QueueDepths, render,
};
use betanet::node::Health;
use betanet::pipeline::{DropCause, Histogram, HistogramSnapshot};

/// Every client read gives up after this, so a broken server fails the test
/// instead of hanging it.
const CLIENT_TIMEOUT: Duration = Duration::from_secs(5);

const DESCRIPTOR: &[u8] = br#"{"version":1,"id":"ab12"}"#;

/// A node whose answers the test controls.
struct FakeNode {
    health: Mutex<Health>,
    snapshot: MetricsSnapshot,
    /// Makes `/metrics` slow, to have a request in flight during stop.
    metrics_delay: Duration,
    /// The `/loops` body (`None`: no cover loops).
    loops: Option<Vec<u8>>,
}

impl NodeStatus for FakeNode {
    fn health(&self) -> Health {
        self.health.lock().unwrap().clone()
    }

    fn descriptor_json(&self) -> Vec<u8> {
        DESCRIPTOR.to_vec()
    }

    fn metrics(&self) -> String {
        // Blocking a runtime thread is wrong in a real node; here it is the
        // simplest way to keep one request in flight.
        std::thread::sleep(self.metrics_delay);
        render(&self.snapshot)
    }

    fn vrf(&self, query: VrfQuery) -> Option<Vec<u8>> {
        (query == VrfQuery::Epoch(5)).then(|| br#"{"epoch":5}"#.to_vec())
    }

    fn loops(&self) -> Option<Vec<u8>> {
        self.loops.clone()
    }
}

fn healthy() -> Health {
    Health {
        alive: true,
        ready: true,
        reason: None,
    }
}

fn fake(health: Health) -> Arc<FakeNode> {
    Arc::new(FakeNode {
        health: Mutex::new(health),
        snapshot: busy_snapshot(),
        metrics_delay: Duration::ZERO,
        loops: None,
    })
}

fn histogram_of(values: &[Duration]) -> HistogramSnapshot {
    let h = Histogram::default();
    for v in values {
        h.record(*v);
    }
    let mut snapshot = HistogramSnapshot::default();
    h.fold_into(&mut snapshot);
    snapshot
}

/// A snapshot with something in every field, and more next hops than the
/// label cap.
fn busy_snapshot() -> MetricsSnapshot {
    let mut drops = [0; DropCause::COUNT];
    drops[DropCause::Overload.index()] = 7;
    MetricsSnapshot {
        role: Some(NodeRole::Middle),
        epoch: 42,
        received_udp: 1000,
        received_tcp: 20,
        processed: 990,
        forwarded: 980,
        delivered: 3,
        drops,
        processing_time: histogram_of(&[
            Duration::from_micros(3),
            Duration::from_micros(40),
            Duration::from_micros(700),
            Duration::from_millis(30),
            Duration::from_secs(60),
        ]),
        mixing_delay: histogram_of(&[Duration::from_millis(50), Duration::from_secs(2)]),
        pool_hit_rate: 0.75,
        queue_depths: QueueDepths {
            ingress: 1,
            mixing: 2,
            egress: 3,
        },
        egress_depths: (0..100).map(|i| (format!("{i:064x}"), i)).collect(),
        cover_loops_sent: 10,
        cover_loops_returned: 9,
        cover_loops_lost: 1,
        loop_rtt: histogram_of(&[Duration::from_millis(300)]),
        // More peers than the label cap, worst first.
        loop_loss: (0..100u32)
            .map(|i| PeerLoss {
                peer: format!("{i:032x}"),
                attributed_loss: 1.0 - f64::from(i) / 100.0,
                sent: 1000,
                lost: 100 - u64::from(i),
            })
            .collect(),
        replay_cache_entries: 12345,
        sphinx_key_epoch: 20_416,
        sphinx_keys_held: 3,
        process: ProcessStats::read(),
        ..MetricsSnapshot::default()
    }
}

/// A runtime and a server on it; the runtime must outlive the server.
struct Harness {
    server: Option<HttpServer>,
    addr: SocketAddr,
    runtime: tokio::runtime::Runtime,
}

impl Harness {
    fn start(status: Arc<FakeNode>, config: HttpConfig) -> Harness {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let server = HttpServer::spawn(listener, status, config, runtime.handle()).unwrap();
        Harness {
            addr: server.local_addr(),
            server: Some(server),
            runtime,
        }
    }

    fn stop(&mut self) {
        if let Some(server) = self.server.take() {
            server.stop();
        }
    }

    /// A connection to the server from 127.0.0.`host` (all of 127/8 is
    /// loopback on Linux: each host is a distinct source on one machine).
    fn connect_from(&self, host: u8) -> TcpStream {
        let addr = self.addr;
        let stream = self.runtime.block_on(async move {
            let socket = tokio::net::TcpSocket::new_v4().unwrap();
            socket
                .bind(SocketAddr::from(([127, 0, 0, host], 0)))
                .unwrap();
            let connect = tokio::time::timeout(CLIENT_TIMEOUT, socket.connect(addr));
            connect.await.expect("connect timed out").unwrap()
        });
        let stream = stream.into_std().unwrap();
        stream.set_nonblocking(false).unwrap();
        stream.set_read_timeout(Some(CLIENT_TIMEOUT)).unwrap();
        stream
    }
}

impl Drop for Harness {
    fn drop(&mut self) {
        self.stop();
    }
}

/// A parsed HTTP/1.1 response.
#[derive(Debug)]
struct Reply {
    code: u16,
    headers: HashMap<String, String>,
    body: String,
}

impl Reply {
    fn header(&self, name: &str) -> &str {
        self.headers.get(name).map_or("", String::as_str)
    }
}

fn connect(addr: SocketAddr) -> TcpStream {
    let stream = TcpStream::connect(addr).unwrap();
    stream.set_read_timeout(Some(CLIENT_TIMEOUT)).unwrap();
    stream
}

/// Sends `method path` with `Connection: close` and reads the whole reply.
fn request(addr: SocketAddr, method: &str, path: &str) -> Reply {
    let mut stream = connect(addr);
    write!(
        stream,
        "{method} {path} HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw).unwrap();
    parse_reply(&String::from_utf8(raw).unwrap())
}

fn get(addr: SocketAddr, path: &str) -> Reply {
    request(addr, "GET", path)
}

fn parse_reply(raw: &str) -> Reply {
    let (head, body) = raw
        .split_once("\r\n\r\n")
        .expect("a complete response head");
    let mut lines = head.lines();
    let status = lines.next().unwrap();
    let code = status.split(' ').nth(1).unwrap().parse().unwrap();
    let headers = lines
        .map(|l| {
            let (k, v) = l.split_once(':').unwrap();
            (k.trim().to_ascii_lowercase(), v.trim().to_owned())
        })
        .collect();
    Reply {
        code,
        headers,
        body: body.to_owned(),
    }
}

fn json(reply: &Reply) -> serde_json::Value {
    assert_eq!(
        reply.header("content-type"),
        "application/json",
        "{reply:?}"
    );
    serde_json::from_str(&reply.body).unwrap()
}

/// Reads until the server closes the connection; `None` if it stays open
/// for the whole client timeout. Bytes received are returned.
fn wait_for_close(stream: &mut TcpStream) -> Option<Vec<u8>> {
    let mut got = Vec::new();
    let mut buf = [0u8; 1024];
    loop {
        match stream.read(&mut buf) {
            Ok(0) => return Some(got),
            Ok(n) => got.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == ErrorKind::ConnectionReset => return Some(got),
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                return None;
            }
            Err(e) => panic!("unexpected read error: {e}"),
        }
    }
}

#[test]
fn endpoints_answer_with_codes_types_and_bodies() {
    let h = Harness::start(fake(healthy()), HttpConfig::default());

    let health = get(h.addr, "/health");
    assert_eq!(health.code, 200);
    assert_eq!(json(&health), serde_json::json!({ "status": "alive" }));
    assert_eq!(health.header("cache-control"), "no-store");

    let ready = get(h.addr, "/ready");
    assert_eq!(ready.code, 200);
    assert_eq!(json(&ready), serde_json::json!({ "status": "ready" }));

    let descriptor = get(h.addr, "/descriptor");
    assert_eq!(descriptor.code, 200);
    assert_eq!(descriptor.header("content-type"), "application/json");
    assert_eq!(descriptor.body.as_bytes(), DESCRIPTOR);

    let metrics = get(h.addr, "/metrics");
    assert_eq!(metrics.code, 200);
    assert_eq!(metrics.header("content-type"), CONTENT_TYPE);
    assert!(metrics.body.ends_with("# EOF\n"));
    assert_eq!(
        metrics.header("content-length"),
        metrics.body.len().to_string()
    );

    // A query string does not change the route.
    assert_eq!(get(h.addr, "/health?verbose=1").code, 200);
}

#[test]
fn unknown_paths_methods_and_vrf() {
    let h = Harness::start(fake(healthy()), HttpConfig::default());

    for path in ["/", "/nope", "/metrics/", "/vrf", "/vrf/", "/vrf/1/2"] {
        let reply = get(h.addr, path);
        assert_eq!(reply.code, 404, "{path}");
        assert_eq!(json(&reply)["error"], "not found");
    }

    let post = request(h.addr, "POST", "/health");
    assert_eq!(post.code, 405);
    assert_eq!(post.header("allow"), "GET, HEAD");
    assert_eq!(request(h.addr, "DELETE", "/metrics").code, 405);
    assert_eq!(request(h.addr, "POST", "/nope").code, 404);

    // HEAD: the headers of GET, no body.
    let head = request(h.addr, "HEAD", "/metrics");
    assert_eq!(head.code, 200);
    assert_eq!(head.header("content-type"), CONTENT_TYPE);
    assert!(head.body.is_empty());

    // The fake knows epoch 5 only; "current" is not implemented by it.
    let vrf = get(h.addr, "/vrf/5");
    assert_eq!(vrf.code, 200);
    assert_eq!(json(&vrf), serde_json::json!({ "epoch": 5 }));
    assert_eq!(get(h.addr, "/vrf/6").code, 404);
    assert_eq!(get(h.addr, "/vrf/current").code, 404);
    assert_eq!(get(h.addr, "/vrf/abc").code, 400);
    assert_eq!(get(h.addr, "/vrf/-1").code, 400);
}

#[test]
fn not_ready_and_dead_are_503_with_a_reason() {
    let node = fake(Health {
        alive: true,
        ready: false,
        reason: Some("shedding load: a queue is over 90% full".into()),
    });
    let h = Harness::start(Arc::clone(&node), HttpConfig::default());

    assert_eq!(
        get(h.addr, "/health").code,
        200,
        "alive while shedding load"
    );
    let ready = get(h.addr, "/ready");
    assert_eq!(ready.code, 503);
    assert_eq!(
        json(&ready),
        serde_json::json!({
            "status": "not_ready",
            "reason": "shedding load: a queue is over 90% full",
        })
    );

    *node.health.lock().unwrap() = Health {
        alive: false,
        ready: false,
        reason: Some("a pipeline worker or I/O thread has stopped".into()),
    };
    let health = get(h.addr, "/health");
    assert_eq!(health.code, 503);
    let body = json(&health);
    assert_eq!(body["status"], "dead");
    assert_eq!(
        body["reason"],
        "a pipeline worker or I/O thread has stopped"
    );
    assert_eq!(get(h.addr, "/ready").code, 503);
}

#[test]
fn slowloris_is_disconnected_after_the_header_timeout() {
    let timeout = Duration::from_millis(300);
    let config = HttpConfig {
        header_read_timeout: timeout,
        ..HttpConfig::default()
    };
    let h = Harness::start(fake(healthy()), config);

    let mut stream = connect(h.addr);
    let sent = Instant::now();
    stream
        .write_all(b"GET /metrics HTTP/1.1\r\nHost: a\r\n")
        .unwrap();
    let got = wait_for_close(&mut stream).expect("the server closes the connection");
    let waited = sent.elapsed();
    assert!(
        waited >= timeout - Duration::from_millis(50),
        "closed early: {waited:?}"
    );
    assert!(waited < Duration::from_secs(3), "closed late: {waited:?}");
    assert!(
        !String::from_utf8_lossy(&got).contains(" 200 "),
        "no response was due"
    );

    // A client that connects and sends nothing is dropped the same way.
    let mut silent = connect(h.addr);
    assert!(wait_for_close(&mut silent).is_some());
}

#[test]
fn connections_over_the_per_source_cap_are_closed() {
    let config = HttpConfig {
        max_connections_per_source: 2,
        ..HttpConfig::default()
    };
    let h = Harness::start(fake(healthy()), config);

    let held: Vec<TcpStream> = (0..2).map(|_| h.connect_from(2)).collect();
    // Let the server accept both before the third arrives.
    std::thread::sleep(Duration::from_millis(200));

    let mut third = h.connect_from(2);
    let closed_at = Instant::now();
    let got = wait_for_close(&mut third).expect("the third connection is closed");
    assert!(got.is_empty());
    assert!(closed_at.elapsed() < Duration::from_secs(2));
    // Another host is not affected.
    assert_eq!(get(h.addr, "/health").code, 200);

    drop(held);
    std::thread::sleep(Duration::from_millis(200));
    let mut again = h.connect_from(2);
    write!(
        again,
        "GET /health HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let reply = wait_for_close(&mut again).expect("answered and closed");
    assert!(reply.starts_with(b"HTTP/1.1 200 "), "slots free again");
}

#[test]
fn one_host_opening_many_connections_cannot_stop_health() {
    let h = Harness::start(fake(healthy()), HttpConfig::default());
    // More connections than the whole server has slots, from one host,
    // all left idle (a slowloris that never sends its request).
    let hostile: Vec<TcpStream> = (0..300).map(|_| h.connect_from(2)).collect();
    std::thread::sleep(Duration::from_millis(200));
    for _ in 0..5 {
        assert_eq!(get(h.addr, "/health").code, 200);
    }
    drop(hostile);
}

#[test]
fn a_full_server_closes_the_idlest_connection_for_a_new_client() {
    let config = HttpConfig {
        max_connections: 8,
        max_connections_per_source: 2,
        ..HttpConfig::default()
    };
    let h = Harness::start(fake(healthy()), config);
    // Many hosts, two idle connections each: every slot is taken, and
    // more hosts keep coming.
    let mut hostile = Vec::new();
    for host in 2..20u8 {
        hostile.push(h.connect_from(host));
        hostile.push(h.connect_from(host));
    }
    std::thread::sleep(Duration::from_millis(200));
    // A new client still gets its answer: the idlest connection makes way.
    for _ in 0..5 {
        assert_eq!(get(h.addr, "/health").code, 200);
    }
    // Those made to wait longest were closed; the server kept 8 at most.
    let mut closed = 0;
    for stream in &mut hostile {
        stream
            .set_read_timeout(Some(Duration::from_millis(20)))
            .unwrap();
        closed += usize::from(wait_for_close(stream).is_some());
    }
    assert!(closed >= 36 - 8, "{closed} closed");
}

#[test]
fn public_and_private_listeners_split_the_routes() {
    use betanet::http::Exposure;
    let public = Harness::start(
        fake(healthy()),
        HttpConfig {
            exposure: Exposure::Public,
            ..HttpConfig::default()
        },
    );
    let private = Harness::start(
        fake(healthy()),
        HttpConfig {
            exposure: Exposure::Private,
            ..HttpConfig::default()
        },
    );
    assert_eq!(get(public.addr, "/descriptor").code, 200);
    assert_eq!(get(public.addr, "/vrf/5").code, 200);
    for path in ["/metrics", "/health", "/ready"] {
        assert_eq!(get(public.addr, path).code, 404, "{path}");
        assert_eq!(get(private.addr, path).code, 200, "{path}");
    }
    assert_eq!(get(private.addr, "/descriptor").code, 404);
    assert_eq!(get(private.addr, "/vrf/5").code, 404);
}

#[test]
fn stop_lets_the_request_in_flight_finish_then_refuses() {
    let node = Arc::new(FakeNode {
        health: Mutex::new(healthy()),
        snapshot: busy_snapshot(),
        metrics_delay: Duration::from_millis(400),
        loops: None,
    });
    let mut h = Harness::start(node, HttpConfig::default());
    let addr = h.addr;

    let in_flight = std::thread::spawn(move || get(addr, "/metrics"));
    std::thread::sleep(Duration::from_millis(150));
    let stopping = Instant::now();
    h.stop();
    let took = stopping.elapsed();
    assert!(took < Duration::from_secs(3), "stop took {took:?}");

    let reply = in_flight.join().unwrap();
    assert_eq!(reply.code, 200);
    assert!(reply.body.ends_with("# EOF\n"));

    assert!(TcpStream::connect(addr).is_err(), "the listener is closed");
}

// ---------------------------------------------------------------------
// The metrics text
// ---------------------------------------------------------------------

/// One sample line.
#[derive(Debug)]
struct Sample {
    name: String,
    labels: BTreeMap<String, String>,
    value: f64,
}

/// An exposition: family name → type, and the samples in order.
#[derive(Debug, Default)]
struct Exposition {
    types: BTreeMap<String, String>,
    samples: Vec<Sample>,
}

impl Exposition {
    fn samples_of<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a Sample> + 'a {
        self.samples.iter().filter(move |s| s.name == name)
    }

    fn value(&self, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
        self.samples_of(name)
            .find(|s| {
                labels.len() == s.labels.len()
                    && labels
                        .iter()
                        .all(|(k, v)| s.labels.get(*k).map(String::as_str) == Some(*v))
            })
            .map(|s| s.value)
    }
}

fn is_metric_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_' || c == ':')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':')
}

/// The sample suffixes OpenMetrics allows for a family of type `kind`.
fn suffixes(kind: &str) -> &'static [&'static str] {
    match kind {
        "counter" => &["_total", "_created"],
        "gauge" | "unknown" => &[""],
        "histogram" => &["_bucket", "_sum", "_count", "_created"],
        "info" => &["_info"],
        other => panic!("unexpected metric type {other}"),
    }
}

/// Parses `{k="v",…}`, honouring `\"`, `\\` and `\n` escapes; returns the
/// labels and the rest of the line.
fn parse_labels(text: &str) -> (BTreeMap<String, String>, &str) {
    let mut labels = BTreeMap::new();
    let mut rest = text.strip_prefix('{').unwrap();
    loop {
        if let Some(after) = rest.strip_prefix('}') {
            return (labels, after);
        }
        let (key, after) = rest.split_once("=\"").expect("label key=\"value\"");
        assert!(
            is_metric_name(key) && !key.contains(':'),
            "bad label name {key:?}"
        );
        let mut value = String::new();
        let mut chars = after.char_indices();
        let end = loop {
            match chars.next().expect("unterminated label value") {
                (i, '"') => break i,
                (_, '\\') => match chars.next().expect("dangling escape").1 {
                    'n' => value.push('\n'),
                    c @ ('"' | '\\') => value.push(c),
                    c => panic!("bad escape \\{c}"),
                },
                (_, c) => value.push(c),
            }
        };
        assert!(
            labels.insert(key.to_owned(), value).is_none(),
            "duplicate label {key}"
        );
        rest = &after[end + 1..];
        rest = rest.strip_prefix(',').unwrap_or(rest);
    }
}

fn parse_value(text: &str) -> f64 {
    match text {
        "+Inf" => f64::INFINITY,
        "-Inf" => f64::NEG_INFINITY,
        _ => text
            .parse()
            .unwrap_or_else(|_| panic!("bad value {text:?}")),
    }
}

/// Parses and checks the OpenMetrics text format: comment lines, sample
/// lines, names belonging to a declared family, `# EOF` last.
fn parse_exposition(text: &str) -> Exposition {
    let mut exposition = Exposition::default();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.last(), Some(&"# EOF"), "ends with # EOF");
    assert!(text.ends_with('\n'));
    let mut current: Option<String> = None;
    for line in &lines[..lines.len() - 1] {
        if let Some(comment) = line.strip_prefix("# ") {
            let mut parts = comment.splitn(3, ' ');
            let (keyword, name) = (parts.next().unwrap(), parts.next().unwrap());
            let rest = parts.next().unwrap_or("");
            assert!(is_metric_name(name), "bad name in {line:?}");
            match keyword {
                "HELP" => assert!(!rest.is_empty(), "empty help: {line:?}"),
                "TYPE" => {
                    suffixes(rest);
                    let previous = exposition.types.insert(name.to_owned(), rest.to_owned());
                    assert!(previous.is_none(), "family declared twice: {name}");
                    current = Some(name.to_owned());
                }
                "UNIT" => assert!(name.ends_with(&format!("_{rest}")), "{line:?}"),
                _ => panic!("unknown comment {line:?}"),
            }
            continue;
        }
        let name_end = line.find(['{', ' ']).expect("name then value");
        let name = &line[..name_end];
        assert!(is_metric_name(name), "bad sample name in {line:?}");
        let (labels, rest) = if line[name_end..].starts_with('{') {
            parse_labels(&line[name_end..])
        } else {
            (BTreeMap::new(), &line[name_end..])
        };
        let value = rest.strip_prefix(' ').expect("a space before the value");
        assert!(
            !value.contains(' '),
            "no timestamps or exemplars expected: {line:?}"
        );
        let family = current.as_deref().expect("a sample before any # TYPE");
        let kind = &exposition.types[family];
        assert!(
            suffixes(kind)
                .iter()
                .any(|s| name == format!("{family}{s}")),
            "{name} does not belong to {kind} family {family}"
        );
        exposition.samples.push(Sample {
            name: name.to_owned(),
            labels,
            value: parse_value(value),
        });
    }
    exposition
}

/// Buckets ascend in `le`, are cumulative, and end with `+Inf` = `_count`.
fn check_histogram(exposition: &Exposition, family: &str, expected_count: u64) {
    let buckets: Vec<(f64, f64)> = exposition
        .samples_of(&format!("{family}_bucket"))
        .map(|s| (parse_value(&s.labels["le"]), s.value))
        .collect();
    assert!(buckets.len() > 1, "{family} has buckets");
    for pair in buckets.windows(2) {
        assert!(pair[0].0 < pair[1].0, "{family}: le ascends");
        assert!(pair[0].1 <= pair[1].1, "{family}: cumulative");
    }
    let (last_le, last_count) = *buckets.last().unwrap();
    assert_eq!(last_le, f64::INFINITY, "{family}: ends with +Inf");
    let count = exposition.value(&format!("{family}_count"), &[]).unwrap();
    assert_eq!(last_count, count, "{family}: +Inf equals _count");
    assert_eq!(count, expected_count as f64, "{family}");
    assert!(exposition.value(&format!("{family}_sum"), &[]).is_some());
}

const REQUIRED_SAMPLES: &[&str] = &[
    "betanet_packets_processed_total",
    "betanet_packets_dropped_total",
    "betanet_processing_time_seconds_bucket",
    "betanet_memory_pool_hit_rate",
    "betanet_queue_depth",
    "betanet_packets_received_total",
    "betanet_packets_forwarded_total",
    "betanet_packets_delivered_total",
    "betanet_replies_delivered_total",
    "betanet_mixing_delay_seconds_bucket",
    "betanet_cover_loops_sent_total",
    "betanet_cover_loops_returned_total",
    "betanet_cover_loops_lost_total",
    "betanet_loop_rtt_seconds_bucket",
    "betanet_replay_cache_entries",
    "betanet_sphinx_key_epoch",
    "betanet_sphinx_keys_held",
    "betanet_key_deletion_failures_total",
    "betanet_key_deletions_pending",
    "betanet_egress_queue_depth",
    "betanet_epoch",
    "betanet_build_info",
    "process_resident_memory_bytes",
    "process_cpu_seconds_total",
    "process_open_fds",
    "process_start_time_seconds",
];

#[test]
fn metrics_over_http_are_valid_openmetrics_with_every_required_series() {
    let h = Harness::start(fake(healthy()), HttpConfig::default());
    let reply = get(h.addr, "/metrics");
    let exposition = parse_exposition(&reply.body);

    for name in REQUIRED_SAMPLES {
        assert!(
            exposition.samples_of(name).next().is_some(),
            "missing {name}"
        );
    }
    for cause in DropCause::ALL {
        let want = if cause == DropCause::Overload {
            7.0
        } else {
            0.0
        };
        let got = exposition.value(
            "betanet_packets_dropped_total",
            &[("reason", cause.as_str())],
        );
        assert_eq!(got, Some(want), "reason {cause}");
    }
    let value = |name, labels: &[(&str, &str)]| exposition.value(name, labels).unwrap();
    assert_eq!(
        value("betanet_packets_received_total", &[("transport", "udp")]),
        1000.0
    );
    assert_eq!(
        value("betanet_packets_received_total", &[("transport", "tcp")]),
        20.0
    );
    assert_eq!(value("betanet_packets_processed_total", &[]), 990.0);
    assert_eq!(value("betanet_queue_depth", &[("queue", "ingress")]), 1.0);
    assert_eq!(value("betanet_queue_depth", &[("queue", "mixing")]), 2.0);
    assert_eq!(value("betanet_queue_depth", &[("queue", "egress")]), 3.0);
    assert_eq!(value("betanet_memory_pool_hit_rate", &[]), 0.75);
    assert_eq!(value("betanet_epoch", &[]), 42.0);
    assert_eq!(value("betanet_replay_cache_entries", &[]), 12345.0);
    assert_eq!(value("betanet_sphinx_key_epoch", &[]), 20_416.0);
    assert_eq!(value("betanet_sphinx_keys_held", &[]), 3.0);
    assert_eq!(value("betanet_cover_loops_lost_total", &[]), 1.0);
    let version = env!("CARGO_PKG_VERSION");
    assert_eq!(
        value(
            "betanet_build_info",
            &[("version", version), ("role", "middle")]
        ),
        1.0
    );

    assert_eq!(
        exposition.types["betanet_processing_time_seconds"],
        "histogram"
    );
    check_histogram(&exposition, "betanet_processing_time_seconds", 5);
    check_histogram(&exposition, "betanet_mixing_delay_seconds", 2);
    check_histogram(&exposition, "betanet_loop_rtt_seconds", 1);
    // 3 µs is under the first bound (10 µs); 60 s only fits +Inf.
    assert_eq!(
        value(
            "betanet_processing_time_seconds_bucket",
            &[("le", "0.00001")]
        ),
        1.0
    );
    assert_eq!(
        value("betanet_processing_time_seconds_bucket", &[("le", "10.0")]),
        4.0
    );
}

#[test]
fn egress_labels_are_bounded_and_keep_the_total() {
    let exposition = parse_exposition(&render(&busy_snapshot()));
    let hops: Vec<&Sample> = exposition
        .samples_of("betanet_egress_queue_depth")
        .collect();
    assert_eq!(hops.len(), MAX_NEXT_HOP_LABELS + 1);
    let total: f64 = hops.iter().map(|s| s.value).sum();
    assert_eq!(total, (0..100).sum::<usize>() as f64);
    let other = exposition.value("betanet_egress_queue_depth", &[("next_hop", "other")]);
    assert_eq!(
        other,
        Some((0..100 - MAX_NEXT_HOP_LABELS).sum::<usize>() as f64)
    );
}

#[test]
fn an_empty_snapshot_still_exports_every_series_at_zero() {
    let exposition = parse_exposition(&render(&MetricsSnapshot::default()));
    for cause in DropCause::ALL {
        assert_eq!(
            exposition.value(
                "betanet_packets_dropped_total",
                &[("reason", cause.as_str())]
            ),
            Some(0.0)
        );
    }
    check_histogram(&exposition, "betanet_processing_time_seconds", 0);
    check_histogram(&exposition, "betanet_loop_rtt_seconds", 0);
    assert_eq!(
        exposition.value("betanet_cover_loops_sent_total", &[]),
        Some(0.0)
    );
    assert_eq!(
        exposition.value(
            "betanet_build_info",
            &[("version", env!("CARGO_PKG_VERSION")), ("role", "unknown")]
        ),
        Some(1.0)
    );
    // Unreadable process metrics are left out, not reported as zero.
    assert!(!exposition.types.contains_key("process_open_fds"));
    assert!(
        exposition
            .samples_of("process_cpu_seconds_total")
            .next()
            .is_none()
    );
}

#[test]
fn label_values_are_escaped() {
    let snapshot = MetricsSnapshot {
        egress_depths: vec![("evil\"} x{a=\"\\\n".to_owned(), 1)],
        ..MetricsSnapshot::default()
    };
    let exposition = parse_exposition(&render(&snapshot));
    assert_eq!(
        exposition.value(
            "betanet_egress_queue_depth",
            &[("next_hop", "evil\"} x{a=\"\\\n")]
        ),
        Some(1.0)
    );
}

#[test]
fn loop_loss_labels_are_bounded_and_leave_when_out_of_the_top() {
    let exposition = parse_exposition(&render(&busy_snapshot()));
    assert_eq!(exposition.types["betanet_loop_loss_ratio"], "gauge");
    assert_eq!(exposition.types["betanet_loop_peer_sent"], "counter");
    assert_eq!(exposition.types["betanet_loop_peer_lost"], "counter");
    for family in [
        "betanet_loop_loss_ratio",
        "betanet_loop_peer_sent_total",
        "betanet_loop_peer_lost_total",
    ] {
        assert_eq!(
            exposition.samples_of(family).count(),
            MAX_LOSS_METRIC_NODES,
            "{family}"
        );
    }
    let worst = format!("{:032x}", 0);
    let peer = |p: &str| vec![("peer", p.to_owned())];
    let value = |name: &str, labels: Vec<(&str, String)>| {
        let labels: Vec<(&str, &str)> = labels.iter().map(|(k, v)| (*k, v.as_str())).collect();
        exposition.value(name, &labels)
    };
    assert_eq!(value("betanet_loop_loss_ratio", peer(&worst)), Some(1.0));
    assert_eq!(
        value("betanet_loop_peer_lost_total", peer(&worst)),
        Some(100.0)
    );
    assert_eq!(
        value("betanet_loop_peer_sent_total", peer(&worst)),
        Some(1000.0)
    );
    // The best peers fell out of the top: no series at all.
    assert_eq!(
        value("betanet_loop_loss_ratio", peer(&format!("{:032x}", 99))),
        None
    );

    // A peer that leaves the list leaves the exposition; none at all
    // (cover off, or loss_metric_nodes = 0) leaves out the families.
    let mut snapshot = busy_snapshot();
    snapshot.loop_loss.truncate(1);
    let one = parse_exposition(&render(&snapshot));
    assert_eq!(one.samples_of("betanet_loop_loss_ratio").count(), 1);
    snapshot.loop_loss.clear();
    let none = parse_exposition(&render(&snapshot));
    assert!(!none.types.contains_key("betanet_loop_loss_ratio"));
    assert!(!none.types.contains_key("betanet_loop_peer_lost"));
}

#[test]
fn loops_without_cover_traffic_say_disabled() {
    let h = Harness::start(fake(healthy()), HttpConfig::default());
    let reply = get(h.addr, "/loops");
    assert_eq!(reply.code, 200);
    assert_eq!(reply.header("cache-control"), "no-store");
    assert_eq!(json(&reply), serde_json::json!({ "enabled": false }));
    assert_eq!(request(h.addr, "POST", "/loops").code, 405);
    assert_eq!(get(h.addr, "/loops/").code, 404);
}

/// A tracker's report after loops through a dead middle node (`0a…`) and
/// a healthy one (`0b…`), each followed by exit `14…` or `15…`.
#[cfg(feature = "cover-traffic")]
fn dead_middle_report() -> betanet::cover::LoopReport {
    use betanet::cover::LoopTracker;
    use betanet::sphinx::{LoopId, NodeId};
    let node = |n: u8| NodeId::from_bytes([n; 16]);
    let t0 = Instant::now();
    let mut tracker = LoopTracker::new(Duration::from_millis(500), 1000);
    for k in 0..200u32 {
        let middle = node(10 + (k % 2) as u8);
        let exit = node(20 + (k / 2 % 2) as u8);
        let mut id = [0u8; 16];
        id[..4].copy_from_slice(&k.to_be_bytes());
        let at = t0 + Duration::from_millis(k.into());
        tracker.record_sent(LoopId(id), &[middle, exit], at);
        if middle != node(10) {
            tracker.record_return(LoopId(id), at + Duration::from_millis(30));
        }
    }
    tracker.record_sent(LoopId([0xff; 16]), &[node(11), node(21)], t0);
    tracker.expire(t0 + Duration::from_millis(1000));
    betanet::cover::LoopReport::from_snapshot(tracker.snapshot())
}

#[cfg(feature = "cover-traffic")]
#[test]
fn loops_serves_the_whole_table_worst_first() {
    let report = dead_middle_report();
    let node = Arc::new(FakeNode {
        health: Mutex::new(healthy()),
        snapshot: MetricsSnapshot::default(),
        metrics_delay: Duration::ZERO,
        loops: Some(serde_json::to_vec(&report).unwrap()),
    });
    let h = Harness::start(node, HttpConfig::default());
    let reply = get(h.addr, "/loops");
    assert_eq!(reply.code, 200);
    assert_eq!(reply.header("cache-control"), "no-store");
    let body = json(&reply);
    assert_eq!(body["enabled"], true);
    assert_eq!(body["loop_timeout_ms"], 500);
    let totals = &body["totals"];
    // 200 loops, half through the dead node, and one more (id ff…) lost
    // through healthy nodes.
    assert_eq!(totals["sent"], 201);
    assert_eq!(totals["returned"], 100);
    assert_eq!(totals["lost"], 101);
    assert_eq!(totals["outstanding"], 0);
    assert!(totals["rtt_ms"]["p50"].as_f64().unwrap() >= 30.0);

    let dead = "0a".repeat(16);
    let nodes = body["nodes"].as_array().unwrap();
    assert_eq!(nodes.len(), 4);
    assert_eq!(nodes[0]["id"], dead.as_str());
    assert_eq!(nodes[0]["attributed_loss"], 1.0);
    assert_eq!(nodes[0]["lost"], 100);
    assert_eq!(nodes[0]["rtt_ms_mean"], serde_json::Value::Null);
    for n in &nodes[1..] {
        assert!(n["attributed_loss"].as_f64().unwrap() < 0.05, "{body}");
        for key in [
            "sent",
            "returned",
            "lost",
            "window_loops",
            "window_returned",
        ] {
            assert!(n[key].is_u64(), "{key} in {n}");
        }
    }
    // Sorted worst first.
    let losses: Vec<f64> = nodes
        .iter()
        .map(|n| n["attributed_loss"].as_f64().unwrap())
        .collect();
    assert!(losses.windows(2).all(|w| w[0] >= w[1]), "{losses:?}");

    let hops = body["next_hops"].as_array().unwrap();
    assert_eq!(hops.len(), 2);
    assert_eq!(hops[0]["id"], dead.as_str());
    assert_eq!(hops[0]["loss_ratio"], 1.0);
    assert_eq!(
        (hops[0]["sent"].as_u64(), hops[0]["lost"].as_u64()),
        (Some(100), Some(100))
    );
    assert_eq!(body["window"]["loops"], 201);

    let head = request(h.addr, "HEAD", "/loops");
    assert_eq!(head.code, 200);
    assert!(head.body.is_empty());
}
