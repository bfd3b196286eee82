//! Three nodes (entry, middle, exit) on loopback in one process: messages
//! arrive intact, replays are dropped (also across a restart), outsiders
//! are refused, mixing delays have their mean, overload stays bounded.

mod support;

use std::collections::HashSet;
use std::net::UdpSocket;
use std::time::{Duration, Instant};

use betanet::NodeRole;
use betanet::pipeline::DropCause;
use betanet::sphinx::DropReason;
use support::{Net, Options, http_get, receive, rss_bytes, serial, wait_until};

/// Sends frames over UDP in small bursts so loopback socket buffers keep up.
fn send_paced(socket: &UdpSocket, to: std::net::SocketAddr, frames: &[Vec<u8>]) {
    for chunk in frames.chunks(50) {
        for f in chunk {
            socket.send_to(f, to).unwrap();
        }
        std::thread::sleep(Duration::from_millis(3));
    }
}

#[test]
fn a_thousand_messages_arrive_intact_over_udp() {
    let _serial = serial();
    let net = Net::start(Options::default());
    let receiver = UdpSocket::bind("127.0.0.1:0").unwrap();
    let to = receiver.local_addr().unwrap();
    let messages: Vec<Vec<u8>> = (0..1000u32)
        .map(|i| format!("message {i} through the mixnet").into_bytes())
        .collect();
    let frames: Vec<Vec<u8>> = messages.iter().map(|m| net.packet(to, m)).collect();

    let client = UdpSocket::bind("127.0.0.1:0").unwrap();
    let receiving = std::thread::spawn(move || receive(&receiver, 1000, Duration::from_secs(30)));
    send_paced(&client, net.entry_udp(), &frames);
    let got: HashSet<Vec<u8>> = receiving
        .join()
        .unwrap()
        .into_iter()
        .map(|(m, _)| m)
        .collect();

    let want: HashSet<Vec<u8>> = messages.into_iter().collect();
    let all_stats: Vec<_> = NodeRole::ALL.iter().map(|r| net.node(*r).stats()).collect();
    assert_eq!(
        got.len(),
        1000,
        "missing {} messages; {all_stats:#?}",
        1000 - got.len()
    );
    assert_eq!(got, want);
    // Counters are bumped just after each send: give the last one a moment.
    wait_until(Duration::from_secs(5), "the exit's delivered count", || {
        net.node(NodeRole::Exit).stats().delivered == 1000
    });
    assert_eq!(net.node(NodeRole::Entry).stats().forwarded, 1000);
    assert_eq!(net.node(NodeRole::Entry).stats().dropped_total(), 0);
}

#[test]
fn a_thousand_messages_arrive_intact_over_tcp() {
    let _serial = serial();
    // Client → entry over TCP, and every node forwards over TCP too.
    let net = Net::start(Options {
        egress: betanet::topology::EgressProtocol::Tcp,
        ..Options::default()
    });
    let receiver = UdpSocket::bind("127.0.0.1:0").unwrap();
    let to = receiver.local_addr().unwrap();
    let messages: Vec<Vec<u8>> = (0..1000u32)
        .map(|i| format!("tcp message {i}").into_bytes())
        .collect();
    let frames: Vec<Vec<u8>> = messages.iter().map(|m| net.packet(to, m)).collect();
    let receiving = std::thread::spawn(move || receive(&receiver, 1000, Duration::from_secs(60)));
    let mut stream = std::net::TcpStream::connect(net.entry_tcp()).unwrap();
    for f in &frames {
        std::io::Write::write_all(&mut stream, f).unwrap();
    }
    let got: HashSet<Vec<u8>> = receiving
        .join()
        .unwrap()
        .into_iter()
        .map(|(m, _)| m)
        .collect();
    let all_stats: Vec<_> = NodeRole::ALL.iter().map(|r| net.node(*r).stats()).collect();
    assert_eq!(
        got.len(),
        1000,
        "missing {}; {all_stats:#?}",
        1000 - got.len()
    );
    assert_eq!(got, messages.into_iter().collect::<HashSet<_>>());
    let entry = net.node(NodeRole::Entry).metrics_snapshot();
    assert_eq!(entry.received_tcp, 1000);
    assert_eq!(entry.received_udp, 0);
    // Queue depth per next hop is a traffic-analysis signal: opt-in only.
    assert!(entry.egress_depths.is_empty(), "{:?}", entry.egress_depths);
}

