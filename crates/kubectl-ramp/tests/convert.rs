//! `convert`: OpenKruise Rollouts in, valid ramp Rollouts out, every dropped
//! field reported with its path.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test helpers outside #[test] fns

use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use kubectl_ramp::Error;
use kubectl_ramp::convert::convert_manifest;
use pretty_assertions::assert_eq;
use ramp_api::{Rollout, ValueMatchType, validate_rollout};

/// The manifest from the plugin issue, verbatim.
const KRUISE: &str = r#"
apiVersion: rollouts.kruise.io/v1beta1
kind: Rollout
metadata: {name: rollouts-demo}
spec:
  workloadRef: {apiVersion: apps/v1, kind: Deployment, name: workload-demo}
  strategy:
    canary:
      steps:
      - replicas: 1
        matches:
        - headers: [{type: Exact, name: version, value: canary}]
      - {traffic: 50%, replicas: 50%}
      - {traffic: 80%, replicas: 80%}
      trafficRoutings:
      - service: service-demo
        customNetworkRefs:
        - {apiVersion: networking.istio.io/v1alpha3, kind: VirtualService, name: vs-demo}
"#;

#[test]
fn the_issue_manifest_converts_with_the_same_steps_and_routing() {
    let out = convert_manifest("kruise.yaml", KRUISE).unwrap();
    assert_eq!(out.rollouts.len(), 1);
    // What is printed parses back as a ramp Rollout, and it is valid.
    let ro: Rollout = serde_yaml::from_str(&out.yaml).unwrap();
    assert!(
        out.yaml
            .starts_with("apiVersion: rollouts.ramp.dev/v1beta1\nkind: Rollout\n"),
        "{}",
        out.yaml
    );
    assert_eq!(validate_rollout(&ro), vec![]);
    assert_eq!(ro.metadata.name.as_deref(), Some("rollouts-demo"));
    assert_eq!(ro.spec.workload_ref.name, "workload-demo");
    assert_eq!(ro.spec.workload_ref.kind, "Deployment");

    let c = ro.spec.strategy.canary.as_ref().unwrap();
    assert_eq!(c.steps.len(), 3);
    assert_eq!(c.steps[0].replicas, Some(IntOrString::Int(1)));
    assert_eq!(c.steps[0].traffic, None);
    let h = &c.steps[0].matches[0].headers[0];
    assert_eq!(
        (h.name.as_str(), h.value.as_str(), h.type_),
        ("version", "canary", Some(ValueMatchType::Exact))
    );
    assert_eq!(c.steps[1].traffic.as_deref(), Some("50%"));
    assert_eq!(c.steps[1].replicas, Some(IntOrString::String("50%".into())));
    assert_eq!(c.steps[2].traffic.as_deref(), Some("80%"));
    assert_eq!(c.steps[2].replicas, Some(IntOrString::String("80%".into())));
    assert!(
        c.steps.iter().all(|s| s.pause.is_none()),
        "every step waits for approval, as in Kruise"
    );

    assert_eq!(c.traffic_routings.len(), 1);
    assert_eq!(c.traffic_routings[0].service, "service-demo");
    let r = &c.traffic_routings[0].custom_network_refs[0];
    assert_eq!(
        (r.api_version.as_str(), r.kind.as_str(), r.name.as_str()),
        ("networking.istio.io/v1alpha3", "VirtualService", "vs-demo")
    );

    // The one difference in behaviour is reported.
    assert_eq!(out.notes.len(), 1, "{:#?}", out.notes);
    assert!(out.notes[0].starts_with(
        "kruise.yaml: Rollout 'rollouts-demo': spec.strategy.canary.enableExtraWorkloadForCanary: absent (OpenKruise's default is false)"
    ), "{}", out.notes[0]);

    // Same as converting the typed spec by hand.
    let same: Rollout = serde_yaml::from_str(
        &KRUISE.replace("rollouts.kruise.io/v1beta1", "rollouts.ramp.dev/v1beta1"),
    )
    .unwrap();
    assert_eq!(ro.spec, same.spec);
}

