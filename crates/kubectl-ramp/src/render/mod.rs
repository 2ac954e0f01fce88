//! Rendering, pure: the objects as read from the cluster (and the time) in,
//! the text out. `list` is a kubectl-style table; `status` is a tree of the
//! rollout, its steps, its workloads and its routing.

mod routing;

use routing::*;

use std::collections::BTreeMap;

use jiff::Timestamp;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::Service;
use ramp_api::names::{canary_service_name, canary_workload_name};
use ramp_api::{FinalisingStep, Rollout, RolloutPhase, StepState};
use serde_json::Value;

use crate::model::{
    self, canary, canary_traffic, canary_weight, describe_step, human_duration, operator_stalled,
    pause_remaining, phase, state_reason, step_of, steps,
};

/// Terminal styling; every method is the identity when colour is off.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Style {
    /// Emit ANSI colour codes.
    pub color: bool,
}

impl Style {
    /// Colour when writing to a terminal and `NO_COLOR` is unset or empty.
    pub fn detect(is_terminal: bool, no_color: Option<&str>) -> Self {
        Style {
            color: is_terminal && no_color.is_none_or(str::is_empty),
        }
    }

    fn paint(self, code: &str, s: &str) -> String {
        if self.color && !s.is_empty() {
            format!("\x1b[{code}m{s}\x1b[0m")
        } else {
            s.to_string()
        }
    }
    fn green(self, s: &str) -> String {
        self.paint("32", s)
    }
    fn yellow(self, s: &str) -> String {
        self.paint("33", s)
    }
    fn red(self, s: &str) -> String {
        self.paint("31", s)
    }
    fn blue(self, s: &str) -> String {
        self.paint("34", s)
    }
    fn dim(self, s: &str) -> String {
        self.paint("2", s)
    }
    fn bold(self, s: &str) -> String {
        self.paint("1", s)
    }
}

/// Everything `status` shows, as read from the cluster.
#[derive(Debug, Clone, Copy)]
pub struct StatusInput<'a> {
    /// The Rollout.
    pub rollout: &'a Rollout,
    /// The stable and canary Deployments (whichever exist).
    pub deployments: &'a [Deployment],
    /// The stable and canary Services (whichever exist).
    pub services: &'a [Service],
    /// The routing objects (VirtualServices) as JSON.
    pub routing: &'a [Value],
    /// The time to count ages and pauses from.
    pub now: Timestamp,
    /// Seconds without status progress that count as "operator not running".
    pub stall_seconds: i64,
}

const BAR_WIDTH: usize = 20;

fn bar(done: i64, total: i64) -> String {
    let total = total.max(0);
    let done = done.clamp(0, total);
    let filled = if total == 0 {
        BAR_WIDTH
    } else {
        usize::try_from(done * BAR_WIDTH as i64 / total).unwrap_or(0)
    };
    format!(
        "[{}{}]",
        "█".repeat(filled),
        "░".repeat(BAR_WIDTH.saturating_sub(filled))
    )
}

/// A tree node: its text and its children's texts.
struct Node {
    text: String,
    children: Vec<String>,
}

fn leaf(text: String) -> Node {
    Node {
        text,
        children: Vec::new(),
    }
}

fn tree(out: &mut String, title: &str, nodes: &[Node], style: Style) {
    out.push('\n');
    out.push_str(&style.bold(title));
    out.push('\n');
    for (i, n) in nodes.iter().enumerate() {
        let last = i + 1 == nodes.len();
        out.push_str(if last { "└── " } else { "├── " });
        out.push_str(n.text.trim_end());
        out.push('\n');
        for (j, c) in n.children.iter().enumerate() {
            out.push_str(if last { "    " } else { "│   " });
            out.push_str(if j + 1 == n.children.len() {
                "└── "
            } else {
                "├── "
            });
            out.push_str(c.trim_end());
            out.push('\n');
        }
    }
}

