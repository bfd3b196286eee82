//! `betanet topology build`.

use std::path::PathBuf;

use clap::Subcommand;

use super::Failure;

#[derive(Subcommand, Debug)]
pub enum TopologyCommand {
    /// Assemble topology.json from node descriptors, checking every signature.
    Build {
        /// Where to write the topology.
        #[arg(long, value_name = "PATH")]
        out: PathBuf,
        /// The nodes' node.json files.
        #[arg(required = true, value_name = "NODE_JSON")]
        descriptors: Vec<PathBuf>,
    },
}

pub fn run(cmd: TopologyCommand) -> Result<(), Failure> {
    match cmd {
        TopologyCommand::Build { out, descriptors } => {
            let topology = crate::topology::build_topology_file(&out, &descriptors)
                .map_err(Failure::general)?;
            println!("{}: {} nodes", out.display(), topology.len());
            Ok(())
        }
    }
}
