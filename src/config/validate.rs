//! Rules a well-typed configuration must still satisfy: ranges, and keys
//! that constrain each other.
//!
//! serde already rejects unknown keys and wrong types; this catches values
//! that parse but cannot work (a batch of 0 packets, a grace period longer
//! than the key epoch), before the node starts rather than when the value
//! is first used.
//!
//! Every number also has an upper bound: far above any sensible setting,
//! low enough that start-up cannot panic (a duration that overflows an
//! `Instant`) or allocate without bound (queues and pools are allocated up
//! front). Absurd values are refused naming the key, not obeyed.

use std::fmt::Display;

use super::error::ConfigError;
use super::layer::Provenance;
use super::schema::Config;
use crate::sphinx::MAX_HOPS;

/// Longest timeout, interval or delay in milliseconds that any key takes:
/// one hour.
const MAX_MS: u64 = 3_600_000;
/// [`MAX_MS`] for keys that are floating-point milliseconds.
const MAX_MS_F64: f64 = MAX_MS as f64;
/// Longest epoch in seconds: a year.
const MAX_EPOCH_SECONDS: u64 = 365 * 86_400;
/// Most packet buffers preallocated (each is a 1,394-byte frame: ~365 MB).
const MAX_POOL_SIZE: usize = 1 << 18;
/// Deepest queue: queues are allocated at their full depth up front.
const MAX_QUEUE_DEPTH: usize = 1_000_000;
/// Longest a packet may be held before unwrap: a minute is already far
/// past any useful mixing latency.
const MAX_DWELL_MS: u64 = 60_000;
/// Highest packet rate any key takes, per second.
const MAX_PPS: f64 = 1e9;
/// Highest cover rate, per second: each cover packet costs a Sphinx build.
const MAX_COVER_PPS: f64 = 100_000.0;
/// Largest replay filter budget per key, in MiB (64 GiB: ~15·10^9 tags).
const MAX_REPLAY_BUDGET_MB: u64 = 65_536;

/// Applies `vrf.delay_variance_ms`, the integration guide's name for the
/// mean delay, to `mixing.mean_delay_ms`.
///
/// Delays are exponential, so one number (the mean) fixes their spread;
/// the guide's key is therefore an alias. It fills in the mean when the mean
/// was left at its default; when both were set, `check` requires them to
/// agree.
pub(crate) fn resolve_aliases(
    config: &mut Config,
    provenance: &Provenance,
) -> Result<(), ConfigError> {
    let Some(variance) = config.vrf.delay_variance_ms else {
        return Ok(());
    };
    let rules = Rules { provenance };
    // Checked here, before it is copied, so a bad value is reported under
    // the key the operator actually wrote.
    rules.delay_ms("vrf.delay_variance_ms", variance)?;
    if !provenance.is_set("mixing.mean_delay_ms") {
        config.mixing.mean_delay_ms = variance;
    }
    Ok(())
}

