//! The kubectl plugin's acceptance (issue 6): the walk-through driven with
//! `kubectl ramp approve` through kubectl; `kubectl ramp status --watch`
//! followed to the end both as a pipe and under a pseudo-terminal (exit 0);
//! an abort makes a running watch exit non-zero.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test helpers outside #[test] fns

use std::path::Path;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use ramp_e2e::{Env, count};
use serde_json::json;

const RO: &str = "rollouts-demo";
const GW: Option<&str> = Some("simple-gateway");

/// `kubectl ramp status rollouts-demo --watch` as a pipe into `out`.
fn watch_as_pipe(env: &Env, out: &Path) -> Child {
    let mut c = env.ramp(&["status", RO, "--watch"]).into_command();
    // Colour is for terminals only, even without NO_COLOR.
    c.env_remove("NO_COLOR")
        .stdin(Stdio::null())
        .stdout(std::fs::File::create(out).unwrap())
        .stderr(std::fs::File::create(out.with_extension("err")).unwrap());
    c.spawn().expect("start kubectl ramp status --watch")
}

/// The same under a pseudo-terminal (`script` from util-linux), output in `out`.
fn watch_on_a_terminal(env: &Env, out: &Path) -> Child {
    let cmd = env.ramp(&["status", RO, "--watch"]).into_command();
    let quote = |s: &std::ffi::OsStr| format!("'{}'", s.to_string_lossy().replace('\'', r"'\''"));
    let line = std::iter::once(quote(cmd.get_program()))
        .chain(cmd.get_args().map(quote))
        .collect::<Vec<_>>()
        .join(" ");
    let mut c = Command::new("script");
    c.args(["-q", "-e", "-c", &line, "/dev/null"]);
    for (k, v) in cmd.get_envs() {
        if let Some(v) = v {
            c.env(k, v);
        }
    }
    c.env_remove("NO_COLOR")
        .env("TERM", "xterm")
        .stdin(Stdio::null())
        .stdout(std::fs::File::create(out).unwrap())
        .stderr(std::fs::File::create(out.with_extension("err")).unwrap());
    c.spawn()
        .expect("start script(1) — util-linux must be installed")
}

