//! `ramp-operator`: see `ramp-operator --help`.

use clap::{Parser, Subcommand};

/// ramp: progressive canary rollouts for Kubernetes Deployments.
#[derive(Parser, Debug)]
#[command(name = "ramp-operator", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Print the Rollout CustomResourceDefinition as YAML.
    Crd,
}

fn main() {
    let cli = Cli::parse();
    match cli.command {
        Command::Crd => print!("{}", ramp_api::crd_yaml()),
    }
}