#[test]
fn unsupported_fields_are_reported_with_their_paths() {
    let text = r#"
apiVersion: rollouts.kruise.io/v1beta1
kind: Rollout
metadata:
  name: web
  namespace: shop
  uid: 1234
  resourceVersion: "99"
  annotations:
    rollouts.kruise.io/rolling-style: partition
    team: payments
spec:
  workloadRef: {apiVersion: apps/v1, kind: Deployment, name: web}
  strategy:
    canary:
      enableExtraWorkloadForCanary: true
      failureThreshold: 20%
      steps:
      - replicas: 1
        traffic: 5%
        requestHeaderModifier: {set: [{name: x-canary, value: "1"}]}
        pause: {duration: 30}
      - {replicas: 100%, traffic: 100%, estimatedDuration: 5}
      trafficRoutings:
      - service: web
        gracePeriodSeconds: 5
        ingress: {classType: nginx, name: web}
        customNetworkRefs:
        - {apiVersion: networking.istio.io/v1beta1, kind: VirtualService, name: web}
        - {apiVersion: networking.istio.io/v1beta1, kind: DestinationRule, name: web}
status:
  phase: Healthy
"#;
    let out = convert_manifest("f.yaml", text).unwrap();
    let notes: Vec<String> = out
        .notes
        .iter()
        .map(|n| n.trim_start_matches("f.yaml: Rollout 'web': ").to_string())
        .collect();
    let paths: Vec<&str> = notes
        .iter()
        .map(|n| n.split(": ").next().unwrap())
        .collect();
    assert_eq!(
        paths,
        vec![
            "metadata.annotations[rollouts.kruise.io/rolling-style]",
            "spec.strategy.canary.steps[1].estimatedDuration",
            "spec.strategy.canary.trafficRoutings[0].ingress",
            "spec.strategy.canary.failureThreshold",
        ],
        "{notes:#?}"
    );
    // DestinationRules are supported (subset routing): carried over, not reported.
    let refs = &out.rollouts[0]
        .spec
        .strategy
        .canary
        .as_ref()
        .unwrap()
        .traffic_routings[0]
        .custom_network_refs;
    assert_eq!(refs[1].kind, "DestinationRule");
    let ro = &out.rollouts[0];
    assert_eq!(ro.metadata.namespace.as_deref(), Some("shop"));
    assert_eq!(ro.metadata.uid, None);
    assert_eq!(ro.metadata.resource_version, None);
    assert_eq!(
        ro.metadata
            .annotations
            .as_ref()
            .unwrap()
            .keys()
            .collect::<Vec<_>>(),
        vec!["team"]
    );
    let c = ro.spec.strategy.canary.as_ref().unwrap();
    assert_eq!(c.steps[0].pause.as_ref().unwrap().duration, Some(30));
    // requestHeaderModifier is carried over (ramp has the same field).
    assert_eq!(
        c.steps[0].request_header_modifier.as_ref().unwrap().set[0].name,
        "x-canary"
    );
    assert_eq!(c.traffic_routings[0].grace_period_seconds, Some(5));
    assert_eq!(c.traffic_routings[0].custom_network_refs.len(), 2);
    assert!(ro.status.is_none());
    assert!(!out.yaml.contains("status"), "{}", out.yaml);
}

