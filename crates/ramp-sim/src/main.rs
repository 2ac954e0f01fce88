//! `ramp-sim`: the embedded Kubernetes-compatible API server as a command.
//!
//! ```text
//! ramp-sim serve --listen 127.0.0.1:0 --kubeconfig ./kubeconfig --crds ../shared/crds
//! ```

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use ramp_sim::{Server, ServerConfig, Store, load_manifests};

#[derive(Debug, Parser)]
#[command(
    name = "ramp-sim",
    version,
    about = "An in-memory, Kubernetes-compatible API server for tests and demos"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Serve the Kubernetes API over plain HTTP until SIGTERM/SIGINT.
    Serve(ServeArgs),
}

#[derive(Debug, clap::Args)]
struct ServeArgs {
    /// Address to listen on; port 0 picks a free port.
    #[arg(long, default_value = "127.0.0.1:0")]
    listen: SocketAddr,
    /// Where to write a kubeconfig for the server (written once it listens).
    #[arg(long)]
    kubeconfig: PathBuf,
    /// CRD (or other) manifests to load: YAML files (multi-document) or directories.
    #[arg(long = "crds", value_name = "DIR_OR_FILE")]
    crds: Vec<PathBuf>,
    /// Bearer token to put in the kubeconfig (random by default).
    #[arg(long, env = "RAMP_SIM_TOKEN")]
    token: Option<String>,
}

async fn serve(args: ServeArgs) -> Result<(), String> {
    let mut config = ServerConfig {
        listen: args.listen,
        ..ServerConfig::default()
    };
    if let Some(t) = args.token {
        config.token = t;
    }
    let server = Server::start(Store::new(), config)
        .await
        .map_err(|e| format!("cannot listen on {}: {e}", args.listen))?;
    server
        .write_kubeconfig(&args.kubeconfig)
        .map_err(|e| format!("cannot write kubeconfig {}: {e}", args.kubeconfig.display()))?;
    if !args.crds.is_empty() {
        let loaded = load_manifests(server.store(), &args.crds).map_err(|e| e.to_string())?;
        tracing::info!(count = loaded.len(), "loaded manifests");
    }
    println!(
        "ramp-sim listening on {} (kubeconfig: {})",
        server.url(),
        args.kubeconfig.display()
    );
    wait_for_signal().await;
    tracing::info!("shutting down");
    server.shutdown().await;
    Ok(())
}

async fn wait_for_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = term.recv() => {}
                    _ = tokio::signal::ctrl_c() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}

#[tokio::main]
async fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("RAMP_SIM_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    let res = match cli.command {
        Command::Serve(args) => serve(args).await,
    };
    match res {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("ramp-sim: {e}");
            ExitCode::FAILURE
        }
    }
}
