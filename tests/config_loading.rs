//! Loading the configuration through its public interface: file, environment
//! and command line, their precedence, and the errors operators see.
//!
//! The environment is always passed explicitly; no test reads or changes the
//! process environment. Every test names a config file (an empty one where
//! the file does not matter) so results do not depend on the working
//! directory.

use std::path::PathBuf;

use betanet::NodeRole;
use betanet::config::{Config, ConfigArgs, ConfigError};
use clap::Parser;
use tempfile::TempDir;

/// A config file in a temporary directory that lives as long as the value.
struct File {
    _dir: TempDir,
    path: PathBuf,
}

fn file(contents: &str) -> File {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("mixnode.toml");
    std::fs::write(&path, contents).unwrap();
    File { _dir: dir, path }
}

fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

/// A test command line with the config flags flattened in, as the real
/// subcommands do.
#[derive(Parser)]
struct Cli {
    #[command(flatten)]
    config: ConfigArgs,
}

/// Parses command-line arguments (after the program name).
fn args(argv: &[&str]) -> ConfigArgs {
    Cli::try_parse_from(std::iter::once("betanet").chain(argv.iter().copied()))
        .unwrap()
        .config
}

/// Loads with `contents` as the config file, then `env`, then `argv`.
fn load(contents: &str, vars: &[(&str, &str)], argv: &[&str]) -> Result<Config, ConfigError> {
    let f = file(contents);
    let mut a = args(argv);
    a.config = Some(f.path.clone());
    a.load_with_env(&env(vars))
}

fn load_err(contents: &str, vars: &[(&str, &str)], argv: &[&str]) -> String {
    load(contents, vars, argv).unwrap_err().to_string()
}

#[test]
fn empty_sources_give_defaults() {
    assert_eq!(load("", &[], &[]).unwrap(), Config::default());
}

#[test]
fn precedence_defaults_file_env_cli() {
    let text = "[pipeline]\nbatch_size = 10\npool_size = 20\nmax_queue_depth = 30\n";
    let vars = [("POOL_SIZE", "21"), ("MAX_QUEUE_DEPTH", "31")];

    let config = load(text, &vars, &["--set", "pipeline.max_queue_depth=32"]).unwrap();
    assert_eq!(config.pipeline.workers, 0, "default kept");
    assert_eq!(config.pipeline.batch_size, 10, "file beats default");
    assert_eq!(config.pipeline.pool_size, 21, "env beats file");
    assert_eq!(config.pipeline.max_queue_depth, 32, "CLI beats env");
}

#[test]
fn named_flags_beat_set_and_env() {
    let config = load(
        "[node]\nport = 1\n",
        &[("NODE_PORT", "2")],
        &["--set", "node.port=3", "--port", "4"],
    )
    .unwrap();
    assert_eq!(config.node.port, 4);
}

#[test]
fn every_named_flag() {
    let config = load(
        "",
        &[],
        &[
            "--role",
            "exit",
            "--port",
            "0",
            "--listen-addr",
            "::1",
            "--http-addr",
            "127.0.0.1:0",
            "--key-dir",
            "/k",
            "--topology",
            "/t.json",
            "--data-dir",
            "/d",
            "--workers",
            "3",
            "--batch-size",
            "64",
        ],
    )
    .unwrap();
    assert_eq!(config.node.role, NodeRole::Exit);
    assert_eq!(config.node.port, 0);
    assert_eq!(
        config.node.listen_addr,
        "::1".parse::<std::net::IpAddr>().unwrap()
    );
    assert_eq!(config.node.http_addr, "127.0.0.1:0".parse().unwrap());
    assert_eq!(config.node.key_dir, PathBuf::from("/k"));
    assert_eq!(config.node.topology, PathBuf::from("/t.json"));
    assert_eq!(config.node.data_dir, PathBuf::from("/d"));
    assert_eq!(config.pipeline.workers, 3);
    assert_eq!(config.pipeline.batch_size, 64);
}