#[test]
fn every_node_serves_health_ready_metrics_and_its_descriptor() {
    let _serial = serial();
    let net = Net::start(Options::default());
    let receiver = UdpSocket::bind("127.0.0.1:0").unwrap();
    let client = UdpSocket::bind("127.0.0.1:0").unwrap();
    client
        .send_to(
            &net.packet(receiver.local_addr().unwrap(), b"counted"),
            net.entry_udp(),
        )
        .unwrap();
    assert_eq!(receive(&receiver, 1, Duration::from_secs(10)).len(), 1);
    for (role, d) in NodeRole::ALL.iter().zip(&net.descriptors) {
        let http = net.node(*role).http_addr().unwrap();
        assert_eq!(http, d.http_addr);
        assert_eq!(http_get(http, "/health").0, 200);
        assert_eq!(http_get(http, "/ready").0, 200);
        let (code, body) = http_get(http, "/descriptor");
        assert_eq!(code, 200);
        assert!(body.contains(&d.id.to_string()));
        let (code, metrics) = http_get(http, "/metrics");
        assert_eq!(code, 200);
        assert!(
            metrics.contains("betanet_packets_processed_total 1"),
            "{role}: {metrics}"
        );
        assert!(metrics.contains(&format!("role=\"{role}\"")));
        assert_eq!(http_get(http, "/nope").0, 404);
    }
}

#[test]
fn metrics_addr_moves_metrics_and_health_off_the_public_listener() {
    let _serial = serial();
    let mut net = Net::start(Options::default());
    net.local
        .restart_with(1, |c| {
            c.node.metrics_addr = Some("127.0.0.1:0".parse().unwrap());
        })
        .unwrap();
    let middle = net.node(NodeRole::Middle);
    let public = middle.http_addr().unwrap();
    let private = middle.metrics_addr().expect("a private listener");
    assert_ne!(public, private);
    for path in ["/metrics", "/health", "/ready"] {
        assert_eq!(http_get(public, path).0, 404, "public {path}");
        assert_eq!(http_get(private, path).0, 200, "private {path}");
    }
    assert_eq!(http_get(public, "/descriptor").0, 200);
    assert_eq!(http_get(private, "/descriptor").0, 404);
    // Without the key, one listener serves everything, as before.
    assert_eq!(net.node(NodeRole::Entry).metrics_addr(), None);
}

#[test]
fn a_replayed_frame_is_dropped_also_after_a_restart() {
    let _serial = serial();
    let mut net = Net::start(Options::default());
    let receiver = UdpSocket::bind("127.0.0.1:0").unwrap();
    let frame = net.packet(receiver.local_addr().unwrap(), b"once only");
    let client = UdpSocket::bind("127.0.0.1:0").unwrap();

    client.send_to(&frame, net.entry_udp()).unwrap();
    assert_eq!(receive(&receiver, 1, Duration::from_secs(10)).len(), 1);
    client.send_to(&frame, net.entry_udp()).unwrap();
    let replay = DropCause::Sphinx(DropReason::Replay);
    wait_until(Duration::from_secs(10), "the replay drop", || {
        net.node(NodeRole::Entry).stats().dropped(replay) == 1
    });

    net.restart(NodeRole::Entry);
    assert!(net.node(NodeRole::Entry).replay_cache_entries() >= 1);
    client.send_to(&frame, net.entry_udp()).unwrap();
    wait_until(
        Duration::from_secs(10),
        "the replay drop after restart",
        || net.node(NodeRole::Entry).stats().dropped(replay) == 1,
    );
    assert!(receive(&receiver, 1, Duration::from_millis(300)).is_empty());
}

#[test]
fn middle_refuses_frames_from_outside_the_topology() {
    let _serial = serial();
    let net = Net::start(Options::default());
    let receiver = UdpSocket::bind("127.0.0.1:0").unwrap();
    let frame = net.packet(receiver.local_addr().unwrap(), b"sneaking in");
    // Every node listens on 127.0.0.1; 127.0.0.2 is not a member.
    let outsider = UdpSocket::bind("127.0.0.2:0").unwrap();
    let middle = net.descriptors[1].udp_addr;
    outsider.send_to(&frame, middle).unwrap();
    wait_until(Duration::from_secs(10), "the unauthorized drop", || {
        net.node(NodeRole::Middle)
            .stats()
            .dropped(DropCause::UnauthorizedSource)
            == 1
    });
    assert_eq!(net.node(NodeRole::Middle).stats().processed, 0);
}

