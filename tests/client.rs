//! The client library against a real three-node mixnet on loopback.

mod support;

use std::time::Duration;

use betanet::client::{Client, Receiver, Transport};
use betanet::topology::Topology;
use support::{Net, Options, serial};

#[test]
fn long_messages_are_fragmented_and_reassembled() {
    let _serial = serial();
    let net = Net::start(Options::default());
    let topology = Topology::load(&net.topology_path()).unwrap();
    let mut receiver = Receiver::bind("127.0.0.1:0".parse().unwrap()).unwrap();
    let mut client = Client::new(topology).unwrap();
    let message: Vec<u8> = (0..5000u32).map(|i| (i % 251) as u8).collect();
    let report = client
        .send(receiver.local_addr().unwrap(), &message)
        .unwrap();
    assert_eq!(report.packets, 6);
    assert!(report.routes.iter().all(|r| r.nodes().len() == 3));
    assert_eq!(receiver.recv(Duration::from_secs(10)).unwrap(), message);
}

#[test]
fn short_messages_arrive() {
    let _serial = serial();
    let net = Net::start(Options::default());
    let topology = Topology::load(&net.topology_path()).unwrap();
    let mut receiver = Receiver::bind("127.0.0.1:0".parse().unwrap()).unwrap();
    let to = receiver.local_addr().unwrap();
    let mut client = Client::new(topology)
        .unwrap()
        .with_transport(Transport::Udp);
    for i in 0..50 {
        client.send(to, format!("note {i}").as_bytes()).unwrap();
    }
    let mut got: Vec<String> = (0..50)
        .map(|_| String::from_utf8(receiver.recv(Duration::from_secs(10)).unwrap()).unwrap())
        .collect();
    got.sort();
    let mut want: Vec<String> = (0..50).map(|i| format!("note {i}")).collect();
    want.sort();
    assert_eq!(got, want);
}
