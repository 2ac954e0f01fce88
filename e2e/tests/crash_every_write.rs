//! Crash at every write (issue #15, part 1): for each write the operator makes in a scenario,
//! a run in which the sim SIGKILLs the operator right after that write is answered; the
//! harness restarts it, and the run must end like the crash-free one (same objects, the same
//! steps paused at once each in order, the routing object through the same shapes), with the
//! user's approvals sent while the operator was down neither lost nor applied twice.
//!
//! The walk-through crashes at every write; the other paths at every other write (odd
//! indices), to keep the file within a few minutes on two cores.

use ramp_e2e::crashes::{Campaign, Path, Routing, Scenario, every, every_other};

const PARALLEL: usize = 3;

fn report(what: &str, (crashed, converged): (u64, u64)) {
    eprintln!("{what}: writes crashed at: {crashed}, runs converged: {converged}");
    assert!(crashed > 0, "{what}: no run was crashed");
}

#[test]
fn walk_through_crashed_at_every_write() {
    let c = Campaign::new();
    let s = Scenario {
        name: "walk",
        routing: Routing::Istio,
        path: Path::Finish,
    };
    report("walk-through (Istio)", c.run(s, every, PARALLEL));
}

#[test]
fn abort_rollback_disable_delete_crashed_at_every_other_write() {
    let c = Campaign::new();
    for (name, path) in [
        ("abort", Path::Abort),
        ("rollback", Path::Rollback),
        ("disable", Path::Disable),
        ("delete", Path::Delete),
    ] {
        let s = Scenario {
            name,
            routing: Routing::Istio,
            path,
        };
        report(name, c.run(s, every_other, PARALLEL));
    }
}

#[test]
fn subsets_and_httproute_crashed_at_every_other_write() {
    let c = Campaign::new();
    for (name, routing) in [
        ("subsets", Routing::Subsets),
        ("httproute", Routing::HttpRoute),
    ] {
        let s = Scenario {
            name,
            routing,
            path: Path::Finish,
        };
        report(name, c.run(s, every_other, PARALLEL));
    }
}
