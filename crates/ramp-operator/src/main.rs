//! `ramp-operator`: see `ramp-operator --help`.

use std::net::SocketAddr;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, Subcommand};
use kube::runtime::events::Reporter;
use ramp_operator::controller::{self, Scope};
use ramp_operator::http::{self, Health};
use ramp_operator::metrics::Metrics;
use ramp_operator::{certs, leader, registration, webhook};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

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
    /// Run the controller, the admission webhooks and the metrics server.
    Run(Box<RunArgs>),
}

#[derive(clap::Args, Debug)]
struct RunArgs {
    /// Watch only this namespace (default: all namespaces).
    #[arg(long)]
    namespace: Option<String>,
    /// Address of /metrics, /healthz and /readyz.
    #[arg(long, default_value = "0.0.0.0:8080")]
    metrics_listen: SocketAddr,
    /// Elect one active controller through a coordination.k8s.io Lease.
    #[arg(long)]
    leader_elect: bool,
    /// Name of the leader-election Lease.
    #[arg(long, default_value = "ramp-operator-leader")]
    leader_election_id: String,
    /// Namespace of the Lease and of the certificate Secret.
    #[arg(long, env = "POD_NAMESPACE", default_value = "ramp-system")]
    operator_namespace: String,
    /// Do not serve admission webhooks; the controller pauses changed
    /// Deployments itself (racing the native rollout) and warns.
    #[arg(long, conflicts_with_all = ["webhook_url", "webhook_service"])]
    no_webhook: bool,
    /// Address the webhook server listens on (HTTPS).
    #[arg(long, default_value = "0.0.0.0:9443")]
    webhook_listen: SocketAddr,
    /// Register URL-based webhook configurations pointing here (for running
    /// outside the cluster), e.g. https://127.0.0.1:9443. Port 0 stands for the
    /// port --webhook-listen bound.
    #[arg(long)]
    webhook_url: Option<String>,
    /// In a cluster: the webhook Service's name (the chart's webhook
    /// configurations point at it; the operator fills in their caBundle).
    #[arg(long)]
    webhook_service: Option<String>,
    /// Name of the Mutating/ValidatingWebhookConfiguration objects.
    #[arg(long, default_value = "ramp")]
    webhook_configuration: String,
    /// Name of the Secret holding the webhook CA and serving certificate.
    #[arg(long, default_value = "ramp-webhook-cert")]
    cert_secret: String,
    /// Prometheus for metric analysis (base URL, e.g.
    /// http://prometheus.monitoring:9090), used by Rollouts whose
    /// `analysis.prometheus.address` is not set.
    #[arg(long, env = "RAMP_PROMETHEUS_URL")]
    prometheus_url: Option<String>,
    /// PEM file of CA certificates trusted, besides the system's roots, for
    /// `https://` Prometheus addresses (a Prometheus behind a private CA).
    #[arg(long, env = "RAMP_PROMETHEUS_CA_FILE")]
    prometheus_ca_file: Option<String>,
}

fn init_tracing() {
    use tracing_subscriber::EnvFilter;
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let json = std::env::var("RAMP_LOG_FORMAT").is_ok_and(|f| f == "json");
    // Logs go to stderr (stdout stays free for command output such as `crd`),
    // coloured only on a terminal so that log files hold plain text.
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(ansi);
    if json {
        builder.json().init();
    } else {
        builder.init();
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Crd => {
            print!("{}", ramp_api::crd_yaml());
            ExitCode::SUCCESS
        }
        Command::Run(args) => {
            init_tracing();
            let rt = match tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .build()
            {
                Ok(rt) => rt,
                Err(e) => {
                    eprintln!("ramp-operator: starting the runtime: {e}");
                    return ExitCode::FAILURE;
                }
            };
            match rt.block_on(run(*args)) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    tracing::error!(error = %e, "ramp-operator stopped");
                    eprintln!("ramp-operator: {e}");
                    ExitCode::FAILURE
                }
            }
        }
    }
}

async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(s) => s,
                Err(_) => {
                    let _ = ctrl_c.await;
                    return;
                }
            };
        tokio::select! {
            _ = ctrl_c => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    {
        let _ = ctrl_c.await;
    }
}

