//! The `betanet` binary as an operator uses it.

use std::process::Command;

fn betanet() -> Command {
    Command::new(env!("CARGO_BIN_EXE_betanet"))
}

#[test]
fn keygen_topology_build_and_refusals() {
    let dir = tempfile::tempdir().unwrap();
    let mut descriptors = Vec::new();
    for (i, role) in ["entry", "middle", "exit"].iter().enumerate() {
        let out = dir.path().join(role);
        let addr = format!("127.0.0.1:{}", 19001 + i);
        let status = betanet()
            .args(["keygen", "--out"])
            .arg(&out)
            .args(["--role", role, "--addr", &addr])
            .status()
            .unwrap();
        assert!(status.success());
        descriptors.push(out.join("node.json"));
        // The Sphinx keys of the current and next key epochs sit in sphinx/.
        let mut keys = vec!["identity.key".to_owned(), "vrf.key".to_owned()];
        for entry in std::fs::read_dir(out.join("sphinx")).unwrap() {
            let name = entry.unwrap().file_name().into_string().unwrap();
            keys.push(format!("sphinx/{name}"));
        }
        assert_eq!(keys.len(), 4, "{keys:?}");
        for key in keys {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(out.join(&key))
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600, "{key}");
        }
    }
    // Keys are never overwritten.
    let again = betanet()
        .args(["keygen", "--out"])
        .arg(dir.path().join("entry"))
        .args(["--role", "entry", "--addr", "127.0.0.1:19001"])
        .output()
        .unwrap();
    assert!(!again.status.success());

    let topology = dir.path().join("topology.json");
    let built = betanet()
        .args(["topology", "build", "--out"])
        .arg(&topology)
        .args(&descriptors)
        .output()
        .unwrap();
    assert!(
        built.status.success(),
        "{}",
        String::from_utf8_lossy(&built.stderr)
    );
    assert!(String::from_utf8_lossy(&built.stdout).contains("3 nodes"));

    // A tampered descriptor is refused.
    let text = std::fs::read_to_string(&descriptors[1]).unwrap();
    std::fs::write(&descriptors[1], text.replace("\"middle\"", "\"exit\"")).unwrap();
    let refused = betanet()
        .args(["topology", "build", "--out"])
        .arg(dir.path().join("t2.json"))
        .args(&descriptors)
        .output()
        .unwrap();
    assert!(!refused.status.success());
}

#[test]
fn config_show_prints_the_effective_config() {
    let out = betanet()
        .args([
            "config",
            "show",
            "--config",
            "config/mixnode.toml",
            "--workers",
            "3",
        ])
        .env("BATCH_SIZE", "64")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("workers = 3"), "{text}");
    assert!(text.contains("batch_size = 64"), "{text}");
}

#[test]
fn a_bad_config_names_the_key_and_exits_2() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("bad.toml");
    std::fs::write(&file, "[pipeline]\nbatch_size = 0\n").unwrap();
    let out = betanet()
        .args(["run", "--config"])
        .arg(&file)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("pipeline.batch_size"));

    let out = betanet()
        .args(["config", "show"])
        .env("BETANET_PIPELINE__WOKERS", "2")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("BETANET_PIPELINE__WOKERS"));
}

