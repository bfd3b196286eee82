//! A node must listen where its descriptor tells peers to send; otherwise it
//! starts "fine" and its traffic silently vanishes. This checks the
//! configured listeners against `node.json` before anything is bound.

use std::net::SocketAddr;
use std::path::Path;

use super::error::NodeError;
use crate::config::Config;
use crate::topology::NodeDescriptor;

/// Refuses a configuration whose listeners differ from what `descriptor`
/// (read from `path`) advertises.
///
/// A listener matches its advertised address when both are equal, or when
/// it binds the wildcard IP (`0.0.0.0`, `::`) on the advertised port. Behind
/// NAT or a proxy the bound addresses are the operator's business: with
/// `node.advertise_addr` set, only that it equals the descriptor's
/// `udp_addr` is checked.
pub(super) fn check(
    config: &Config,
    descriptor: &NodeDescriptor,
    path: &Path,
) -> Result<(), NodeError> {
    let mismatch = |what, bound, advertised| NodeError::AddressMismatch {
        what,
        bound,
        advertised,
        path: path.to_owned(),
    };
    if let Some(advertised) = config.node.advertise_addr {
        return if advertised == descriptor.udp_addr {
            Ok(())
        } else {
            Err(mismatch(
                "node.advertise_addr",
                advertised,
                descriptor.udp_addr,
            ))
        };
    }
    let listen = config.node.listen_socket();
    let pairs = [
        (
            config.transport.udp,
            "node.port (UDP)",
            listen,
            descriptor.udp_addr,
        ),
        (
            config.transport.tcp,
            "node.port (TCP)",
            listen,
            descriptor.tcp_addr,
        ),
        (
            true,
            "node.http_addr",
            config.node.http_addr,
            descriptor.http_addr,
        ),
    ];
    for (enabled, what, bound, advertised) in pairs {
        if enabled && !serves(bound, advertised) {
            return Err(mismatch(what, bound, advertised));
        }
    }
    Ok(())
}

/// Whether a listener bound to `bound` receives what is sent to `advertised`.
fn serves(bound: SocketAddr, advertised: SocketAddr) -> bool {
    bound.port() == advertised.port()
        && (bound.ip() == advertised.ip() || bound.ip().is_unspecified())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::keys::{KeygenParams, keygen};
    use crate::role::NodeRole;

    fn descriptor(dir: &Path) -> NodeDescriptor {
        keygen(
            dir,
            KeygenParams {
                role: NodeRole::Middle,
                udp_addr: "127.0.0.1:9002".parse().unwrap(),
                tcp_addr: "127.0.0.1:9002".parse().unwrap(),
                http_addr: "127.0.0.1:9102".parse().unwrap(),
                key_epoch_seconds: Config::default().sphinx.key_epoch_seconds,
                now_unix: 1_000_000,
                network: Default::default(),
            },
        )
        .unwrap()
    }

    fn config(listen: &str, port: u16, http: &str) -> Config {
        let mut c = Config::default();
        c.node.listen_addr = listen.parse().unwrap();
        c.node.port = port;
        c.node.http_addr = http.parse().unwrap();
        c
    }

    #[test]
    fn listeners_must_serve_the_advertised_addresses() {
        let dir = tempfile::tempdir().unwrap();
        let d = descriptor(dir.path());
        let path = dir.path().join("node.json");
        assert!(check(&config("127.0.0.1", 9002, "127.0.0.1:9102"), &d, &path).is_ok());
        // The wildcard IP serves every address of the host.
        assert!(check(&config("0.0.0.0", 9002, "0.0.0.0:9102"), &d, &path).is_ok());

        let wrong_port = check(&config("127.0.0.1", 9003, "127.0.0.1:9102"), &d, &path);
        let text = wrong_port.unwrap_err().to_string();
        assert!(
            text.contains("127.0.0.1:9003") && text.contains("127.0.0.1:9002"),
            "{text}"
        );
        // The old default HTTP port against keygen's port + 100.
        let text = check(&config("0.0.0.0", 9002, "0.0.0.0:9100"), &d, &path)
            .unwrap_err()
            .to_string();
        assert!(
            text.contains("node.http_addr") && text.contains("127.0.0.1:9102"),
            "{text}"
        );
        let wrong_ip = check(&config("127.0.0.2", 9002, "127.0.0.1:9102"), &d, &path);
        assert!(wrong_ip.is_err());

        // TCP off: only UDP and HTTP are compared.
        let mut udp_only = config("127.0.0.1", 9002, "127.0.0.1:9102");
        udp_only.transport.tcp = false;
        assert!(check(&udp_only, &d, &path).is_ok());
    }

    #[test]
    fn behind_nat_only_the_advertised_address_is_checked() {
        let dir = tempfile::tempdir().unwrap();
        let d = descriptor(dir.path());
        let path = dir.path().join("node.json");
        let mut nat = config("0.0.0.0", 4000, "0.0.0.0:4100");
        nat.node.advertise_addr = Some("127.0.0.1:9002".parse().unwrap());
        assert!(check(&nat, &d, &path).is_ok());
        nat.node.advertise_addr = Some("127.0.0.1:9009".parse().unwrap());
        let text = check(&nat, &d, &path).unwrap_err().to_string();
        assert!(text.contains("node.advertise_addr"), "{text}");
    }
}
