//! Three directory authorities on loopback and a three-node mixnet: the
//! nodes upload their descriptors, the authorities probe them, vote,
//! reveal, sign, and a client given only the authorities' keys and
//! addresses fetches the consensus, verifies it and sends a message that
//! arrives. Then one authority stops and the next consensus is still made.
//!
//! The authorities run on a manual clock that the test moves a second at a
//! time, so an epoch takes a few seconds of real time; every wait has a
//! deadline.

mod support;

use std::net::TcpListener;
use std::sync::Arc;
use std::time::Duration;

use betanet::authority::daemon::AuthorityDaemon;
use betanet::authority::{AuthorityInfo, AuthoritySet, AuthorityState, ConsensusParams, Timing};
use betanet::client::{Client, Receiver};
use betanet::clock::{ManualClock, WallClock};
use betanet::directory_client::{fetch_consensus, upload_descriptor};
use ed25519_dalek::SigningKey;
use support::{Net, Options, serial, wait_until};

const EPOCH_SECONDS: u64 = 16;

struct Authorities {
    clock: ManualClock,
    set: AuthoritySet,
    daemons: Vec<Option<AuthorityDaemon>>,
}

impl Authorities {
    fn start(n: u8, now: u64) -> Authorities {
        let clock = ManualClock::new(now);
        let listeners: Vec<TcpListener> = (0..n)
            .map(|_| TcpListener::bind("127.0.0.1:0").unwrap())
            .collect();
        let keys: Vec<SigningKey> = (0..n)
            .map(|i| SigningKey::from_bytes(&[i + 11; 32]))
            .collect();
        let set = AuthoritySet::new(
            keys.iter()
                .zip(&listeners)
                .map(|(k, l)| AuthorityInfo {
                    identity_key: k.verifying_key().to_bytes(),
                    addr: l.local_addr().unwrap(),
                })
                .collect(),
        )
        .unwrap();
        let daemons = keys
            .into_iter()
            .zip(listeners)
            .enumerate()
            .map(|(i, (key, listener))| {
                let state = AuthorityState::new(
                    key,
                    set.clone(),
                    Timing::for_epoch(EPOCH_SECONDS),
                    ConsensusParams::default(),
                    [i as u8; 32],
                );
                Some(AuthorityDaemon::spawn(state, listener, Arc::new(clock.clone())).unwrap())
            })
            .collect();
        Authorities {
            clock,
            set,
            daemons,
        }
    }

    /// Moves the clock one second at a time to `until`, giving the
    /// daemons a moment at each second to act (probes, fetches).
    fn run_until(&self, until: u64) {
        while self.clock.unix_seconds() < until {
            self.clock.set(self.clock.unix_seconds() + 1);
            std::thread::sleep(Duration::from_millis(500));
        }
    }

    fn live(&self) -> impl Iterator<Item = &AuthorityDaemon> {
        self.daemons.iter().flatten()
    }
}