#[test]
fn each_guide_env_var() {
    let config = load(
        "",
        &[
            ("NODE_TYPE", "middle"),
            ("NODE_PORT", "9010"),
            ("PIPELINE_WORKERS", "4"),
            ("BATCH_SIZE", "256"),
            ("POOL_SIZE", "512"),
            ("MAX_QUEUE_DEPTH", "5000"),
            ("TARGET_THROUGHPUT", "25000"),
            ("RUST_LOG", "info"),
        ],
        &[],
    )
    .unwrap();
    assert_eq!(config.node.role, NodeRole::Middle);
    assert_eq!(config.node.port, 9010);
    assert_eq!(config.pipeline.workers, 4);
    assert_eq!(config.pipeline.batch_size, 256);
    assert_eq!(config.pipeline.pool_size, 512);
    assert_eq!(config.pipeline.max_queue_depth, 5000);
    assert_eq!(config.performance.target_throughput_pps, 25_000.0);
}

#[test]
fn guide_env_var_errors_name_the_variable() {
    let message = load_err("", &[("BATCH_SIZE", "0")], &[]);
    assert!(message.contains("pipeline.batch_size"), "{message}");
    assert!(message.contains("BATCH_SIZE"), "{message}");
    assert!(message.contains("between 1 and 4096"), "{message}");

    let message = load_err("", &[("NODE_PORT", "ninety")], &[]);
    assert!(message.contains("node.port"), "{message}");
    assert!(message.contains("NODE_PORT"), "{message}");

    let message = load_err("", &[("NODE_TYPE", "relay")], &[]);
    assert!(message.contains("node.role"), "{message}");
    assert!(message.contains("NODE_TYPE"), "{message}");
}

