//! Links on a real three-node net (links are on by default): a member's
//! address buys nothing without its key, a key outside the topology is
//! refused, a member's key is accepted, clients reach the entry over an
//! anonymous session, and a restarted node gets its sessions back.

mod support;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream, UdpSocket};
use std::time::{Duration, Instant};

use betanet::NodeRole;
use betanet::client::{Client, Receiver, Transport};
use betanet::keys::SphinxKeyStore;
use betanet::link::blocking::open_session;
use betanet::link::{HandshakeFailure, LinkKeyPair, LinkPublicKey};
use betanet::sphinx::{FinalCommand, MessageId, PathHop, create_packet};
use betanet::topology::{NodeDescriptor, Topology};
use support::{Net, Options, receive, serial, wait_until};

const QUIET: Duration = Duration::from_millis(1500);
const ARRIVES: Duration = Duration::from_secs(10);

/// A packet over `hops` delivering `message` to `to`.
fn packet(hops: &[PathHop], to: SocketAddr, message: &[u8]) -> Vec<u8> {
    let command = FinalCommand::Deliver {
        destination: to,
        message_id: MessageId([0; 16]),
    };
    create_packet(hops, command, message, &mut rand::rng())
        .unwrap()
        .frame
        .to_vec()
}

fn sink() -> (UdpSocket, SocketAddr) {
    let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
    let addr = socket.local_addr().unwrap();
    (socket, addr)
}

fn descriptor(net: &Net, role: NodeRole) -> NodeDescriptor {
    net.node(role).descriptor()
}

/// The current link key of `node` and its epoch.
fn link_key(node: &NodeDescriptor) -> (LinkPublicKey, u64) {
    let epoch = node.key_epoch_at(betanet::clock::unix_now());
    let entry = node.link_key_for_epoch(epoch).expect("a link key");
    (entry.public_key.clone(), entry.epoch)
}

/// The link key pair of the node of `role`, from its key files (what a
/// compromised member would hold).
fn stolen_key(net: &Net, role: NodeRole) -> LinkKeyPair {
    let dir = net.node(role).config().node.key_dir.clone();
    let keys = SphinxKeyStore::open(&dir).unwrap().load_all().unwrap();
    let epoch = link_key(&descriptor(net, role)).1;
    LinkKeyPair::derive(&keys[&epoch].to_bytes())
}

fn drops(net: &Net, role: NodeRole, reason: &str) -> u64 {
    net.node(role)
        .stats()
        .dropped
        .get(reason)
        .copied()
        .unwrap_or(0)
}

fn handshakes(net: &Net, role: NodeRole, result: &str) -> u64 {
    let m = net.node(role).metrics_snapshot().links;
    if result == "ok" {
        return m.handshakes_ok;
    }
    let i = HandshakeFailure::ALL
        .iter()
        .position(|f| f.as_str() == result)
        .unwrap();
    m.handshakes_failed[i]
}

/// The middle → exit part of the net's path.
fn middle_path(net: &Net) -> Vec<PathHop> {
    net.path()[1..].to_vec()
}

#[test]
fn a_frame_from_a_members_address_without_a_session_is_not_forwarded() {
    let _serial = serial();
    let net = Net::start(Options::default());
    let (socket, to) = sink();
    let middle = descriptor(&net, NodeRole::Middle);

    // Straight to the middle node, from 127.0.0.1: the address every
    // member of this net has. Over UDP and over TCP.
    let udp = UdpSocket::bind("127.0.0.1:0").unwrap();
    udp.send_to(
        &packet(&middle_path(&net), to, b"forged udp"),
        middle.udp_addr,
    )
    .unwrap();
    let mut tcp = TcpStream::connect(middle.tcp_addr).unwrap();
    tcp.write_all(&packet(&middle_path(&net), to, b"forged tcp"))
        .unwrap();
    assert!(
        receive(&socket, 1, QUIET).is_empty(),
        "a plaintext frame reached the exit through the middle node"
    );
    wait_until(ARRIVES, "both frames counted as unauthenticated", || {
        drops(&net, NodeRole::Middle, "unauthenticated") >= 2
    });
    assert_eq!(net.node(NodeRole::Middle).stats().processed, 0);

    // The same path through the entry works: entry → middle → exit ride
    // authenticated sessions.
    let udp = UdpSocket::bind("127.0.0.1:0").unwrap();
    udp.send_to(&net.packet(to, b"through the entry"), net.entry_udp())
        .unwrap();
    let got = receive(&socket, 1, ARRIVES);
    assert_eq!(got.len(), 1, "the real path delivers");
    assert!(handshakes(&net, NodeRole::Middle, "ok") >= 1);
    assert!(
        net.node(NodeRole::Entry)
            .metrics_snapshot()
            .links
            .sessions_member_outbound
            >= 1
    );
}

