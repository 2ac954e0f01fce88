//! Command-line arguments, parsed with clap the way kubectl users expect.
//!
//! kubectl runs `kubectl-ramp` with the arguments that follow `kubectl ramp`,
//! so `kubectl ramp approve ro/demo -n team` arrives here as
//! `approve ro/demo -n team`.

use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand, ValueEnum};

/// Watch, approve and steer ramp canary rollouts.
///
/// Parse with [`Cli::parse_args`] so that help reads `kubectl ramp …`.
#[derive(Parser, Debug, Clone, PartialEq)]
#[command(
    name = "kubectl-ramp",
    about = "Watch, approve and steer ramp canary rollouts (rollouts.ramp.dev)",
    disable_version_flag = true,
    propagate_version = false
)]
pub struct Cli {
    /// Connection flags, as kubectl has them.
    #[command(flatten)]
    pub global: GlobalArgs,
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The kubectl connection flags.
#[derive(Args, Debug, Clone, Default, PartialEq)]
pub struct GlobalArgs {
    /// Namespace of the rollout (default: the namespace of the kubeconfig context).
    #[arg(short = 'n', long, global = true, value_name = "NAMESPACE")]
    pub namespace: Option<String>,
    /// The kubeconfig context to use.
    #[arg(long, global = true, value_name = "CONTEXT")]
    pub context: Option<String>,
    /// Path to the kubeconfig file (default: $KUBECONFIG, then ~/.kube/config).
    #[arg(long, global = true, value_name = "FILE")]
    pub kubeconfig: Option<PathBuf>,
}

/// Output format of `status -o`.
#[derive(ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum OutputFormat {
    /// The Rollout object as YAML.
    Yaml,
    /// The Rollout object as JSON.
    Json,
}

/// `kubectl ramp dashboard` flags.
#[derive(Args, Debug, Clone, PartialEq)]
pub struct DashboardArgs {
    /// Address to listen on (0.0.0.0 to serve other machines: anyone who can reach it can act).
    #[arg(long, default_value = "127.0.0.1", value_name = "IP")]
    pub address: std::net::IpAddr,
    /// Port to listen on (0 picks a free one; the URL printed says which).
    #[arg(long, default_value_t = 3100, value_name = "PORT")]
    pub port: u16,
    /// Show rollouts in all namespaces (else the namespace of -n or the context).
    #[arg(short = 'A', long = "all-namespaces")]
    pub all_namespaces: bool,
    /// Open the URL in a browser (xdg-open / open).
    #[arg(long)]
    pub open: bool,
    /// Show only: no action buttons, and action requests are refused (HTTP 403).
    #[arg(long)]
    pub read_only: bool,
    /// Prometheus to chart analysis metrics from, for Rollouts that name none
    /// (as the operator's --prometheus-url).
    #[arg(long, value_name = "URL")]
    pub prometheus_url: Option<String>,
}

/// Shells `completion` writes scripts for.
#[derive(ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum CompletionShell {
    /// GNU bash.
    Bash,
    /// Z shell.
    Zsh,
    /// fish.
    Fish,
}

