//! Stacking the layers and turning the result into a checked [`Config`].
//!
//! Lowest to highest: built-in defaults, the config file, environment
//! variables, command-line flags. Each layer only replaces the keys it sets.

use std::path::Path;

use figment::Figment;

use super::args::ConfigArgs;
use super::env;
use super::error::ConfigError;
use super::layer::{Layer, Provenance};
use super::schema::Config;
use super::validate;

/// Loads the configuration for `args` with `env` as the environment.
///
/// `default_file` is read when `args` names no file and it exists; it is a
/// parameter so tests need not change the working directory.
pub(crate) fn load(
    args: &ConfigArgs,
    env: &[(String, String)],
    default_file: &Path,
) -> Result<Config, ConfigError> {
    finish(&stack(args, env, default_file)?)
}

/// [`load`] for a node about to run: where no layer set them, the node's
/// role and addresses come from the descriptor it advertises them in
/// (`node.json` in `node.key_dir`), so the node listens where its peers
/// send (see [`super::from_descriptor`]).
pub(crate) fn load_for_node(
    args: &ConfigArgs,
    env: &[(String, String)],
    default_file: &Path,
) -> Result<Config, ConfigError> {
    let figment = stack(args, env, default_file)?;
    let mut config = finish(&figment)?;
    let provenance = Provenance::of(&figment);
    if super::from_descriptor::fill(&mut config, |key| provenance.is_set(key)) {
        validate::check(&config, &provenance)?;
    }
    Ok(config)
}

/// The layers for `args`, merged.
fn stack(
    args: &ConfigArgs,
    env: &[(String, String)],
    default_file: &Path,
) -> Result<Figment, ConfigError> {
    let defaults = Layer::defaults();
    // An explicit --config must exist; the default file is optional, so a
    // node runs out of the box on defaults and environment alone.
    let file = match &args.config {
        Some(path) => Some(Layer::file(path)?),
        None if default_file.exists() => Some(Layer::file(default_file)?),
        None => None,
    };
    let env_layers = env::layers(env, defaults.dict())?;
    let cli_layers = args.layers(defaults.dict())?;

    Ok(std::iter::once(defaults)
        .chain(file)
        .chain(env_layers)
        .chain(cli_layers)
        .fold(Figment::new(), Figment::merge))
}

/// Extracts, resolves aliases and validates the merged layers.
pub(crate) fn finish(figment: &Figment) -> Result<Config, ConfigError> {
    let mut config: Config = figment
        .extract()
        .map_err(|e| ConfigError::from_figment(e, figment))?;
    let provenance = Provenance::of(figment);
    validate::resolve_aliases(&mut config, &provenance)?;
    validate::check(&config, &provenance)?;
    Ok(config)
}

/// Defaults overlaid with TOML text, as [`Config::from_toml_str`] needs.
pub(crate) fn from_toml_str(text: &str) -> Result<Config, ConfigError> {
    let figment = Figment::new()
        .merge(Layer::defaults())
        .merge(Layer::toml(text, "the given TOML")?);
    finish(&figment)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[test]
    fn default_file_is_read_when_present() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("mixnode.toml");
        std::fs::write(&path, "[pipeline]\nbatch_size = 7\n").unwrap();
        let config = load(&ConfigArgs::default(), &[], &path).unwrap();
        assert_eq!(config.pipeline.batch_size, 7);
    }

    #[test]
    fn default_file_is_optional() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("mixnode.toml");
        let config = load(&ConfigArgs::default(), &[], &missing).unwrap();
        assert_eq!(config, Config::default());
    }

    #[test]
    fn explicit_file_beats_default_file() {
        let dir = tempfile::tempdir().unwrap();
        let default = dir.path().join("default.toml");
        let chosen = dir.path().join("chosen.toml");
        std::fs::write(&default, "[pipeline]\nbatch_size = 7\n").unwrap();
        std::fs::write(&chosen, "[pipeline]\npool_size = 9\n").unwrap();
        let args = ConfigArgs {
            config: Some(chosen),
            ..ConfigArgs::default()
        };
        let config = load(&args, &env(&[]), &default).unwrap();
        assert_eq!(
            config.pipeline.batch_size, 128,
            "default file must not be read"
        );
        assert_eq!(config.pipeline.pool_size, 9);
    }

    #[test]
    fn bad_default_file_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("mixnode.toml");
        std::fs::write(&path, "[pipeline\n").unwrap();
        let err = load(&ConfigArgs::default(), &[], &path).unwrap_err();
        assert!(matches!(err, ConfigError::FileSyntax { .. }), "{err}");
        assert!(err.to_string().contains("mixnode.toml"), "{err}");
    }
}
