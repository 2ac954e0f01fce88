//! Tests of the fault rules and the request accounting.

use super::*;

fn req(method: Method, path: &str, query: Option<&str>, ua: &str) -> RequestInfo {
    RequestInfo::classify(&method, path, query, ua)
}

#[test]
fn classifies_verbs_and_resources() {
    let cases = [
        (
            Method::GET,
            "/api/v1/namespaces/d/pods",
            None,
            "list",
            "pods",
        ),
        (
            Method::GET,
            "/api/v1/namespaces/d/pods/p",
            None,
            "get",
            "pods",
        ),
        (
            Method::GET,
            "/api/v1/pods",
            Some("watch=true&x=1"),
            "watch",
            "pods",
        ),
        (
            Method::GET,
            "/api/v1/watch/namespaces/d/pods",
            None,
            "watch",
            "pods",
        ),
        (
            Method::POST,
            "/apis/apps/v1/namespaces/d/deployments",
            None,
            "create",
            "apps/deployments",
        ),
        (
            Method::PUT,
            "/apis/apps/v1/namespaces/d/deployments/x/status",
            None,
            "update",
            "apps/deployments/status",
        ),
        (
            Method::PATCH,
            "/apis/apps/v1/namespaces/d/deployments/x/scale",
            None,
            "patch",
            "apps/deployments/scale",
        ),
        (
            Method::DELETE,
            "/api/v1/namespaces/d/configmaps/c",
            None,
            "delete",
            "configmaps",
        ),
        (
            Method::DELETE,
            "/api/v1/namespaces/d/configmaps",
            None,
            "deletecollection",
            "configmaps",
        ),
        (
            Method::GET,
            "/api/v1/namespaces/d",
            None,
            "get",
            "namespaces",
        ),
        (
            Method::PUT,
            "/api/v1/namespaces/d/finalize",
            None,
            "update",
            "namespaces/finalize",
        ),
    ];
    for (m, path, q, verb, resource) in cases {
        let r = req(m, path, q, "ua");
        assert_eq!(
            (r.verb.as_str(), r.resource.as_str()),
            (verb, resource),
            "{path}"
        );
        assert!(r.is_resource);
    }
    let d = req(Method::GET, "/apis/apps/v1", None, "ua");
    assert!(!d.is_resource);
    assert_eq!(
        (d.verb.as_str(), d.resource.as_str()),
        ("get", "/apis/apps/v1")
    );
}

#[test]
fn a_fraction_fails_exactly_that_share_and_only_matching_requests() {
    let f = Faults::default();
    f.add(FaultRule {
        verb: Some("get".into()),
        resource: Some("configmaps".into()),
        fraction: Some(0.25),
        ..Default::default()
    })
    .unwrap();
    let get = req(Method::GET, "/api/v1/namespaces/d/configmaps/c", None, "x");
    let failed = (0..200).filter(|_| f.decide(&get).error.is_some()).count();
    assert_eq!(failed, 50);
    let list = req(Method::GET, "/api/v1/namespaces/d/configmaps", None, "x");
    let pods = req(Method::GET, "/api/v1/namespaces/d/pods/p", None, "x");
    assert!((0..20).all(|_| f.decide(&list).error.is_none()));
    assert!((0..20).all(|_| f.decide(&pods).error.is_none()));
    let st = &f.list()[0];
    assert_eq!((st.matched, st.failed), (200, 50));
}

#[test]
fn resource_match_covers_subresources_but_not_other_groups() {
    let rule = FaultRule {
        resource: Some("apps/deployments".into()),
        latency_ms: Some(1),
        ..Default::default()
    };
    let yes = req(
        Method::PUT,
        "/apis/apps/v1/namespaces/d/deployments/x/status",
        None,
        "",
    );
    let yes2 = req(Method::GET, "/apis/apps/v1/deployments", None, "");
    let no = req(Method::GET, "/apis/apps/v1/replicasets", None, "");
    assert!(rule.matches(&yes) && rule.matches(&yes2) && !rule.matches(&no));
    let status_only = FaultRule {
        resource: Some("apps/deployments/status".into()),
        latency_ms: Some(1),
        ..Default::default()
    };
    assert!(status_only.matches(&yes) && !status_only.matches(&yes2));
    let pods = FaultRule {
        resource: Some("pods".into()),
        latency_ms: Some(1),
        ..Default::default()
    };
    assert!(pods.matches(&req(
        Method::PATCH,
        "/api/v1/namespaces/d/pods/p/status",
        None,
        ""
    )));
    assert!(!pods.matches(&req(Method::GET, "/apis/x.io/v1/podsets", None, "")));
}