/// The subcommands.
#[derive(Subcommand, Debug, Clone, PartialEq)]
pub enum Command {
    /// List rollouts: name, status, step, state, canary weight, canary readiness, age.
    #[command(visible_alias = "ls")]
    List {
        /// List rollouts in all namespaces.
        #[arg(short = 'A', long = "all-namespaces")]
        all_namespaces: bool,
    },
    /// Show a rollout as a tree: steps, workloads, services and routing.
    #[command(visible_alias = "get")]
    Status {
        /// The rollout: NAME, rollout/NAME, rollouts/NAME or ro/NAME.
        #[arg(value_parser = parse_rollout_ref, value_name = "ROLLOUT")]
        rollout: String,
        /// Redraw on every change until the rollout finishes (exit 0 when
        /// Healthy, 1 when aborted, disabled or deleted).
        #[arg(short = 'w', long)]
        watch: bool,
        /// Print the Rollout object instead of the tree.
        #[arg(short = 'o', long, value_enum, conflicts_with = "watch")]
        output: Option<OutputFormat>,
        /// With --watch: give up after this long (e.g. 90s, 10m, 1h) and exit 1.
        #[arg(long, value_parser = parse_duration, requires = "watch", value_name = "DURATION")]
        timeout: Option<Duration>,
    },
    /// Approve the paused step so the rollout moves on to the next one.
    Approve {
        /// The rollout: NAME, rollout/NAME, rollouts/NAME or ro/NAME.
        #[arg(value_parser = parse_rollout_ref, value_name = "ROLLOUT")]
        rollout: String,
        /// Only approve if the rollout is paused at this step (1-based).
        #[arg(long, value_parser = clap::value_parser!(i32).range(1..), value_name = "N")]
        step: Option<i32>,
        /// Approve even while an analysis metric of the step is failing (the Event says so).
        #[arg(long)]
        force: bool,
    },
    /// Abort: traffic back to stable, canary scaled to zero, workload kept paused.
    Abort {
        /// The rollout: NAME, rollout/NAME, rollouts/NAME or ro/NAME.
        #[arg(value_parser = parse_rollout_ref, value_name = "ROLLOUT")]
        rollout: String,
    },
    /// After an abort: start the rollout again from step 1.
    Retry {
        /// The rollout: NAME, rollout/NAME, rollouts/NAME or ro/NAME.
        #[arg(value_parser = parse_rollout_ref, value_name = "ROLLOUT")]
        rollout: String,
    },
    /// Approve the paused step, or with --full skip all remaining steps and finish.
    Promote {
        /// The rollout: NAME, rollout/NAME, rollouts/NAME or ro/NAME.
        #[arg(value_parser = parse_rollout_ref, value_name = "ROLLOUT")]
        rollout: String,
        /// Skip the remaining steps and finish the rollout now.
        #[arg(long)]
        full: bool,
    },
    /// Hold the rollout where it is (spec.strategy.paused: true).
    Pause {
        /// The rollout: NAME, rollout/NAME, rollouts/NAME or ro/NAME.
        #[arg(value_parser = parse_rollout_ref, value_name = "ROLLOUT")]
        rollout: String,
    },
    /// Let a paused rollout continue (spec.strategy.paused: false).
    Resume {
        /// The rollout: NAME, rollout/NAME, rollouts/NAME or ro/NAME.
        #[arg(value_parser = parse_rollout_ref, value_name = "ROLLOUT")]
        rollout: String,
    },
    /// Put the workload's pod template back to the stable revision (rolls back).
    Undo {
        /// The rollout: NAME, rollout/NAME, rollouts/NAME or ro/NAME.
        #[arg(value_parser = parse_rollout_ref, value_name = "ROLLOUT")]
        rollout: String,
    },
    /// Convert an OpenKruise Rollout manifest to a ramp Rollout (YAML on stdout).
    Convert {
        /// The OpenKruise manifest (`-` reads stdin).
        #[arg(short = 'f', long = "filename", value_name = "FILE")]
        filename: PathBuf,
    },
    /// Serve a live web dashboard of the rollouts (prints its URL).
    Dashboard(DashboardArgs),
    /// Print a shell completion script.
    Completion {
        /// bash, zsh or fish.
        #[arg(value_enum)]
        shell: CompletionShell,
    },
    /// Print the plugin version.
    Version,
}

impl Cli {
    /// Parses arguments, with help and errors naming the command as users type
    /// it (`kubectl ramp`).
    pub fn parse_args<I, T>(args: I) -> Result<Cli, clap::Error>
    where
        I: IntoIterator<Item = T>,
        T: Into<std::ffi::OsString> + Clone,
    {
        use clap::{CommandFactory, FromArgMatches};
        let mut cmd = Cli::command().bin_name("kubectl ramp");
        let matches = cmd.try_get_matches_from_mut(args)?;
        Cli::from_arg_matches(&matches).map_err(|e| e.format(&mut cmd))
    }
}