/// 1-hop packets straight to a net's exit (loopback sources are members).
fn exit_packets(net: &Net, to: std::net::SocketAddr, n: u32) -> Vec<Vec<u8>> {
    let exit_hop = net.path()[2];
    (0..n)
        .map(|i| {
            let command = betanet::sphinx::FinalCommand::Deliver {
                destination: to,
                message_id: betanet::sphinx::MessageId([0; 16]),
            };
            betanet::sphinx::create_packet(&[exit_hop], command, &i.to_be_bytes(), &mut rand::rng())
                .unwrap()
                .frame
                .to_vec()
        })
        .collect()
}

/// Mean time from sending each packet to its delivery, in ms.
fn mean_transit_ms(sent_at: &[Instant], got: &[(Vec<u8>, Instant)]) -> f64 {
    let total: f64 = got
        .iter()
        .map(|(m, at)| {
            let i = u32::from_be_bytes(m[..4].try_into().unwrap()) as usize;
            at.duration_since(sent_at[i]).as_secs_f64()
        })
        .sum();
    total / got.len() as f64 * 1e3
}

#[test]
fn observed_mixing_delays_have_the_configured_mean() {
    let _serial = serial();
    // Two networks: one mixing with mean 5 ms, one not mixing at all. Their
    // exits get interleaved 1-hop packets, so processing, wake-ups and
    // machine load affect both alike; the difference of the observed mean
    // transit times is the mixing delay.
    // Plaintext 1-hop packets straight to the exits (as a member would
    // send them with links off).
    let mixing = Net::start(Options {
        mean_delay_ms: 5.0,
        links: false,
        ..Options::default()
    });
    let control = Net::start(Options {
        mean_delay_ms: 0.0,
        links: false,
        ..Options::default()
    });
    let n = 1000;
    let rx_mixing = UdpSocket::bind("127.0.0.1:0").unwrap();
    let rx_control = UdpSocket::bind("127.0.0.1:0").unwrap();
    let mixing_frames = exit_packets(&mixing, rx_mixing.local_addr().unwrap(), n as u32);
    let control_frames = exit_packets(&control, rx_control.local_addr().unwrap(), n as u32);
    let got_mixing = std::thread::spawn(move || receive(&rx_mixing, n, Duration::from_secs(60)));
    let got_control = std::thread::spawn(move || receive(&rx_control, n, Duration::from_secs(60)));

    let client = UdpSocket::bind("127.0.0.1:0").unwrap();
    let (mut sent_mixing, mut sent_control) = (Vec::new(), Vec::new());
    for (m, c) in mixing_frames.iter().zip(&control_frames) {
        sent_mixing.push(Instant::now());
        client.send_to(m, mixing.descriptors[2].udp_addr).unwrap();
        sent_control.push(Instant::now());
        client.send_to(c, control.descriptors[2].udp_addr).unwrap();
        // Well below capacity, so queueing does not inflate the delays.
        std::thread::sleep(Duration::from_micros(500));
    }
    let (got_mixing, got_control) = (got_mixing.join().unwrap(), got_control.join().unwrap());
    assert_eq!((got_mixing.len(), got_control.len()), (n, n));
    let observed = mean_transit_ms(&sent_mixing, &got_mixing);
    let baseline = mean_transit_ms(&sent_control, &got_control);
    let delay = observed - baseline;
    // 15% of 5 ms; the sampling error of the mean of 1,000 exponential
    // delays is 3.2% (so this is a 4.7σ bound).
    assert!(
        (delay - 5.0).abs() < 0.75,
        "mixing delay {delay:.3} ms (observed {observed:.3} ms, baseline {baseline:.3} ms)"
    );
}

