//! The `ramp-sim serve` binary: listens, writes a kubeconfig, loads CRDs, prints its URL,
//! exits cleanly on SIGTERM.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test helpers

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::Duration;

#[test]
fn serve_writes_kubeconfig_loads_crds_and_stops_on_sigterm() {
    let dir = tempfile::tempdir().unwrap();
    let kubeconfig = dir.path().join("kc");
    let mut child = Command::new(env!("CARGO_BIN_EXE_ramp-sim"))
        .args(["serve", "--listen", "127.0.0.1:0", "--kubeconfig"])
        .arg(&kubeconfig)
        .arg("--crds")
        .arg(ramp_sim::shared_crds_dir())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    assert!(
        line.starts_with("ramp-sim listening on http://127.0.0.1:"),
        "{line}"
    );
    let url = line.split_whitespace().nth(3).unwrap().to_string();
    let kc = std::fs::read_to_string(&kubeconfig).unwrap();
    assert!(
        kc.contains(&url),
        "kubeconfig must name the real port: {kc}"
    );
    assert!(kc.contains("ramp-sim-admin"));

    let out = Command::new("kubectl")
        .arg("--kubeconfig")
        .arg(&kubeconfig)
        .arg("--cache-dir")
        .arg(dir.path().join("cache"))
        .args(["get", "crd", "-o", "name"])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains(
            "customresourcedefinition.apiextensions.k8s.io/virtualservices.networking.istio.io"
        ),
        "{stdout}"
    );
    assert!(
        stdout.contains("httproutes.gateway.networking.k8s.io"),
        "{stdout}"
    );

    let pid = child.id().to_string();
    assert!(
        Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .unwrap()
            .success()
    );
    let start = std::time::Instant::now();
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            assert!(status.success(), "exit status {status}");
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "did not exit on SIGTERM"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}
