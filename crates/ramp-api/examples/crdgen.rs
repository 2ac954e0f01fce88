//! Prints the Rollout CRD YAML (`make crds` writes it into the chart).
fn main() {
    print!("{}", ramp_api::crd_yaml());
}
