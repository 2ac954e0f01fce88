//! `kubectl_complete-ramp`: kubectl (≥ 1.26) runs it from `PATH` to complete
//! `kubectl ramp <TAB>`, passing the words typed after `ramp`.

fn main() -> std::process::ExitCode {
    let words: Vec<String> = std::env::args().skip(1).collect();
    kubectl_ramp::complete::main(&words)
}
