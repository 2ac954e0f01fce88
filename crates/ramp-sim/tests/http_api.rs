//! Raw HTTP against the sim: bad input gets the right 4xx `Status` and stores nothing, and the
//! wire details clients rely on (query parsing, content negotiation, discovery, protobuf).

#![allow(clippy::unwrap_used, clippy::expect_used)] // test helpers

use http::{Method, Request, StatusCode};
use http_body_util::BodyExt;
use kube::client::Body;
use ramp_sim::TestCluster;
use ramp_sim::resources::GroupResource;
use ramp_sim::store::ListOptions;
use serde_json::{Value, json};

struct Reply {
    status: StatusCode,
    content_type: String,
    body: Value,
}

async fn send(c: &TestCluster, method: Method, path: &str, ct: &str, body: Vec<u8>) -> Reply {
    send_with(c, method, path, &[("content-type", ct)], body).await
}

async fn send_with(
    c: &TestCluster,
    method: Method,
    path: &str,
    headers: &[(&str, &str)],
    body: Vec<u8>,
) -> Reply {
    let mut b = Request::builder().method(method).uri(path);
    for (k, v) in headers {
        b = b.header(*k, *v);
    }
    let res = c
        .client()
        .send(b.body(Body::from(body)).unwrap())
        .await
        .unwrap();
    let status = res.status();
    let content_type = res
        .headers()
        .get("content-type")
        .map(|v| v.to_str().unwrap().to_string())
        .unwrap_or_default();
    let bytes = res.into_body().collect().await.unwrap().to_bytes();
    let body = serde_json::from_slice(&bytes)
        .unwrap_or(Value::String(String::from_utf8_lossy(&bytes).into()));
    Reply {
        status,
        content_type,
        body,
    }
}

fn assert_status(r: &Reply, code: u16, reason: &str) {
    assert_eq!(r.status.as_u16(), code, "{}", r.body);
    assert_eq!(r.body["kind"], "Status", "{}", r.body);
    assert_eq!(r.body["code"], code, "{}", r.body);
    assert_eq!(r.body["reason"], reason, "{}", r.body);
    assert!(!r.body["message"].as_str().unwrap_or_default().is_empty());
}

fn configmap_count(c: &TestCluster) -> usize {
    c.store()
        .list(
            &GroupResource::new("", "configmaps"),
            None,
            &ListOptions::default(),
        )
        .unwrap()
        .items
        .len()
}

const CMS: &str = "/api/v1/namespaces/default/configmaps";