/// Checks every rule; the first broken one is returned.
pub(crate) fn check(config: &Config, provenance: &Provenance) -> Result<(), ConfigError> {
    let r = Rules { provenance };

    let node = &config.node;
    if let Some(addr) = node.advertise_addr {
        r.require(
            !addr.ip().is_unspecified(),
            "node.advertise_addr",
            addr,
            "must be an address other nodes can reach, not a wildcard (0.0.0.0 or ::)",
        )?;
        r.require(
            addr.port() != 0,
            "node.advertise_addr",
            addr,
            "must have a port other than 0",
        )?;
    }
    r.between("node.shutdown_grace_ms", node.shutdown_grace_ms, 0, 600_000)?;
    if let Some(addr) = node.metrics_addr {
        r.require(
            addr != node.http_addr || addr.port() == 0,
            "node.metrics_addr",
            addr,
            "must differ from node.http_addr: it is a second listener",
        )?;
    }
    for (key, path) in [
        ("node.key_dir", &node.key_dir),
        ("node.topology", &node.topology),
        ("node.data_dir", &node.data_dir),
    ] {
        r.require(
            !path.as_os_str().is_empty(),
            key,
            format!("{path:?}"),
            "must not be empty",
        )?;
    }

    let pipeline = &config.pipeline;
    r.between("pipeline.workers", pipeline.workers, 0, 1024)?;
    r.between("pipeline.batch_size", pipeline.batch_size, 1, 4096)?;
    r.between("pipeline.pool_size", pipeline.pool_size, 1, MAX_POOL_SIZE)?;
    r.between(
        "pipeline.max_queue_depth",
        pipeline.max_queue_depth,
        1,
        MAX_QUEUE_DEPTH,
    )?;
    r.between(
        "pipeline.max_dwell_ms",
        pipeline.max_dwell_ms,
        1,
        MAX_DWELL_MS,
    )?;

    let performance = &config.performance;
    r.positive(
        "performance.target_throughput_pps",
        performance.target_throughput_pps,
        MAX_PPS,
    )?;
    r.positive(
        "performance.max_avg_latency_ms",
        performance.max_avg_latency_ms,
        MAX_MS_F64,
    )?;

    let sphinx = &config.sphinx;
    r.require(
        sphinx.enabled,
        "sphinx.enabled",
        sphinx.enabled,
        "Sphinx cannot be turned off: it is what makes packets unlinkable; \
         remove the key or set it to true",
    )?;
    r.between("sphinx.num_hops", sphinx.num_hops, 1, MAX_HOPS)?;
    r.between(
        "sphinx.key_epoch_seconds",
        sphinx.key_epoch_seconds,
        60,
        MAX_EPOCH_SECONDS,
    )?;
    r.require(
        sphinx.key_grace_seconds < sphinx.key_epoch_seconds,
        "sphinx.key_grace_seconds",
        sphinx.key_grace_seconds,
        format!(
            "must be less than sphinx.key_epoch_seconds ({}), or old keys would outlive new ones",
            sphinx.key_epoch_seconds
        ),
    )?;

    // The alias is checked before the mean so that a mismatch is reported
    // as the conflict it is, naming both keys.
    let mixing = &config.mixing;
    if let Some(variance) = config.vrf.delay_variance_ms {
        r.delay_ms("vrf.delay_variance_ms", variance)?;
        r.require(
            variance == mixing.mean_delay_ms,
            "vrf.delay_variance_ms",
            variance,
            format!(
                "conflicts with mixing.mean_delay_ms = {}{}; delays are exponential, so their \
                 spread is set by the mean and vrf.delay_variance_ms is another name for \
                 mixing.mean_delay_ms: set only one of them, or both to the same value",
                mixing.mean_delay_ms,
                provenance
                    .origin("mixing.mean_delay_ms")
                    .map(|o| format!(" ({o})"))
                    .unwrap_or_default(),
            ),
        )?;
    }
    r.delay_ms("mixing.mean_delay_ms", mixing.mean_delay_ms)?;
    r.require(
        mixing.max_delay_ms.is_finite()
            && mixing.max_delay_ms >= mixing.mean_delay_ms
            && mixing.max_delay_ms <= MAX_MS_F64,
        "mixing.max_delay_ms",
        mixing.max_delay_ms,
        format!(
            "must be a finite number no smaller than mixing.mean_delay_ms ({}) \
             and at most {MAX_MS_F64}",
            mixing.mean_delay_ms
        ),
    )?;

    r.between(
        "vrf.epoch_seconds",
        config.vrf.epoch_seconds,
        1,
        MAX_EPOCH_SECONDS,
    )?;
    r.between("vrf.neighbors_k", config.vrf.neighbors_k, 0, 10_000)?;

    let cover = &config.cover_traffic;
    r.non_negative(
        "cover_traffic.generation_rate_pps",
        cover.generation_rate_pps,
        MAX_COVER_PPS,
    )?;
    r.non_negative(
        "cover_traffic.drop_rate_pps",
        cover.drop_rate_pps,
        MAX_COVER_PPS,
    )?;
    r.between(
        "cover_traffic.loop_timeout_ms",
        cover.loop_timeout_ms,
        1,
        MAX_MS,
    )?;
    r.between(
        "cover_traffic.loss_metric_nodes",
        cover.loss_metric_nodes,
        0,
        crate::metrics::MAX_LOSS_METRIC_NODES,
    )?;

    let transport = &config.transport;
    r.require(
        transport.udp || transport.tcp,
        "transport.udp",
        transport.udp,
        "transport.udp and transport.tcp are both false: at least one must be true",
    )?;
    r.require(
        !transport.links || transport.tcp,
        "transport.links",
        transport.links,
        "transport.links = true needs transport.tcp = true (link sessions run over TCP); \
         turn TCP on or links off",
    )?;
    r.require(
        transport.links || transport.client_plaintext,
        "transport.client_plaintext",
        transport.client_plaintext,
        "transport.client_plaintext = false needs transport.links = true, or no client \
         could reach this node",
    )?;
    r.between("transport.udp_batch", transport.udp_batch, 1, 1024)?;
    r.between(
        "transport.tcp_read_timeout_ms",
        transport.tcp_read_timeout_ms,
        1,
        MAX_MS,
    )?;
    r.between(
        "transport.tcp_idle_timeout_ms",
        transport.tcp_idle_timeout_ms,
        1,
        24 * MAX_MS,
    )?;
    r.between(
        "transport.max_connections_per_source",
        transport.max_connections_per_source,
        1,
        65_536,
    )?;
    r.between(
        "transport.member_reserved_percent",
        transport.member_reserved_percent,
        0,
        100,
    )?;
    r.between(
        "transport.egress_queue_depth",
        transport.egress_queue_depth,
        1,
        MAX_QUEUE_DEPTH,
    )?;
    r.between(
        "transport.reconnect_backoff_max_ms",
        transport.reconnect_backoff_max_ms,
        0,
        MAX_MS,
    )?;

    let rate = &config.rate_limit;
    r.positive("rate_limit.per_source_pps", rate.per_source_pps, MAX_PPS)?;
    r.between("rate_limit.burst", rate.burst, 1, 10_000_000)?;
    r.positive("rate_limit.member_pps", rate.member_pps, MAX_PPS)?;
    r.between("rate_limit.member_burst", rate.member_burst, 1, 10_000_000)?;

    let replay = &config.replay;
    if let Some(entries) = replay.max_entries {
        r.require(
            false,
            "replay.max_entries",
            entries,
            "this key was removed: the replay cache is now a filter bounded in bytes; remove \
             it and set replay.memory_budget_mb instead (MiB per Sphinx key; about 4.4 bytes \
             per tag, so max_entries x 4.4 / 1048576 MiB holds as many tags; the default, \
             512, holds ~120 million)",
        )?;
    }
    r.between(
        "replay.memory_budget_mb",
        replay.memory_budget_mb,
        1,
        MAX_REPLAY_BUDGET_MB,
    )?;
    r.between(
        "replay.sync_interval_ms",
        replay.sync_interval_ms,
        1,
        60_000,
    )?;

    Ok(())
}