async fn run(args: RunArgs) -> Result<(), Box<dyn std::error::Error>> {
    if let Some(url) = &args.prometheus_url {
        ramp_api::analysis::check_address(url.trim())
            .map_err(|e| format!("--prometheus-url {url:?}: {e}"))?;
    }
    let mut config = kube::Config::infer()
        .await
        .map_err(|e| format!("connecting to the cluster (KUBECONFIG or in-cluster config): {e}"))?;
    // The leader-election identity, also in the User-Agent: the API server's
    // audit log and request accounting tell two replicas apart.
    let identity = format!(
        "{}-{}",
        std::env::var("POD_NAME").unwrap_or_else(|_| "ramp-operator".into()),
        &uuid_like()
    );
    let user_agent = format!("ramp-operator/{} ({identity})", env!("CARGO_PKG_VERSION"));
    // Named in the API server's audit log and request accounting.
    config.headers.push((
        ::http::header::USER_AGENT,
        ::http::HeaderValue::from_str(&user_agent)
            .map_err(|e| format!("POD_NAME {identity:?} cannot be sent in a User-Agent: {e}"))?,
    ));
    let client = kube::Client::try_from(config)
        .map_err(|e| format!("connecting to the cluster (KUBECONFIG or in-cluster config): {e}"))?;
    let prometheus = match &args.prometheus_ca_file {
        Some(path) => ramp_operator::analysis::Prometheus::with_ca_file(
            ramp_operator::analysis::QUERY_TIMEOUT,
            path,
        )
        .map_err(|e| format!("--prometheus-ca-file: {e}"))?,
        None => ramp_operator::analysis::Prometheus::default(),
    };
    let analyzer =
        ramp_operator::analysis::Analyzer::with_client(prometheus, args.prometheus_url.clone());
    let metrics = Metrics::new();
    let health = Health::default();
    // Cancelled on SIGTERM/Ctrl-C, or when the controller ends.
    let stop = CancellationToken::new();
    {
        let stop = stop.clone();
        tokio::spawn(async move {
            shutdown_signal().await;
            tracing::info!("shutting down");
            stop.cancel();
        });
    }

    let metrics_listener = tokio::net::TcpListener::bind(args.metrics_listen)
        .await
        .map_err(|e| format!("listening on --metrics-listen {}: {e}", args.metrics_listen))?;
    tracing::info!(addr = %metrics_listener.local_addr()?, "metrics and health listening");
    let app = http::router(metrics.clone(), health.clone());
    let metrics_server = tokio::spawn(
        axum::serve(metrics_listener, app)
            .with_graceful_shutdown(stop.clone().cancelled_owned())
            .into_future(),
    );

    // Webhooks: serve them on every replica, leader or not.
    let webhook_enabled = !args.no_webhook;
    if webhook_enabled {
        let listener = tokio::net::TcpListener::bind(args.webhook_listen)
            .await
            .map_err(|e| format!("listening on --webhook-listen {}: {e}", args.webhook_listen))?;
        let local = listener.local_addr()?;
        let mode = match (&args.webhook_url, &args.webhook_service) {
            // Port 0 in the URL means "the port --webhook-listen bound" (handy with 127.0.0.1:0).
            (Some(url), _) => {
                registration::Mode::Url(registration::with_bound_port(url, local.port()))
            }
            (None, Some(svc)) => registration::Mode::Service {
                namespace: args.operator_namespace.clone(),
                name: svc.clone(),
            },
            (None, None) => {
                return Err("the webhooks need --webhook-url (outside a cluster) or --webhook-service (in a cluster); or pass --no-webhook".into());
            }
        };
        let names = mode.serving_names(local);
        let bundle = certs::load_or_create(
            client.clone(),
            &args.operator_namespace,
            &args.cert_secret,
            &names,
        )
        .await?;
        let tls = bundle.server_config()?;
        registration::ensure_scoped(
            &client,
            &mode,
            &args.webhook_configuration,
            &bundle.ca_cert_pem,
            args.namespace.as_deref(),
        )
        .await?;
        tracing::info!(addr = %local, "webhooks listening (HTTPS)");
        tokio::spawn(webhook::run(
            client.clone(),
            listener,
            tls,
            stop.clone().cancelled_owned(),
        ));
    }

    // Leader election (or lead at once).
    let (lead_tx, mut lead_rx) = watch::channel(!args.leader_elect);
    if args.leader_elect {
        let cfg = leader::LeaseConfig {
            namespace: args.operator_namespace.clone(),
            name: args.leader_election_id.clone(),
            identity: identity.clone(),
            lease_duration: Duration::from_secs(15),
            retry_period: Duration::from_secs(2),
        };
        tokio::spawn(leader::run(client.clone(), cfg, lead_tx, stop.clone()));
    }
    // Not leading yet: ready for webhook traffic.
    if args.leader_elect {
        health.set_ready(true);
    }
    tokio::select! {
        _ = lead_rx.wait_for(|l| *l) => {}
        _ = stop.cancelled() => {
            let _ = metrics_server.await;
            return Ok(());
        }
    }
    tracing::info!(%identity, "leading: starting the controller");
    let reporter = Reporter {
        controller: "ramp-operator".into(),
        instance: Some(identity),
    };
    let scope = Scope {
        namespace: args.namespace.clone(),
    };
    // Losing the lease stops the controller at once.
    let mut lost = lead_rx.clone();
    let stop_ctrl = stop.clone();
    let shutdown = async move {
        tokio::select! {
            _ = lost.wait_for(|l| !*l) => tracing::error!("lost leadership: stopping the controller"),
            _ = stop_ctrl.cancelled() => {}
        }
    };
    let ready_health = health.clone();
    controller::run(
        client,
        scope,
        metrics,
        reporter,
        webhook_enabled,
        analyzer,
        shutdown,
        move || ready_health.set_ready(true),
    )
    .await;
    let stopping = stop.is_cancelled();
    stop.cancel();
    let _ = metrics_server.await;
    if args.leader_elect && !*lead_rx.borrow() && !stopping {
        return Err("lost leadership".into());
    }
    Ok(())
}

/// A short random suffix for the leader identity.
fn uuid_like() -> String {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or_default(),
    );
    format!("{:08x}", h.finish() as u32)
}