#[tokio::test]
async fn bad_input_is_rejected_and_nothing_is_stored() {
    let c = TestCluster::start().await.unwrap();
    let json_ct = "application/json";

    let r = send(
        &c,
        Method::POST,
        CMS,
        json_ct,
        b"{\"kind\": \"ConfigMap\", ".to_vec(),
    )
    .await;
    assert_status(&r, 400, "BadRequest");

    let r = send(
        &c,
        Method::POST,
        CMS,
        "application/yaml",
        b"kind: ConfigMap\nmetadata: [unclosed\n".to_vec(),
    )
    .await;
    assert_status(&r, 400, "BadRequest");

    let secret = json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "s"}});
    let r = send(
        &c,
        Method::POST,
        CMS,
        json_ct,
        secret.to_string().into_bytes(),
    )
    .await;
    assert_status(&r, 400, "BadRequest");
    assert!(
        r.body["message"].as_str().unwrap().contains("Secret"),
        "{}",
        r.body
    );

    let wrong_group =
        json!({"apiVersion": "apps/v1", "kind": "ConfigMap", "metadata": {"name": "x"}});
    let r = send(
        &c,
        Method::POST,
        CMS,
        json_ct,
        wrong_group.to_string().into_bytes(),
    )
    .await;
    assert_status(&r, 400, "BadRequest");

    let other_ns = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "x", "namespace": "kube-system"}});
    let r = send(
        &c,
        Method::POST,
        CMS,
        json_ct,
        other_ns.to_string().into_bytes(),
    )
    .await;
    assert_status(&r, 400, "BadRequest");
    assert!(
        r.body["message"].as_str().unwrap().contains("namespace"),
        "{}",
        r.body
    );

    let r = send(
        &c,
        Method::GET,
        "/api/v1/namespaces/default/widgets",
        json_ct,
        vec![],
    )
    .await;
    assert_status(&r, 404, "NotFound");
    let r = send(
        &c,
        Method::POST,
        "/apis/nope.example.com/v1/namespaces/default/things",
        json_ct,
        b"{}".to_vec(),
    )
    .await;
    assert_status(&r, 404, "NotFound");
    let r = send(
        &c,
        Method::GET,
        "/api/v1/namespaces/default/configmaps/missing",
        json_ct,
        vec![],
    )
    .await;
    assert_status(&r, 404, "NotFound");
    assert_eq!(r.body["details"]["name"], "missing");
    assert_eq!(r.body["details"]["kind"], "configmaps");

    let big = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "big"},
                     "data": {"blob": "x".repeat(4 * 1024 * 1024)}});
    let r = send(&c, Method::POST, CMS, json_ct, big.to_string().into_bytes()).await;
    assert_status(&r, 413, "RequestEntityTooLarge");

    let no_name = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {}});
    let r = send(
        &c,
        Method::POST,
        CMS,
        json_ct,
        no_name.to_string().into_bytes(),
    )
    .await;
    assert_status(&r, 422, "Invalid");
    assert_eq!(r.body["details"]["causes"][0]["field"], "metadata.name");

    let bad_labels = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "l", "labels": {"a": 1}}});
    let r = send(
        &c,
        Method::POST,
        CMS,
        json_ct,
        bad_labels.to_string().into_bytes(),
    )
    .await;
    assert_status(&r, 400, "BadRequest");

    let r = send(
        &c,
        Method::PATCH,
        &format!("{CMS}/x"),
        "text/plain",
        b"{}".to_vec(),
    )
    .await;
    assert_status(&r, 415, "UnsupportedMediaType");

    let r = send(
        &c,
        Method::GET,
        &format!("{CMS}?labelSelector=a%20in%20(b"),
        json_ct,
        vec![],
    )
    .await;
    assert_status(&r, 400, "BadRequest");

    let r = send(
        &c,
        Method::POST,
        "/api/v1/namespaces/nope/configmaps",
        json_ct,
        json!({"metadata": {"name": "x"}}).to_string().into_bytes(),
    )
    .await;
    assert_status(&r, 404, "NotFound");

    assert_eq!(configmap_count(&c), 0, "nothing may be stored");

    // The server still serves, and a good request works.
    let good = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "ok"}});
    let r = send(
        &c,
        Method::POST,
        CMS,
        json_ct,
        good.to_string().into_bytes(),
    )
    .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    let mut put = r.body.clone();
    put["metadata"]["name"] = json!("other");
    let r = send(
        &c,
        Method::PUT,
        &format!("{CMS}/ok"),
        json_ct,
        put.to_string().into_bytes(),
    )
    .await;
    assert_status(&r, 400, "BadRequest");
    assert_eq!(configmap_count(&c), 1);
}