#[test]
fn betanet_prefixed_vars() {
    let config = load(
        "",
        &[
            ("BETANET_MIXING__MEAN_DELAY_MS", "5"),
            ("BETANET_EXIT__ALLOW", r#"["10.0.0.0/8", "fd00::/8"]"#),
            ("BETANET_NODE__HTTP_ADDR", "127.0.0.1:9200"),
            ("BETANET_NODE__ADVERTISE_ADDR", "192.0.2.1:9001"),
            ("BETANET_NODE__KEY_DIR", "2024"),
            ("BETANET_TRANSPORT__TCP", "false"),
            ("BETANET_TRANSPORT__LINKS", "false"),
            ("BETANET_COVER_TRAFFIC__GENERATION_RATE_PPS", "2.5"),
        ],
        &[],
    )
    .unwrap();
    assert_eq!(config.mixing.mean_delay_ms, 5.0);
    assert_eq!(
        config.exit.allow,
        vec!["10.0.0.0/8".parse().unwrap(), "fd00::/8".parse().unwrap()]
    );
    assert_eq!(config.node.http_addr, "127.0.0.1:9200".parse().unwrap());
    assert_eq!(
        config.node.advertise_addr,
        Some("192.0.2.1:9001".parse().unwrap())
    );
    assert_eq!(
        config.node.key_dir,
        PathBuf::from("2024"),
        "string keys are literal"
    );
    assert!(!config.transport.tcp);
    assert_eq!(config.cover_traffic.generation_rate_pps, 2.5);
}

#[test]
fn prefixed_var_beats_guide_var() {
    let config = load("", &[("NODE_PORT", "1"), ("BETANET_NODE__PORT", "2")], &[]).unwrap();
    assert_eq!(config.node.port, 2);
}

#[test]
fn unknown_betanet_var_is_an_error() {
    let err = load("", &[("BETANET_PIPELINE__WOKERS", "4")], &[]).unwrap_err();
    let message = err.to_string();
    assert_eq!(err.key(), Some("pipeline.wokers"), "{message}");
    assert!(message.contains("BETANET_PIPELINE__WOKERS"), "{message}");
    assert!(message.contains("workers"), "lists valid keys: {message}");

    for var in [
        "BETANET_NOSUCH__KEY",
        "BETANET_PIPELINE",
        "BETANET_LOG_LEVEL",
    ] {
        let message = load_err("", &[(var, "1")], &[]);
        assert!(message.contains(var), "{message}");
    }
}

#[test]
fn unrelated_env_is_ignored() {
    let vars = [
        ("RUST_LOG", "debug"),
        ("PATH", "/bin"),
        ("betanet_lower", "x"),
    ];
    assert_eq!(load("", &vars, &[]).unwrap(), Config::default());
}

#[test]
fn unknown_key_in_file_names_key_and_file() {
    let f = file("[pipeline]\nbatch_sise = 64\n");
    let err = ConfigArgs {
        config: Some(f.path.clone()),
        ..ConfigArgs::default()
    }
    .load_with_env(&[])
    .unwrap_err();
    let message = err.to_string();
    assert!(matches!(err, ConfigError::UnknownKey { .. }), "{message}");
    assert!(message.contains("pipeline.batch_sise"), "{message}");
    assert!(message.contains(&f.path.display().to_string()), "{message}");
    assert!(
        message.contains("batch_size"),
        "lists valid keys: {message}"
    );
}

#[test]
fn unknown_section_in_file() {
    let message = load_err("[mixer]\nmean_delay_ms = 5\n", &[], &[]);
    assert!(message.contains("mixer"), "{message}");
    assert!(
        message.contains("mixing"),
        "lists valid sections: {message}"
    );
}

#[test]
fn wrong_type_names_the_key() {
    for (text, key) in [
        ("[pipeline]\nbatch_size = \"big\"\n", "pipeline.batch_size"),
        ("[pipeline]\nbatch_size = 12.5\n", "pipeline.batch_size"),
        ("[node]\nport = 70000\n", "node.port"),
        ("[node]\nlisten_addr = \"not-an-ip\"\n", "node.listen_addr"),
        ("[node]\nrole = \"relay\"\n", "node.role"),
        ("[exit]\nallow = [\"10.0.0.0/33\"]\n", "exit.allow"),
        ("[transport]\nudp = \"yes\"\n", "transport.udp"),
    ] {
        let err = load(text, &[], &[]).unwrap_err();
        assert_eq!(err.key(), Some(key), "{err}");
        assert!(matches!(err, ConfigError::WrongType { .. }), "{err}");
        assert!(
            err.to_string().contains("mixnode.toml"),
            "names the file: {err}"
        );
    }
}

#[test]
fn out_of_range_names_key_value_and_limit() {
    let message = load_err("[pipeline]\nbatch_size = 0\n", &[], &[]);
    assert!(
        message.starts_with(
            "invalid config: pipeline.batch_size = 0: must be between 1 and 4096 (set in "
        ),
        "{message}"
    );
    assert!(message.contains("mixnode.toml"), "{message}");

    for (text, key) in [
        ("[sphinx]\nnum_hops = 6\n", "sphinx.num_hops"),
        (
            "[sphinx]\nkey_grace_seconds = 90000\n",
            "sphinx.key_grace_seconds",
        ),
        ("[transport]\nudp = false\ntcp = false\n", "transport.udp"),
        ("[mixing]\nmean_delay_ms = nan\n", "mixing.mean_delay_ms"),
        ("[replay]\nmax_entries = 10\n", "replay.max_entries"),
        (
            "[replay]\nmemory_budget_mb = 0\n",
            "replay.memory_budget_mb",
        ),
        (
            "[performance]\nmax_avg_latency_ms = 0\n",
            "performance.max_avg_latency_ms",
        ),
    ] {
        let err = load(text, &[], &[]).unwrap_err();
        assert_eq!(err.key(), Some(key), "{err}");
    }
}

#[test]
fn the_removed_replay_max_entries_names_its_replacement() {
    for (text, env) in [
        ("[replay]\nmax_entries = 20000000\n", &[][..]),
        ("", &[("BETANET_REPLAY__MAX_ENTRIES", "1000")][..]),
    ] {
        let err = load(text, env, &[]).unwrap_err();
        assert_eq!(err.key(), Some("replay.max_entries"), "{err}");
        let message = err.to_string();
        assert!(message.contains("was removed"), "{message}");
        assert!(message.contains("replay.memory_budget_mb"), "{message}");
    }
}

#[test]
fn sphinx_cannot_be_disabled() {
    let message = load_err("[sphinx]\nenabled = false\n", &[], &[]);
    assert!(message.contains("sphinx.enabled"), "{message}");
    assert!(message.contains("cannot be turned off"), "{message}");
}

#[test]
fn delay_variance_sets_the_mean() {
    let config = load("[vrf]\ndelay_variance_ms = 20\n", &[], &[]).unwrap();
    assert_eq!(config.mixing.mean_delay_ms, 20.0);

    let config = load("", &[("BETANET_VRF__DELAY_VARIANCE_MS", "30")], &[]).unwrap();
    assert_eq!(config.mixing.mean_delay_ms, 30.0);
}

#[test]
fn delay_variance_equal_to_mean_is_fine() {
    let config = load(
        "[mixing]\nmean_delay_ms = 20.0\n[vrf]\ndelay_variance_ms = 20\n",
        &[],
        &[],
    )
    .unwrap();
    assert_eq!(config.mixing.mean_delay_ms, 20.0);
}

#[test]
fn delay_variance_conflicting_with_mean_is_an_error() {
    let message = load_err(
        "[mixing]\nmean_delay_ms = 20.0\n[vrf]\ndelay_variance_ms = 30\n",
        &[],
        &[],
    );
    assert!(message.contains("vrf.delay_variance_ms"), "{message}");
    assert!(message.contains("mixing.mean_delay_ms"), "{message}");

    // Across layers too: both were given explicitly.
    let message = load_err(
        "[vrf]\ndelay_variance_ms = 30\n",
        &[("BETANET_MIXING__MEAN_DELAY_MS", "20")],
        &[],
    );
    assert!(message.contains("vrf.delay_variance_ms"), "{message}");
    assert!(message.contains("mixing.mean_delay_ms"), "{message}");
    assert!(
        message.contains("BETANET_MIXING__MEAN_DELAY_MS"),
        "{message}"
    );
}

#[test]
fn delay_variance_must_be_valid_itself() {
    let err = load("[vrf]\ndelay_variance_ms = -5\n", &[], &[]).unwrap_err();
    assert_eq!(err.key(), Some("vrf.delay_variance_ms"), "{err}");
}

#[test]
fn missing_config_file_is_an_error_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("nope.toml");
    let err = args(&["--config", path.to_str().unwrap()])
        .load_with_env(&[])
        .unwrap_err();
    assert!(matches!(err, ConfigError::FileNotFound { .. }), "{err}");
    assert!(err.to_string().contains("nope.toml"), "{err}");
}