#[test]
fn overload_keeps_memory_bounded_and_the_node_alive() {
    let _serial = serial();
    let net = Net::start(Options {
        max_queue_depth: 1000,
        rate_limit: false,
        ..Options::default()
    });
    let receiver = UdpSocket::bind("127.0.0.1:0").unwrap();
    let to = receiver.local_addr().unwrap();
    // Valid packets: each costs the entry a full scalar multiplication even
    // when it is recognised as a replay afterwards.
    let frames: Vec<Vec<u8>> = (0..256)
        .map(|i: u32| net.packet(to, &i.to_be_bytes()))
        .collect();
    let entry = net.entry_udp();
    let rss_before = rss_bytes();
    let blaster = std::thread::spawn(move || {
        let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
        let end = Instant::now() + Duration::from_secs(5);
        let mut sent = 0u64;
        while Instant::now() < end {
            for f in &frames {
                let _ = socket.send_to(f, entry);
                sent += 1;
            }
        }
        sent
    });
    let mut peak_rss = rss_before;
    let node = net.node(NodeRole::Entry);
    while !blaster.is_finished() {
        assert!(node.health().alive, "liveness must hold under overload");
        peak_rss = peak_rss.max(rss_bytes());
        std::thread::sleep(Duration::from_millis(50));
    }
    let sent = blaster.join().unwrap();
    let stats = node.stats();
    assert!(
        stats.dropped(DropCause::Overload) > 0,
        "no overload drops: {stats:?}"
    );
    assert!(stats.processed > 0);
    assert!(
        peak_rss < rss_before + 256 * 1024 * 1024,
        "RSS grew from {} to {} MiB",
        rss_before >> 20,
        peak_rss >> 20
    );
    assert!(
        sent > stats.processed,
        "the offered load exceeded what was processed"
    );
    // After the storm the node recovers: queues drain, it is ready again.
    wait_until(Duration::from_secs(10), "readiness after overload", || {
        node.health().ready
    });
}

/// `GET path` over HTTP/1.1; the status code. Fails after 10 s.
fn http_status(addr: std::net::SocketAddr, path: &str) -> u16 {
    use std::io::{Read, Write};
    let limit = Duration::from_secs(10);
    let mut stream = std::net::TcpStream::connect_timeout(&addr, limit).unwrap();
    stream.set_read_timeout(Some(limit)).unwrap();
    stream.set_write_timeout(Some(limit)).unwrap();
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut reply = String::new();
    stream.read_to_string(&mut reply).unwrap();
    reply
        .split(' ')
        .nth(1)
        .and_then(|code| code.parse().ok())
        .unwrap_or_else(|| panic!("not an HTTP reply: {reply:?}"))
}

#[test]
fn an_overloaded_node_sheds_by_reason_and_health_keeps_answering() {
    let _serial = serial();
    // A 1 ms dwell bound: the queue admits one batch, and whatever waits
    // longer is dropped unwrapped.
    let net = Net::start(Options {
        max_queue_depth: 1000,
        max_dwell_ms: 1,
        rate_limit: false,
        ..Options::default()
    });
    let receiver = UdpSocket::bind("127.0.0.1:0").unwrap();
    let to = receiver.local_addr().unwrap();
    let frames: Vec<Vec<u8>> = (0..256)
        .map(|i: u32| net.packet(to, &i.to_be_bytes()))
        .collect();
    let entry = net.entry_udp();
    let blaster = std::thread::spawn(move || {
        let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
        let end = Instant::now() + Duration::from_secs(3);
        while Instant::now() < end {
            for f in &frames {
                let _ = socket.send_to(f, entry);
            }
        }
    });
    let node = net.node(NodeRole::Entry);
    let http = node.http_addr().expect("the node serves HTTP");
    let mut answered = 0;
    while !blaster.is_finished() {
        assert_eq!(http_status(http, "/health"), 200, "liveness under overload");
        answered += 1;
        std::thread::sleep(Duration::from_millis(50));
    }
    blaster.join().unwrap();
    assert!(answered > 0);
    let stats = node.stats();
    assert!(stats.dropped(DropCause::Overload) > 0, "{stats:?}");
    assert!(stats.dropped(DropCause::Dwell) > 0, "{stats:?}");
    assert!(stats.processed > 0, "{stats:?}");
    // No packet unwrapped had waited past the bound (the histogram bucket
    // holding 1 ms ends below 1.1 ms).
    let dwell = node.pipeline().counters().totals().dwell;
    assert!(dwell.count() >= stats.processed);
    assert!(
        dwell.quantile(1.0) < Duration::from_micros(1100),
        "{dwell:?}"
    );
    wait_until(Duration::from_secs(10), "readiness after overload", || {
        node.health().ready
    });
}

