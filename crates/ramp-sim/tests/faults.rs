//! Fault injection and request accounting over HTTP: each fault kind observably happens, the
//! server keeps serving afterwards, and `/sim/v1/stats` counts by user agent, verb, resource
//! and code.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test helpers

use std::time::{Duration, Instant};

use http::{Method, Request, StatusCode};
use http_body_util::BodyExt;
use kube::client::Body;
use ramp_sim::TestCluster;
use ramp_sim::faults::FaultRule;
use serde_json::{Value, json};

const CMS: &str = "/api/v1/namespaces/default/configmaps";

struct Reply {
    status: StatusCode,
    retry_after: Option<String>,
    body: Value,
}

async fn send(c: &TestCluster, method: Method, path: &str, ua: &str, body: Option<Value>) -> Reply {
    let ct = if method == Method::PATCH {
        "application/merge-patch+json"
    } else {
        "application/json"
    };
    let b = Request::builder()
        .method(method)
        .uri(path)
        .header("user-agent", ua)
        .header("content-type", ct);
    let body = body
        .map(|v| serde_json::to_vec(&v).unwrap())
        .unwrap_or_default();
    let res = c
        .client()
        .send(b.body(Body::from(body)).unwrap())
        .await
        .unwrap();
    let status = res.status();
    let retry_after = res
        .headers()
        .get("retry-after")
        .map(|v| v.to_str().unwrap().to_string());
    let bytes = res.into_body().collect().await.unwrap().to_bytes();
    let body = serde_json::from_slice(&bytes)
        .unwrap_or(Value::String(String::from_utf8_lossy(&bytes).into()));
    Reply {
        status,
        retry_after,
        body,
    }
}

/// A GET over a bare TCP connection (no client-side retries).
async fn raw_get(c: &TestCluster, path: &str, ua: &str) -> Reply {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut conn = tokio::net::TcpStream::connect(c.server().addr())
        .await
        .unwrap();
    let req = format!(
        "GET {path} HTTP/1.1\r\nHost: localhost\r\nUser-Agent: {ua}\r\nConnection: close\r\n\r\n"
    );
    conn.write_all(req.as_bytes()).await.unwrap();
    let mut buf = vec![];
    conn.read_to_end(&mut buf).await.unwrap();
    let text = String::from_utf8(buf).unwrap();
    let (head, body) = text.split_once("\r\n\r\n").unwrap();
    let mut lines = head.lines();
    let code: u16 = lines
        .next()
        .unwrap()
        .split(' ')
        .nth(1)
        .unwrap()
        .parse()
        .unwrap();
    let retry_after = lines
        .filter_map(|l| l.split_once(':'))
        .find(|(k, _)| k.eq_ignore_ascii_case("retry-after"))
        .map(|(_, v)| v.trim().to_string());
    Reply {
        status: StatusCode::from_u16(code).unwrap(),
        retry_after,
        body: serde_json::from_str(body).unwrap(),
    }
}

fn cm(name: &str) -> Value {
    json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name}, "data": {"k": "v"}})
}

async fn add_rule(c: &TestCluster, rule: Value) -> Value {
    let r = send(c, Method::POST, "/sim/v1/faults", "test", Some(rule)).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    r.body
}

async fn clear_rules(c: &TestCluster) {
    let r = send(c, Method::DELETE, "/sim/v1/faults", "test", None).await;
    assert_eq!(r.status, StatusCode::OK);
    let r = send(c, Method::GET, "/sim/v1/faults", "test", None).await;
    assert_eq!(r.body["rules"], json!([]));
}

/// After faults are cleared, reads and writes work again.
async fn assert_serving(c: &TestCluster, ua: &str, name: &str) {
    let r = send(c, Method::POST, CMS, ua, Some(cm(name))).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    let r = send(c, Method::GET, &format!("{CMS}/{name}"), ua, None).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(r.body["data"]["k"], "v");
}