#[test]
fn a_client_with_only_authority_keys_sends_a_message_that_arrives() {
    let _serial = serial();
    let net = Net::start(Options::default());
    // Just before an epoch starts: uploads and probes land in its
    // collection phase.
    let now = betanet::clock::unix_now();
    let start = (now / EPOCH_SECONDS + 1) * EPOCH_SECONDS;
    let auth = Authorities::start(3, start);
    for d in &net.descriptors {
        let results = upload_descriptor(&auth.set, d, Duration::from_secs(5));
        assert!(results.iter().all(|(_, r)| r.is_ok()), "{results:?}");
    }
    // Through the round that makes the next epoch's consensus.
    auth.run_until(start + EPOCH_SECONDS);
    wait_until(
        Duration::from_secs(20),
        "every authority to serve the consensus",
        || auth.live().all(|d| d.with_state(|s| s.current().is_some())),
    );

    // The client knows only `auth.set` (keys and addresses).
    let doc =
        fetch_consensus(&auth.set, auth.clock.unix_seconds(), Duration::from_secs(5)).unwrap();
    assert_eq!(doc.consensus.nodes.len(), 3);
    assert_eq!(
        doc.verify(&auth.set, auth.clock.unix_seconds())
            .unwrap()
            .valid,
        3
    );
    let topology = doc.consensus.topology().unwrap();
    let mut receiver = Receiver::bind("127.0.0.1:0".parse().unwrap()).unwrap();
    let mut client = Client::new(topology).unwrap();
    client
        .send(receiver.local_addr().unwrap(), b"through the consensus")
        .unwrap();
    assert_eq!(
        receiver.recv(Duration::from_secs(10)).unwrap(),
        b"through the consensus"
    );

    // One authority stops: the next consensus is made and signed by two.
    let mut auth = auth;
    auth.daemons[2].take().unwrap().stop();
    let next = start + EPOCH_SECONDS;
    for d in &net.descriptors {
        let _ = upload_descriptor(&auth.set, d, Duration::from_secs(5));
    }
    auth.run_until(next + EPOCH_SECONDS);
    wait_until(
        Duration::from_secs(20),
        "the consensus after one authority stopped",
        || {
            auth.live().all(|d| {
                d.with_state(|s| {
                    s.current()
                        .is_some_and(|c| c.consensus.epoch == next / EPOCH_SECONDS + 1)
                })
            })
        },
    );
    let doc =
        fetch_consensus(&auth.set, auth.clock.unix_seconds(), Duration::from_secs(5)).unwrap();
    assert_eq!(doc.consensus.voters.len(), 2);
    assert_eq!(
        doc.verify(&auth.set, auth.clock.unix_seconds())
            .unwrap()
            .valid,
        2
    );
    assert_eq!(doc.consensus.nodes.len(), 3);
}

/// Hostile requests to an authority: refused with a status, never a crash,
/// and the authority keeps answering.
#[test]
fn hostile_uploads_are_refused_and_counted() {
    let auth = Authorities::start(1, 1_000_000);
    let daemon = auth.live().next().unwrap();
    let addr = daemon.local_addr();
    let post = |body: Vec<u8>| {
        betanet::http::client::block_on(betanet::http::client::post_async(
            addr,
            "/authority/descriptor",
            body,
            Duration::from_secs(5),
            4096,
        ))
        .unwrap()
    };
    assert_eq!(post(b"not json".to_vec()).unwrap().status, 400);
    assert_eq!(post(b"{\"version\":1}".to_vec()).unwrap().status, 400);
    // Over the 64 KiB descriptor cap: refused (or the connection cut).
    let huge = post(vec![b' '; 1 << 20]);
    assert!(huge.as_ref().map_or(true, |r| r.status == 413), "{huge:?}");
    // A descriptor whose signature does not match its fields.
    let net_keys = betanet::keys::NodeKeys::generate(&mut rand::rng());
    let key = betanet::topology::SphinxKeyEntry {
        epoch: 0,
        public_key: betanet::sphinx::SphinxSecretKey::from_bytes([3; 32]).public_key(),
    };
    let a: std::net::SocketAddr = "127.0.0.1:9".parse().unwrap();
    let h: std::net::SocketAddr = "127.0.0.1:10".parse().unwrap();
    let mut d = betanet::topology::NodeDescriptor::new_signed(
        &net_keys,
        betanet::NodeRole::Entry,
        a,
        a,
        h,
        vec![key],
        86_400,
    )
    .unwrap();
    d.udp_addr = "127.0.0.1:11".parse().unwrap();
    assert_eq!(post(serde_json::to_vec(&d).unwrap()).unwrap().status, 400);
    for path in ["/nope", "/authority/vote/xyz", "/authority/vote/1"] {
        let r = betanet::http::client::get(addr, path, Duration::from_secs(5)).unwrap();
        assert_eq!(r.status, 404, "{path}");
    }
    let health = betanet::http::client::get(addr, "/health", Duration::from_secs(5)).unwrap();
    assert_eq!(health.status, 200);
    let refused = daemon.with_state(|s| s.counters().uploads_refused);
    assert_eq!(
        refused, 1,
        "the forged descriptor is counted (unparsable bodies never reach the state)"
    );
}
