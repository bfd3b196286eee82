//! One source of settings as a figment provider that remembers where it came
//! from.
//!
//! Every layer (the built-in defaults, the config file, each environment
//! variable, each command-line flag) is its own provider with its own
//! metadata, so figment can tell, for any key, which source set it. Errors
//! use that to say "set in config/mixnode.toml" or "set by environment
//! variable BATCH_SIZE" instead of leaving the operator to guess.

use std::path::{Path, PathBuf};

use figment::value::{Dict, Map, Value};
use figment::{Figment, Metadata, Profile, Provider};

use super::error::ConfigError;
use super::schema::Config;

/// How errors describe a value nobody overrode.
pub(crate) const DEFAULT_ORIGIN: &str = "built-in default";

/// A set of settings plus a phrase saying where they came from.
pub(crate) struct Layer {
    /// Shown in parentheses after an error, e.g. "set by --port".
    origin: String,
    /// The file the settings were read from, if any.
    file: Option<PathBuf>,
    /// The settings, nested as `section -> key -> value`.
    dict: Dict,
}

impl Layer {
    /// The built-in defaults: `Config::default()` as a layer.
    pub(crate) fn defaults() -> Self {
        // Serialising plain structs of numbers, strings and lists cannot
        // fail; should it ever, the `#[serde(default)]` on every struct still
        // supplies the defaults, only without provenance.
        let dict = Value::serialize(Config::default())
            .ok()
            .and_then(Value::into_dict)
            .unwrap_or_default();
        Self {
            origin: DEFAULT_ORIGIN.to_owned(),
            file: None,
            dict,
        }
    }

    /// The settings, for deciding how to read overrides.
    pub(crate) fn dict(&self) -> &Dict {
        &self.dict
    }

    /// Reads a TOML config file. The caller has decided the file should be
    /// there, so a missing file is an error here.
    pub(crate) fn file(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| {
            if source.kind() == std::io::ErrorKind::NotFound {
                ConfigError::FileNotFound {
                    path: path.to_owned(),
                }
            } else {
                ConfigError::FileRead {
                    path: path.to_owned(),
                    source,
                }
            }
        })?;
        let mut layer = Self::toml(&text, &path.display().to_string())?;
        layer.origin = format!("set in {}", path.display());
        layer.file = Some(path.to_owned());
        Ok(layer)
    }

    /// Parses TOML text; `name` says where it came from in messages.
    pub(crate) fn toml(text: &str, name: &str) -> Result<Self, ConfigError> {
        let table: toml::Table = toml::from_str(text).map_err(|e| ConfigError::FileSyntax {
            path: PathBuf::from(name),
            message: e.to_string(),
        })?;
        // serde would accept an array of tables (`[[node]]`) as a struct
        // and then fail with a baffling message; say what is wrong instead.
        if let Some((key, _)) = table.iter().find(|(_, v)| v.is_array()) {
            return Err(ConfigError::WrongType {
                key: key.clone(),
                value: None,
                message: format!("found an array, expected a table: write [{key}], not [[{key}]]"),
                origin: Some(format!("set in {name}")),
            });
        }
        let dict = table.into_iter().map(|(k, v)| (k, from_toml(v))).collect();
        Ok(Self {
            origin: format!("set in {name}"),
            file: None,
            dict,
        })
    }

    /// A single `section.key = value` setting from the environment or the
    /// command line. `key` must already be split into its two parts.
    pub(crate) fn setting(origin: String, section: &str, key: &str, value: Value) -> Self {
        let mut inner = Dict::new();
        inner.insert(key.to_owned(), value);
        let mut dict = Dict::new();
        dict.insert(section.to_owned(), Value::from(inner));
        Self {
            origin,
            file: None,
            dict,
        }
    }
}

impl Provider for Layer {
    fn metadata(&self) -> Metadata {
        let metadata = Metadata::named(self.origin.clone());
        match &self.file {
            Some(path) => metadata.source(path.as_path()),
            None => metadata,
        }
    }

    fn data(&self) -> Result<Map<Profile, Dict>, figment::Error> {
        Ok(Profile::Default.collect(self.dict.clone()))
    }
}

/// Turns an override given as text (an environment variable or `--set`)
/// into a value.
///
/// The text is read as a TOML value, so `5`, `true` and `["10.0.0.0/8"]`
/// mean what they look like; anything that is not valid TOML is taken as a
/// plain string, so `0.0.0.0:9100` needs no quotes. For keys whose default is
/// a string (paths, addresses, the role) the text is always taken literally
/// unless quoted, so a directory called `2024` does not turn into a number.
pub(crate) fn parse_override(raw: &str, string_key: bool) -> Value {
    let quoted = raw.starts_with('"') || raw.starts_with('\'');
    if string_key && !quoted {
        return Value::from(raw);
    }
    match raw.parse::<toml::Value>() {
        Ok(value) => from_toml(value),
        Err(_) => Value::from(raw),
    }
}

/// Whether the built-in default of `section.key` is a string.
pub(crate) fn is_string_key(defaults: &Dict, section: &str, key: &str) -> bool {
    defaults
        .get(section)
        .and_then(Value::as_dict)
        .and_then(|s| s.get(key))
        .is_some_and(|v| matches!(v, Value::String(..)))
}

/// Converts a parsed TOML value into figment's value type.
fn from_toml(value: toml::Value) -> Value {
    match value {
        toml::Value::String(s) => Value::from(s),
        toml::Value::Integer(i) => Value::from(i),
        toml::Value::Float(f) => Value::from(f),
        toml::Value::Boolean(b) => Value::from(b),
        // No key is a date; as a string it at least fails with a clear
        // "found string, expected ..." message.
        toml::Value::Datetime(d) => Value::from(d.to_string()),
        toml::Value::Array(items) => {
            Value::from(items.into_iter().map(from_toml).collect::<Vec<_>>())
        }
        toml::Value::Table(table) => Value::from(
            table
                .into_iter()
                .map(|(k, v)| (k, from_toml(v)))
                .collect::<Dict>(),
        ),
    }
}

/// Answers "where did this key's value come from?" after layering.
pub(crate) struct Provenance<'a> {
    /// The merged layers; `None` for a config built in code.
    figment: Option<&'a Figment>,
}

impl<'a> Provenance<'a> {
    /// Provenance of a loaded config.
    pub(crate) fn of(figment: &'a Figment) -> Self {
        Self {
            figment: Some(figment),
        }
    }

    /// No provenance: the config was built in code.
    pub(crate) fn unknown() -> Self {
        Self { figment: None }
    }

    /// The phrase describing who set `key` ("set by --port"), if known.
    pub(crate) fn origin(&self, key: &str) -> Option<String> {
        let metadata = self.figment?.find_metadata(key)?;
        Some(metadata.name.to_string())
    }

    /// Whether some layer above the defaults set `key`.
    pub(crate) fn is_set(&self, key: &str) -> bool {
        self.origin(key).is_some_and(|o| o != DEFAULT_ORIGIN)
    }
}