#[tokio::test]
async fn a_500_fraction_fails_that_share_of_matching_requests() {
    let c = TestCluster::start().await.unwrap();
    send(&c, Method::POST, CMS, "t", Some(cm("a"))).await;
    let rule = add_rule(
        &c,
        json!({"verb": "get", "resource": "configmaps", "fraction": 0.3, "code": 500}),
    )
    .await;
    assert_eq!(rule["id"], 1);
    let mut failed = 0;
    for _ in 0..200 {
        let r = send(&c, Method::GET, &format!("{CMS}/a"), "t", None).await;
        match r.status.as_u16() {
            500 => {
                assert_eq!(r.body["reason"], "InternalError", "{}", r.body);
                failed += 1;
            }
            200 => assert_eq!(r.body["metadata"]["name"], "a"),
            other => panic!("unexpected {other}: {}", r.body),
        }
    }
    assert!((50..=70).contains(&failed), "{failed} of 200 failed");
    // Other verbs are not affected.
    for _ in 0..20 {
        assert_eq!(
            send(&c, Method::GET, CMS, "t", None).await.status,
            StatusCode::OK
        );
    }
    let listed = send(&c, Method::GET, "/sim/v1/faults", "t", None).await;
    assert_eq!(listed.body["rules"][0]["matched"], 200);
    assert_eq!(listed.body["rules"][0]["failed"], failed);
    clear_rules(&c).await;
    assert_serving(&c, "t", "b").await;
}

#[tokio::test]
async fn a_429_carries_retry_after_and_a_409_is_a_conflict() {
    let c = TestCluster::start().await.unwrap();
    add_rule(
        &c,
        json!({"verb": "list", "userAgent": "throttled", "fraction": 1.0, "code": 429, "retryAfterSeconds": 3}),
    )
    .await;
    // kube-rs retries 429s by itself: look at the answer with a plain HTTP/1.1 request.
    let r = raw_get(&c, CMS, "i-am-throttled/1.0").await;
    assert_eq!(r.status, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(r.retry_after.as_deref(), Some("3"));
    assert_eq!(r.body["kind"], "Status");
    assert_eq!(r.body["reason"], "TooManyRequests");
    assert_eq!(r.body["details"]["retryAfterSeconds"], 3);
    // Another user agent is served.
    assert_eq!(
        send(&c, Method::GET, CMS, "kubectl", None).await.status,
        StatusCode::OK
    );

    add_rule(&c, json!({"verb": "create", "fraction": 1.0, "code": 409})).await;
    let r = send(&c, Method::POST, CMS, "t", Some(cm("x"))).await;
    assert_eq!(r.status, StatusCode::CONFLICT);
    assert_eq!(r.body["reason"], "Conflict");
    assert_eq!(r.body["code"], 409);
    // The failed create stored nothing.
    assert_eq!(
        send(&c, Method::GET, &format!("{CMS}/x"), "t", None)
            .await
            .status,
        StatusCode::NOT_FOUND
    );
    clear_rules(&c).await;
    assert_serving(&c, "i-am-throttled/1.0", "x").await;
}

#[tokio::test]
async fn bad_rules_are_rejected_naming_the_field() {
    let c = TestCluster::start().await.unwrap();
    for (rule, field) in [
        (json!({"fraction": 2}), "fraction"),
        (json!({"fraction": 0.5, "code": 404}), "code"),
        (json!({"verb": "frob", "latencyMs": 1}), "verb"),
        (json!({"latencyMs": "slow"}), "latencyMs"),
        (json!({"failNthWrite": 0}), "failNthWrite"),
    ] {
        let r = send(&c, Method::POST, "/sim/v1/faults", "t", Some(rule)).await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.body);
        assert_eq!(r.body["reason"], "BadRequest");
        let msg = r.body["message"].as_str().unwrap();
        assert!(msg.contains(field), "{msg}");
    }
    let r = send(&c, Method::GET, "/sim/v1/faults", "t", None).await;
    assert_eq!(r.body["rules"], json!([]));
}

#[tokio::test]
async fn latency_delays_matching_requests() {
    let c = TestCluster::start().await.unwrap();
    c.server()
        .faults()
        .add(FaultRule {
            resource: Some("configmaps".into()),
            latency_ms: Some(300),
            ..Default::default()
        })
        .unwrap();
    let t = Instant::now();
    assert_eq!(
        send(&c, Method::GET, CMS, "t", None).await.status,
        StatusCode::OK
    );
    assert!(
        t.elapsed() >= Duration::from_millis(300),
        "{:?}",
        t.elapsed()
    );
    // Unmatched resources are not delayed (generous bound for a loaded machine).
    let t = Instant::now();
    assert_eq!(
        send(
            &c,
            Method::GET,
            "/api/v1/namespaces/default/secrets",
            "t",
            None
        )
        .await
        .status,
        StatusCode::OK
    );
    assert!(
        t.elapsed() < Duration::from_millis(300),
        "{:?}",
        t.elapsed()
    );
    c.server().faults().clear();
    assert_serving(&c, "t", "fast").await;
}

