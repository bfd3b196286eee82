//! The `betanet` command: a thin shell over the library.
//!
//! The commands (`cli/`) are the binary's, not the library's API: they use
//! the library's public surface only. The imports below give them the
//! library's modules under the paths they use (`crate::config`, …).

mod cli;

#[cfg(feature = "vrf")]
use betanet::audit;
use betanet::{
    client, clock, config, directory_client, keys, node, role, sphinx, testnet, topology,
};

fn main() -> std::process::ExitCode {
    cli::main()
}
