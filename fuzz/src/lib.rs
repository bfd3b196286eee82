//! Shared pieces of betanet's fuzz targets: fixed test keys, real packets
//! to mutate, and decoding of fuzzer input into structured values.
//!
//! Everything here is deterministic (fixed keys and seeds), so a crashing
//! input replays the same way in `tests/fuzz_regressions.rs`.

pub mod alloc_meter;

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::OnceLock;

use betanet::SphinxProcessor;
use betanet::sphinx::{
    FRAME_LEN, FinalCommand, LoopId, MAX_HOPS, MAX_MESSAGE, MessageId, NodeId, PathHop,
    SphinxSecretKey, create_packet_with_seed,
};
use libfuzzer_sys::arbitrary::{Result, Unstructured};

/// A node whose secret the fuzzer knows, so it can unwrap every hop.
pub struct TestNode {
    /// The node's id (what RELAY commands name).
    pub id: NodeId,
    /// Unwraps frames with the node's Sphinx key.
    pub processor: SphinxProcessor,
}

impl TestNode {
    /// The node as a path hop.
    pub fn hop(&self) -> PathHop {
        PathHop {
            id: self.id,
            public_key: self.processor.public_key(),
        }
    }
}

/// Three test nodes with fixed keys; real frames are addressed to `[0]`.
pub fn nodes() -> &'static [TestNode; 3] {
    static NODES: OnceLock<[TestNode; 3]> = OnceLock::new();
    NODES.get_or_init(|| {
        std::array::from_fn(|i| TestNode {
            id: NodeId::from_bytes([0x10 + i as u8; 16]),
            processor: SphinxProcessor::new(SphinxSecretKey::from_bytes([0x42 + i as u8; 32])),
        })
    })
}

/// Valid frames for `nodes()[0]`: final hops of every kind and relays.
pub fn real_frames() -> &'static [[u8; FRAME_LEN]] {
    static FRAMES: OnceLock<Vec<[u8; FRAME_LEN]>> = OnceLock::new();
    FRAMES.get_or_init(|| {
        let [a, b, c] = nodes();
        let deliver = FinalCommand::Deliver {
            destination: "192.0.2.7:7000".parse().expect("an address"),
            message_id: MessageId([5; 16]),
        };
        let cases: [(Vec<PathHop>, FinalCommand, &[u8]); 5] = [
            (vec![a.hop()], deliver, b"hello"),
            (
                vec![a.hop()],
                FinalCommand::Loop {
                    loop_id: LoopId([6; 16]),
                },
                b"",
            ),
            (vec![a.hop()], FinalCommand::Drop, &[0xab; MAX_MESSAGE]),
            (vec![a.hop(), b.hop()], deliver, b"two hops"),
            (vec![a.hop(), b.hop(), c.hop()], deliver, b"three hops"),
        ];
        cases
            .iter()
            .enumerate()
            .map(|(i, (path, command, message))| {
                create_packet_with_seed(path, *command, message, &[i as u8 + 1; 32])
                    .expect("a valid packet")
                    .frame
            })
            .map(|frame| *frame)
            .collect()
    })
}

/// Flips up to 64 bits of `frame`, at positions the input picks.
pub fn flip_bits(u: &mut Unstructured<'_>, frame: &mut [u8]) -> Result<()> {
    if frame.is_empty() {
        return Ok(());
    }
    let flips = u.int_in_range(0..=64u8)?;
    for _ in 0..flips {
        let bit = u.int_in_range(0..=frame.len() * 8 - 1)?;
        frame[bit / 8] ^= 1 << (bit % 8);
    }
    Ok(())
}

/// One frame for `nodes()[0]`, chosen and shaped by the input:
/// a real frame with bits flipped, input bytes with a valid frame prefix,
/// or the raw input bytes (any length).
pub fn frame_from(u: &mut Unstructured<'_>) -> Result<Vec<u8>> {
    Ok(match u.int_in_range(0..=2u8)? {
        0 => {
            let real = u.choose(real_frames())?;
            let mut frame = real.to_vec();
            flip_bits(u, &mut frame)?;
            frame
        }
        1 => {
            let mut frame = vec![0u8; FRAME_LEN];
            frame[0] = 0x01;
            let take = u.len().min(FRAME_LEN - 2);
            frame[2..2 + take].copy_from_slice(u.bytes(take)?);
            frame
        }
        _ => {
            let len = u.int_in_range(0..=FRAME_LEN + 16)?;
            let len = len.min(u.len());
            u.bytes(len)?.to_vec()
        }
    })
}

/// A path over the test nodes (repeats allowed), 1 to `MAX_HOPS` long.
pub fn path_from(u: &mut Unstructured<'_>) -> Result<Vec<usize>> {
    let hops = u.int_in_range(1..=MAX_HOPS)?;
    (0..hops).map(|_| u.int_in_range(0..=2usize)).collect()
}

/// Any final command: DELIVER (IPv4 or IPv6), LOOP or DROP.
pub fn final_command_from(u: &mut Unstructured<'_>) -> Result<FinalCommand> {
    Ok(match u.int_in_range(0..=2u8)? {
        0 => {
            let ip = if u.arbitrary()? {
                IpAddr::V4(Ipv4Addr::from(u.arbitrary::<[u8; 4]>()?))
            } else {
                IpAddr::V6(Ipv6Addr::from(u.arbitrary::<[u8; 16]>()?))
            };
            FinalCommand::Deliver {
                destination: SocketAddr::new(ip, u.arbitrary()?),
                message_id: MessageId(u.arbitrary()?),
            }
        }
        1 => FinalCommand::Loop {
            loop_id: LoopId(u.arbitrary()?),
        },
        _ => FinalCommand::Drop,
    })
}

/// `command` as the final hop decodes it: a v4-mapped IPv6 destination
/// travels as, and comes back as, IPv4.
pub fn as_decoded(command: FinalCommand) -> FinalCommand {
    match command {
        FinalCommand::Deliver {
            destination,
            message_id,
        } => {
            let ip = match destination.ip() {
                IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(IpAddr::V6(v6), IpAddr::V4),
                v4 => v4,
            };
            FinalCommand::Deliver {
                destination: SocketAddr::new(ip, destination.port()),
                message_id,
            }
        }
        other => other,
    }
}