fn field(out: &mut String, key: &str, value: &str) {
    let mut lines = value.lines();
    out.push_str(&format!(
        "{:<14}{}\n",
        format!("{key}:"),
        lines.next().unwrap_or_default()
    ));
    for l in lines {
        out.push_str(&format!("{:<14}{l}\n", ""));
    }
}

fn phase_text(ro: &Rollout, style: Style) -> String {
    let paused = ro.spec.strategy.paused;
    let (icon, word, paint): (&str, String, fn(Style, &str) -> String) = match phase(ro) {
        None => ("?", "Unknown (no status yet)".into(), Style::dim),
        Some(RolloutPhase::Healthy) => ("✔", "Healthy".into(), Style::green),
        Some(RolloutPhase::Progressing) if paused => ("॥", "Progressing".into(), Style::yellow),
        Some(RolloutPhase::Progressing) => ("◌", "Progressing".into(), Style::blue),
        Some(RolloutPhase::Aborted) => ("✖", "Aborted".into(), Style::red),
        Some(RolloutPhase::Disabled) => ("○", "Disabled".into(), Style::dim),
        Some(p) => ("◌", p.to_string(), Style::yellow),
    };
    let mut s = paint(style, &format!("{icon} {word}"));
    if paused {
        s.push_str(&format!(
            " · paused by spec.strategy.paused (`kubectl ramp resume {}`)",
            model::name(ro)
        ));
    }
    s
}

/// The progress line for the current step, when a rollout is under way.
fn progress(ro: &Rollout, now: Timestamp) -> Option<String> {
    let n = model::name(ro);
    let c = canary(ro)?;
    match phase(ro)? {
        RolloutPhase::Aborted => {
            return Some(format!(
                "aborted at step {}: traffic is back on stable; `kubectl ramp retry {n}` starts again, `kubectl ramp undo {n}` rolls back",
                step_of(ro, c.current_step_index)
            ));
        }
        RolloutPhase::Progressing => {}
        _ => return None,
    }
    let (ready, want) = (
        i64::from(c.canary_ready_replicas),
        i64::from(c.canary_replicas),
    );
    let pods = format!("{ready}/{want} canary pods ready");
    Some(match c.current_step_state {
        StepState::BeforeStepUpgrade => format!(
            "{} starting step {}",
            bar(0, 1),
            step_of(ro, c.current_step_index)
        ),
        StepState::StepUpgrade => format!("{} {pods}", bar(ready, want)),
        StepState::StepTrafficRouting => format!(
            "{} {pods} · moving traffic to {}",
            bar(ready, want),
            model::step_weight(ro, c.current_step_index)
        ),
        StepState::StepPaused => match pause_remaining(ro, now) {
            Some((left, total)) => format!(
                "{} {pods} · pause {left}s left of {total}s",
                bar(i64::from(total) - left, i64::from(total))
            ),
            None => format!(
                "{} {pods} · waiting for approval: kubectl ramp approve {n} --step {}",
                bar(ready, want),
                c.current_step_index
            ),
        },
        StepState::StepReady => format!("{} {pods} · step done, moving on", bar(ready, want)),
        StepState::Completed => {
            let at = c
                .finalising_step
                .and_then(|f| FINALISING.iter().position(|x| *x == f))
                .unwrap_or(0);
            let word = c.finalising_step.unwrap_or(FinalisingStep::RestoreRouting);
            format!(
                "{} finishing {}/{}: {word}",
                bar(at as i64, (FINALISING.len() - 1) as i64),
                at,
                FINALISING.len() - 1
            )
        }
    })
}

const FINALISING: [FinalisingStep; 6] = [
    FinalisingStep::RestoreRouting,
    FinalisingStep::RestoreStableService,
    FinalisingStep::DeleteCanaryService,
    FinalisingStep::ResumeWorkload,
    FinalisingStep::DeleteCanaryWorkload,
    FinalisingStep::Done,
];