#[test]
fn v1alpha1_object_ref_and_weights_convert() {
    let text = r#"
apiVersion: rollouts.kruise.io/v1alpha1
kind: Rollout
metadata: {name: old}
spec:
  objectRef:
    workloadRef: {apiVersion: apps/v1, kind: Deployment, name: old-app}
  strategy:
    canary:
      steps:
      - {weight: 20, replicas: 1}
      - {weight: 60, replicas: 3, pause: {duration: 60}}
      trafficRoutings:
      - service: old-app
        customNetworkRefs:
        - {apiVersion: networking.istio.io/v1beta1, kind: VirtualService, name: old-app}
"#;
    let out = convert_manifest("a.yaml", text).unwrap();
    assert_eq!(out.notes, Vec::<String>::new());
    let c = out.rollouts[0].spec.strategy.canary.clone().unwrap();
    assert_eq!(out.rollouts[0].spec.workload_ref.name, "old-app");
    assert_eq!(c.steps[0].traffic.as_deref(), Some("20%"));
    assert_eq!(c.steps[1].traffic.as_deref(), Some("60%"));
    assert_eq!(c.steps[1].pause.as_ref().unwrap().duration, Some(60));
}

#[test]
fn an_invalid_result_is_refused_with_every_field_path() {
    let text = KRUISE
        .replace(
            "      - {traffic: 80%, replicas: 80%}",
            "      - {traffic: 80%}",
        )
        .replace("name: version", "name: \"\"");
    let err = convert_manifest("k.yaml", &text).unwrap_err();
    let Error::Invalid(msg) = err else {
        panic!("{err:?}")
    };
    assert_eq!(
        msg,
        "k.yaml: Rollout 'rollouts-demo' does not convert to a valid ramp Rollout:\n  \
         spec.strategy.canary.steps[0].matches[0].headers[0].name: must not be empty: name the header to match\n  \
         spec.strategy.canary.steps[2].replicas: required: a number of canary pods (>= 1) or a percentage of the workload's replicas (\"NN%\", 0 < NN <= 100)"
    );
}

#[test]
fn other_documents_are_copied_and_a_file_without_a_rollout_is_an_error() {
    let text = format!(
        "apiVersion: v1\nkind: Service\nmetadata: {{name: service-demo}}\nspec: {{ports: [{{port: 80}}]}}\n---\n{KRUISE}"
    );
    let out = convert_manifest("all.yaml", &text).unwrap();
    let docs: Vec<&str> = out.yaml.split("---\n").collect();
    assert_eq!(docs.len(), 2);
    assert!(docs[0].contains("kind: Service"));
    assert!(docs[1].contains("apiVersion: rollouts.ramp.dev/v1beta1"));
    assert!(
        out.notes[0]
            .contains("Service 'service-demo' is not an OpenKruise Rollout; copied unchanged")
    );

    let err = convert_manifest(
        "svc.yaml",
        "apiVersion: v1\nkind: Service\nmetadata: {name: s}\n",
    )
    .unwrap_err();
    assert_eq!(
        err,
        Error::Invalid("svc.yaml: no OpenKruise Rollout found (apiVersion rollouts.kruise.io/v1beta1 or v1alpha1, kind Rollout)".into())
    );
    let err = convert_manifest("bad.yaml", "a: [").unwrap_err();
    assert!(
        matches!(&err, Error::Invalid(m) if m.starts_with("bad.yaml: document 1:")),
        "{err:?}"
    );
}

#[test]
fn a_gateway_http_route_rollout_converts_with_its_route_and_header_modifier() {
    let text = r#"
apiVersion: rollouts.kruise.io/v1beta1
kind: Rollout
metadata: {name: shop}
spec:
  workloadRef: {apiVersion: apps/v1, kind: Deployment, name: shop}
  strategy:
    canary:
      enableExtraWorkloadForCanary: true
      steps:
      - replicas: 1
        matches:
        - headers: [{name: x-beta, value: "yes"}]
        requestHeaderModifier:
          set: [{name: x-env, value: canary}]
          remove: [x-debug]
      - {traffic: 40%, replicas: 50%}
      trafficRoutings:
      - service: shop
        gateway: {httpRouteName: shop-route}
"#;
    let out = convert_manifest("gw.yaml", text).unwrap();
    assert_eq!(out.notes, Vec::<String>::new());
    let c = out.rollouts[0].spec.strategy.canary.clone().unwrap();
    let gw = c.traffic_routings[0].gateway.as_ref().unwrap();
    assert_eq!(gw.http_route_name.as_deref(), Some("shop-route"));
    let refs = c.traffic_routings[0].routing_refs();
    assert_eq!(
        (refs[0].kind.as_str(), refs[0].name.as_str()),
        ("HTTPRoute", "shop-route")
    );
    let m = c.steps[0].request_header_modifier.as_ref().unwrap();
    assert_eq!(
        (m.set[0].name.as_str(), m.set[0].value.as_str()),
        ("x-env", "canary")
    );
    assert_eq!(m.remove, vec!["x-debug".to_string()]);
    // It reads back from the printed YAML.
    let ro: Rollout = serde_yaml::from_str(&out.yaml).unwrap();
    assert_eq!(ro.spec, out.rollouts[0].spec);
}