#[test]
fn a_changed_topology_file_is_picked_up_without_a_restart() {
    let _serial = serial();
    let net = Net::start(Options::default());
    // A second middle node, not yet in the topology.
    let extra_dir = net.dir.path().join("middle2");
    let extra = betanet::keys::keygen(
        &extra_dir,
        betanet::keys::KeygenParams {
            role: NodeRole::Middle,
            udp_addr: "127.0.0.1:1".parse().unwrap(),
            tcp_addr: "127.0.0.1:1".parse().unwrap(),
            http_addr: "127.0.0.1:2".parse().unwrap(),
            key_epoch_seconds: 86_400,
            now_unix: betanet::clock::unix_now(),
            network: Default::default(),
        },
    )
    .unwrap();
    let mut path = net.path();
    path[1] = betanet::sphinx::PathHop {
        id: extra.id,
        public_key: extra.sphinx_key_now().unwrap().public_key,
    };
    let frame = |i: u32| {
        let command = betanet::sphinx::FinalCommand::Drop;
        betanet::sphinx::create_packet(&path, command, &i.to_be_bytes(), &mut rand::rng())
            .unwrap()
            .frame
            .to_vec()
    };
    let client = UdpSocket::bind("127.0.0.1:0").unwrap();
    let entry = net.node(NodeRole::Entry);
    client.send_to(&frame(1), net.entry_udp()).unwrap();
    wait_until(Duration::from_secs(10), "unknown_next_hop", || {
        entry.stats().dropped(DropCause::UnknownNextHop) == 1
    });

    let mut all = net.descriptors.clone();
    all.push(extra);
    betanet::topology::Topology::build(all)
        .unwrap()
        .save(&net.topology_path())
        .unwrap();
    wait_until(Duration::from_secs(10), "the reload", || {
        entry.topology().len() == 4
    });
    client.send_to(&frame(2), net.entry_udp()).unwrap();
    wait_until(
        Duration::from_secs(10),
        "the forward to the new node",
        || entry.stats().forwarded == 1,
    );

    // An invalid file is ignored: the node keeps routing by the last good one.
    std::fs::write(net.topology_path(), b"{ not json").unwrap();
    std::thread::sleep(Duration::from_millis(600));
    assert_eq!(entry.topology().len(), 4);
}

#[test]
fn a_fast_source_is_rate_limited() {
    let _serial = serial();
    let net = Net::start(Options {
        rate: (20.0, 10),
        ..Options::default()
    });
    let receiver = UdpSocket::bind("127.0.0.1:0").unwrap();
    let frames: Vec<Vec<u8>> = (0..100u32)
        .map(|i| net.packet(receiver.local_addr().unwrap(), &i.to_be_bytes()))
        .collect();
    let client = UdpSocket::bind("127.0.0.1:0").unwrap();
    for f in &frames {
        client.send_to(f, net.entry_udp()).unwrap();
    }
    let entry = net.node(NodeRole::Entry);
    wait_until(Duration::from_secs(10), "all frames counted", || {
        let s = entry.stats();
        s.processed + s.dropped(DropCause::RateLimited) == 100
    });
    let limited = entry.stats().dropped(DropCause::RateLimited);
    // A burst of 10 (plus what refilled at 20/s while sending) got through.
    assert!((85..=90).contains(&limited), "{limited} rate-limited");
}