#[derive(Clone, Copy, PartialEq, Eq)]
enum Mark {
    Done,
    Current,
    Failed,
    Pending,
}

fn mark(m: Mark, style: Style) -> String {
    match m {
        Mark::Done => style.green("✔"),
        Mark::Current => style.yellow("▶"),
        Mark::Failed => style.red("✖"),
        Mark::Pending => style.dim("○"),
    }
}

fn step_marks(ro: &Rollout) -> Vec<Mark> {
    let total = steps(ro).len();
    let c = canary(ro);
    let completed = c.is_some_and(|c| c.current_step_state == StepState::Completed);
    let at = c.map_or(0, |c| usize::try_from(c.current_step_index).unwrap_or(0));
    (1..=total)
        .map(|j| match phase(ro) {
            Some(RolloutPhase::Progressing | RolloutPhase::Healthy) if completed => Mark::Done,
            Some(RolloutPhase::Progressing) if j < at => Mark::Done,
            Some(RolloutPhase::Progressing) if j == at => Mark::Current,
            Some(RolloutPhase::Aborted) if j < at => Mark::Done,
            Some(RolloutPhase::Aborted) if j == at => Mark::Failed,
            _ => Mark::Pending,
        })
        .collect()
}

fn ready_text(d: &Deployment) -> String {
    let want = d.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1);
    let ready = d
        .status
        .as_ref()
        .and_then(|s| s.ready_replicas)
        .unwrap_or(0);
    let mut s = format!("{ready}/{want} ready");
    let paused = d.spec.as_ref().and_then(|s| s.paused) == Some(true);
    if let Some(updated) = d.status.as_ref().and_then(|s| s.updated_replicas)
        && !paused
        && updated < want
    {
        s.push_str(&format!(" · {updated}/{want} updated"));
    }
    s
}

fn images(d: &Deployment) -> String {
    let imgs: Vec<&str> = d
        .spec
        .as_ref()
        .and_then(|s| s.template.spec.as_ref())
        .map(|p| {
            p.containers
                .iter()
                .filter_map(|c| c.image.as_deref())
                .collect()
        })
        .unwrap_or_default();
    if imgs.is_empty() {
        "-".into()
    } else {
        imgs.join(",")
    }
}

fn selector_text(s: &Service) -> String {
    let sel = s
        .spec
        .as_ref()
        .and_then(|s| s.selector.as_ref())
        .map(|m| {
            m.iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect::<Vec<_>>()
                .join(",")
        })
        .unwrap_or_default();
    if sel.is_empty() {
        "selector <none>".into()
    } else {
        format!("selector {sel}")
    }
}

/// Pads the first `cols` columns of each row to a common width.
fn columns(rows: Vec<Vec<String>>) -> Vec<String> {
    let n = rows.iter().map(Vec::len).max().unwrap_or(0);
    let mut widths = vec![0; n];
    for r in &rows {
        for (i, c) in r.iter().enumerate() {
            widths[i] = widths[i].max(c.chars().count());
        }
    }
    rows.into_iter()
        .map(|r| {
            let last = r.len().saturating_sub(1);
            r.iter()
                .enumerate()
                .map(|(i, c)| {
                    if i == last {
                        c.clone()
                    } else {
                        format!("{c:<w$}", w = widths[i])
                    }
                })
                .collect::<Vec<_>>()
                .join("  ")
        })
        .collect()
}

