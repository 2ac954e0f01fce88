//! Prints the Rollout CRD YAML (`make crds` writes it into the chart).

#![allow(clippy::unwrap_used, clippy::expect_used)] // test helpers outside #[test] fns
fn main() {
    print!("{}", ramp_api::crd_yaml());
}
