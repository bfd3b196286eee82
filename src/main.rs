//! The `betanet` command: a thin shell over the library.

fn main() -> std::process::ExitCode {
    betanet::cli::main()
}