/// The `status` tree.
pub fn render_status(input: &StatusInput<'_>, style: Style) -> String {
    let ro = input.rollout;
    let n = model::name(ro);
    let mut out = String::new();
    field(&mut out, "Name", n);
    field(&mut out, "Namespace", model::namespace(ro));
    field(&mut out, "Status", &phase_text(ro, style));
    if let Some(m) = ro.status.as_ref().and_then(|s| s.message.as_deref()) {
        field(&mut out, "Message", m);
    }
    let c = canary(ro);
    if let Some(c) = c {
        let step = step_of(ro, c.current_step_index);
        match phase(ro) {
            Some(RolloutPhase::Progressing) => field(
                &mut out,
                "Step",
                &format!(
                    "{step} · {} · {}",
                    c.current_step_state,
                    state_reason(ro, c)
                ),
            ),
            Some(RolloutPhase::Aborted) => field(&mut out, "Step", &format!("{step} · aborted")),
            _ => {}
        }
        if let Some(p) = progress(ro, input.now) {
            field(&mut out, "Progress", &p);
        }
        let in_flight = matches!(
            phase(ro),
            Some(RolloutPhase::Progressing | RolloutPhase::Aborted)
        );
        if in_flight && c.current_step_state != StepState::Completed {
            field(
                &mut out,
                "Canary",
                &format!(
                    "{} · {}/{} pods ready",
                    canary_traffic(ro),
                    c.canary_ready_replicas,
                    c.canary_replicas
                ),
            );
        }
        if let Some(m) = c.message.as_deref() {
            field(&mut out, "Detail", m);
        }
        if let Some(a) = c.requested_action {
            field(
                &mut out,
                "Requested",
                &format!("{a} (waiting for the operator)"),
            );
        }
        let (stable, new) = (&c.stable_revision, &c.canary_revision);
        if in_flight {
            let mut revs = Vec::new();
            if !stable.is_empty() {
                revs.push(format!("stable {stable}"));
            }
            if !new.is_empty() {
                revs.push(format!("canary {new}"));
            }
            if !revs.is_empty() {
                field(&mut out, "Revisions", &revs.join(" · "));
            }
        } else if !stable.is_empty() && (new.is_empty() || new == stable) {
            field(&mut out, "Revision", stable);
        } else if !stable.is_empty() {
            field(&mut out, "Last rollout", &format!("{stable} → {new}"));
        }
    }
    let conds: Vec<String> = ro
        .status
        .iter()
        .flat_map(|s| &s.conditions)
        .map(|k| {
            let mut s = format!("{}={}", k.type_, k.status);
            if let Some(r) = &k.reason {
                s.push_str(&format!(" ({r})"));
            }
            if let Some(m) = k.message.as_deref().filter(|m| !m.is_empty()) {
                s.push_str(&format!(": {m}"));
            }
            s
        })
        .collect();
    if !conds.is_empty() {
        field(&mut out, "Conditions", &conds.join("\n"));
    }
    if let Some(w) = operator_stalled(ro, input.now, input.stall_seconds) {
        field(&mut out, "Warning", &style.red(&w));
    }
    if let Some(t) = ro.metadata.creation_timestamp.as_ref() {
        field(
            &mut out,
            "Age",
            &human_duration(input.now.as_second() - t.0.as_second()),
        );
    }

    // Steps.
    let marks = step_marks(ro);
    let step_nodes: Vec<Node> = steps(ro)
        .iter()
        .enumerate()
        .map(|(i, s)| {
            let mut text = format!(
                "{} {:>2}  {}",
                mark(marks[i], style),
                i + 1,
                describe_step(s)
            );
            if marks[i] == Mark::Current
                && let Some(c) = c
            {
                text.push_str(&format!(
                    "  ← {}",
                    style.yellow(&c.current_step_state.to_string())
                ));
            } else if marks[i] == Mark::Failed {
                text.push_str(&format!("  ← {}", style.red("aborted here")));
            }
            leaf(text)
        })
        .collect();
    let title = if steps(ro).is_empty() {
        "Steps (none)"
    } else {
        "Steps"
    };
    tree(&mut out, title, &step_nodes, style);
    analysis_tree(&mut out, ro, input.now, style);

    if let Some(c) = c
        && c.current_step_state == StepState::Completed
        && phase(ro) == Some(RolloutPhase::Progressing)
    {
        let at = c
            .finalising_step
            .and_then(|f| FINALISING.iter().position(|x| *x == f))
            .unwrap_or(0);
        let nodes: Vec<Node> = FINALISING[..FINALISING.len() - 1]
            .iter()
            .enumerate()
            .map(|(i, f)| {
                let m = match i.cmp(&at) {
                    std::cmp::Ordering::Less => Mark::Done,
                    std::cmp::Ordering::Equal => Mark::Current,
                    std::cmp::Ordering::Greater => Mark::Pending,
                };
                leaf(format!("{} {f}", mark(m, style)))
            })
            .collect();
        tree(&mut out, "Finishing", &nodes, style);
    }

    // Resources.
    let mut rows: Vec<Vec<String>> = Vec::new();
    let mut children: Vec<Vec<String>> = Vec::new();
    let workload = &ro.spec.workload_ref.name;
    let canary_workload = canary_workload_name(workload);
    let progressing = matches!(
        phase(ro),
        Some(RolloutPhase::Progressing | RolloutPhase::Aborted)
    );
    let find_d = |name: &str| {
        input
            .deployments
            .iter()
            .find(|d| d.metadata.name.as_deref() == Some(name))
    };
    for (name, role) in [
        (workload.as_str(), "stable"),
        (canary_workload.as_str(), "canary"),
    ] {
        match find_d(name) {
            Some(d) => {
                let mut detail = format!("{} · {}", ready_text(d), images(d));
                if d.spec.as_ref().and_then(|s| s.paused) == Some(true) {
                    detail.push_str(" · paused");
                }
                rows.push(vec!["Deployment".into(), name.into(), role.into(), detail]);
                children.push(Vec::new());
            }
            None if role == "stable" || progressing => {
                rows.push(vec![
                    "Deployment".into(),
                    name.into(),
                    role.into(),
                    "missing".into(),
                ]);
                children.push(Vec::new());
            }
            None => {}
        }
    }
    let routing = ro
        .spec
        .strategy
        .canary
        .as_ref()
        .and_then(|c| c.traffic_routings.first());
    if let Some(r) = routing {
        let refs = r.routing_refs();
        // Subset routing (a DestinationRule next to the VirtualService) needs no canary Service.
        let subsets = refs.iter().any(|n| n.kind == "DestinationRule");
        let canary_svc = canary_service_name(&r.service);
        for (name, role) in [
            (r.service.as_str(), "stable"),
            (canary_svc.as_str(), "canary"),
        ] {
            match input
                .services
                .iter()
                .find(|s| s.metadata.name.as_deref() == Some(name))
            {
                Some(s) => {
                    rows.push(vec![
                        "Service".into(),
                        name.into(),
                        role.into(),
                        selector_text(s),
                    ]);
                    children.push(Vec::new());
                }
                None if role == "stable" || (progressing && !subsets) => {
                    rows.push(vec![
                        "Service".into(),
                        name.into(),
                        role.into(),
                        "missing".into(),
                    ]);
                    children.push(Vec::new());
                }
                None => {}
            }
        }
        for nref in &refs {
            let obj = input.routing.iter().find(|v| {
                obj_name(v) == nref.name
                    && v.get("kind").and_then(Value::as_str) == Some(nref.kind.as_str())
            });
            let (summary, lines) = match obj {
                Some(v) => describe_routing_object(&nref.kind, v),
                None => ("missing".to_string(), Vec::new()),
            };
            rows.push(vec![
                nref.kind.clone(),
                nref.name.clone(),
                "routing".into(),
                summary,
            ]);
            children.push(lines);
        }
    }
    let nodes: Vec<Node> = columns(rows)
        .into_iter()
        .zip(children)
        .map(|(text, children)| Node {
            text: paint_missing(text, style),
            children,
        })
        .collect();
    tree(&mut out, "Resources", &nodes, style);
    out
}