#[test]
fn kruise_only_objects_and_lua_routed_kinds_are_dropped_saying_why() {
    let text = r#"
apiVersion: rollouts.kruise.io/v1alpha1
kind: TrafficRouting
metadata: {name: tr-web}
spec:
  objectRef:
  - service: web
    customNetworkRefs: [{apiVersion: networking.istio.io/v1beta1, kind: VirtualService, name: web}]
  strategy:
    matches: [{headers: [{name: user-agent, value: pc}]}]
---
apiVersion: v1
kind: ConfigMap
metadata: {name: kruise-rollout-configuration, namespace: kruise-rollout}
data:
  lua.traffic.routing.ApisixRoute.apisix.apache.org: "-- a script"
---
apiVersion: rollouts.kruise.io/v1beta1
kind: Rollout
metadata:
  name: web
  annotations: {rollouts.kruise.io/trafficrouting: tr-web}
spec:
  workloadRef: {apiVersion: apps/v1, kind: Deployment, name: web}
  strategy:
    canary:
      enableExtraWorkloadForCanary: true
      steps:
      - {replicas: 1, traffic: 10%}
      trafficRoutings:
      - service: web
        customNetworkRefs:
        - {apiVersion: networking.istio.io/v1beta1, kind: VirtualService, name: web}
        - {apiVersion: apisix.apache.org/v2, kind: ApisixRoute, name: web}
"#;
    let out = convert_manifest("k.yaml", text).unwrap();
    // Only the Rollout is printed.
    assert!(
        out.yaml
            .starts_with("apiVersion: rollouts.ramp.dev/v1beta1\nkind: Rollout\n")
            && !out.yaml.contains("---")
            && !out.yaml.contains("ConfigMap"),
        "{}",
        out.yaml
    );
    let find = |needle: &str| {
        out.notes
            .iter()
            .find(|n| n.contains(needle))
            .unwrap_or_else(|| panic!("no note with {needle:?}: {:#?}", out.notes))
            .clone()
    };
    let tr = find("TrafficRouting 'tr-web'");
    assert!(
        tr.contains("a standalone OpenKruise TrafficRouting; ramp has none"),
        "{tr}"
    );
    assert!(tr.ends_with("; dropped"), "{tr}");
    let cm = find("ConfigMap 'kruise-rollout-configuration'");
    assert!(
        cm.contains(
            "Lua custom traffic-routing scripts (lua.traffic.routing.ApisixRoute.apisix.apache.org)"
        ),
        "{cm}"
    );
    let ann = find("metadata.annotations[rollouts.kruise.io/trafficrouting]");
    assert!(
        ann.contains("\"tr-web\": binds the Rollout to a standalone TrafficRouting"),
        "{ann}"
    );
    let lua = find("customNetworkRefs[1]");
    assert!(
        lua.contains("ApisixRoute \"web\": OpenKruise changes this kind with a Lua custom script (the `lua.traffic.routing.ApisixRoute.apisix.apache.org` key"),
        "{lua}"
    );
    let refs = &out.rollouts[0]
        .spec
        .strategy
        .canary
        .as_ref()
        .unwrap()
        .traffic_routings[0]
        .custom_network_refs;
    assert_eq!(refs.len(), 1);
}
