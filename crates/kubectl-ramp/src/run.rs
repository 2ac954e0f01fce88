//! Runs a parsed command: read, plan (pure), write, report.

use std::io::{IsTerminal, Write as _};

use clap::CommandFactory;
use ramp_api::Rollout;

use crate::actions::{self, Action, Plan, Seen, Write};
use crate::cli::{Cli, Command, CompletionShell, OutputFormat};
use crate::cluster::{self, Cluster};
use crate::convert::convert_manifest;
use crate::dashboard;
use crate::error::{Error, Result};
use crate::model::{self, OPERATOR_TIMEOUT_ENV, operator_stalled, stall_seconds};
use crate::render::{StatusInput, Style, render_list, render_status};
use crate::watch::{Screen, watch};

fn print(s: &str) -> Result<()> {
    let mut out = std::io::stdout().lock();
    out.write_all(s.as_bytes())
        .and_then(|()| out.flush())
        .map_err(|e| Error::Io(format!("writing to stdout: {e}")))
}

/// The operator stall threshold for this run.
pub fn stall_threshold() -> i64 {
    stall_seconds(std::env::var(OPERATOR_TIMEOUT_ENV).ok().as_deref())
}

fn stdout_style() -> Style {
    Style::detect(
        std::io::stdout().is_terminal(),
        std::env::var("NO_COLOR").ok().as_deref(),
    )
}

/// Runs the command. Errors carry the message and the exit code.
pub async fn run(cli: Cli) -> Result<()> {
    match &cli.command {
        Command::Version => {
            return print(&format!(
                "kubectl-ramp {} (rollouts.{}/{})\n",
                env!("CARGO_PKG_VERSION"),
                ramp_api::names::GROUP,
                ramp_api::names::VERSION
            ));
        }
        Command::Completion { shell } => return print(&completion(*shell)),
        Command::Convert { filename } => return convert(filename),
        _ => {}
    }
    let cluster = cluster::connect(&cli.global).await?;
    match cli.command {
        Command::List { all_namespaces } => {
            let items = cluster.list_rollouts(all_namespaces).await?;
            if items.is_empty() {
                if all_namespaces {
                    eprintln!("No rollouts found.");
                } else {
                    eprintln!("No rollouts found in namespace '{}'.", cluster.namespace);
                }
                return Ok(());
            }
            print(&render_list(&items, all_namespaces, jiff::Timestamp::now()))
        }
        Command::Status {
            rollout,
            watch: true,
            timeout,
            ..
        } => {
            let screen = Screen {
                in_place: std::io::stdout().is_terminal(),
                style: stdout_style(),
            };
            watch(&cluster, &rollout, timeout, &screen).await?;
            println!("rollout '{rollout}' is Healthy");
            Ok(())
        }
        Command::Status {
            rollout, output, ..
        } => {
            let ro = cluster.get_rollout(&rollout).await?;
            match output {
                Some(f) => print(&dump(ro, f)?),
                None => {
                    let rel = cluster.related(&ro).await?;
                    print(&render_status(
                        &StatusInput {
                            rollout: &ro,
                            deployments: &rel.deployments,
                            services: &rel.services,
                            routing: &rel.routing,
                            now: jiff::Timestamp::now(),
                            stall_seconds: stall_threshold(),
                        },
                        stdout_style(),
                    ))
                }
            }
        }
        Command::Approve {
            rollout,
            step,
            force,
        } => act(&cluster, &rollout, Action::Approve { step, force }).await,
        Command::Promote {
            rollout,
            full: false,
        } => {
            let approve = Action::Approve {
                step: None,
                force: false,
            };
            act(&cluster, &rollout, approve).await
        }
        Command::Promote {
            rollout,
            full: true,
        } => act(&cluster, &rollout, Action::PromoteFull).await,
        Command::Abort { rollout } => act(&cluster, &rollout, Action::Abort).await,
        Command::Retry { rollout } => act(&cluster, &rollout, Action::Retry).await,
        Command::Pause { rollout } => act(&cluster, &rollout, Action::Pause).await,
        Command::Resume { rollout } => act(&cluster, &rollout, Action::Resume).await,
        Command::Undo { rollout } => act(&cluster, &rollout, Action::Undo).await,
        Command::Dashboard(opts) => dashboard::serve(cluster, opts).await,
        Command::Version | Command::Completion { .. } | Command::Convert { .. } => Ok(()),
    }
}