/// The current step's analysis: one line per metric with its last value,
/// range, phase and counts, and the reason of a NoData or Error.
fn analysis_tree(out: &mut String, ro: &Rollout, now: Timestamp, style: Style) {
    use ramp_api::MeasurementPhase::*;
    let Some(a) = model::analysis_spec(ro) else {
        return;
    };
    let records = model::current_analysis(ro);
    let mut rows: Vec<Vec<String>> = Vec::new();
    let mut children: Vec<Vec<String>> = Vec::new();
    for m in &a.metrics {
        let r = records.iter().find(|r| r.name == m.name);
        let (value, phase, counts, detail) = match r {
            Some(r) if r.phase.is_some() => {
                let phase = r.phase.map_or("-".into(), |p| p.to_string());
                let phase = match r.phase {
                    Some(Passed) => style.green(&phase),
                    Some(Failed) => style.red(&phase),
                    _ => style.yellow(&phase),
                };
                let mut counts =
                    format!("{} measured, {} passed", r.measurements, r.passed_in_step);
                if r.consecutive_failures > 0 {
                    counts.push_str(&format!(
                        ", {} of failureLimit {} failed in a row",
                        r.consecutive_failures,
                        m.failure_limit()
                    ));
                }
                if r.consecutive_no_data > 1 {
                    counts.push_str(&format!(", {} NoData in a row", r.consecutive_no_data));
                }
                if r.consecutive_errors > 1 {
                    counts.push_str(&format!(", {} errors in a row", r.consecutive_errors));
                }
                if let Some(t) = &r.last_measurement_time {
                    counts.push_str(&format!(
                        ", last {} ago",
                        // Recorded times are rounded up to the second.
                        human_duration((now.as_second() - t.0.as_second()).max(0))
                    ));
                }
                let mut detail = Vec::new();
                if let Some(e) = &r.last_error {
                    detail.push(e.clone());
                }
                (
                    r.last_value.map_or("-".into(), model::show_number),
                    phase,
                    counts,
                    detail,
                )
            }
            _ => (
                "-".into(),
                style.dim("pending"),
                "not measured yet".into(),
                Vec::new(),
            ),
        };
        rows.push(vec![
            m.name.clone(),
            value,
            format!("range {}", m.threshold_range),
            phase,
            counts,
        ]);
        children.push(detail);
    }
    let nodes: Vec<Node> = columns(rows)
        .into_iter()
        .zip(children)
        .map(|(text, children)| Node { text, children })
        .collect();
    let title = format!("Analysis (every {})", a.interval_text());
    tree(out, &title, &nodes, style);
}