#[test]
fn a_session_with_a_key_outside_the_topology_is_refused() {
    let _serial = serial();
    let net = Net::start(Options::default());
    let middle = descriptor(&net, NodeRole::Middle);
    let (key, epoch) = link_key(&middle);

    // A stranger's own key: refused once its first message is read.
    let stranger = LinkKeyPair::generate(&mut rand::rng());
    let mut stream = TcpStream::connect(middle.tcp_addr).unwrap();
    stream.set_read_timeout(Some(ARRIVES)).unwrap();
    assert!(open_session(&mut stream, Some(&stranger), &key, epoch).is_err());
    // Anonymous: refused at a middle node.
    let mut stream = TcpStream::connect(middle.tcp_addr).unwrap();
    stream.set_read_timeout(Some(ARRIVES)).unwrap();
    assert!(open_session(&mut stream, None, &key, epoch).is_err());
    // Another node's key pinned (a man in the middle's view): the
    // handshake cannot complete for the initiator.
    let exit = descriptor(&net, NodeRole::Exit);
    let mut stream = TcpStream::connect(middle.tcp_addr).unwrap();
    stream.set_read_timeout(Some(ARRIVES)).unwrap();
    let wrong = link_key(&exit).0;
    assert!(
        open_session(
            &mut stream,
            Some(&stolen_key(&net, NodeRole::Entry)),
            &wrong,
            epoch
        )
        .is_err()
    );
    // Garbage after the magic.
    let mut stream = TcpStream::connect(middle.tcp_addr).unwrap();
    stream.set_read_timeout(Some(ARRIVES)).unwrap();
    stream
        .write_all(b"BNLK\x01\x09\0\0\0\0\0\0\0\0\0\0\0\x10")
        .unwrap();
    let mut byte = [0u8; 1];
    assert!(matches!(stream.read(&mut byte), Ok(0) | Err(_)), "closed");

    wait_until(ARRIVES, "each refusal counted by reason", || {
        handshakes(&net, NodeRole::Middle, "unknown_peer") >= 1
            && handshakes(&net, NodeRole::Middle, "anonymous_refused") >= 1
            && handshakes(&net, NodeRole::Middle, "crypto") >= 1
            && handshakes(&net, NodeRole::Middle, "unsupported") >= 1
    });
    assert_eq!(net.node(NodeRole::Middle).stats().processed, 0);
}

#[test]
fn a_members_key_opens_a_session_that_forwards() {
    let _serial = serial();
    let net = Net::start(Options::default());
    let (socket, to) = sink();
    let middle = descriptor(&net, NodeRole::Middle);
    let (key, epoch) = link_key(&middle);
    let entry_key = stolen_key(&net, NodeRole::Entry);

    let mut stream = TcpStream::connect(middle.tcp_addr).unwrap();
    stream.set_read_timeout(Some(ARRIVES)).unwrap();
    let mut session = open_session(&mut stream, Some(&entry_key), &key, epoch).unwrap();
    let mut records = Vec::new();
    for i in 0..3u8 {
        let frame = packet(&middle_path(&net), to, &[i; 8]);
        session
            .sealer
            .seal(Instant::now(), &frame, &mut records)
            .unwrap();
    }
    stream.write_all(&records).unwrap();
    assert_eq!(receive(&socket, 3, ARRIVES).len(), 3);

    // A replayed record ends the session; nothing more is taken from it.
    stream
        .write_all(&records[..betanet::link::RECORD_LEN])
        .unwrap();
    wait_until(ARRIVES, "the replayed record rejected", || {
        net.node(NodeRole::Middle)
            .metrics_snapshot()
            .links
            .records_rejected
            >= 1
    });
}

#[test]
fn clients_reach_the_entry_over_an_anonymous_session() {
    let _serial = serial();
    let net = Net::start(Options::default());
    let mut receiver = Receiver::bind("127.0.0.1:0".parse().unwrap()).unwrap();
    let to = receiver.local_addr().unwrap();
    let topology = Topology::load(&net.topology_path()).unwrap();
    let mut client = Client::new(topology).unwrap();
    client.send(to, b"over a link").unwrap();
    assert_eq!(receiver.recv(ARRIVES).unwrap(), b"over a link");
    let m = net.node(NodeRole::Entry).metrics_snapshot().links;
    assert_eq!(m.sessions_client, 1, "the client's session is open");
    // Plaintext clients still work by default ...
    let mut plain = Client::new(Topology::load(&net.topology_path()).unwrap())
        .unwrap()
        .with_transport(Transport::Udp);
    plain.send(to, b"plaintext").unwrap();
    assert_eq!(receiver.recv(ARRIVES).unwrap(), b"plaintext");
}

#[test]
fn entry_nodes_can_refuse_plaintext_clients() {
    let _serial = serial();
    let mut net = Net::start(Options::default());
    net.local
        .restart_with(0, |c| c.transport.client_plaintext = false)
        .unwrap();
    let (socket, to) = sink();
    let udp = UdpSocket::bind("127.0.0.1:0").unwrap();
    udp.send_to(&net.packet(to, b"plain"), net.entry_udp())
        .unwrap();
    assert!(receive(&socket, 1, QUIET).is_empty());
    wait_until(ARRIVES, "counted", || {
        drops(&net, NodeRole::Entry, "unauthenticated") >= 1
    });
    let mut receiver = Receiver::bind("127.0.0.1:0".parse().unwrap()).unwrap();
    let to = receiver.local_addr().unwrap();
    let mut client = Client::new(Topology::load(&net.topology_path()).unwrap()).unwrap();
    client.send(to, b"sealed").unwrap();
    assert_eq!(receiver.recv(ARRIVES).unwrap(), b"sealed");
}

#[test]
fn a_restarted_node_gets_its_sessions_back() {
    let _serial = serial();
    let mut net = Net::start(Options::default());
    let (socket, to) = sink();
    let udp = UdpSocket::bind("127.0.0.1:0").unwrap();
    udp.send_to(&net.packet(to, b"before"), net.entry_udp())
        .unwrap();
    assert_eq!(receive(&socket, 1, ARRIVES).len(), 1);

    net.restart(NodeRole::Middle);
    // The entry's session to the old middle broke with it; the next
    // frames reconnect and handshake again. Send until one arrives (the
    // first may be written into the dead connection and lost: in flight).
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut arrived = 0;
    while arrived == 0 && Instant::now() < deadline {
        udp.send_to(&net.packet(to, b"after"), net.entry_udp())
            .unwrap();
        arrived = receive(&socket, 1, Duration::from_millis(500)).len();
    }
    assert_eq!(arrived, 1, "sessions re-established after the restart");
    assert!(handshakes(&net, NodeRole::Middle, "ok") >= 1);
}