#[tokio::test]
async fn queries_tables_metadata_and_paging() {
    let c = TestCluster::start().await.unwrap();
    for i in 0..5 {
        let cm = json!({"apiVersion": "v1", "kind": "ConfigMap",
                        "metadata": {"name": format!("c{i}"), "labels": {"i": i.to_string(), "app": "x"}}});
        let r = send(
            &c,
            Method::POST,
            CMS,
            "application/json",
            cm.to_string().into_bytes(),
        )
        .await;
        assert_eq!(r.status, StatusCode::CREATED);
    }
    let r = send(&c, Method::GET, &format!("{CMS}?&limit=500"), "", vec![]).await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.body["kind"], "ConfigMapList");
    assert_eq!(r.body["items"].as_array().unwrap().len(), 5);

    let r = send(&c, Method::GET, &format!("{CMS}?limit=2"), "", vec![]).await;
    assert_eq!(r.body["items"].as_array().unwrap().len(), 2);
    assert_eq!(r.body["metadata"]["remainingItemCount"], 3);
    let token = r.body["metadata"]["continue"].as_str().unwrap().to_string();
    let r = send(
        &c,
        Method::GET,
        &format!("{CMS}?limit=10&continue={token}"),
        "",
        vec![],
    )
    .await;
    let names: Vec<&str> = r.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["metadata"]["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, vec!["c2", "c3", "c4"]);

    let r = send(
        &c,
        Method::GET,
        &format!("{CMS}?labelSelector=i%20in%20(1,3),app"),
        "",
        vec![],
    )
    .await;
    assert_eq!(r.body["items"].as_array().unwrap().len(), 2);
    let r = send(
        &c,
        Method::GET,
        &format!("{CMS}?labelSelector=i!%3D1"),
        "",
        vec![],
    )
    .await;
    assert_eq!(r.body["items"].as_array().unwrap().len(), 4);
    let r = send(
        &c,
        Method::GET,
        "/api/v1/configmaps?fieldSelector=metadata.namespace%3Ddefault,metadata.name%3Dc4",
        "",
        vec![],
    )
    .await;
    assert_eq!(r.body["items"].as_array().unwrap().len(), 1);

    let table = "application/json;as=Table;v=v1;g=meta.k8s.io,application/json";
    let r = send_with(&c, Method::GET, CMS, &[("accept", table)], vec![]).await;
    assert_eq!(r.body["kind"], "Table");
    let cols: Vec<&str> = r.body["columnDefinitions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    assert_eq!(cols, vec!["Name", "Data", "Age"]);
    assert_eq!(r.body["rows"][0]["cells"][0], "c0");
    assert_eq!(r.body["rows"][0]["object"]["kind"], "PartialObjectMetadata");

    let meta = "application/json;as=PartialObjectMetadataList;v=v1;g=meta.k8s.io";
    let r = send_with(&c, Method::GET, CMS, &[("accept", meta)], vec![]).await;
    assert_eq!(r.body["kind"], "PartialObjectMetadataList");
    assert_eq!(r.body["items"][0]["metadata"]["name"], "c0");
}

#[tokio::test]
async fn discovery_openapi_and_version() {
    let c = TestCluster::start().await.unwrap();
    let r = send(&c, Method::GET, "/version", "", vec![]).await;
    assert_eq!(
        (r.body["major"].as_str(), r.body["minor"].as_str()),
        (Some("1"), Some("33"))
    );
    assert_eq!(r.body["gitVersion"], "v1.33.0-ramp-sim");

    let agg =
        "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList,application/json";
    let r = send_with(&c, Method::GET, "/apis", &[("accept", agg)], vec![]).await;
    assert!(
        r.content_type.contains("as=APIGroupDiscoveryList"),
        "{}",
        r.content_type
    );
    let apps = r.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|g| g["metadata"]["name"] == "apps")
        .unwrap();
    let deploy = apps["versions"][0]["resources"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["resource"] == "deployments")
        .unwrap();
    let subs: Vec<&str> = deploy["subresources"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["subresource"].as_str().unwrap())
        .collect();
    assert_eq!(subs, vec!["status", "scale"]);

    let r = send(&c, Method::GET, "/apis", "", vec![]).await;
    assert_eq!(r.body["kind"], "APIGroupList");
    let r = send(&c, Method::GET, "/api", "", vec![]).await;
    assert_eq!(r.body["versions"], json!(["v1"]));
    let r = send(&c, Method::GET, "/api/v1", "", vec![]).await;
    assert!(
        r.body["resources"]
            .as_array()
            .unwrap()
            .iter()
            .any(|x| x["name"] == "pods/status")
    );
    let r = send(&c, Method::GET, "/apis/nope.example.com/v1", "", vec![]).await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    let r = send(&c, Method::GET, "/openapi/v2", "", vec![]).await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn protobuf_secret_and_delete_options() {
    let c = TestCluster::start().await.unwrap();
    let secret = json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "sh.helm.release.v1.demo.v1", "labels": {"owner": "helm"}},
                        "type": "helm.sh/release.v1", "data": {"release": "aGVsbG8="}});
    let body = ramp_sim::proto::encode(&secret).unwrap();
    let r = send_with(
        &c,
        Method::POST,
        "/api/v1/namespaces/default/secrets",
        &[
            ("content-type", "application/vnd.kubernetes.protobuf"),
            (
                "accept",
                "application/vnd.kubernetes.protobuf, application/json",
            ),
        ],
        body,
    )
    .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    assert_eq!(r.body["data"]["release"], "aGVsbG8=");
    assert_eq!(r.body["type"], "helm.sh/release.v1");

    let del =
        json!({"apiVersion": "v1", "kind": "DeleteOptions", "propagationPolicy": "Background"});
    let body = ramp_sim::proto::encode(&del).unwrap();
    let r = send(
        &c,
        Method::DELETE,
        "/api/v1/namespaces/default/secrets/sh.helm.release.v1.demo.v1",
        "application/vnd.kubernetes.protobuf",
        body,
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(r.body["status"], "Success");
    let r = send(
        &c,
        Method::GET,
        "/api/v1/namespaces/default/secrets/sh.helm.release.v1.demo.v1",
        "",
        vec![],
    )
    .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
}