fn paint_missing(text: String, style: Style) -> String {
    if style.color && text.contains("  missing") {
        text.replace("  missing", &format!("  {}", style.red("missing")))
    } else {
        text
    }
}

/// The `list` table.
pub fn render_list(rollouts: &[Rollout], all_namespaces: bool, now: Timestamp) -> String {
    let mut sorted: Vec<&Rollout> = rollouts.iter().collect();
    sorted.sort_by(|a, b| {
        (model::namespace(a), model::name(a)).cmp(&(model::namespace(b), model::name(b)))
    });
    let mut rows: Vec<Vec<String>> = Vec::new();
    let mut header = vec![
        "NAME",
        "STATUS",
        "STEP",
        "STATE",
        "CANARY WEIGHT",
        "CANARY READY",
        "ANALYSIS",
        "AGE",
    ];
    if all_namespaces {
        header.insert(0, "NAMESPACE");
    }
    rows.push(header.into_iter().map(String::from).collect());
    for ro in sorted {
        let c = canary(ro);
        let mut status = phase(ro).map_or_else(|| "-".to_string(), |p| p.to_string());
        if ro.spec.strategy.paused {
            status.push_str(",Paused");
        }
        let in_flight = matches!(
            phase(ro),
            Some(RolloutPhase::Progressing | RolloutPhase::Aborted)
        );
        let (step, state, ready) = match c {
            Some(c) => (
                step_of(ro, c.current_step_index),
                c.current_step_state.to_string(),
                if in_flight {
                    format!("{}/{}", c.canary_ready_replicas, c.canary_replicas)
                } else {
                    "-".into()
                },
            ),
            None => ("-".into(), "-".into(), "-".into()),
        };
        let age = ro.metadata.creation_timestamp.as_ref().map_or_else(
            || "<unknown>".into(),
            |t| human_duration(now.as_second() - t.0.as_second()),
        );
        let mut row = vec![
            model::name(ro).to_string(),
            status,
            step,
            state,
            canary_weight(ro),
            ready,
            model::analysis_column(ro),
            age,
        ];
        if all_namespaces {
            row.insert(0, model::namespace(ro).to_string());
        }
        rows.push(row);
    }
    let mut out = String::new();
    for line in table(rows) {
        out.push_str(&line);
        out.push('\n');
    }
    out
}

