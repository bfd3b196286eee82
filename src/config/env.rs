//! Settings from environment variables.
//!
//! Two families are read:
//!
//! * the integration guide's variables ([`GUIDE_ENV_VARS`], e.g.
//!   `NODE_PORT`), kept because deployments already use them;
//! * `BETANET_<SECTION>__<KEY>` for every key, e.g.
//!   `BETANET_MIXING__MEAN_DELAY_MS=5`. The double underscore separates
//!   section from key because keys themselves contain single underscores.
//!
//! `BETANET_` variables are applied after the guide's, so the more specific
//! name wins when both set the same key. A `BETANET_` variable that names no
//! key is an error: a typo must not leave a setting silently at its default.
//! Everything else in the environment (`RUST_LOG`, `PATH`, ...) is ignored.
//!
//! The environment is passed in as a list so tests never touch the process
//! environment; [`process_env`] reads the real one.

use figment::value::Dict;

use super::error::ConfigError;
use super::layer::{Layer, is_string_key, parse_override};

/// Prefix of the variables that can set any key.
pub const ENV_PREFIX: &str = "BETANET_";

/// The integration guide's variables and the `section.key` each sets.
pub const GUIDE_ENV_VARS: [(&str, &str); 7] = [
    ("NODE_TYPE", "node.role"),
    ("NODE_PORT", "node.port"),
    ("PIPELINE_WORKERS", "pipeline.workers"),
    ("BATCH_SIZE", "pipeline.batch_size"),
    ("POOL_SIZE", "pipeline.pool_size"),
    ("MAX_QUEUE_DEPTH", "pipeline.max_queue_depth"),
    ("TARGET_THROUGHPUT", "performance.target_throughput_pps"),
];

/// The process environment as `(name, value)` pairs, for loading.
///
/// Names or values that are not valid UTF-8 are converted lossily; a
/// mangled `BETANET_` value then fails validation rather than being
/// skipped.
pub fn process_env() -> Vec<(String, String)> {
    std::env::vars_os()
        .map(|(k, v)| {
            (
                k.to_string_lossy().into_owned(),
                v.to_string_lossy().into_owned(),
            )
        })
        .collect()
}

/// One layer per relevant variable, lowest precedence first.
pub(crate) fn layers(env: &[(String, String)], defaults: &Dict) -> Result<Vec<Layer>, ConfigError> {
    let mut layers = Vec::new();
    for (var, key) in GUIDE_ENV_VARS {
        // The last occurrence wins, as it would in a shell.
        if let Some((_, raw)) = env.iter().rev().find(|(name, _)| name == var) {
            let (section, key) = key.split_once('.').unwrap_or((key, ""));
            layers.push(setting(var, section, key, raw, defaults));
        }
    }

    // Sorted so that the result never depends on the environment's order.
    let mut prefixed: Vec<&(String, String)> = env
        .iter()
        .filter(|(name, _)| name.starts_with(ENV_PREFIX))
        .collect();
    prefixed.sort_by(|a, b| a.0.cmp(&b.0));
    for (var, raw) in prefixed {
        let (section, key) = split_prefixed(var)?;
        layers.push(setting(var, &section, &key, raw, defaults));
    }
    Ok(layers)
}

/// `BETANET_PIPELINE__BATCH_SIZE` -> (`pipeline`, `batch_size`).
fn split_prefixed(var: &str) -> Result<(String, String), ConfigError> {
    let fail = |reason: &str| ConfigError::UnknownEnvVar {
        var: var.to_owned(),
        reason: reason.to_owned(),
    };
    let rest = var.strip_prefix(ENV_PREFIX).unwrap_or(var);
    let Some((section, key)) = rest.split_once("__") else {
        return Err(fail("it has no `__` between section and key"));
    };
    let valid = |part: &str| {
        !part.is_empty() && part.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
    };
    if !valid(section) || !valid(key) || key.contains("__") {
        return Err(fail(
            "section and key must be non-empty words joined by one `__`",
        ));
    }
    // Whether the pair exists is left to the schema, which reports an
    // unknown key together with this variable's name and the valid keys.
    Ok((section.to_ascii_lowercase(), key.to_ascii_lowercase()))
}

/// The layer for one variable.
fn setting(var: &str, section: &str, key: &str, raw: &str, defaults: &Dict) -> Layer {
    let value = parse_override(raw, is_string_key(defaults, section, key));
    Layer::setting(
        format!("set by environment variable {var}"),
        section,
        key,
        value,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_section_and_key() {
        let (s, k) = split_prefixed("BETANET_COVER_TRAFFIC__GENERATION_RATE_PPS").unwrap();
        assert_eq!(
            (s.as_str(), k.as_str()),
            ("cover_traffic", "generation_rate_pps")
        );
    }

    #[test]
    fn rejects_malformed_names() {
        for var in [
            "BETANET_",
            "BETANET_PIPELINE",
            "BETANET___X",
            "BETANET_A__",
            "BETANET_A__B__C",
            "BETANET_A-B__C",
        ] {
            let err = split_prefixed(var).unwrap_err();
            assert!(err.to_string().contains(var), "{err}");
        }
    }
}
