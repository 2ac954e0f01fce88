//! The binary's offline commands and exit codes: convert, completion,
//! version, help, usage errors.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::Write;
use std::process::{Command, Output, Stdio};

fn bin() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_kubectl-ramp"));
    c.env_remove("KUBECONFIG").env("HOME", "/nonexistent");
    c
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

fn run(args: &[&str]) -> Output {
    bin().args(args).output().unwrap()
}

const KRUISE: &str = r#"apiVersion: rollouts.kruise.io/v1beta1
kind: Rollout
metadata: {name: rollouts-demo}
spec:
  workloadRef: {apiVersion: apps/v1, kind: Deployment, name: workload-demo}
  strategy:
    canary:
      steps:
      - replicas: 1
        matches:
        - headers: [{type: Exact, name: version, value: canary}]
      - {traffic: 50%, replicas: 50%}
      - {traffic: 80%, replicas: 80%}
      trafficRoutings:
      - service: service-demo
        customNetworkRefs:
        - {apiVersion: networking.istio.io/v1alpha3, kind: VirtualService, name: vs-demo}
"#;

#[test]
fn convert_writes_yaml_to_stdout_and_notes_to_stderr() {
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("kruise.yaml");
    std::fs::write(&f, KRUISE).unwrap();
    let out = bin().arg("convert").arg("-f").arg(&f).output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    let ro: ramp_api::Rollout = serde_yaml::from_str(&stdout).unwrap();
    assert!(ramp_api::validate_rollout(&ro).is_empty());
    let stderr = text(&out.stderr);
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(stderr.starts_with("warning: "), "{stderr}");
    assert!(
        stderr.contains("spec.strategy.canary.enableExtraWorkloadForCanary"),
        "{stderr}"
    );

    // From stdin, too.
    let mut child = bin()
        .args(["convert", "-f", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(KRUISE.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(text(&out.stdout), stdout);
}

#[test]
fn convert_failures_exit_1() {
    let out = run(&["convert", "-f", "/nonexistent/k.yaml"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out.stderr).starts_with("error: cannot read '/nonexistent/k.yaml':"));

    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("bad.yaml");
    std::fs::write(&f, KRUISE.replace("traffic: 50%", "traffic: 150%")).unwrap();
    let out = bin().arg("convert").arg("-f").arg(&f).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(text(&out.stdout), "");
    assert!(
        text(&out.stderr)
            .contains("  spec.strategy.canary.steps[1].traffic: invalid value \"150%\""),
        "{}",
        text(&out.stderr)
    );
}

#[test]
fn completion_scripts() {
    for (shell, needle) in [
        ("bash", "_kubectl_ramp()"),
        ("zsh", "#compdef kubectl-ramp"),
        ("fish", "complete -c kubectl-ramp"),
    ] {
        let out = run(&["completion", shell]);
        assert_eq!(out.status.code(), Some(0));
        let s = text(&out.stdout);
        assert!(s.contains(needle), "{shell}: {}", &s[..s.len().min(300)]);
        assert!(s.contains("approve"), "{shell}");
    }
}

#[test]
fn bash_completion_completes_commands_and_flags() {
    if Command::new("bash").arg("-c").arg("true").status().is_err() {
        return; // no bash on this machine
    }
    let script = format!(
        r#"source <("{bin}" completion bash)
complete -p kubectl-ramp
COMP_WORDS=(kubectl-ramp ap); COMP_CWORD=1; _kubectl_ramp kubectl-ramp ap kubectl-ramp; echo "[${{COMPREPLY[*]}}]"
COMP_WORDS=(kubectl-ramp approve x --s); COMP_CWORD=3; _kubectl_ramp kubectl-ramp --s x; echo "[${{COMPREPLY[*]}}]"
COMP_WORDS=(kubectl-ramp status x -o ""); COMP_CWORD=4; _kubectl_ramp kubectl-ramp "" -o; echo "[${{COMPREPLY[*]}}]"
"#,
        bin = env!("CARGO_BIN_EXE_kubectl-ramp")
    );
    let out = Command::new("bash").arg("-c").arg(script).output().unwrap();
    let lines: Vec<String> = text(&out.stdout).lines().map(str::to_string).collect();
    assert_eq!(
        lines.len(),
        4,
        "{}\n{}",
        text(&out.stdout),
        text(&out.stderr)
    );
    assert!(
        lines[0].ends_with("-F _kubectl_ramp kubectl-ramp"),
        "{}",
        lines[0]
    );
    assert_eq!(lines[1], "[approve]");
    assert_eq!(lines[2], "[--step]");
    assert_eq!(lines[3], "[yaml json]");
}

#[test]
fn version_and_help_exit_0_usage_errors_exit_2() {
    let out = run(&["version"]);
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(
        text(&out.stdout),
        format!(
            "kubectl-ramp {} (rollouts.rollouts.ramp.dev/v1beta1)\n",
            env!("CARGO_PKG_VERSION")
        )
    );
    let out = run(&["--help"]);
    assert_eq!(out.status.code(), Some(0));
    assert!(text(&out.stdout).contains("Usage: kubectl ramp [OPTIONS] <COMMAND>"));

    let out = run(&["approve"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out.stderr).contains("<ROLLOUT>"));
    let out = run(&["status", "ro/x", "-o", "wide"]);
    assert_eq!(out.status.code(), Some(2));
    let out = run(&["nonsense"]);
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn without_a_kubeconfig_the_error_says_how_to_give_one() {
    let out = run(&["list"]);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        text(&out.stderr),
        "error: no kubeconfig found: set KUBECONFIG, pass --kubeconfig, or create ~/.kube/config\n"
    );
}
