//! The `betanet` command: a thin shell over the library.
//!
//! The commands (`cli/`) are the binary's, not the library's API: they use
//! the library's public surface only. The imports below give them the
//! library's modules under the paths they use (`crate::config`, …).

mod cli;

use betanet::{authority, client, clock, config, keys, node, role, sim, testnet, topology};
// `betanet audit`'s.
#[cfg(feature = "vrf")]
use betanet::{audit, sphinx};
// `betanet audit`'s and `betanet authority`'s.
use betanet::directory_client;

fn main() -> std::process::ExitCode {
    cli::main()
}
