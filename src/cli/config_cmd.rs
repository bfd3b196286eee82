//! `betanet config show`.

use clap::Subcommand;

use super::Failure;
use crate::config::ConfigArgs;

#[derive(Subcommand, Debug)]
pub enum ConfigCommand {
    /// Print the effective configuration (defaults < file < environment <
    /// flags) as TOML. The config holds no secrets: keys live in key_dir.
    Show(ConfigArgs),
}

pub fn run(cmd: ConfigCommand) -> Result<(), Failure> {
    match cmd {
        ConfigCommand::Show(args) => {
            let config = args.load()?;
            print!("{}", config.to_toml_string());
            Ok(())
        }
    }
}
