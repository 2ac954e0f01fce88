//! The `ramp-operator` binary logs to stderr as plain text when stderr is not
//! a terminal, so that a log file (or `kubectl logs`) holds readable lines.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

#[test]
fn run_logs_plain_text_to_stderr_and_nothing_to_stdout() {
    let dir = std::env::temp_dir().join(format!("ramp-operator-logs-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    // A cluster that does not answer: the operator logs its listeners, then
    // fails (or retries) reaching the API server.
    let kubeconfig = dir.join("kubeconfig");
    std::fs::write(
        &kubeconfig,
        "apiVersion: v1\nkind: Config\nclusters:\n- name: c\n  cluster: {server: 'http://127.0.0.1:9'}\ncontexts:\n- name: c\n  context: {cluster: c, user: u}\nusers:\n- name: u\n  user: {}\ncurrent-context: c\n",
    )
    .unwrap();
    let (out, err) = (dir.join("stdout"), dir.join("stderr"));
    let mut child = Command::new(env!("CARGO_BIN_EXE_ramp-operator"))
        .args([
            "run",
            "--metrics-listen",
            "127.0.0.1:0",
            "--webhook-listen",
            "127.0.0.1:0",
            "--webhook-url",
            "https://127.0.0.1:0",
        ])
        .env("KUBECONFIG", &kubeconfig)
        .env("RUST_LOG", "info")
        .env_remove("NO_COLOR")
        .stdin(Stdio::null())
        .stdout(std::fs::File::create(&out).unwrap())
        .stderr(std::fs::File::create(&err).unwrap())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut log = String::new();
    while Instant::now() < deadline {
        log = std::fs::read_to_string(&err).unwrap_or_default();
        if log.contains("metrics and health listening") {
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let _ = child.kill();
    let _ = child.wait();
    let stdout = std::fs::read_to_string(&out).unwrap();
    let _ = std::fs::remove_dir_all(&dir);
    assert!(
        log.contains("metrics and health listening addr=127.0.0.1:"),
        "stderr: {log}"
    );
    assert!(!log.contains('\u{1b}'), "no colour codes in a file: {log}");
    assert_eq!(stdout, "", "nothing on stdout");
}