impl Command {
    /// Whether the command needs a connection to the cluster.
    pub fn needs_cluster(&self) -> bool {
        !matches!(
            self,
            Command::Convert { .. } | Command::Completion { .. } | Command::Version
        )
    }
}

/// Accepts `NAME`, `rollout/NAME`, `rollouts/NAME`, `ro/NAME` and the fully
/// qualified `rollouts.rollouts.ramp.dev/NAME`; returns NAME.
pub fn parse_rollout_ref(arg: &str) -> Result<String, String> {
    let name = match arg.split_once('/') {
        None => arg,
        Some((kind, name)) => {
            let known = [
                "rollout",
                "rollouts",
                "ro",
                "rollout.rollouts.ramp.dev",
                "rollouts.rollouts.ramp.dev",
            ];
            if !known.contains(&kind.to_ascii_lowercase().as_str()) {
                return Err(format!(
                    "'{kind}' is not a rollout: kubectl ramp works on rollouts.ramp.dev (give NAME, rollout/NAME or ro/NAME)"
                ));
            }
            name
        }
    };
    if name.is_empty() {
        return Err("the rollout name is empty".into());
    }
    if !is_dns_subdomain(name) {
        return Err(format!(
            "invalid rollout name '{name}': must be a lowercase RFC 1123 name (a-z, 0-9, '-', '.')"
        ));
    }
    Ok(name.to_string())
}

fn is_dns_subdomain(s: &str) -> bool {
    s.len() <= 253
        && s.split('.').all(|l| {
            !l.is_empty()
                && l.len() <= 63
                && l.bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
                && !l.starts_with('-')
                && !l.ends_with('-')
        })
}

