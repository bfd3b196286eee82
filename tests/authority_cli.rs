//! `betanet authority`: keys, the network's authorities.json, and a
//! daemon started from its config file that answers and stops on SIGTERM.
//! Every child is waited for with a deadline.

use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use betanet::authority::config::AuthoritiesFile;

fn betanet() -> Command {
    Command::new(env!("CARGO_BIN_EXE_betanet"))
}

fn run(args: &[&str]) -> Output {
    let mut child = betanet()
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    wait(&mut child, Duration::from_secs(30));
    child.wait_with_output().unwrap()
}

/// Waits for `child` to exit, killing it and failing after `limit`.
fn wait(child: &mut Child, limit: Duration) {
    let deadline = Instant::now() + limit;
    while child.try_wait().unwrap().is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("betanet did not exit within {limit:?}");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn keygen_combine_and_a_daemon_that_serves_and_stops() {
    let dir = tempfile::tempdir().unwrap();
    let d = |p: &str| dir.path().join(p).to_str().unwrap().to_owned();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let addr = format!("127.0.0.1:{port}");
    for (name, a) in [
        ("a1", addr.as_str()),
        ("a2", "127.0.0.1:7702"),
        ("a3", "127.0.0.1:7703"),
    ] {
        let out = run(&["authority", "keygen", "--out", &d(name), "--addr", a]);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    // Never overwrites.
    let again = run(&["authority", "keygen", "--out", &d("a1"), "--addr", &addr]);
    assert!(!again.status.success());
    assert!(String::from_utf8_lossy(&again.stderr).contains("never overwritten"));

    let out = run(&[
        "authority",
        "combine",
        "--out",
        &d("authorities.json"),
        &d("a1/authority.json"),
        &d("a2/authority.json"),
        &d("a3/authority.json"),
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let set = AuthoritiesFile::load(&dir.path().join("authorities.json")).unwrap();
    assert_eq!((set.len(), set.threshold()), (3, 2));

    std::fs::write(
        d("authority.toml"),
        format!(
            "key_dir = {:?}\nlisten_addr = {addr:?}\nauthorities = {:?}\nepoch_seconds = 60\n",
            d("a1"),
            d("authorities.json")
        ),
    )
    .unwrap();
    let mut daemon = betanet()
        .args(["authority", "run", "--config", &d("authority.toml")])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let target = addr.parse().unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    let health = loop {
        match betanet::http::client::get(target, "/health", Duration::from_secs(2)) {
            Ok(r) => break r,
            Err(_) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(100)),
            Err(e) => {
                let _ = daemon.kill();
                panic!("authority never answered: {e}");
            }
        }
    };
    assert_eq!(health.status, 200);
    // No consensus in its first minute: 404, and `fetch` says why.
    let consensus =
        betanet::http::client::get(target, "/consensus", Duration::from_secs(2)).unwrap();
    assert_eq!(consensus.status, 404);
    let fetch = run(&[
        "authority",
        "fetch",
        "--authorities",
        &d("authorities.json"),
    ]);
    assert!(!fetch.status.success());
    assert!(String::from_utf8_lossy(&fetch.stderr).contains("no valid consensus"));

    let term = Command::new("kill")
        .args(["-TERM", &daemon.id().to_string()])
        .status()
        .unwrap();
    assert!(term.success());
    wait(&mut daemon, Duration::from_secs(10));
    assert!(daemon.wait().unwrap().success());
}
