//! `make demo` (scripts/demo.sh) runs to the end on the embedded cluster.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test helpers outside #[test] fns

use std::process::Command;

#[test]
fn the_demo_walks_every_step_and_restores_the_virtual_service() {
    if std::env::var("RAMP_E2E_KUBECONFIG").is_ok() {
        eprintln!("SKIPPED: the demo starts its own embedded cluster");
        return;
    }
    let out = Command::new("bash")
        .arg(ramp_e2e::repo_root().join("scripts/demo.sh"))
        .env("RAMP_BIN_DIR", ramp_e2e::bin_dir())
        .env("RAMP_SHARED_CRDS", ramp_e2e::shared_crds_dir())
        .env_remove("KEEP")
        .output()
        .expect("run scripts/demo.sh");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "demo failed:\n{stdout}\n{stderr}");
    for needle in [
        "rollout 'rollouts-demo' approved step 1/3",
        "rollout 'rollouts-demo' approved step 2/3",
        "rollout 'rollouts-demo' approved step 3/3",
        r#"[{"match":[{"headers":{"version":{"exact":"canary"}}}],"route":[{"destination":{"host":"service-demo-canary"}}]},{"route":[{"destination":{"host":"service-demo"}}]}]"#,
        r#""weight":50"#,
        r#""weight":80"#,
        "Done: the canary walk-through finished",
    ] {
        assert!(
            stdout.contains(needle),
            "demo output lacks {needle:?}:\n{stdout}"
        );
    }
    // The last http section printed is the original, restored exactly.
    let last = stdout
        .lines()
        .rev()
        .find(|l| l.starts_with("[{"))
        .unwrap_or_default();
    assert_eq!(
        last,
        r#"[{"route":[{"destination":{"host":"service-demo"}}]}]"#
    );
}