#[test]
fn run_without_keys_says_what_to_do() {
    let dir = tempfile::tempdir().unwrap();
    let out = betanet()
        .args(["run", "--port", "0", "--key-dir"])
        .arg(dir.path().join("none"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("betanet keygen"));
}

/// A free loopback port (bound, then released).
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

#[test]
fn the_readme_operator_commands_run_a_node_that_stops_cleanly_on_sigterm() {
    use std::io::{Read, Write};
    let dir = tempfile::tempdir().unwrap();
    let mut descriptors = Vec::new();
    let mut entry = None;
    for role in ["entry", "middle", "exit"] {
        let (port, http) = (free_port(), free_port());
        let out = dir.path().join(role);
        let ok = betanet()
            .args(["keygen", "--out"])
            .arg(&out)
            .args(["--role", role])
            .args(["--addr", &format!("127.0.0.1:{port}")])
            .args(["--http-addr", &format!("127.0.0.1:{http}")])
            .status()
            .unwrap();
        assert!(ok.success());
        descriptors.push(out.join("node.json"));
        if role == "entry" {
            entry = Some((out, port, http));
        }
    }
    let topology = dir.path().join("topology.json");
    assert!(
        betanet()
            .args(["topology", "build", "--out"])
            .arg(&topology)
            .args(&descriptors)
            .status()
            .unwrap()
            .success()
    );

    let (keys, port, http) = entry.unwrap();
    let mut node = betanet()
        .args(["run", "--role", "entry", "--listen-addr", "127.0.0.1"])
        .args(["--port", &port.to_string()])
        .arg("--key-dir")
        .arg(&keys)
        .arg("--topology")
        .arg(&topology)
        .arg("--data-dir")
        .arg(dir.path().join("data"))
        .args(["--http-addr", &format!("127.0.0.1:{http}")])
        .env("RUST_LOG", "warn")
        .spawn()
        .unwrap();

    // Wait for /health.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    let healthy = loop {
        if let Ok(mut s) = std::net::TcpStream::connect(("127.0.0.1", http)) {
            let _ = write!(
                s,
                "GET /health HTTP/1.1\r\nHost: n\r\nConnection: close\r\n\r\n"
            );
            let mut reply = String::new();
            let _ = s.read_to_string(&mut reply);
            if reply.starts_with("HTTP/1.1 200") {
                break true;
            }
        }
        if std::time::Instant::now() > deadline || node.try_wait().unwrap().is_some() {
            break false;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    };
    assert!(healthy, "the node never became healthy");

    let term = Command::new("kill")
        .args(["-TERM", &node.id().to_string()])
        .status()
        .unwrap();
    assert!(term.success());
    let status = node.wait().unwrap();
    assert_eq!(status.code(), Some(0), "graceful shutdown exits 0");
    // The replay journal was written for the node's key.
    let journals = std::fs::read_dir(dir.path().join("data")).unwrap().count();
    assert!(journals >= 1);
}

#[test]
fn send_and_recv_carry_a_message_through_a_local_mixnet() {
    let dir = tempfile::tempdir().unwrap();
    let mut template = betanet::config::Config::default();
    template.pipeline.workers = 1;
    template.mixing.mean_delay_ms = 1.0;
    let net = betanet::testnet::LocalNet::start(dir.path(), 1, &template).unwrap();
    let port = free_port();
    let listen = format!("127.0.0.1:{port}");
    let recv = betanet()
        .args([
            "recv",
            "--listen",
            &listen,
            "--count",
            "2",
            "--timeout",
            "20",
            "--framing",
            "newline",
        ])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(std::time::Duration::from_millis(300));
    let long = "x".repeat(3000); // three fragments
    for message in ["hello through the mixnet", long.as_str()] {
        let sent = betanet()
            .args(["send", "--topology"])
            .arg(net.topology_path())
            .args(["--to", &listen, "--message", message])
            .status()
            .unwrap();
        assert!(sent.success());
    }
    let out = recv.wait_with_output().unwrap();
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    let mut lines: Vec<&str> = text.lines().collect();
    lines.sort();
    assert_eq!(lines, vec!["hello through the mixnet", long.as_str()]);
    net.shutdown();
}

/// Keys and a topology for three nodes on free loopback ports, none running.
fn offline_network(dir: &std::path::Path) -> (std::path::PathBuf, Vec<u16>) {
    let mut descriptors = Vec::new();
    let mut ports = Vec::new();
    for role in ["entry", "middle", "exit"] {
        let port = free_port();
        let out = dir.join(role);
        let ok = betanet()
            .args(["keygen", "--out"])
            .arg(&out)
            .args(["--role", role, "--addr", &format!("127.0.0.1:{port}")])
            .status()
            .unwrap();
        assert!(ok.success());
        descriptors.push(out.join("node.json"));
        ports.push(port);
    }
    let topology = dir.join("topology.json");
    let ok = betanet()
        .args(["topology", "build", "--out"])
        .arg(&topology)
        .args(&descriptors)
        .status()
        .unwrap();
    assert!(ok.success());
    (topology, ports)
}

#[test]
fn send_fails_when_no_entry_node_answers_and_refuses_empty_messages() {
    let dir = tempfile::tempdir().unwrap();
    let (topology, _) = offline_network(dir.path());
    // `betanet send --topology T ARGS` with no standard input: exit code
    // and stderr.
    let send = |args: &[&str]| {
        let out = betanet()
            .args(["send", "--topology"])
            .arg(&topology)
            .args(args)
            .stdin(std::process::Stdio::null())
            .output()
            .unwrap();
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };

    let (code, stderr) = send(&["--to", "localhost:7000", "--message", "hello"]);
    assert_eq!(code, Some(1), "{stderr}");
    assert!(stderr.contains("no entry node answered"), "{stderr}");
    assert!(!stderr.contains("sent 1 message"), "{stderr}");

    // An empty standard input is refused before anything is tried.
    let (code, stderr) = send(&["--to", "127.0.0.1:7000"]);
    assert_eq!(code, Some(1), "{stderr}");
    assert!(stderr.contains("--allow-empty"), "{stderr}");

    // A name that does not resolve is named in the error.
    let (code, stderr) = send(&["--to", "no-such-host.invalid:7000", "--message", "x"]);
    assert_eq!(code, Some(1), "{stderr}");
    assert!(stderr.contains("no-such-host.invalid:7000"), "{stderr}");
}

#[test]
fn run_refuses_to_listen_where_its_descriptor_does_not_advertise() {
    let dir = tempfile::tempdir().unwrap();
    let (topology, ports) = offline_network(dir.path());
    let other = free_port();
    let out = betanet()
        .args(["run", "--port", &other.to_string(), "--key-dir"])
        .arg(dir.path().join("entry"))
        .arg("--topology")
        .arg(&topology)
        .arg("--data-dir")
        .arg(dir.path().join("data"))
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains(&format!(":{other}"))
            && stderr.contains(&format!("127.0.0.1:{}", ports[0])),
        "both addresses are named: {stderr}"
    );
    assert!(stderr.contains("--advertised-addr"), "{stderr}");

    // Without flags, `config show` (like `run`) takes the role and the
    // addresses from node.json.
    let out = betanet()
        .args(["config", "show", "--key-dir"])
        .arg(dir.path().join("middle"))
        .output()
        .unwrap();
    let shown = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success());
    assert!(shown.contains("role = \"middle\""), "{shown}");
    assert!(shown.contains(&format!("port = {}", ports[1])), "{shown}");
    assert!(
        shown.contains(&format!("http_addr = \"127.0.0.1:{}\"", ports[1] + 100)),
        "keygen's HTTP default is run's: {shown}"
    );
}

