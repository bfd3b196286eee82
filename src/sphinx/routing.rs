//! The 48-byte per-hop routing command (`sphinx-v1.md`, "Routing commands").

use std::fmt;
use std::net::{IpAddr, Ipv6Addr, SocketAddr};

use super::geometry::ROUTING_LEN;
use super::node_id::NodeId;

const CMD_RELAY: u8 = 0x01;
const CMD_DELIVER: u8 = 0x02;
const CMD_LOOP: u8 = 0x03;
const CMD_DROP: u8 = 0x04;
const CMD_REPLY: u8 = 0x05;

/// Sender-chosen id of a delivered message (e.g. to reassemble fragments).
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct MessageId(pub [u8; 16]);

/// Id a node gives one of its own cover loops, to recognise it on return.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct LoopId(pub [u8; 16]);

/// Id of a single-use reply block, chosen by (derived for) its creator;
/// the REPLY command carries it so the creator finds the SURB's keys.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SurbId(pub [u8; 16]);

impl fmt::Debug for SurbId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SurbId({})", hex::encode(self.0))
    }
}

impl fmt::Debug for MessageId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "MessageId({})", hex::encode(self.0))
    }
}

impl fmt::Debug for LoopId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "LoopId({})", hex::encode(self.0))
    }
}

/// What the final hop does with the message. Only these may end a path, so
/// a packet whose last command is RELAY cannot be built.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FinalCommand {
    /// Send the message as one UDP datagram to `destination`.
    Deliver {
        /// Where the exit node sends the message.
        destination: SocketAddr,
        /// Sender-chosen id, carried alongside the message.
        message_id: MessageId,
    },
    /// A cover loop coming back to the node that built it.
    Loop {
        /// The builder's id for this loop.
        loop_id: LoopId,
    },
    /// Drop cover: the final hop discards the message.
    Drop,
    /// The last hop of a reply (a packet built from a SURB): send
    /// `surb_id ‖ δ'` as one UDP datagram to `destination`, the SURB's
    /// creator. The payload is not checked: only the creator can read it.
    Reply {
        /// The SURB's creator.
        destination: SocketAddr,
        /// Which SURB this reply used.
        surb_id: SurbId,
    },
}

/// One hop's routing command.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RoutingCommand {
    /// Forward the unwrapped frame to the node with this id.
    Relay {
        /// The next node.
        next: NodeId,
    },
    /// This hop is the last one.
    Final(FinalCommand),
}

impl RoutingCommand {
    /// Encodes the command; unused bytes are zero.
    pub fn encode(&self) -> [u8; ROUTING_LEN] {
        let mut out = [0u8; ROUTING_LEN];
        match self {
            RoutingCommand::Relay { next } => {
                out[0] = CMD_RELAY;
                out[1..17].copy_from_slice(next.as_bytes());
            }
            RoutingCommand::Final(FinalCommand::Deliver {
                destination,
                message_id,
            }) => {
                out[0] = CMD_DELIVER;
                encode_address(&mut out, destination);
                out[19..35].copy_from_slice(&message_id.0);
            }
            RoutingCommand::Final(FinalCommand::Loop { loop_id }) => {
                out[0] = CMD_LOOP;
                out[1..17].copy_from_slice(&loop_id.0);
            }
            RoutingCommand::Final(FinalCommand::Drop) => out[0] = CMD_DROP,
            RoutingCommand::Final(FinalCommand::Reply {
                destination,
                surb_id,
            }) => {
                out[0] = CMD_REPLY;
                encode_address(&mut out, destination);
                out[19..35].copy_from_slice(&surb_id.0);
            }
        }
        out
    }

    /// Decodes a command; `None` for an unknown command byte (drop reason
    /// `routing`). Unused bytes are ignored, as the spec says.
    pub fn decode(bytes: &[u8; ROUTING_LEN]) -> Option<Self> {
        let field16 = |at: usize| {
            let mut b = [0u8; 16];
            b.copy_from_slice(&bytes[at..at + 16]);
            b
        };
        Some(match bytes[0] {
            CMD_RELAY => RoutingCommand::Relay {
                next: NodeId::from_bytes(field16(1)),
            },
            CMD_DELIVER => RoutingCommand::Final(FinalCommand::Deliver {
                destination: decode_address(bytes),
                message_id: MessageId(field16(19)),
            }),
            CMD_REPLY => RoutingCommand::Final(FinalCommand::Reply {
                destination: decode_address(bytes),
                surb_id: SurbId(field16(19)),
            }),
            CMD_LOOP => RoutingCommand::Final(FinalCommand::Loop {
                loop_id: LoopId(field16(1)),
            }),
            CMD_DROP => RoutingCommand::Final(FinalCommand::Drop),
            _ => return None,
        })
    }
}

/// Bytes 1..19: IPv6 address (IPv4 mapped) and big-endian port.
fn encode_address(out: &mut [u8; ROUTING_LEN], destination: &SocketAddr) {
    let ip = match destination.ip() {
        IpAddr::V4(v4) => v4.to_ipv6_mapped(),
        IpAddr::V6(v6) => v6,
    };
    out[1..17].copy_from_slice(&ip.octets());
    out[17..19].copy_from_slice(&destination.port().to_be_bytes());
}

/// The inverse of [`encode_address`].
fn decode_address(bytes: &[u8; ROUTING_LEN]) -> SocketAddr {
    let mut octets = [0u8; 16];
    octets.copy_from_slice(&bytes[1..17]);
    let v6 = Ipv6Addr::from(octets);
    let ip = match v6.to_ipv4_mapped() {
        Some(v4) => IpAddr::V4(v4),
        None => IpAddr::V6(v6),
    };
    SocketAddr::new(ip, u16::from_be_bytes([bytes[17], bytes[18]]))
}

impl From<FinalCommand> for RoutingCommand {
    fn from(command: FinalCommand) -> Self {
        RoutingCommand::Final(command)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_command_round_trips() {
        let commands = [
            RoutingCommand::Relay {
                next: NodeId::from_bytes([3; 16]),
            },
            FinalCommand::Deliver {
                destination: "10.0.0.7:7000".parse().unwrap(),
                message_id: MessageId([9; 16]),
            }
            .into(),
            FinalCommand::Deliver {
                destination: "[2001:db8::1]:443".parse().unwrap(),
                message_id: MessageId([1; 16]),
            }
            .into(),
            FinalCommand::Loop {
                loop_id: LoopId([4; 16]),
            }
            .into(),
            FinalCommand::Drop.into(),
            FinalCommand::Reply {
                destination: "127.0.0.1:40000".parse().unwrap(),
                surb_id: SurbId([5; 16]),
            }
            .into(),
        ];
        for command in commands {
            assert_eq!(RoutingCommand::decode(&command.encode()), Some(command));
        }
    }

    #[test]
    fn unknown_command_bytes_are_rejected() {
        for byte in [0x00, 0x06, 0xff] {
            let mut raw = [0u8; ROUTING_LEN];
            raw[0] = byte;
            assert_eq!(RoutingCommand::decode(&raw), None);
        }
    }

    #[test]
    fn unused_bytes_are_ignored() {
        let mut raw = RoutingCommand::Final(FinalCommand::Drop).encode();
        raw[40] = 0xaa;
        assert_eq!(
            RoutingCommand::decode(&raw),
            Some(RoutingCommand::Final(FinalCommand::Drop))
        );
    }
}