/// Reads a watch response to its end, returning the event types and how long it lasted.
async fn watch_to_end(c: &TestCluster, path: &str) -> (Vec<String>, Duration) {
    let t = Instant::now();
    let req = Request::builder()
        .uri(path)
        .header("user-agent", "watcher")
        .body(Body::empty())
        .unwrap();
    let res = c.client().send(req).await.unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    let bytes = tokio::time::timeout(Duration::from_secs(20), res.into_body().collect())
        .await
        .expect("watch was not closed")
        .unwrap()
        .to_bytes();
    let types = String::from_utf8_lossy(&bytes)
        .lines()
        .filter(|l| !l.is_empty())
        .map(|l| {
            let v: Value = serde_json::from_str(l).unwrap();
            v["type"].as_str().unwrap().to_string()
        })
        .collect();
    (types, t.elapsed())
}

#[tokio::test]
async fn watches_are_closed_after_n_seconds_and_a_new_watch_works() {
    let c = TestCluster::start().await.unwrap();
    send(&c, Method::POST, CMS, "t", Some(cm("w1"))).await;
    add_rule(
        &c,
        json!({"resource": "configmaps", "closeWatchEverySeconds": 1}),
    )
    .await;
    let path = format!("{CMS}?watch=true&resourceVersion=0");
    let (types, took) = watch_to_end(&c, &path).await;
    // The stream delivered the existing object, then ended cleanly after about a second
    // (the server-side default timeout is 30 minutes).
    assert_eq!(types, vec!["ADDED"]);
    assert!(took >= Duration::from_millis(900), "{took:?}");
    assert!(took < Duration::from_secs(10), "{took:?}");

    // A re-watch works and sees new events, and is closed again.
    let watcher = tokio::spawn({
        let url_path = path.clone();
        let client = c.client();
        async move {
            let req = Request::builder()
                .uri(url_path)
                .body(Body::empty())
                .unwrap();
            let res = client.send(req).await.unwrap();
            tokio::time::timeout(Duration::from_secs(20), res.into_body().collect())
                .await
                .expect("watch was not closed")
                .unwrap()
                .to_bytes()
        }
    });
    tokio::time::sleep(Duration::from_millis(200)).await;
    send(&c, Method::POST, CMS, "t", Some(cm("w2"))).await;
    let bytes = watcher.await.unwrap();
    let text = String::from_utf8_lossy(&bytes);
    assert!(text.contains("\"w1\"") && text.contains("\"w2\""), "{text}");

    // Watches of other resources are not closed.
    let secrets = tokio::spawn({
        let client = c.client();
        async move {
            let req = Request::builder()
                .uri("/api/v1/namespaces/default/secrets?watch=true&timeoutSeconds=3")
                .body(Body::empty())
                .unwrap();
            let t = Instant::now();
            let res = client.send(req).await.unwrap();
            res.into_body().collect().await.unwrap();
            t.elapsed()
        }
    });
    assert!(secrets.await.unwrap() >= Duration::from_millis(2900));

    clear_rules(&c).await;
    assert_serving(&c, "t", "w3").await;
}

#[tokio::test]
async fn the_nth_write_of_a_user_agent_fails_once_and_the_next_succeeds() {
    let c = TestCluster::start().await.unwrap();
    c.server()
        .faults()
        .add(FaultRule {
            user_agent: Some("ramp-operator".into()),
            fail_nth_write: Some(3),
            ..Default::default()
        })
        .unwrap();
    let ua = "ramp-operator/0.1";
    let mut codes = vec![];
    for i in 0..6 {
        // Reads and other agents' writes in between do not count.
        send(&c, Method::GET, CMS, ua, None).await;
        send(&c, Method::POST, CMS, "kubectl", Some(cm(&format!("k{i}")))).await;
        let r = send(&c, Method::POST, CMS, ua, Some(cm(&format!("n{i}")))).await;
        if r.status == StatusCode::INTERNAL_SERVER_ERROR {
            assert_eq!(r.body["reason"], "InternalError");
        }
        codes.push(r.status.as_u16());
    }
    assert_eq!(codes, vec![201, 201, 500, 201, 201, 201]);
    // The failed write stored nothing; its retry does.
    assert_eq!(
        send(&c, Method::GET, &format!("{CMS}/n2"), ua, None)
            .await
            .status,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        send(&c, Method::POST, CMS, ua, Some(cm("n2"))).await.status,
        StatusCode::CREATED
    );
    let rules = c.server().faults().list();
    assert_eq!((rules[0].writes, rules[0].failed), (7, 1));
}

