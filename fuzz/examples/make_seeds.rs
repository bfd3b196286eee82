//! Writes the committed seed corpora, `fuzz/seeds/<target>/`: small inputs
//! that start each fuzz target on real data (a real frame stream, the
//! descriptors and topology of a fresh three-node network, the shipped
//! config, a journal, real VRF proofs).
//!
//! ```text
//! cargo run --manifest-path fuzz/Cargo.toml --example make_seeds -- fuzz/seeds
//! ```
//!
//! Keys are fresh each run, so the descriptor and topology seeds differ
//! from run to run; everything else is deterministic.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use betanet::NodeRole;
use betanet::keys::{KeygenParams, VrfSecretKey, keygen};
use betanet::sphinx::FRAME_LEN;
use betanet::topology::{NetworkParams, Topology};
use betanet::vrf::{Epoch, EpochProofs, EpochPublication};
use betanet::link::{Initiator, LinkKeyPair};
use betanet_fuzz::real_frames;

fn main() {
    let out = PathBuf::from(
        std::env::args()
            .nth(1)
            .unwrap_or_else(|| "fuzz/seeds".into()),
    );
    let repo = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");

    // Sphinx frames: the harness holds real packets itself; these pick them
    // (mode 0, a real frame, unchanged or with a few bits flipped) or build
    // new ones (mode 1).
    for i in 0..real_frames().len() as u8 {
        write(&out, "unwrap_frame", &format!("real-{i}"), &[0, 0, i, 0]);
        write(
            &out,
            "unwrap_frame",
            &format!("flipped-{i}"),
            &[0, 0, i, 3, 9, 200, 77],
        );
    }
    write(
        &out,
        "unwrap_frame",
        "built",
        &[1, 2, 0, 1, 2, 0, 1, 7, 7, 7],
    );
    write(&out, "unwrap_frame", "routing", &[2, 1, 0x10, 0x11]);
    write(
        &out,
        "unwrap_batch",
        "real-and-replayed",
        &[4, 0, 0, 0, 0, 0, 0, 3, 0, 0, 0, 4, 0],
    );
    write(&out, "unwrap_batch", "one", &[1, 0, 0, 1, 0]);

    // A TCP stream: no piece sizes, then two real frames and half of one.
    let mut stream = vec![0u8];
    stream.extend_from_slice(&real_frames()[0][..]);
    stream.extend_from_slice(&real_frames()[3][..]);
    stream.extend_from_slice(&real_frames()[4][..FRAME_LEN / 2]);
    write(&out, "tcp_codec", "frames", &stream);
    let mut pieces = vec![3u8, 1, 0, 0xff, 0x01, 0, 0];
    pieces.extend_from_slice(&real_frames()[1][..]);
    write(&out, "tcp_codec", "pieces", &pieces);

    // A fresh network's descriptors and topology.
    let dir = tempfile::tempdir().expect("a temp dir");
    let mut descriptors = Vec::new();
    for (i, role) in NodeRole::ALL.into_iter().enumerate() {
        let addr = |port: u16| -> SocketAddr {
            format!("127.0.0.1:{}", port + i as u16)
                .parse()
                .expect("an address")
        };
        let params = KeygenParams {
            role,
            udp_addr: addr(9001),
            tcp_addr: addr(9001),
            http_addr: addr(9101),
            key_epoch_seconds: 86_400,
            now_unix: 1_700_000_000,
            network: NetworkParams::default(),
        };
        let descriptor = keygen(&dir.path().join(role.as_str()), params).expect("keygen");
        write(
            &out,
            "descriptor_json",
            role.as_str(),
            &descriptor.to_json().expect("encodes"),
        );
        descriptors.push(descriptor);
    }
    let topology = Topology::build(descriptors).expect("a valid topology");
    write(
        &out,
        "topology_json",
        "three-nodes",
        &topology.to_json().expect("encodes"),
    );

    // The shipped config, alone, and under a variable and a --set.
    let shipped = std::fs::read(repo.join("config/mixnode.toml")).expect("config/mixnode.toml");
    let mut alone = vec![0u8];
    alone.extend_from_slice(&shipped);
    write(&out, "config_layers", "shipped", &alone);
    let choices: &[u8] = &[1, 1, 2, b'5', 1, 0, 1, b'7'];
    let mut layered = vec![choices.len() as u8];
    layered.extend_from_slice(choices);
    layered.extend_from_slice(b"[mixing]\nmean_delay_ms = 5.0\n");
    write(&out, "config_layers", "layered", &layered);

    // Journals: 3 records and a torn tail behind a valid header; headers
    // of this and the previous format; an interrupted creation.
    let mut journal = vec![(8 << 1) | 1];
    for record in 1..=3u8 {
        journal.extend_from_slice(&[record; 16]);
    }
    journal.extend_from_slice(&[9; 5]);
    write(&out, "replay_journal", "records", &journal);
    let mut v02 = vec![4 << 1];
    v02.extend_from_slice(b"BNRPLY02fuzz jou");
    write(&out, "replay_journal", "header-only", &v02);
    let mut v01 = vec![4 << 1];
    v01.extend_from_slice(b"BNRPLY01fuzz jou");
    v01.extend_from_slice(&[1; 8]);
    write(&out, "replay_journal", "version-01", &v01);
    write(
        &out,
        "replay_journal",
        "interrupted",
        &[2, b'B', b'N', b'R'],
    );

    // Reassembly: limits, then a whole message, stray fragments, time.
    write(
        &out,
        "fragment_reassembly",
        "message",
        &[
            4, 0x10, 0, 0x03, 0xe8, 2, 0x08, 0x00, 7, 1, 1, 2, 0, 1, 0, 3, 0, 0x40, 0, 0, 3, 0x03,
            0xe8,
        ],
    );

    // VRF: a real publication, its proof as raw bytes, a flipped proof.
    let proofs = EpochProofs::evaluate(&VrfSecretKey::from_bytes([0x5a; 32]), Epoch(2));
    let publication = EpochPublication {
        proofs,
        network: Some(NetworkParams::default()),
    };
    let mut json = vec![0u8];
    json.extend_from_slice(&serde_json::to_vec_pretty(&publication).expect("encodes"));
    write(&out, "vrf_proofs", "publication", &json);
    let mut raw = vec![1u8, 0];
    raw.extend_from_slice(proofs.delay.proof.as_bytes());
    raw.extend_from_slice(&[1, 0x18]);
    raw.extend_from_slice(b"betanet delay v1\0\0\0\0\0\0\0\x02");
    write(&out, "vrf_proofs", "raw-proof", &raw);
    write(&out, "vrf_proofs", "flipped", &[2, 1, 0, 2, 17, 144, 3, 4]);

    // Link handshakes: real first flights to the harness's responder key
    // (as a member and anonymously), without the length prefix; and a few
    // records' worth of bytes for the session receiver.
    let responder = LinkKeyPair::derive(&[7; 32]);
    let member = LinkKeyPair::derive(&[8; 32]);
    for (name, own) in [("member", Some(&member)), ("anonymous", None)] {
        let (_, first) = Initiator::start(own, responder.public(), 0).expect("a first flight");
        let mut seed = vec![0u8];
        seed.extend_from_slice(&first[..16]);
        seed.extend_from_slice(&first[18..]);
        write(&out, "link_handshake", name, &seed);
    }
    let mut records = vec![1u8];
    records.extend_from_slice(&real_frames()[0][..]);
    records.extend_from_slice(&[0u8; 40]);
    write(&out, "link_handshake", "records", &records);
}

fn write(out: &Path, target: &str, name: &str, bytes: &[u8]) {
    let dir = out.join(target);
    std::fs::create_dir_all(&dir).expect("creating the seed directory");
    std::fs::write(dir.join(name), bytes).expect("writing a seed");
}