/// Builds errors that name the key and, when known, who set it.
struct Rules<'a> {
    /// Where each key's value came from.
    provenance: &'a Provenance<'a>,
}

impl Rules<'_> {
    /// Fails with `reason` unless `ok`.
    fn require(
        &self,
        ok: bool,
        key: &str,
        value: impl Display,
        reason: impl Into<String>,
    ) -> Result<(), ConfigError> {
        if ok {
            return Ok(());
        }
        Err(ConfigError::Invalid {
            key: key.to_owned(),
            value: value.to_string(),
            reason: reason.into(),
            origin: self.provenance.origin(key),
        })
    }

    /// `lo <= value <= hi`.
    fn between<T: PartialOrd + Display + Copy>(
        &self,
        key: &str,
        value: T,
        lo: T,
        hi: T,
    ) -> Result<(), ConfigError> {
        self.require(
            lo <= value && value <= hi,
            key,
            value,
            format!("must be between {lo} and {hi}"),
        )
    }

    /// A finite number greater than zero, at most `hi`.
    fn positive(&self, key: &str, value: f64, hi: f64) -> Result<(), ConfigError> {
        self.require(
            value.is_finite() && value > 0.0 && value <= hi,
            key,
            value,
            format!("must be a finite number greater than 0 and at most {hi}"),
        )
    }

    /// A finite number from 0 to `hi`.
    fn non_negative(&self, key: &str, value: f64, hi: f64) -> Result<(), ConfigError> {
        self.require(
            value.is_finite() && (0.0..=hi).contains(&value),
            key,
            value,
            format!("must be a finite number from 0 to {hi}"),
        )
    }

    /// A delay in milliseconds: a finite number from 0 to an hour.
    fn delay_ms(&self, key: &str, value: f64) -> Result<(), ConfigError> {
        self.non_negative(key, value, MAX_MS_F64)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check_default(edit: impl FnOnce(&mut Config)) -> Result<(), ConfigError> {
        let mut config = Config::default();
        edit(&mut config);
        check(&config, &Provenance::unknown())
    }

    #[test]
    fn defaults_pass() {
        check_default(|_| {}).unwrap();
    }

    #[test]
    fn each_rule_names_its_key() {
        type Edit = fn(&mut Config);
        let cases: [(&str, Edit); 30] = [
            ("node.advertise_addr", |c| {
                c.node.advertise_addr = Some("0.0.0.0:1".parse().unwrap())
            }),
            ("node.key_dir", |c| c.node.key_dir = "".into()),
            ("pipeline.workers", |c| c.pipeline.workers = 1025),
            ("pipeline.batch_size", |c| c.pipeline.batch_size = 0),
            ("pipeline.batch_size", |c| c.pipeline.batch_size = 4097),
            ("pipeline.pool_size", |c| c.pipeline.pool_size = 0),
            ("pipeline.max_queue_depth", |c| {
                c.pipeline.max_queue_depth = 0
            }),
            ("performance.target_throughput_pps", |c| {
                c.performance.target_throughput_pps = f64::NAN
            }),
            ("performance.max_avg_latency_ms", |c| {
                c.performance.max_avg_latency_ms = 0.0
            }),
            ("sphinx.enabled", |c| c.sphinx.enabled = false),
            ("sphinx.num_hops", |c| c.sphinx.num_hops = 6),
            ("sphinx.key_epoch_seconds", |c| {
                c.sphinx.key_epoch_seconds = 59
            }),
            ("sphinx.key_grace_seconds", |c| {
                c.sphinx.key_grace_seconds = 86_400
            }),
            ("mixing.mean_delay_ms", |c| c.mixing.mean_delay_ms = -1.0),
            ("mixing.max_delay_ms", |c| c.mixing.max_delay_ms = 10.0),
            ("vrf.epoch_seconds", |c| c.vrf.epoch_seconds = 0),
            ("vrf.delay_variance_ms", |c| {
                c.vrf.delay_variance_ms = Some(7.0)
            }),
            ("cover_traffic.generation_rate_pps", |c| {
                c.cover_traffic.generation_rate_pps = f64::INFINITY
            }),
            ("cover_traffic.loss_metric_nodes", |c| {
                c.cover_traffic.loss_metric_nodes = 65
            }),
            ("transport.udp", |c| {
                c.transport.udp = false;
                c.transport.tcp = false;
            }),
            ("transport.links", |c| c.transport.tcp = false),
            ("transport.client_plaintext", |c| {
                c.transport.links = false;
                c.transport.client_plaintext = false;
            }),
            ("transport.udp_batch", |c| c.transport.udp_batch = 0),
            ("rate_limit.burst", |c| c.rate_limit.burst = 0),
            ("rate_limit.member_pps", |c| c.rate_limit.member_pps = 0.0),
            ("rate_limit.member_burst", |c| c.rate_limit.member_burst = 0),
            ("transport.member_reserved_percent", |c| {
                c.transport.member_reserved_percent = 101
            }),
            ("node.metrics_addr", |c| {
                c.node.metrics_addr = Some(c.node.http_addr)
            }),
            ("replay.memory_budget_mb", |c| c.replay.memory_budget_mb = 0),
            ("replay.max_entries", |c| {
                c.replay.max_entries = Some(20_000_000)
            }),
        ];
        for (key, edit) in cases {
            let err = check_default(edit).unwrap_err();
            assert_eq!(err.key(), Some(key), "{err}");
            assert!(err.to_string().contains(key), "{err}");
        }
    }

    #[test]
    fn sphinx_off_says_it_cannot_be() {
        let err = check_default(|c| c.sphinx.enabled = false).unwrap_err();
        assert!(err.to_string().contains("cannot be turned off"), "{err}");
    }
}