/// The completion script for the `kubectl-ramp` executable (kubectl ≥ 1.26
/// forwards `kubectl ramp <TAB>` to it through a `kubectl_complete-ramp` helper).
pub fn completion(shell: CompletionShell) -> String {
    let mut cmd = Cli::command();
    let mut buf = Vec::new();
    match shell {
        CompletionShell::Bash => {
            // clap_complete 4.6 names bash functions inconsistently when the
            // binary name has a '-': generate for `kubectl_ramp`, then register
            // the functions for the real name.
            clap_complete::generate(
                clap_complete::Shell::Bash,
                &mut cmd,
                "kubectl_ramp",
                &mut buf,
            );
            String::from_utf8_lossy(&buf)
                .lines()
                .map(|l| match l.strip_suffix(" kubectl_ramp") {
                    Some(head) if l.trim_start().starts_with("complete ") => {
                        format!("{head} kubectl-ramp\n")
                    }
                    _ => format!("{l}\n"),
                })
                .collect()
        }
        CompletionShell::Zsh | CompletionShell::Fish => {
            let sh = if shell == CompletionShell::Zsh {
                clap_complete::Shell::Zsh
            } else {
                clap_complete::Shell::Fish
            };
            clap_complete::generate(sh, &mut cmd, "kubectl-ramp", &mut buf);
            String::from_utf8_lossy(&buf).into_owned()
        }
    }
}

fn dump(mut ro: Rollout, f: OutputFormat) -> Result<String> {
    ro.metadata.managed_fields = None;
    match f {
        OutputFormat::Yaml => serde_yaml::to_string(&ro).map_err(|e| Error::Io(e.to_string())),
        OutputFormat::Json => serde_json::to_string_pretty(&ro)
            .map(|s| s + "\n")
            .map_err(|e| Error::Io(e.to_string())),
    }
}

fn convert(filename: &std::path::Path) -> Result<()> {
    let (source, text) = if filename.as_os_str() == "-" {
        let mut s = String::new();
        std::io::Read::read_to_string(&mut std::io::stdin(), &mut s)
            .map_err(|e| Error::Io(format!("reading stdin: {e}")))?;
        ("<stdin>".to_string(), s)
    } else {
        let s = std::fs::read_to_string(filename)
            .map_err(|e| Error::Io(format!("cannot read '{}': {e}", filename.display())))?;
        (filename.display().to_string(), s)
    };
    let out = convert_manifest(&source, &text)?;
    for n in &out.notes {
        eprintln!("warning: {n}");
    }
    print(&out.yaml)
}

/// Refuses when the operator has never written a status; a warning when it lags.
fn check_operator(ro: &Rollout) -> Result<Option<String>> {
    if let Some(msg) = operator_stalled(ro, jiff::Timestamp::now(), stall_threshold()) {
        if ro.status.as_ref().is_none_or(|s| s.phase.is_none()) {
            return Err(Error::OperatorStalled(msg));
        }
        return Ok(Some(msg));
    }
    Ok(None)
}

/// What an action did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outcome {
    /// The line saying what was done (`rollout 'x' approved step 2/3`).
    pub done: String,
    /// Warnings: the operator lags, the Event could not be recorded.
    pub warnings: Vec<String>,
}

/// Runs an action on rollout `name` in `cluster.namespace`, as `kubectl ramp
/// ACTION` does: read the Rollout, check the operator, plan (pure, in
/// [`actions`]), send the guarded write, record the Event. With `seen`, the
/// guard pins the step the user saw instead of the one just read (the
/// dashboard), so a step that moved on meanwhile is refused by the server.
/// The CLI and the dashboard both call this.
pub async fn execute(
    cluster: &Cluster,
    name: &str,
    action: Action,
    seen: Option<Seen>,
) -> Result<Outcome> {
    let fresh = cluster.get_rollout(name).await?;
    let mut warnings: Vec<String> = check_operator(&fresh)?.into_iter().collect();
    let ro = actions::as_seen(&fresh, seen);
    let plan = match action.plan(&ro) {
        Some(plan) => plan?,
        None => undo_plan(cluster, &ro).await?,
    };
    cluster.apply(&ro, &plan).await?;
    if plan.write != Write::Nothing {
        let user = cluster.whoami().await;
        if let Err(e) = cluster.record(&ro, &plan.event, &user).await {
            warnings.push(format!(
                "could not record an Event on rollout '{}': {e}",
                model::name(&ro)
            ));
        }
    }
    Ok(Outcome {
        done: plan.done,
        warnings,
    })
}

async fn act(cluster: &Cluster, name: &str, action: Action) -> Result<()> {
    let out = execute(cluster, name, action, None).await?;
    print(&format!("{}\n", out.done))?;
    for w in &out.warnings {
        eprintln!("warning: {w}");
    }
    Ok(())
}

async fn undo_plan(cluster: &Cluster, ro: &Rollout) -> Result<Plan> {
    let name = model::name(ro);
    let w = &ro.spec.workload_ref.name;
    let Some(deployment) = cluster.deployment(w).await? else {
        return Err(Error::NotFound(format!(
            "deployment '{w}' (the workload of rollout '{name}') not found in namespace '{}'",
            cluster.namespace
        )));
    };
    let stable = model::canary(ro)
        .map(|c| c.stable_revision.clone())
        .unwrap_or_default();
    let replicasets = if stable.is_empty() {
        Vec::new()
    } else {
        cluster.replicasets_with_hash(&stable).await?
    };
    actions::undo(ro, &deployment, &replicasets)
}
