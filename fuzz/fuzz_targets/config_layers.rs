//! Configuration loading on hostile input: a config file's TOML text,
//! environment variables (the integration guide's names, `BETANET_` names
//! of real keys, and junk), `--set` overrides and flags, layered by
//! `ConfigArgs::load_with_env`.
//!
//! Loading must never panic, and whatever it accepts must be valid and
//! survive `config show` (`to_toml_string`) fed back in unchanged.
//!
//! Input: a byte `n`, then `n` bytes of choices (how many variables and
//! overrides, which names, their values, the flags), then the file's text.
//! A lone 0 byte before a config file means "the file alone".

#![no_main]

use std::path::PathBuf;
use std::sync::OnceLock;

use betanet::NodeRole;
use betanet::config::{Config, ConfigArgs, GUIDE_ENV_VARS};
use libfuzzer_sys::arbitrary::{Result, Unstructured};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&n, rest)) = data.split_first() else {
        return;
    };
    let (choices, text) = rest.split_at(usize::from(n).min(rest.len()));
    let Ok((env, args)) = layers_from(&mut Unstructured::new(choices)) else {
        return;
    };
    let text = String::from_utf8_lossy(text).into_owned();

    let from_text = Config::from_toml_str(&text);
    if let Ok(config) = &from_text {
        round_trips(config);
    }

    let path = config_file();
    std::fs::write(&path, text.as_bytes()).expect("writing the config file");
    let args = ConfigArgs {
        config: Some(path),
        ..args
    };
    let layered = args.load_with_env(&env);
    if let Ok(config) = &layered {
        config
            .validate()
            .expect("loading returns only valid configs");
        round_trips(config);
    }
    let file_alone = ConfigArgs {
        config: args.config.clone(),
        ..ConfigArgs::default()
    };
    if env.is_empty() && args == file_alone {
        // Nothing above the file: the same result as the file's text alone.
        assert_eq!(layered.ok(), from_text.ok());
    }
});

/// Where each input's config file is written (one per process, rewritten
/// for every input).
fn config_file() -> PathBuf {
    static DIR: OnceLock<tempfile::TempDir> = OnceLock::new();
    DIR.get_or_init(|| tempfile::tempdir().expect("a temp dir"))
        .path()
        .join("mixnode.toml")
}

/// `config show` output, loaded again, is the same configuration.
fn round_trips(config: &Config) {
    let shown = config.to_toml_string();
    let again = Config::from_toml_str(&shown)
        .unwrap_or_else(|e| panic!("`config show` output does not load: {e}\n{shown}"));
    assert_eq!(&again, config, "{shown}");
}

/// `section.key` of every setting, from the defaults as `config show`
/// prints them (so keys added later are fuzzed without editing this file).
fn keys() -> &'static [String] {
    static KEYS: OnceLock<Vec<String>> = OnceLock::new();
    KEYS.get_or_init(|| {
        let table: toml::Table = Config::default()
            .to_toml_string()
            .parse()
            .expect("the defaults are TOML");
        let mut keys = Vec::new();
        for (section, value) in &table {
            if let Some(inner) = value.as_table() {
                keys.extend(inner.keys().map(|key| format!("{section}.{key}")));
            }
        }
        // Keys with no default value are left out of the output.
        keys.extend([
            "node.advertise_addr".to_owned(),
            "vrf.delay_variance_ms".to_owned(),
        ]);
        keys
    })
}

/// A short string of the input's choosing: mostly printable, sometimes
/// anything.
fn short_text(u: &mut Unstructured<'_>) -> Result<String> {
    let len = usize::from(u.int_in_range(0..=48u8)?).min(u.len());
    Ok(String::from_utf8_lossy(u.bytes(len)?).into_owned())
}

fn env_name(u: &mut Unstructured<'_>) -> Result<String> {
    Ok(match u.int_in_range(0..=3u8)? {
        0 => u.choose(&GUIDE_ENV_VARS)?.0.to_owned(),
        1 | 2 => {
            let key = u.choose(keys())?;
            let (section, key) = key.split_once('.').unwrap_or((key, ""));
            format!("BETANET_{}__{}", section, key).to_ascii_uppercase()
        }
        _ => short_text(u)?,
    })
}

/// The environment and flags: up to 6 variables, up to 4 `--set`s and
/// some of the named flags.
fn layers_from(u: &mut Unstructured<'_>) -> Result<(Vec<(String, String)>, ConfigArgs)> {
    let mut env = Vec::new();
    for _ in 0..u.int_in_range(0..=6u8)? {
        env.push((env_name(u)?, short_text(u)?));
    }
    let mut set = Vec::new();
    for _ in 0..u.int_in_range(0..=4u8)? {
        let key = if u.arbitrary::<u8>()? < 224 {
            u.choose(keys())?.clone()
        } else {
            short_text(u)?
        };
        set.push(format!("{key}={}", short_text(u)?));
    }
    // `Option`s, so that running out of choices means "no flag".
    let role: Option<u8> = u.arbitrary()?;
    let args = ConfigArgs {
        role: role.map(|r| NodeRole::ALL[usize::from(r) % 3]),
        port: u.arbitrary()?,
        workers: u.arbitrary()?,
        batch_size: u.arbitrary()?,
        set,
        ..ConfigArgs::default()
    };
    Ok((env, args))
}