/// kubectl's table layout: columns padded, three spaces apart.
fn table(rows: Vec<Vec<String>>) -> Vec<String> {
    let mut widths: BTreeMap<usize, usize> = BTreeMap::new();
    for r in &rows {
        for (i, c) in r.iter().enumerate() {
            let w = widths.entry(i).or_default();
            *w = (*w).max(c.chars().count());
        }
    }
    rows.into_iter()
        .map(|r| {
            let last = r.len().saturating_sub(1);
            r.iter()
                .enumerate()
                .map(|(i, c)| {
                    if i == last {
                        c.clone()
                    } else {
                        format!("{c:<w$}   ", w = widths.get(&i).copied().unwrap_or(0))
                    }
                })
                .collect::<String>()
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_virtual_service_route_shows_its_mirror() {
        let route = serde_json::json!({
            "route": [{"destination": {"host": "httpbin", "subset": "v1"}}],
            "mirror": {"host": "httpbin", "subset": "canary"},
            "mirrorPercentage": {"value": 50.5}
        });
        assert_eq!(
            describe_http_route(0, &route),
            "http[0]  → httpbin (subset v1) 100%; mirror → httpbin (subset canary) 50.5%"
        );
        let all = serde_json::json!({
            "route": [{"destination": {"host": "httpbin"}}],
            "mirror": {"host": "httpbin-canary"}
        });
        assert!(describe_http_route(1, &all).ends_with("; mirror → httpbin-canary 100%"));
    }

    #[test]
    fn bars() {
        assert_eq!(bar(0, 2), format!("[{}]", "░".repeat(20)));
        assert_eq!(bar(1, 2), format!("[{}{}]", "█".repeat(10), "░".repeat(10)));
        assert_eq!(bar(5, 2), format!("[{}]", "█".repeat(20)));
        assert_eq!(bar(0, 0), format!("[{}]", "█".repeat(20)));
    }

    #[test]
    fn colour_only_on_a_terminal_without_no_color() {
        assert!(Style::detect(true, None).color);
        assert!(Style::detect(true, Some("")).color);
        assert!(!Style::detect(true, Some("1")).color);
        assert!(!Style::detect(false, None).color);
        assert_eq!(Style { color: false }.red("x"), "x");
        assert_eq!(Style { color: true }.red("x"), "\x1b[31mx\x1b[0m");
    }

    #[test]
    fn istio_routes_read_as_words() {
        let r = serde_json::json!({
            "match": [{"headers": {"version": {"exact": "canary"}}}],
            "route": [{"destination": {"host": "service-demo-canary"}}]
        });
        assert_eq!(
            describe_http_route(0, &r),
            "http[0]  header version=canary → service-demo-canary 100%"
        );
        let r = serde_json::json!({
            "name": "main",
            "route": [
                {"destination": {"host": "svc"}, "weight": 80},
                {"destination": {"host": "svc-canary"}, "weight": 20}
            ]
        });
        assert_eq!(
            describe_http_route(1, &r),
            "http[1] main  → svc 80%, svc-canary 20%"
        );
    }
}
