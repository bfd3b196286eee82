//! Tests of the shipped config file and the integration guide's snippet.

use std::collections::BTreeSet;

use super::*;

/// The file shipped in the repository.
const SHIPPED: &str = include_str!("../../config/mixnode.toml");

/// The integration guide's `config/mixnode.toml` snippet, verbatim.
const GUIDE_SNIPPET: &str = r#"[pipeline]
workers = 4                    # Worker threads (= CPU cores)
batch_size = 128              # Packets per batch
pool_size = 1024              # Memory pool buffers
max_queue_depth = 10000       # Backpressure threshold

[performance]
target_throughput_pps = 25000
max_avg_latency_ms = 1.0

[sphinx]
enabled = true
num_hops = 3

[vrf]
enabled = true
delay_variance_ms = 50

[cover_traffic]
enabled = true
generation_rate_pps = 100
"#;

/// Every `section.key` in a TOML table.
fn keys(table: &toml::Table) -> BTreeSet<String> {
    table
        .iter()
        .flat_map(|(section, body)| {
            let body = body.as_table().cloned().unwrap_or_default();
            body.keys()
                .map(|key| format!("{section}.{key}"))
                .collect::<Vec<_>>()
        })
        .collect()
}

#[test]
fn shipped_file_is_the_defaults() {
    assert_eq!(Config::from_toml_str(SHIPPED).unwrap(), Config::default());
}

/// Keys the shipped file leaves commented out: a node takes them from its
/// node.json unless something sets them.
const FROM_DESCRIPTOR: [&str; 4] = [
    "node.role",
    "node.listen_addr",
    "node.port",
    "node.http_addr",
];

#[test]
fn shipped_file_lists_every_key() {
    let shipped: toml::Table = toml::from_str(SHIPPED).unwrap();
    let defaults: toml::Table = toml::from_str(&Config::default().to_toml_string()).unwrap();
    let mut expected = keys(&defaults);
    for key in FROM_DESCRIPTOR {
        assert!(expected.remove(key), "{key}");
        let name = key.trim_start_matches("node.");
        assert!(
            SHIPPED.contains(&format!("\n# {name} = ")),
            "{key} is listed, commented out"
        );
    }
    assert_eq!(keys(&shipped), expected);
}

#[test]
fn guide_snippet_loads() {
    let config = Config::from_toml_str(GUIDE_SNIPPET).unwrap();
    assert_eq!(config.pipeline.workers, 4);
    assert_eq!(config.effective_workers(), 4);
    assert_eq!(config.pipeline.batch_size, 128);
    assert_eq!(config.pipeline.pool_size, 1024);
    assert_eq!(config.pipeline.max_queue_depth, 10_000);
    assert_eq!(config.performance.target_throughput_pps, 25_000.0);
    assert_eq!(config.vrf.delay_variance_ms, Some(50.0));
    assert_eq!(config.mixing.mean_delay_ms, 50.0);
    assert_eq!(config.cover_traffic.generation_rate_pps, 100.0);
}

#[test]
fn toml_output_round_trips() {
    let mut config = Config::from_toml_str(GUIDE_SNIPPET).unwrap();
    config.node.advertise_addr = Some("192.0.2.1:9001".parse().unwrap());
    config.exit.allow = vec!["10.0.0.0/8".parse().unwrap()];
    let text = config.to_toml_string();
    assert_eq!(Config::from_toml_str(&text).unwrap(), config, "{text}");
}

#[test]
fn effective_workers_resolves_zero() {
    assert!(Config::default().effective_workers() >= 1);
}

#[test]
fn advertised_address_rules() {
    let mut node = NodeConfig::default();
    assert_eq!(node.advertised_addr(), "127.0.0.1:9001".parse().unwrap());
    assert_eq!(
        node.advertised_addr_for("[::]:4000".parse().unwrap()),
        "127.0.0.1:4000".parse().unwrap()
    );
    node.listen_addr = "10.1.2.3".parse().unwrap();
    assert_eq!(node.advertised_addr(), "10.1.2.3:9001".parse().unwrap());
    node.advertise_addr = Some("198.51.100.4:443".parse().unwrap());
    assert_eq!(node.advertised_addr(), "198.51.100.4:443".parse().unwrap());
}

#[test]
fn no_file_content_panics() {
    let samples = [
        "",
        "[",
        "node = 3",
        "[node]\nport = -1",
        "[node]\nport = 1e400",
        "[pipeline]\nworkers = 18446744073709551616",
        "[exit]\nallow = [1, 2]",
        "[exit]\nallow = \"10.0.0.0/8\"",
        "[node]\nrole = { a = 1 }",
        "[node]\nlisten_addr = 1979-05-27T07:32:00Z",
        "[[node]]\nport = 1",
        "[mixing]\nmean_delay_ms = nan",
        "[mixing]\nmean_delay_ms = inf",
        "[vrf]\ndelay_variance_ms = -inf",
    ];
    for text in samples {
        // Must return, with or without an error.
        let _ = Config::from_toml_str(text);
    }
}