#[test]
fn recv_writes_each_message_byte_for_byte() {
    let dir = tempfile::tempdir().unwrap();
    let mut template = betanet::config::Config::default();
    template.pipeline.workers = 1;
    template.mixing.mean_delay_ms = 1.0;
    template.cover_traffic.enabled = false;
    let net = betanet::testnet::LocalNet::start(&dir.path().join("net"), 1, &template).unwrap();
    let listen = format!("127.0.0.1:{}", free_port());
    let received = dir.path().join("received");
    let recv = betanet()
        .args([
            "recv",
            "--listen",
            &listen,
            "--count",
            "1",
            "--timeout",
            "20",
        ])
        .arg("--out")
        .arg(&received)
        .spawn()
        .unwrap();
    std::thread::sleep(std::time::Duration::from_millis(300));
    // Binary, two fragments, ending in a newline: nothing may be added.
    let message: Vec<u8> = (0..1500u32)
        .map(|i| (i * 7 % 256) as u8)
        .chain([b'\n'])
        .collect();
    let file = dir.path().join("message.bin");
    std::fs::write(&file, &message).unwrap();
    let sent = betanet()
        .args(["send", "--topology"])
        .arg(net.topology_path())
        .args(["--to", &listen, "--file"])
        .arg(&file)
        .status()
        .unwrap();
    assert!(sent.success());
    let out = recv.wait_with_output().unwrap();
    assert!(out.status.success());
    assert_eq!(
        std::fs::read(received.join("message-000001")).unwrap(),
        message
    );
    net.shutdown();
}