#[cfg(feature = "vrf")]
#[test]
fn delays_are_the_ones_the_published_vrf_proof_dictates() {
    use betanet::vrf::{EpochProofs, expected_delay};
    let _serial = serial();
    // Plaintext 1-hop packets straight to the exit: links off.
    let net = Net::start(Options {
        mean_delay_ms: 20.0,
        links: false,
        ..Options::default()
    });
    let exit = &net.descriptors[2];
    let (code, body) = http_get(exit.http_addr, "/vrf/current");
    assert_eq!(code, 200, "{body}");
    let proofs: EpochProofs = serde_json::from_str(&body).unwrap();
    proofs
        .verify_for(&exit.vrf_key)
        .expect("the published proof verifies");

    let receiver = UdpSocket::bind("127.0.0.1:0").unwrap();
    let to = receiver.local_addr().unwrap();
    let exit_hop = net.path()[2];
    let client = UdpSocket::bind("127.0.0.1:0").unwrap();
    let n = 100;
    let mut expected = Vec::new();
    let mut sent_at = Vec::new();
    let receiving = std::thread::spawn(move || receive(&receiver, n, Duration::from_secs(30)));
    for i in 0..n as u32 {
        let command = betanet::sphinx::FinalCommand::Deliver {
            destination: to,
            message_id: betanet::sphinx::MessageId([0; 16]),
        };
        let built = betanet::sphinx::create_packet(
            &[exit_hop],
            command,
            &i.to_be_bytes(),
            &mut rand::rng(),
        )
        .unwrap();
        // The sender knows the tag, so it can recompute the delay.
        let delay = expected_delay(
            &exit.vrf_key,
            proofs.epoch,
            &proofs.delay.proof,
            &built.replay_tags[0],
            Duration::from_millis(20),
            Duration::from_millis(2000),
        )
        .unwrap();
        expected.push(delay);
        sent_at.push(Instant::now());
        client.send_to(&built.frame[..], exit.udp_addr).unwrap();
        std::thread::sleep(Duration::from_millis(2));
    }
    let got = receiving.join().unwrap();
    assert_eq!(got.len(), n);
    let (code, body) = http_get(exit.http_addr, "/vrf/current");
    assert_eq!(code, 200);
    let after: EpochProofs = serde_json::from_str(&body).unwrap();
    if after.epoch != proofs.epoch {
        return; // An epoch boundary fell inside the test: nothing to compare.
    }
    let mut lateness: Vec<f64> = got
        .iter()
        .map(|(m, at)| {
            let i = u32::from_be_bytes(m[..4].try_into().unwrap()) as usize;
            let transit = at.duration_since(sent_at[i]).as_secs_f64();
            let early = expected[i].as_secs_f64() - transit;
            // No packet may leave before its verifiable delay has passed
            // (0.5 ms allows for clock reads on different threads).
            assert!(early < 0.0005, "packet {i} left {early:.4}s early");
            -early
        })
        .collect();
    lateness.sort_by(f64::total_cmp);
    let median = lateness[n / 2];
    assert!(median < 0.010, "median lateness {median:.4}s");
}

#[cfg(feature = "cover-traffic")]
#[test]
fn cover_loops_come_back_and_are_reported() {
    let _serial = serial();
    let dir = tempfile::tempdir().unwrap();
    let mut template = betanet::config::Config::default();
    template.pipeline.workers = 1;
    template.mixing.mean_delay_ms = 2.0;
    template.cover_traffic.enabled = true;
    template.cover_traffic.generation_rate_pps = 50.0;
    template.cover_traffic.loop_timeout_ms = 2000;
    let net = betanet::testnet::LocalNet::start(dir.path(), 1, &template).unwrap();
    let entry = net.first(NodeRole::Entry).unwrap();
    wait_until(Duration::from_secs(15), "returned cover loops", || {
        entry.metrics_snapshot().cover_loops_returned >= 20
    });
    let m = entry.metrics_snapshot();
    assert!(m.cover_loops_sent >= m.cover_loops_returned);
    assert!(m.loop_rtt.count() >= 20);
    // The loops crossed the other nodes as ordinary relayed traffic.
    assert!(net.first(NodeRole::Middle).unwrap().stats().forwarded > 0);
    let (code, metrics) = http_get(entry.http_addr().unwrap(), "/metrics");
    assert_eq!(code, 200);
    assert!(metrics.contains("betanet_loop_rtt_seconds_count"));
    net.shutdown();
}

/// One signal stops everything: control loops asleep until an epoch start
/// an hour or a day away, a cover thread asleep until its next packet, and
/// a descriptor refresher asleep for minutes all end at once, so the node
/// stops within its grace (the deadline is generous: only a thread that
/// sleeps on can miss it).
#[test]
fn a_node_with_every_loop_asleep_stops_within_its_grace() {
    let _serial = serial();
    let dir = tempfile::tempdir().unwrap();
    let mut template = betanet::config::Config::default();
    template.pipeline.workers = 1;
    template.node.shutdown_grace_ms = 500;
    #[cfg(feature = "cover-traffic")]
    {
        template.cover_traffic.enabled = true;
        template.cover_traffic.generation_rate_pps = 0.01;
        template.cover_traffic.drop_rate_pps = 0.01;
    }
    let net = betanet::testnet::LocalNet::start(dir.path(), 1, &template).unwrap();
    assert!(net.nodes().all(|n| n.health().alive));
    let (done, stopped) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        net.shutdown();
        let _ = done.send(());
    });
    stopped
        .recv_timeout(Duration::from_millis(500) * 3 + Duration::from_secs(10))
        .expect("three nodes did not stop within their grace");
}