/// Parses `90`, `90s`, `10m`, `1h`, `1h30m`.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let bad = || format!("invalid duration '{s}': use e.g. 90s, 10m or 1h30m");
    let s = s.trim();
    if s.is_empty() {
        return Err(bad());
    }
    if s.bytes().all(|b| b.is_ascii_digit()) {
        return s.parse::<u64>().map(Duration::from_secs).map_err(|_| bad());
    }
    let mut total = 0u64;
    let mut num = String::new();
    for c in s.chars() {
        if c.is_ascii_digit() {
            num.push(c);
            continue;
        }
        let unit = match c {
            'h' => 3600,
            'm' => 60,
            's' => 1,
            _ => return Err(bad()),
        };
        let n: u64 = num.parse().map_err(|_| bad())?;
        total = total.saturating_add(n.saturating_mul(unit));
        num.clear();
    }
    if !num.is_empty() {
        return Err(bad());
    }
    Ok(Duration::from_secs(total))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Result<Cli, clap::Error> {
        Cli::parse_args(std::iter::once("kubectl-ramp").chain(args.iter().copied()))
    }

    #[test]
    fn resource_forms_all_name_the_rollout() {
        for arg in [
            "demo",
            "rollout/demo",
            "rollouts/demo",
            "ro/demo",
            "Rollout/demo",
            "rollouts.rollouts.ramp.dev/demo",
        ] {
            assert_eq!(parse_rollout_ref(arg).as_deref(), Ok("demo"), "{arg}");
        }
    }

    #[test]
    fn other_resource_kinds_and_bad_names_are_refused() {
        let err = parse_rollout_ref("deployment/demo").unwrap_err();
        assert!(err.contains("'deployment' is not a rollout"), "{err}");
        assert!(parse_rollout_ref("ro/").unwrap_err().contains("empty"));
        assert!(
            parse_rollout_ref("Demo")
                .unwrap_err()
                .contains("invalid rollout name 'Demo'")
        );
    }

    #[test]
    fn kubectl_flags_go_anywhere() {
        let cli = parse(&[
            "approve",
            "ro/demo",
            "-n",
            "team",
            "--context",
            "kind",
            "--step",
            "2",
        ])
        .unwrap();
        assert_eq!(cli.global.namespace.as_deref(), Some("team"));
        assert_eq!(cli.global.context.as_deref(), Some("kind"));
        assert_eq!(
            cli.command,
            Command::Approve {
                rollout: "demo".into(),
                step: Some(2),
                force: false,
            }
        );
        let cli = parse(&["dashboard", "--port", "0", "-A", "--read-only"]).unwrap();
        assert_eq!(
            cli.command,
            Command::Dashboard(DashboardArgs {
                address: std::net::IpAddr::from([127, 0, 0, 1]),
                port: 0,
                all_namespaces: true,
                open: false,
                read_only: true,
                prometheus_url: None,
            })
        );
        let cli = parse(&["dashboard"]).unwrap();
        assert!(matches!(
            cli.command,
            Command::Dashboard(DashboardArgs { port: 3100, .. })
        ));
        assert!(parse(&["dashboard", "--address", "localhost:1"]).is_err());
        let cli = parse(&[
            "--kubeconfig",
            "/tmp/kc",
            "--namespace=prod",
            "status",
            "demo",
            "-w",
        ])
        .unwrap();
        assert_eq!(cli.global.kubeconfig, Some(PathBuf::from("/tmp/kc")));
        assert_eq!(cli.global.namespace.as_deref(), Some("prod"));
        assert!(matches!(
            cli.command,
            Command::Status {
                watch: true,
                output: None,
                ..
            }
        ));
    }

    #[test]
    fn list_all_namespaces_and_status_output() {
        let cli = parse(&["list", "-A"]).unwrap();
        assert_eq!(
            cli.command,
            Command::List {
                all_namespaces: true
            }
        );
        let cli = parse(&["status", "rollout/demo", "-o", "yaml"]).unwrap();
        assert!(matches!(
            cli.command,
            Command::Status {
                output: Some(OutputFormat::Yaml),
                watch: false,
                ..
            }
        ));
        let cli = parse(&["status", "demo", "--watch", "--timeout", "10m"]).unwrap();
        assert!(matches!(
            cli.command,
            Command::Status { timeout: Some(d), .. } if d == Duration::from_secs(600)
        ));
    }

    #[test]
    fn usage_errors_are_clap_errors_with_exit_code_2() {
        for args in [
            &["approve"][..],
            &["approve", "deployment/x"],
            &["approve", "x", "--step", "0"],
            &["approve", "x", "--step", "two"],
            &["status", "x", "-o", "table"],
            &["status", "x", "--timeout", "5m"],
            &["status", "x", "-w", "-o", "json"],
            &["completion", "powershell"],
            &["frobnicate"],
        ] {
            let err = parse(args).unwrap_err();
            assert_eq!(err.exit_code(), 2, "{args:?}: {err}");
        }
        // --help is not an error.
        assert_eq!(parse(&["--help"]).unwrap_err().exit_code(), 0);
    }

    #[test]
    fn promote_full_and_convert() {
        assert_eq!(
            parse(&["promote", "demo", "--full"]).unwrap().command,
            Command::Promote {
                rollout: "demo".into(),
                full: true
            }
        );
        assert_eq!(
            parse(&["convert", "-f", "kruise.yaml"]).unwrap().command,
            Command::Convert {
                filename: "kruise.yaml".into()
            }
        );
        assert!(!Command::Version.needs_cluster());
        assert!(
            Command::Undo {
                rollout: "x".into()
            }
            .needs_cluster()
        );
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("90"), Ok(Duration::from_secs(90)));
        assert_eq!(parse_duration("1h30m"), Ok(Duration::from_secs(5400)));
        assert_eq!(parse_duration("45s"), Ok(Duration::from_secs(45)));
        assert!(parse_duration("10x").is_err());
        assert!(parse_duration("m").is_err());
        assert!(parse_duration("5m3").is_err());
    }

    #[test]
    fn clap_definition_is_consistent() {
        use clap::CommandFactory;
        Cli::command().debug_assert();
    }
}
