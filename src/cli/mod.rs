//! The `betanet` command line. `main.rs` only calls [`main`].

#[cfg(feature = "vrf")]
mod audit_cmd;
mod authority_cmd;
mod client_cmd;
mod config_cmd;
mod keygen_cmd;
mod run_cmd;
mod sim_cmd;
mod testnet_cmd;
mod topology_cmd;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// Exit code for a bad configuration (the config error names the key).
pub const EXIT_CONFIG: u8 = 2;
/// Exit code for any other failure.
pub const EXIT_FAILURE: u8 = 1;

/// betanet: a mixnode that makes network traffic unlinkable.
#[derive(Parser, Debug)]
#[command(name = "betanet", version, about, propagate_version = true)]
pub struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Run a mixnode until SIGTERM or Ctrl-C (SIGHUP reloads the topology).
    Run(run_cmd::RunArgs),
    /// Generate a node's keys and its signed descriptor (node.json).
    Keygen(keygen_cmd::KeygenArgs),
    /// Send a message through the mixnet.
    Send(client_cmd::SendArgs),
    /// Receive messages delivered by exit nodes.
    Recv(client_cmd::RecvArgs),
    /// Start a whole mixnet on 127.0.0.1 with a demo sender and receiver.
    Testnet(testnet_cmd::TestnetArgs),
    /// Work with topology files.
    #[command(subcommand)]
    Topology(topology_cmd::TopologyCommand),
    /// Inspect the configuration.
    #[command(subcommand)]
    Config(config_cmd::ConfigCommand),
    /// Check that a node holds packets as long as its VRF proofs require.
    ///
    /// The audit packets come back through the exits to --listen: their
    /// exit.allow must include that address. The delays are checked against
    /// the network parameters the nodes publish in their signed descriptors.
    ///
    /// Exit codes: 0 mixes as required; 1 NOT MIXING or a proof that does
    /// not verify; 3 no verdict (no packet came back, or too few samples);
    /// 4 MISCONFIGURED (publishes other network parameters than the
    /// network's).
    #[cfg(feature = "vrf")]
    Audit(audit_cmd::AuditArgs),
    /// Simulate a whole network in virtual time and measure its anonymity.
    Sim(sim_cmd::SimArgs),
    /// Directory authorities: run one, make its keys, fetch the consensus.
    #[command(subcommand)]
    Authority(authority_cmd::AuthorityCommand),
}

/// Parses the command line, runs the command, returns the exit code.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logging();
    let result = match cli.command {
        Command::Run(args) => run_cmd::run(args),
        Command::Keygen(args) => keygen_cmd::run(args),
        Command::Send(args) => client_cmd::send(args),
        Command::Recv(args) => client_cmd::recv(args),
        Command::Testnet(args) => testnet_cmd::run(args),
        Command::Topology(cmd) => topology_cmd::run(cmd),
        Command::Config(cmd) => config_cmd::run(cmd),
        #[cfg(feature = "vrf")]
        Command::Audit(args) => audit_cmd::run(args),
        Command::Sim(args) => sim_cmd::run_sim(args),
        Command::Authority(cmd) => authority_cmd::run(cmd),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(failure) => {
            eprintln!("betanet: {}", failure.message);
            ExitCode::from(failure.code)
        }
    }
}

/// A command's failure: what to tell the user, and the exit code.
#[derive(Debug)]
pub struct Failure {
    message: String,
    code: u8,
}

impl Failure {
    fn general(message: impl std::fmt::Display) -> Self {
        Self::with_code(message, EXIT_FAILURE)
    }

    fn with_code(message: impl std::fmt::Display, code: u8) -> Self {
        Failure {
            message: message.to_string(),
            code,
        }
    }
}

impl From<crate::config::ConfigError> for Failure {
    fn from(e: crate::config::ConfigError) -> Self {
        Failure {
            message: e.to_string(),
            code: EXIT_CONFIG,
        }
    }
}

/// `RUST_LOG` sets the filter (default `info`); logs go to stderr.
fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    // Colour codes only for a person at a terminal, not in files or pipes.
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .try_init();
}
