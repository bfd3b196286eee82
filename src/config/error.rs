//! Why a configuration could not be loaded.
//!
//! Each message names the offending key, environment variable, flag or file,
//! says what is wrong and what would be accepted, and where known which
//! source set the value, so the operator can fix it without reading code.

use std::path::PathBuf;

use figment::Figment;
use figment::error::Kind;

/// A configuration that cannot be loaded or is not acceptable.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// The file named by `--config` does not exist.
    #[error("config file {} does not exist", path.display())]
    FileNotFound {
        /// The path as given.
        path: PathBuf,
    },

    /// The config file exists but could not be read.
    #[error("cannot read config file {}: {source}", path.display())]
    FileRead {
        /// The path as given.
        path: PathBuf,
        /// What the OS said.
        #[source]
        source: std::io::Error,
    },

    /// The config file is not valid TOML.
    #[error("config file {} is not valid TOML: {message}", path.display())]
    FileSyntax {
        /// The path as given.
        path: PathBuf,
        /// The parser's description, with line and column.
        message: String,
    },

    /// A key (or section) that the schema does not have.
    #[error("invalid config: unknown key {key} ({origin}); {allowed}")]
    UnknownKey {
        /// The dotted key, e.g. `pipeline.wokers`.
        key: String,
        /// Who set it, e.g. "set by environment variable BETANET_PIPELINE__WOKERS".
        origin: String,
        /// The keys that would have been accepted at that level.
        allowed: String,
    },

    /// A `BETANET_` environment variable that cannot name a key.
    #[error(
        "environment variable {var} does not name a config key: {reason} \
         (expected BETANET_<SECTION>__<KEY>, e.g. BETANET_MIXING__MEAN_DELAY_MS)"
    )]
    UnknownEnvVar {
        /// The variable's name.
        var: String,
        /// What is wrong with it.
        reason: String,
    },

    /// A command-line override that is malformed.
    #[error("invalid command-line override {arg}: {reason}")]
    BadOverride {
        /// The argument as given, e.g. `--set pipeline.workers`.
        arg: String,
        /// What is wrong with it.
        reason: String,
    },

    /// A value of the wrong type or shape for its key.
    #[error("invalid config: {key}{}: {message}{}", value_part(.value), origin_part(.origin))]
    WrongType {
        /// The dotted key.
        key: String,
        /// The offending value, when the message does not already show it.
        value: Option<String>,
        /// What was found and what was expected.
        message: String,
        /// Who set it, if known.
        origin: Option<String>,
    },

    /// A value of the right type that is out of range or contradicts another
    /// key.
    #[error("invalid config: {key} = {value}: {reason}{}", origin_part(.origin))]
    Invalid {
        /// The dotted key.
        key: String,
        /// The offending value.
        value: String,
        /// What is wrong and what is allowed.
        reason: String,
        /// Who set it, if known.
        origin: Option<String>,
    },
}

impl ConfigError {
    /// The process exit code for configuration errors, as for command-line
    /// usage errors.
    pub const EXIT_CODE: i32 = 2;

    /// The dotted config key the error is about, if it is about one.
    pub fn key(&self) -> Option<&str> {
        match self {
            Self::UnknownKey { key, .. }
            | Self::WrongType { key, .. }
            | Self::Invalid { key, .. } => Some(key),
            _ => None,
        }
    }

    /// Translates an extraction error, using the merged layers to say who
    /// set the offending value.
    pub(crate) fn from_figment(error: figment::Error, figment: &Figment) -> Self {
        let origin_of = |key: &str| {
            figment
                .find_metadata(key)
                .or(error.metadata.as_ref())
                .map(|m| m.name.to_string())
        };
        if let Kind::UnknownField(field, expected) = &error.kind {
            // figment may or may not have pushed the unknown field onto the
            // path already.
            let mut path = error.path.clone();
            if path.last() != Some(field) {
                path.push(field.clone());
            }
            let key = path.join(".");
            let parent = path[..path.len() - 1].join(".");
            let allowed = if parent.is_empty() {
                format!(
                    "the top level holds only the sections {}",
                    expected.join(", ")
                )
            } else {
                format!("the keys of [{parent}] are {}", expected.join(", "))
            };
            return Self::UnknownKey {
                origin: origin_of(&key).unwrap_or_else(|| "source unknown".to_owned()),
                key,
                allowed,
            };
        }

        // Keys are `section.key`; anything deeper is a list index, which
        // goes into the message rather than the key.
        let split = error.path.len().min(2);
        let key = error.path[..split].join(".");
        let item = match &error.path[split..] {
            [] => String::new(),
            rest => format!("item {}: ", rest.join(".")),
        };
        // Messages from a type's own parser ("invalid IP address syntax") do
        // not repeat the value; serde's type errors do.
        let value = match error.kind {
            Kind::Message(_) => figment.find_value(&key).ok().and_then(|v| render(&v)),
            _ => None,
        };
        Self::WrongType {
            origin: origin_of(&key),
            key: if key.is_empty() {
                "(top level)".to_owned()
            } else {
                key
            },
            value,
            message: format!("{item}{}", describe(&error.kind)),
        }
    }
}

/// figment's wording of a deserialisation error, with Rust type names
/// replaced by what an operator would write.
fn describe(kind: &Kind) -> String {
    match kind {
        Kind::InvalidType(actual, expected) => {
            format!("invalid type: found {actual}, expected {}", plain(expected))
        }
        Kind::InvalidValue(actual, expected) => {
            format!("invalid value {actual}, expected {}", plain(expected))
        }
        Kind::UnknownVariant(found, expected) => {
            format!(
                "unknown value `{found}`, expected one of {}",
                expected.join(", ")
            )
        }
        kind => kind.to_string(),
    }
}

/// "u16" -> "an integer from 0 to 65535", and so on.
fn plain(expected: &str) -> String {
    match expected {
        "u8" => "an integer from 0 to 255".to_owned(),
        "u16" => "an integer from 0 to 65535".to_owned(),
        "u32" => "an integer from 0 to 4294967295".to_owned(),
        "u64" | "usize" => "a whole number, 0 or more".to_owned(),
        "f64" | "f32" => "a number".to_owned(),
        "a sequence" => "a list, e.g. [\"10.0.0.0/8\"]".to_owned(),
        s if s.starts_with("struct ") => "a table".to_owned(),
        s => s.to_owned(),
    }
}

/// Shows a value the way it would be written in a config file.
fn render(value: &figment::value::Value) -> Option<String> {
    value
        .deserialize::<serde_json::Value>()
        .ok()
        .map(|v| v.to_string())
}

/// " = value" when a value is known, for the `WrongType` message.
fn value_part(value: &Option<String>) -> String {
    value
        .as_ref()
        .map(|v| format!(" = {v}"))
        .unwrap_or_default()
}

/// " (set in file.toml)" when the origin is known.
fn origin_part(origin: &Option<String>) -> String {
    origin
        .as_ref()
        .map(|o| format!(" ({o})"))
        .unwrap_or_default()
}