#[test]
fn the_nth_write_of_a_user_agent_fails_once() {
    let f = Faults::default();
    f.add(FaultRule {
        user_agent: Some("ramp".into()),
        fail_nth_write: Some(3),
        code: Some(409),
        ..Default::default()
    })
    .unwrap();
    let write = req(
        Method::POST,
        "/api/v1/namespaces/d/configmaps",
        None,
        "ramp-operator/1",
    );
    let read = req(
        Method::GET,
        "/api/v1/namespaces/d/configmaps",
        None,
        "ramp-operator/1",
    );
    let other = req(
        Method::POST,
        "/api/v1/namespaces/d/configmaps",
        None,
        "kubectl",
    );
    let mut outcomes = vec![];
    for _ in 0..5 {
        assert!(f.decide(&read).error.is_none());
        assert!(f.decide(&other).error.is_none());
        outcomes.push(f.decide(&write).error.map(|e| e.reason));
    }
    assert_eq!(outcomes, vec![None, None, Some("Conflict"), None, None]);
}

#[test]
fn errors_carry_reason_and_retry_after() {
    let mk = |code| FaultRule {
        fraction: Some(1.0),
        code: Some(code),
        retry_after_seconds: Some(7),
        ..Default::default()
    };
    assert_eq!(mk(500).error().reason, "InternalError");
    assert_eq!(mk(409).error().reason, "Conflict");
    let e = mk(429).error();
    assert_eq!(
        (e.reason, e.retry_after_seconds),
        ("TooManyRequests", Some(7))
    );
    let r = fault_response(&e);
    assert_eq!(r.status(), StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(r.headers()[header::RETRY_AFTER], "7");
}

#[test]
fn latency_adds_up_and_watch_close_takes_the_shortest() {
    let f = Faults::default();
    for (ms, s) in [(10, 5), (20, 2)] {
        f.add(FaultRule {
            latency_ms: Some(ms),
            close_watch_every_seconds: Some(s),
            ..Default::default()
        })
        .unwrap();
    }
    let w = req(Method::GET, "/api/v1/pods", Some("watch=1"), "");
    let d = f.decide(&w);
    assert_eq!(d.latency, Duration::from_millis(30));
    assert_eq!(d.close_watch_after, Some(Duration::from_secs(2)));
    assert!(d.error.is_none());
    let l = f.decide(&req(Method::GET, "/api/v1/pods", None, ""));
    assert_eq!(l.close_watch_after, None);
    f.clear();
    assert_eq!(f.decide(&w), Decision::default());
}

#[test]
fn invalid_rules_name_the_field() {
    let f = Faults::default();
    let cases = [
        (
            FaultRule {
                fraction: Some(1.5),
                ..Default::default()
            },
            "fraction",
        ),
        (
            FaultRule {
                fraction: Some(0.5),
                code: Some(404),
                ..Default::default()
            },
            "code",
        ),
        (
            FaultRule {
                verb: Some("frob".into()),
                latency_ms: Some(1),
                ..Default::default()
            },
            "verb",
        ),
        (
            FaultRule {
                fail_nth_write: Some(0),
                ..Default::default()
            },
            "failNthWrite",
        ),
        (FaultRule::default(), "no effect"),
    ];
    for (rule, field) in cases {
        let e = f.add(rule).unwrap_err();
        assert!(e.contains(field), "{e}");
    }
    assert!(f.list().is_empty());
    let parse = serde_json::from_value::<FaultRule>(json!({"fractoin": 0.5}));
    assert!(parse.unwrap_err().to_string().contains("fractoin"));
}

#[test]
fn stats_count_and_reset() {
    let s = Stats::default();
    let get = req(Method::GET, "/api/v1/namespaces/d/pods/p", None, "a");
    s.record(&get, 200);
    s.record(&get, 200);
    s.record(&get, 404);
    s.record(
        &req(Method::POST, "/api/v1/namespaces/d/pods", None, "b"),
        201,
    );
    let snap = s.snapshot();
    assert_eq!(snap.total, 4);
    assert_eq!(snap.count(|r| r.user_agent == "a" && r.code == 200), 2);
    assert_eq!(
        snap.count(|r| r.verb == "create" && r.resource == "pods"),
        1
    );
    assert_eq!(snap.requests.len(), 3);
    s.reset();
    assert_eq!(s.snapshot(), StatsSnapshot::default());
}
