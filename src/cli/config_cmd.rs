//! `betanet config show`.

use clap::Subcommand;

use super::Failure;
use crate::config::ConfigArgs;

#[derive(Subcommand, Debug)]
pub enum ConfigCommand {
    /// Print the effective configuration (defaults < file < environment <
    /// flags, then the role and addresses of node.json in key_dir where
    /// nothing set them, as `betanet run` does) as TOML. The config holds
    /// no secrets: keys live in key_dir.
    Show(ConfigArgs),
}

pub fn run(cmd: ConfigCommand) -> Result<(), Failure> {
    match cmd {
        ConfigCommand::Show(args) => {
            let config = args.load_for_node()?;
            print!("{}", config.to_toml_string());
            Ok(())
        }
    }
}