#[test]
fn invalid_toml_names_the_file() {
    let message = load_err("[pipeline\nworkers = 1\n", &[], &[]);
    assert!(message.contains("mixnode.toml"), "{message}");
    assert!(message.contains("not valid TOML"), "{message}");
}

#[test]
fn set_reaches_any_key_and_parses_toml() {
    let config = load(
        "",
        &[],
        &[
            "--set",
            "rate_limit.per_source_pps=100",
            "--set",
            "exit.allow=[\"192.168.0.0/16\"]",
            "--set",
            "node.advertise_addr=192.0.2.9:9001",
            "--set",
            "vrf.neighbors_k = 2",
        ],
    )
    .unwrap();
    assert_eq!(config.rate_limit.per_source_pps, 100.0);
    assert_eq!(config.exit.allow, vec!["192.168.0.0/16".parse().unwrap()]);
    assert_eq!(
        config.node.advertise_addr,
        Some("192.0.2.9:9001".parse().unwrap())
    );
    assert_eq!(config.vrf.neighbors_k, 2);
}

#[test]
fn bad_set_arguments() {
    let message = load_err("", &[], &["--set", "pipeline.workers"]);
    assert!(message.contains("--set pipeline.workers"), "{message}");

    let message = load_err("", &[], &["--set", "workers=4"]);
    assert!(message.contains("SECTION.KEY"), "{message}");

    let err = load("", &[], &["--set", "pipeline.wrokers=4"]).unwrap_err();
    assert_eq!(err.key(), Some("pipeline.wrokers"), "{err}");
    assert!(err.to_string().contains("--set"), "{err}");
}

#[test]
fn cli_value_errors_name_the_flag() {
    let message = load_err("", &[], &["--batch-size", "0"]);
    assert!(message.contains("pipeline.batch_size"), "{message}");
    assert!(message.contains("--batch-size"), "{message}");
}

#[test]
fn clap_rejects_malformed_flag_values() {
    assert!(Cli::try_parse_from(["betanet", "--port", "70000"]).is_err());
    assert!(Cli::try_parse_from(["betanet", "--role", "relay"]).is_err());
    assert!(Cli::try_parse_from(["betanet", "--role", "MIDDLE"]).is_ok());
}

#[test]
fn shown_config_loads_back() {
    let config = load(
        "[vrf]\ndelay_variance_ms = 20\n",
        &[("BETANET_EXIT__ALLOW", r#"["10.0.0.0/8"]"#)],
        &["--role", "exit"],
    )
    .unwrap();
    let shown = config.to_toml_string();
    assert_eq!(load(&shown, &[], &[]).unwrap(), config, "{shown}");
}

#[test]
fn exit_code_is_two() {
    assert_eq!(ConfigError::EXIT_CODE, 2);
}
