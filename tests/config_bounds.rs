//! Absurd numbers in the configuration are refused, naming the key, before
//! the node starts: never a panic, never an allocation without bound.
//!
//! The numeric keys are found by walking the default configuration, so a
//! key added later is covered without touching this file (and fails here
//! until it has an upper bound).

use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use betanet::config::{Config, ConfigArgs, ConfigError};

/// Runs `f` on its own thread and fails if it takes longer than `limit`.
fn within<T: Send + 'static>(limit: Duration, f: impl FnOnce() -> T + Send + 'static) -> T {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(f());
    });
    rx.recv_timeout(limit)
        .expect("finished in time, without panicking")
}

#[derive(Clone, Copy, Debug, PartialEq)]
enum Kind {
    Integer,
    Float,
}

/// Every numeric `section.key` of the schema, with its kind.
fn numeric_keys() -> Vec<(String, Kind)> {
    let defaults = toml::Value::try_from(Config::default()).unwrap();
    let mut keys = Vec::new();
    for (section, body) in defaults.as_table().unwrap() {
        for (key, value) in body.as_table().unwrap() {
            let kind = match value {
                toml::Value::Integer(_) => Kind::Integer,
                toml::Value::Float(_) => Kind::Float,
                _ => continue,
            };
            keys.push((format!("{section}.{key}"), kind));
        }
    }
    // An unset option does not show in the defaults.
    keys.push(("vrf.delay_variance_ms".to_owned(), Kind::Float));
    keys
}

/// `key = value` as a one-key TOML document.
fn toml_setting(key: &str, value: &str) -> String {
    let (section, name) = key.split_once('.').unwrap();
    format!("[{section}]\n{name} = {value}\n")
}

/// Loads `key = value` and expects an error naming the key.
fn assert_refused(key: &str, value: &str) {
    let text = toml_setting(key, value);
    let result = within(Duration::from_secs(10), move || {
        Config::from_toml_str(&text)
    });
    match result {
        Ok(config) => panic!("{key} = {value} was accepted: {config:?}"),
        Err(error) => assert_eq!(error.key(), Some(key), "{key} = {value}: {error}"),
    }
}

#[test]
fn every_numeric_key_refuses_absurd_values_naming_the_key() {
    let keys = numeric_keys();
    assert!(keys.len() >= 25, "{keys:?}");
    for (key, kind) in &keys {
        let absurd: &[&str] = match kind {
            Kind::Integer => &["9223372036854775807", "1e300", "nan", "-1"],
            Kind::Float => &["9223372036854775807", "1e300", "nan", "inf", "-inf", "-1.0"],
        };
        for value in absurd {
            assert_refused(key, value);
        }
    }
}

#[test]
fn u64_max_is_refused_from_a_file_and_from_the_environment() {
    for (key, kind) in numeric_keys() {
        let max = u64::MAX.to_string();
        // TOML integers are 64-bit signed: the file does not parse, and
        // the message shows the line with the key.
        let text = toml_setting(&key, &max);
        let error = within(Duration::from_secs(10), move || {
            Config::from_toml_str(&text)
        })
        .expect_err("u64::MAX in a file");
        let name = key.split_once('.').unwrap().1;
        assert!(error.to_string().contains(name), "{key}: {error}");

        // The environment carries it as a number.
        let (section, name) = key.split_once('.').unwrap();
        let var = format!(
            "BETANET_{}__{}",
            section.to_uppercase(),
            name.to_uppercase()
        );
        let env = vec![(var, max)];
        let result = within(Duration::from_secs(10), move || {
            ConfigArgs::default().load_with_env(&env)
        });
        let error = result.expect_err(&format!("{key} = u64::MAX from the environment"));
        assert_eq!(error.key(), Some(key.as_str()), "{kind:?} {key}: {error}");
    }
}

/// Keys for which 0 cannot work.
const ZERO_IS_INVALID: &[&str] = &[
    "pipeline.batch_size",
    "pipeline.pool_size",
    "pipeline.max_queue_depth",
    "pipeline.max_dwell_ms",
    "performance.target_throughput_pps",
    "performance.max_avg_latency_ms",
    "sphinx.num_hops",
    "sphinx.key_epoch_seconds",
    "vrf.epoch_seconds",
    "cover_traffic.loop_timeout_ms",
    "transport.udp_batch",
    "transport.tcp_read_timeout_ms",
    "transport.tcp_idle_timeout_ms",
    "transport.max_connections_per_source",
    "transport.egress_queue_depth",
    "rate_limit.per_source_pps",
    "rate_limit.burst",
    "rate_limit.member_pps",
    "rate_limit.member_burst",
    "replay.memory_budget_mb",
    "replay.sync_interval_ms",
];

#[test]
fn zero_is_refused_where_it_cannot_work() {
    let keys: Vec<String> = numeric_keys().into_iter().map(|(k, _)| k).collect();
    for key in ZERO_IS_INVALID {
        assert!(keys.iter().any(|k| k == key), "{key} is not a key");
        assert_refused(key, "0");
    }
}

#[test]
fn the_defaults_and_the_largest_sensible_values_pass() {
    within(Duration::from_secs(10), || {
        Config::from_toml_str("").unwrap();
        let generous = "[pipeline]\npool_size = 100000\nmax_queue_depth = 1000000\n\
                        max_dwell_ms = 60000\n\
                        [mixing]\nmean_delay_ms = 60000.0\nmax_delay_ms = 3600000.0\n\
                        [replay]\nmemory_budget_mb = 65536\n";
        Config::from_toml_str(generous).unwrap();
    });
}

#[test]
fn run_with_an_absurd_value_exits_2_quickly_naming_the_key() {
    let dir = tempfile::tempdir().unwrap();
    let started = Instant::now();
    let mut child = Command::new(env!("CARGO_BIN_EXE_betanet"))
        .current_dir(dir.path())
        .args(["run", "--key-dir", "keys", "--data-dir", "data"])
        .args(["--topology", "topology.json"])
        .args(["--set", "pipeline.pool_size=18446744073709551615"])
        .env_remove("RUST_LOG")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if started.elapsed() > Duration::from_secs(20) {
            let _ = child.kill();
            panic!("betanet run did not exit within 20 s");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let output = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(status.code(), Some(ConfigError::EXIT_CODE), "{stderr}");
    assert!(stderr.contains("pipeline.pool_size"), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
}
