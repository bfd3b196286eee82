//! A node's place in the stratified mixnet.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// Which layer a node serves: packets go entry (layer 1) → middle (layer 2)
/// → exit (layer 3).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum NodeRole {
    /// Layer 1: accepts packets from anyone.
    Entry,
    /// Layer 2: accepts packets only from topology members.
    Middle,
    /// Layer 3: accepts packets only from topology members; delivers.
    Exit,
}

impl NodeRole {
    /// All roles in path order.
    pub const ALL: [NodeRole; 3] = [NodeRole::Entry, NodeRole::Middle, NodeRole::Exit];

    /// The layer number (1, 2 or 3).
    pub const fn layer(self) -> u8 {
        match self {
            NodeRole::Entry => 1,
            NodeRole::Middle => 2,
            NodeRole::Exit => 3,
        }
    }

    /// The role of a layer number.
    pub const fn from_layer(layer: u8) -> Option<Self> {
        match layer {
            1 => Some(NodeRole::Entry),
            2 => Some(NodeRole::Middle),
            3 => Some(NodeRole::Exit),
            _ => None,
        }
    }

    /// The role whose nodes this role forwards to (`None` for exit).
    pub const fn next(self) -> Option<Self> {
        NodeRole::from_layer(self.layer() + 1)
    }

    /// Lower-case name, as in config files and metrics labels.
    pub const fn as_str(self) -> &'static str {
        match self {
            NodeRole::Entry => "entry",
            NodeRole::Middle => "middle",
            NodeRole::Exit => "exit",
        }
    }
}

impl fmt::Display for NodeRole {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why a string is not a role.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("a node role is entry, middle or exit; got {0:?}")]
pub struct ParseRoleError(String);

impl FromStr for NodeRole {
    type Err = ParseRoleError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        NodeRole::ALL
            .into_iter()
            .find(|r| r.as_str().eq_ignore_ascii_case(s))
            .ok_or_else(|| ParseRoleError(s.to_owned()))
    }
}