/// Wait for a child to exit; kill it and panic after `timeout`.
fn exit_of(child: &mut Child, what: &str, timeout: Duration) -> ExitStatus {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(s) = child.try_wait().unwrap() {
            return s;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("{what} did not exit within {timeout:?}");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn still_running(child: &mut Child, what: &str, out: &Path) {
    if let Some(s) = child.try_wait().unwrap() {
        panic!(
            "{what} exited early ({s}):\n{}\n{}",
            std::fs::read_to_string(out).unwrap_or_default(),
            std::fs::read_to_string(out.with_extension("err")).unwrap_or_default()
        );
    }
}

fn approve(env: &Env, step: i64) {
    let out = env.ramp(&["approve", RO]).ok();
    assert!(
        out.contains(&format!("rollout '{RO}' approved step {step}/3")),
        "{out}"
    );
}

fn ready(env: &Env) {
    env.apply_dir("examples/canary-istio");
    env.wait_phase(RO, "Healthy");
    env.wait_until(
        "workload-demo has 3 ready pods",
        Duration::from_secs(30),
        |e| {
            e.get("deployment", "workload-demo")
                .is_some_and(|d| d["status"]["readyReplicas"] == 3)
        },
    );
}

#[test]
fn the_walk_through_with_kubectl_ramp_and_watches_that_exit_0() {
    let env = Env::start("plugin-walk");
    ready(&env);
    let original_vs = env.get("virtualservice", "vs-demo").unwrap();
    env.kubectl(&["set", "env", "deployment/workload-demo", "version=canary"])
        .ok();
    env.wait_phase(RO, "Progressing");
    let (pipe_out, tty_out) = (env.path("watch-pipe.txt"), env.path("watch-tty.txt"));
    let mut pipe = watch_as_pipe(&env, &pipe_out);
    let mut tty = watch_on_a_terminal(&env, &tty_out);

    // Step 1: header route; approving twice approves once.
    env.wait_step(RO, 1, "StepPaused");
    let s = env.rollout_status(RO);
    let canary_hash = s["canaryStatus"]["podTemplateHash"]
        .as_str()
        .unwrap()
        .to_string();
    let r = env.route_via(GW, "service-demo", &["version: canary"], 200);
    assert_eq!(r["byPodTemplateHash"][&canary_hash], 200, "{r}");
    approve(&env, 1);
    let again = env.ramp(&["approve", RO, "--step", "1"]).output();
    assert!(!again.status.success(), "a stale --step 1 is refused");
    let msg = String::from_utf8_lossy(&again.stderr);
    assert!(
        msg.contains(RO) && (msg.contains("not approved") || msg.contains("nothing to approve")),
        "{msg}"
    );

    // Step 2: 50/50.
    env.wait_step(RO, 2, "StepPaused");
    still_running(&mut pipe, "the piped watch", &pipe_out);
    still_running(&mut tty, "the terminal watch", &tty_out);
    let r = env.route_via(GW, "service-demo", &[], 1000);
    let to_canary = count(&r["byPodTemplateHash"], |h| h == canary_hash);
    assert!((450..=550).contains(&to_canary), "50% ±5%: {r}");
    approve(&env, 2);

    // Step 3: 20/80, then the last approval finishes the rollout.
    env.wait_step(RO, 3, "StepPaused");
    let vs = env.get("virtualservice", "vs-demo").unwrap();
    assert_eq!(vs["spec"]["http"][0]["route"][1]["weight"], 80);
    approve(&env, 3);

    let status = exit_of(&mut pipe, "the piped watch", Duration::from_secs(120));
    let piped = std::fs::read_to_string(&pipe_out).unwrap();
    let piped_err = std::fs::read_to_string(pipe_out.with_extension("err")).unwrap();
    assert!(
        status.success(),
        "piped watch: {status}\n{piped}\n{piped_err}"
    );
    let status = exit_of(&mut tty, "the terminal watch", Duration::from_secs(60));
    let term = String::from_utf8_lossy(&std::fs::read(&tty_out).unwrap()).into_owned();
    assert!(status.success(), "terminal watch: {status}\n{term}");

    // By then the rollout is over and everything restored.
    assert_eq!(env.rollout_status(RO)["phase"], "Healthy");
    assert_eq!(
        env.get("virtualservice", "vs-demo").unwrap()["spec"],
        original_vs["spec"]
    );
    assert!(env.get("deployment", "workload-demo-canary").is_none());

    // The pipe got successive plain frames through every step; the terminal
    // got in-place redraws.
    assert!(
        !piped.contains('\u{1b}'),
        "no escape codes in a pipe:\n{piped}"
    );
    for needle in ["Progressing", "Healthy", "StepPaused"] {
        assert!(
            piped.contains(needle),
            "the piped watch shows {needle}:\n{piped}"
        );
    }
    assert!(piped.matches(RO).count() > 3, "several frames:\n{piped}");
    assert!(
        term.contains("\u{1b}["),
        "redraws in place on a terminal:\n{term}"
    );
    assert!(term.contains("Healthy"), "{term}");

    // Who approved is recorded.
    let approvals: Vec<String> = env
        .events()
        .into_iter()
        .filter(|e| e["reason"] == "Approved" && e["object"] == format!("Rollout/{RO}"))
        .map(|e| e["message"].as_str().unwrap_or_default().to_string())
        .collect();
    assert_eq!(approvals.len(), 3, "{approvals:?}");
    assert!(
        approvals.iter().all(|m| m.contains("approved by")),
        "{approvals:?}"
    );
    // `kubectl describe` shows the operator's Events (written through events.k8s.io/v1)
    // next to the plugin's (written through v1).
    let described = env.kubectl(&["describe", "rollout", RO]).ok();
    let events = described
        .split_once("Events:")
        .map(|(_, e)| e)
        .unwrap_or_default();
    for reason in ["RolloutStarted", "StepPaused", "Approved", "Succeeded"] {
        assert!(events.contains(reason), "{reason} in:\n{described}");
    }
}

#[test]
fn abort_makes_a_running_watch_exit_non_zero() {
    let env = Env::start("plugin-abort");
    ready(&env);
    env.kubectl(&["set", "env", "deployment/workload-demo", "version=canary"])
        .ok();
    env.wait_step(RO, 1, "StepPaused");
    approve(&env, 1);
    env.wait_step(RO, 2, "StepPaused");
    let (pipe_out, tty_out) = (env.path("watch-pipe.txt"), env.path("watch-tty.txt"));
    let mut pipe = watch_as_pipe(&env, &pipe_out);
    let mut tty = watch_on_a_terminal(&env, &tty_out);
    // Both watches are up and drawing before the abort.
    env.wait_until("both watches drew a frame", Duration::from_secs(30), |_| {
        std::fs::read_to_string(&pipe_out).is_ok_and(|s| s.contains(RO))
            && std::fs::read(&tty_out).is_ok_and(|s| String::from_utf8_lossy(&s).contains(RO))
    });
    still_running(&mut pipe, "the piped watch", &pipe_out);
    still_running(&mut tty, "the terminal watch", &tty_out);

    let out = env.ramp(&["abort", RO]).ok();
    assert!(out.contains(RO), "{out}");
    let status = exit_of(&mut pipe, "the piped watch", Duration::from_secs(60));
    let err = std::fs::read_to_string(pipe_out.with_extension("err")).unwrap();
    assert_eq!(
        status.code(),
        Some(1),
        "piped watch after abort: {status}\n{err}"
    );
    assert!(err.contains("aborted"), "{err}");
    let status = exit_of(&mut tty, "the terminal watch", Duration::from_secs(60));
    assert_eq!(
        status.code(),
        Some(1),
        "terminal watch after abort: {status}"
    );

    // The abort did what it says: all traffic on stable, canary at 0.
    env.wait_phase(RO, "Aborted");
    let stable = env.rollout_status(RO)["canaryStatus"]["stableRevision"]
        .as_str()
        .unwrap()
        .to_string();
    env.wait_until("all traffic back on stable", Duration::from_secs(30), |e| {
        e.get("virtualservice", "vs-demo").unwrap()["spec"]["http"]
            == json!([{"route": [{"destination": {"host": "service-demo"}}]}])
            && e.route_via(GW, "service-demo", &[], 200)["byPodTemplateHash"][&stable] == 200
    });
}

/// `kubectl __complete ramp WORDS…`: what a shell gets on TAB, through kubectl's own plugin
/// completion (it runs `kubectl_complete-ramp` from PATH). Lines without the `:directive`.
fn tab(env: &Env, words: &[&str]) -> Vec<String> {
    let path = std::env::var("PATH").unwrap_or_default();
    let out = Command::new("kubectl")
        .arg("__complete")
        .arg("ramp")
        .args(words)
        // kubectl drops its own flags before a plugin's name when completing: the plugin
        // finds the cluster through the environment, as in a user's shell.
        .env("KUBECONFIG", &env.kubeconfig)
        .env("KUBECACHEDIR", env.path("kube-cache"))
        .env("PATH", format!("{}:{path}", ramp_e2e::bin_dir().display()))
        .output()
        .expect("run kubectl __complete");
    assert!(out.status.success(), "{out:?}");
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    let (lines, directive): (Vec<&str>, Vec<&str>) =
        text.lines().partition(|l| !l.starts_with(':'));
    assert_eq!(directive, vec![":4"], "{text}");
    lines.into_iter().map(str::to_string).collect()
}

#[test]
fn tab_completes_subcommands_rollouts_namespaces_and_flags_through_kubectl() {
    let env = Env::start("plugin-tab");
    env.start_canary_example();
    let first = |l: &Vec<String>| -> Vec<String> {
        l.iter()
            .map(|l| l.split('\t').next().unwrap_or_default().to_string())
            .collect()
    };

    let subcommands = tab(&env, &["a"]);
    assert_eq!(
        first(&subcommands),
        vec!["approve", "abort"],
        "{subcommands:?}"
    );
    assert!(
        subcommands[0].contains("\tApprove the paused step"),
        "{subcommands:?}"
    );

    // Rollouts of the namespace given with -n, with where each one is.
    let rollouts = tab(&env, &["-n", &env.ns, "approve", ""]);
    assert_eq!(rollouts, vec![format!("{RO}\tHealthy")]);
    assert_eq!(
        tab(&env, &["status", "-n", &env.ns, "ro/roll"]),
        vec![format!("ro/{RO}\tHealthy")]
    );
    // The kubeconfig's namespace (default) has none.
    assert!(tab(&env, &["approve", ""]).is_empty());

    let namespaces = first(&tab(&env, &["approve", "-n", ""]));
    assert!(namespaces.contains(&env.ns), "{namespaces:?}");
    assert!(
        namespaces.contains(&"default".to_string()),
        "{namespaces:?}"
    );

    assert_eq!(first(&tab(&env, &["promote", RO, "--f"])), vec!["--full"]);
    assert_eq!(
        first(&tab(&env, &["status", RO, "-o", ""])),
        vec!["yaml", "json"]
    );

    // Once in progress, the rollout's step shows next to its name.
    env.kubectl(&["set", "env", "deployment/workload-demo", "version=canary"])
        .ok();
    env.wait_step(RO, 1, "StepPaused");
    assert_eq!(
        tab(&env, &["-n", &env.ns, "approve", "r"]),
        vec![format!("{RO}\tstep 1/3 StepPaused")]
    );
}