#[tokio::test]
async fn stats_count_by_user_agent_verb_resource_and_code_and_reset() {
    let c = TestCluster::start().await.unwrap();
    // Start from zero (the cluster's own startup requests, if any, are forgotten).
    let r = send(&c, Method::DELETE, "/sim/v1/stats", "t", None).await;
    assert_eq!(r.status, StatusCode::OK);

    send(&c, Method::POST, CMS, "alpha/1", Some(cm("s1"))).await;
    send(&c, Method::POST, CMS, "alpha/1", Some(cm("s1"))).await; // 409 AlreadyExists
    send(&c, Method::GET, &format!("{CMS}/s1"), "alpha/1", None).await;
    send(&c, Method::GET, &format!("{CMS}/s1"), "alpha/1", None).await;
    send(&c, Method::GET, &format!("{CMS}/nope"), "beta/2", None).await;
    send(&c, Method::GET, "/apis/apps/v1/deployments", "beta/2", None).await;
    send(
        &c,
        Method::PATCH,
        &format!("{CMS}/s1"),
        "beta/2",
        Some(json!({"data": {"k": "w"}})),
    )
    .await;
    send(&c, Method::DELETE, &format!("{CMS}/s1"), "beta/2", None).await;
    send(&c, Method::DELETE, CMS, "beta/2", None).await;
    send(&c, Method::GET, "/sim/v1/faults", "beta/2", None).await; // not counted

    let s = send(&c, Method::GET, "/sim/v1/stats", "t", None).await;
    assert_eq!(s.status, StatusCode::OK);
    let rows = s.body["requests"].as_array().unwrap().clone();
    let count = |ua: &str, verb: &str, resource: &str, code: u16| -> u64 {
        rows.iter()
            .filter(|r| {
                r["userAgent"] == ua
                    && r["verb"] == verb
                    && r["resource"] == resource
                    && r["code"] == code
            })
            .map(|r| r["count"].as_u64().unwrap())
            .sum()
    };
    assert_eq!(count("alpha/1", "create", "configmaps", 201), 1, "{rows:?}");
    assert_eq!(count("alpha/1", "create", "configmaps", 409), 1, "{rows:?}");
    assert_eq!(count("alpha/1", "get", "configmaps", 200), 2, "{rows:?}");
    assert_eq!(count("beta/2", "get", "configmaps", 404), 1, "{rows:?}");
    assert_eq!(
        count("beta/2", "list", "apps/deployments", 200),
        1,
        "{rows:?}"
    );
    assert_eq!(count("beta/2", "patch", "configmaps", 200), 1, "{rows:?}");
    assert_eq!(count("beta/2", "delete", "configmaps", 200), 1, "{rows:?}");
    assert_eq!(
        count("beta/2", "deletecollection", "configmaps", 200),
        1,
        "{rows:?}"
    );
    assert_eq!(s.body["total"], 9, "{rows:?}");
    assert!(
        rows.iter()
            .all(|r| !r["resource"].as_str().unwrap().starts_with("/sim"))
    );

    // Injected failures are counted with their code; the library view agrees.
    c.server()
        .faults()
        .add(FaultRule {
            verb: Some("list".into()),
            fraction: Some(1.0),
            code: Some(429),
            ..Default::default()
        })
        .unwrap();
    assert_eq!(raw_get(&c, CMS, "gamma").await.status.as_u16(), 429);
    let snap = c.server().stats().snapshot();
    assert_eq!(snap.count(|r| r.user_agent == "gamma" && r.code == 429), 1);
    assert_eq!(snap.total, 10);

    let r = send(&c, Method::POST, "/sim/v1/stats/reset", "t", None).await;
    assert_eq!(r.status, StatusCode::OK);
    let s = send(&c, Method::GET, "/sim/v1/stats", "t", None).await;
    assert_eq!(s.body, json!({"requests": [], "total": 0}));
}
