//! A node's role and addresses are already written down in its signed
//! descriptor (`node.json`, made by `betanet keygen`); `betanet run` takes
//! them from there unless a file, variable or flag says otherwise, so an
//! operator cannot start a node on addresses its peers do not know.

use super::schema::Config;
use crate::topology::{DESCRIPTOR_FILE, NodeDescriptor};

/// Fills the keys `is_set` says nobody set from `node.json` in
/// `config.node.key_dir`; returns whether anything changed.
///
/// Best effort: a missing or invalid descriptor leaves the configuration as
/// it is (the node refuses to start on it anyway, with the reason). Behind
/// NAT (`node.advertise_addr` set) the descriptor's addresses are not this
/// host's, so only the role is taken.
pub(super) fn fill(config: &mut Config, is_set: impl Fn(&str) -> bool) -> bool {
    let path = config.node.key_dir.join(DESCRIPTOR_FILE);
    let Ok(descriptor) = NodeDescriptor::load(&path) else {
        return false;
    };
    let node = &mut config.node;
    let mut changed = false;
    let mut take = |key: &str, apply: &mut dyn FnMut()| {
        if !is_set(key) {
            apply();
            changed = true;
        }
    };
    take("node.role", &mut || node.role = descriptor.role);
    if node.advertise_addr.is_none() {
        take("node.listen_addr", &mut || {
            node.listen_addr = descriptor.udp_addr.ip();
        });
        take("node.port", &mut || node.port = descriptor.udp_addr.port());
        take("node.http_addr", &mut || {
            node.http_addr = descriptor.http_addr
        });
    }
    changed
}
