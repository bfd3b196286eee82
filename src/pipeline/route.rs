//! What a node does with an unwrapped packet: pure decisions from the role,
//! the exit policy and the next-hop table, tested without sockets.

use std::collections::HashMap;
use std::net::SocketAddr;

use ipnet::IpNet;

use super::drop_cause::DropCause;
use super::packet::Target;
use crate::role::NodeRole;
use crate::sphinx::{FinalCommand, LoopId, MessageId, NodeId, Unwrapped};

/// Where frames for a node id go.
pub trait NextHops: Send + Sync {
    /// The address of node `id` if it is a next hop this node may use.
    fn next_hop(&self, id: &NodeId) -> Option<SocketAddr>;
}

impl NextHops for HashMap<NodeId, SocketAddr> {
    fn next_hop(&self, id: &NodeId) -> Option<SocketAddr> {
        self.get(id).copied()
    }
}

/// The outcome for one unwrapped packet.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Decision {
    /// Hold for the mixing delay, then send to the target: the frame to the
    /// next hop, or (exit nodes) the message to its destination.
    Send(Target),
    /// One of this node's cover loops came back.
    LoopReturned {
        /// The loop's id.
        loop_id: LoopId,
    },
    /// Drop cover reached its end; nothing to do.
    CoverConsumed,
    /// Drop the packet.
    Drop(DropCause),
}

impl Decision {
    /// Whether this is a reply (REPLY command) going to its SURB's creator.
    pub fn is_reply(&self) -> bool {
        matches!(
            self,
            Decision::Send(Target::Deliver {
                len: crate::sphinx::geometry::REPLY_DATAGRAM_LEN,
                ..
            })
        )
    }
}

/// The node-level rules applied after the Sphinx engine.
#[derive(Clone, Debug)]
pub struct RoutingPolicy {
    /// This node's role; only exits deliver.
    pub role: NodeRole,
    /// Destinations an exit may deliver to.
    pub exit_allow: Vec<IpNet>,
}

impl RoutingPolicy {
    /// Whether this node delivers to `destination` (exits only, within
    /// the exit policy).
    fn may_deliver_to(&self, destination: &SocketAddr) -> bool {
        self.role == NodeRole::Exit
            && self
                .exit_allow
                .iter()
                .any(|net| net.contains(&destination.ip()))
    }

    /// Decides what to do with an accepted packet.
    pub fn decide(&self, unwrapped: &Unwrapped<'_>, hops: &dyn NextHops) -> Decision {
        match unwrapped {
            Unwrapped::Relay { next, .. } => match hops.next_hop(next) {
                Some(addr) => Decision::Send(Target::Hop { next: *next, addr }),
                None => Decision::Drop(DropCause::UnknownNextHop),
            },
            Unwrapped::Final {
                command, message, ..
            } => match command {
                FinalCommand::Deliver {
                    destination,
                    message_id,
                } => {
                    if self.may_deliver_to(destination) {
                        Decision::Send(Target::Deliver {
                            destination: *destination,
                            message_id: *message_id,
                            len: message.len(),
                        })
                    } else {
                        Decision::Drop(DropCause::ExitPolicy)
                    }
                }
                FinalCommand::Reply {
                    destination,
                    surb_id,
                } => {
                    // A reply's datagram (`surb_id ‖ δ'`) goes out like a
                    // delivered message, under the same exit policy.
                    if self.may_deliver_to(destination) {
                        Decision::Send(Target::Deliver {
                            destination: *destination,
                            message_id: MessageId(surb_id.0),
                            len: message.len(),
                        })
                    } else {
                        Decision::Drop(DropCause::ExitPolicy)
                    }
                }
                FinalCommand::Loop { loop_id } => Decision::LoopReturned { loop_id: *loop_id },
                FinalCommand::Drop => Decision::CoverConsumed,
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sphinx::{ReplayTag, SurbId};

    fn policy(role: NodeRole) -> RoutingPolicy {
        RoutingPolicy {
            role,
            exit_allow: vec!["127.0.0.0/8".parse().unwrap()],
        }
    }

    fn deliver_to(addr: &str) -> Unwrapped<'static> {
        Unwrapped::Final {
            command: FinalCommand::Deliver {
                destination: addr.parse().unwrap(),
                message_id: MessageId([1; 16]),
            },
            message: b"hi",
            replay_tag: ReplayTag([0; 32]),
        }
    }

    #[test]
    fn relay_needs_a_known_next_hop() {
        let known = NodeId::from_bytes([1; 16]);
        let addr: SocketAddr = "127.0.0.1:9002".parse().unwrap();
        let hops = HashMap::from([(known, addr)]);
        let relay = |next| Unwrapped::Relay {
            next,
            frame: &[],
            replay_tag: ReplayTag([0; 32]),
        };
        let p = policy(NodeRole::Entry);
        assert_eq!(
            p.decide(&relay(known), &hops),
            Decision::Send(Target::Hop { next: known, addr })
        );
        assert_eq!(
            p.decide(&relay(NodeId::from_bytes([2; 16])), &hops),
            Decision::Drop(DropCause::UnknownNextHop)
        );
    }

    #[test]
    fn replies_go_out_like_deliveries() {
        let reply = |addr: &str| Unwrapped::Final {
            command: FinalCommand::Reply {
                destination: addr.parse().unwrap(),
                surb_id: SurbId([2; 16]),
            },
            message: &[0; 1040],
            replay_tag: ReplayTag([0; 32]),
        };
        let hops = HashMap::new();
        assert!(matches!(
            policy(NodeRole::Exit).decide(&reply("127.0.0.1:5000"), &hops),
            Decision::Send(Target::Deliver { len: 1040, .. })
        ));
        assert_eq!(
            policy(NodeRole::Exit).decide(&reply("192.0.2.1:5000"), &hops),
            Decision::Drop(DropCause::ExitPolicy)
        );
    }

    #[test]
    fn only_exits_deliver_and_only_where_allowed() {
        let hops = HashMap::new();
        assert!(matches!(
            policy(NodeRole::Exit).decide(&deliver_to("127.0.0.1:5000"), &hops),
            Decision::Send(Target::Deliver { len: 2, .. })
        ));
        assert_eq!(
            policy(NodeRole::Exit).decide(&deliver_to("192.0.2.1:5000"), &hops),
            Decision::Drop(DropCause::ExitPolicy)
        );
        assert_eq!(
            policy(NodeRole::Middle).decide(&deliver_to("127.0.0.1:5000"), &hops),
            Decision::Drop(DropCause::ExitPolicy)
        );
    }
}
