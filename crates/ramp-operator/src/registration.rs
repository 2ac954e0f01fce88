//! Registering the admission webhooks with the API server.
//!
//! In a cluster the chart creates both webhook configurations pointing at the
//! operator's Service; the operator only fills in `caBundle` (a JSON patch
//! guarded by a `test` of each webhook's name). Outside a cluster
//! (`--webhook-url`) the operator owns URL-based configurations and applies
//! them whole (server-side apply).

use std::net::SocketAddr;

use base64::Engine;
use k8s_openapi::api::admissionregistration::v1::{
    MutatingWebhookConfiguration, ValidatingWebhookConfiguration,
};
use kube::api::{Api, Patch, PatchParams};
use ramp_api::names::{CONTROLLED_BY_LABEL, FIELD_MANAGER};
use serde_json::{Value, json};

use crate::webhook::{MUTATE_DEPLOYMENT_PATH, VALIDATE_ROLLOUT_PATH};

/// Name of the Deployment-pausing webhook.
pub const MUTATING_WEBHOOK_NAME: &str = "pause-deployment.rollouts.ramp.dev";
/// Name of the Rollout-validating webhook.
pub const VALIDATING_WEBHOOK_NAME: &str = "validate-rollout.rollouts.ramp.dev";

/// How the API server reaches the webhooks.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Mode {
    /// A URL such as `https://127.0.0.1:9443` (outside a cluster).
    Url(String),
    /// The operator's Service (in a cluster).
    Service {
        /// Namespace of the Service.
        namespace: String,
        /// Name of the Service.
        name: String,
    },
}

/// Registration errors.
#[derive(Debug, thiserror::Error)]
pub enum RegistrationError {
    /// The API call failed.
    #[error("{kind} {name}: {source}")]
    Api {
        /// Object kind.
        kind: &'static str,
        /// Object name.
        name: String,
        /// API error.
        source: kube::Error,
    },
    /// The chart's configuration is missing.
    #[error(
        "{kind} {name} not found: install ramp with its Helm chart, or run with --webhook-url or --no-webhook"
    )]
    Missing {
        /// Object kind.
        kind: &'static str,
        /// Object name.
        name: String,
    },
}

impl Mode {
    /// Names the serving certificate must cover.
    pub fn serving_names(&self, local: SocketAddr) -> Vec<String> {
        match self {
            Mode::Url(url) => {
                let host = url
                    .split("://")
                    .nth(1)
                    .unwrap_or(url)
                    .split('/')
                    .next()
                    .unwrap_or_default();
                let host = host
                    .rsplit_once(':')
                    .map_or(host, |(h, _)| h)
                    .trim_start_matches('[')
                    .trim_end_matches(']');
                let mut names = vec![host.to_string(), "localhost".to_string()];
                let ip = local.ip().to_string();
                if !local.ip().is_unspecified() && !names.contains(&ip) {
                    names.push(ip);
                }
                names
            }
            Mode::Service { namespace, name } => vec![
                format!("{name}.{namespace}.svc"),
                format!("{name}.{namespace}.svc.cluster.local"),
                format!("{name}.{namespace}"),
                name.clone(),
            ],
        }
    }

    fn client_config(&self, path: &str, ca_b64: &str) -> Value {
        match self {
            Mode::Url(url) => json!({
                "url": format!("{}{path}", url.trim_end_matches('/')),
                "caBundle": ca_b64,
            }),
            Mode::Service { namespace, name } => json!({
                "service": {"namespace": namespace, "name": name, "path": path, "port": 443},
                "caBundle": ca_b64,
            }),
        }
    }
}

/// `url` with its port replaced by `port` when it names port 0.
pub fn with_bound_port(url: &str, port: u16) -> String {
    let (scheme, rest) = url.split_once("://").unwrap_or(("https", url));
    let (authority, path) = rest.split_once('/').map_or((rest, ""), |(a, p)| (a, p));
    match authority.rsplit_once(':') {
        Some((host, "0")) => {
            let sep = if path.is_empty() { "" } else { "/" };
            format!("{scheme}://{host}:{port}{sep}{path}")
        }
        _ => url.to_string(),
    }
}

/// The MutatingWebhookConfiguration ramp owns in URL mode.
pub fn mutating_configuration(name: &str, mode: &Mode, ca_pem: &str) -> Value {
    let ca = base64::engine::general_purpose::STANDARD.encode(ca_pem);
    json!({
        "apiVersion": "admissionregistration.k8s.io/v1",
        "kind": "MutatingWebhookConfiguration",
        "metadata": {"name": name, "labels": {"app.kubernetes.io/managed-by": "ramp"}},
        "webhooks": [{
            "name": MUTATING_WEBHOOK_NAME,
            "admissionReviewVersions": ["v1"],
            "sideEffects": "None",
            "failurePolicy": "Fail",
            "timeoutSeconds": 5,
            "reinvocationPolicy": "IfNeeded",
            "objectSelector": {"matchExpressions": [{"key": CONTROLLED_BY_LABEL, "operator": "Exists"}]},
            "rules": [{
                "apiGroups": ["apps"], "apiVersions": ["v1"], "resources": ["deployments"],
                "operations": ["UPDATE"], "scope": "Namespaced"
            }],
            "clientConfig": mode.client_config(MUTATE_DEPLOYMENT_PATH, &ca),
        }]
    })
}

/// The ValidatingWebhookConfiguration ramp owns in URL mode.
pub fn validating_configuration(name: &str, mode: &Mode, ca_pem: &str) -> Value {
    let ca = base64::engine::general_purpose::STANDARD.encode(ca_pem);
    json!({
        "apiVersion": "admissionregistration.k8s.io/v1",
        "kind": "ValidatingWebhookConfiguration",
        "metadata": {"name": name, "labels": {"app.kubernetes.io/managed-by": "ramp"}},
        "webhooks": [{
            "name": VALIDATING_WEBHOOK_NAME,
            "admissionReviewVersions": ["v1"],
            "sideEffects": "None",
            "failurePolicy": "Fail",
            "timeoutSeconds": 5,
            "rules": [{
                "apiGroups": ["rollouts.ramp.dev"], "apiVersions": ["v1beta1"], "resources": ["rollouts"],
                "operations": ["CREATE", "UPDATE"], "scope": "Namespaced"
            }],
            "clientConfig": mode.client_config(VALIDATE_ROLLOUT_PATH, &ca),
        }]
    })
}

/// JSON patch setting `caBundle` on each of ramp's webhooks in `current`.
pub fn ca_bundle_patch(current: &Value, ca_pem: &str) -> Option<json_patch::Patch> {
    let ca = base64::engine::general_purpose::STANDARD.encode(ca_pem);
    let mut ops = Vec::new();
    for (i, w) in current.get("webhooks")?.as_array()?.iter().enumerate() {
        let name = w.get("name").and_then(Value::as_str).unwrap_or_default();
        if name != MUTATING_WEBHOOK_NAME && name != VALIDATING_WEBHOOK_NAME {
            continue;
        }
        if w.pointer("/clientConfig/caBundle").and_then(Value::as_str) == Some(ca.as_str()) {
            continue;
        }
        ops.push(json!({"op": "test", "path": format!("/webhooks/{i}/name"), "value": name}));
        ops.push(json!({"op": "add", "path": format!("/webhooks/{i}/clientConfig/caBundle"), "value": ca}));
    }
    if ops.is_empty() {
        return None;
    }
    serde_json::from_value(Value::Array(ops)).ok()
}

/// Restricts every webhook of a configuration to one namespace (a
/// namespace-scoped operator admits only what it controls: another
/// operator's namespace keeps working while this one is down).
pub fn scoped_to_namespace(mut configuration: Value, namespace: &str) -> Value {
    if let Some(hooks) = configuration
        .get_mut("webhooks")
        .and_then(Value::as_array_mut)
    {
        for h in hooks {
            h["namespaceSelector"] =
                json!({"matchLabels": {"kubernetes.io/metadata.name": namespace}});
        }
    }
    configuration
}

/// Make both webhook configurations point at us with our CA.
pub async fn ensure(
    client: &kube::Client,
    mode: &Mode,
    name: &str,
    ca_pem: &str,
) -> Result<(), RegistrationError> {
    ensure_scoped(client, mode, name, ca_pem, None).await
}

/// [`ensure`]; in URL mode with `namespace`, the webhooks admit only that
/// namespace's objects (see [`scoped_to_namespace`]).
pub async fn ensure_scoped(
    client: &kube::Client,
    mode: &Mode,
    name: &str,
    ca_pem: &str,
    namespace: Option<&str>,
) -> Result<(), RegistrationError> {
    let scope = |c: Value| match namespace {
        Some(ns) => scoped_to_namespace(c, ns),
        None => c,
    };
    let mutating: Api<MutatingWebhookConfiguration> = Api::all(client.clone());
    let validating: Api<ValidatingWebhookConfiguration> = Api::all(client.clone());
    match mode {
        Mode::Url(_) => {
            let pp = PatchParams::apply(FIELD_MANAGER).force();
            mutating
                .patch(
                    name,
                    &pp,
                    &Patch::Apply(scope(mutating_configuration(name, mode, ca_pem))),
                )
                .await
                .map_err(|source| RegistrationError::Api {
                    kind: "MutatingWebhookConfiguration",
                    name: name.into(),
                    source,
                })?;
            validating
                .patch(
                    name,
                    &pp,
                    &Patch::Apply(scope(validating_configuration(name, mode, ca_pem))),
                )
                .await
                .map_err(|source| RegistrationError::Api {
                    kind: "ValidatingWebhookConfiguration",
                    name: name.into(),
                    source,
                })?;
        }
        Mode::Service { .. } => {
            inject(&mutating, "MutatingWebhookConfiguration", name, ca_pem).await?;
            inject(&validating, "ValidatingWebhookConfiguration", name, ca_pem).await?;
        }
    }
    tracing::info!(configuration = name, "webhooks registered");
    Ok(())
}

async fn inject<K>(
    api: &Api<K>,
    kind: &'static str,
    name: &str,
    ca_pem: &str,
) -> Result<(), RegistrationError>
where
    K: kube::Resource + Clone + serde::de::DeserializeOwned + serde::Serialize + std::fmt::Debug,
{
    let err = |source| RegistrationError::Api {
        kind,
        name: name.into(),
        source,
    };
    let current =
        api.get_opt(name)
            .await
            .map_err(err)?
            .ok_or_else(|| RegistrationError::Missing {
                kind,
                name: name.into(),
            })?;
    let value = serde_json::to_value(&current).unwrap_or_default();
    if let Some(patch) = ca_bundle_patch(&value, ca_pem) {
        api.patch(name, &PatchParams::default(), &Patch::<()>::Json(patch))
            .await
            .map_err(err)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn url_mode_names_and_configuration() {
        let mode = Mode::Url("https://127.0.0.1:9443".into());
        let names = mode.serving_names("127.0.0.1:9443".parse().unwrap());
        assert_eq!(names, vec!["127.0.0.1", "localhost"]);
        let m = mutating_configuration("ramp", &mode, "PEM");
        assert_eq!(
            m["webhooks"][0]["clientConfig"]["url"],
            "https://127.0.0.1:9443/mutate-deployment"
        );
        assert_eq!(m["webhooks"][0]["clientConfig"]["caBundle"], "UEVN");
        assert_eq!(
            m["webhooks"][0]["objectSelector"]["matchExpressions"][0]["key"],
            CONTROLLED_BY_LABEL
        );
        let scoped = scoped_to_namespace(m.clone(), "team-a");
        assert_eq!(
            scoped["webhooks"][0]["namespaceSelector"],
            json!({"matchLabels": {"kubernetes.io/metadata.name": "team-a"}})
        );
        assert_eq!(scoped["webhooks"][0]["rules"], m["webhooks"][0]["rules"]);
        let v = validating_configuration("ramp", &mode, "PEM");
        assert_eq!(v["webhooks"][0]["rules"][0]["resources"][0], "rollouts");
    }

    #[test]
    fn port_zero_is_the_bound_port() {
        assert_eq!(
            with_bound_port("https://127.0.0.1:0", 4443),
            "https://127.0.0.1:4443"
        );
        assert_eq!(
            with_bound_port("https://127.0.0.1:0/x", 4443),
            "https://127.0.0.1:4443/x"
        );
        assert_eq!(
            with_bound_port("https://127.0.0.1:9443", 4443),
            "https://127.0.0.1:9443"
        );
    }

    #[test]
    fn service_mode_covers_the_service_names() {
        let mode = Mode::Service {
            namespace: "ramp-system".into(),
            name: "ramp-webhook".into(),
        };
        let names = mode.serving_names("0.0.0.0:9443".parse().unwrap());
        assert!(names.contains(&"ramp-webhook.ramp-system.svc".to_string()));
    }

    #[test]
    fn ca_bundle_is_injected_only_into_rampss_webhooks_and_only_when_different() {
        let mode = Mode::Service {
            namespace: "ramp-system".into(),
            name: "ramp-webhook".into(),
        };
        let mut cfg = mutating_configuration("ramp", &mode, "OLD");
        cfg["webhooks"]
            .as_array_mut()
            .unwrap()
            .insert(0, json!({"name": "other.example.com", "clientConfig": {}}));
        let patch = ca_bundle_patch(&cfg, "NEW").unwrap();
        let mut out = cfg.clone();
        json_patch::patch(&mut out, &patch).unwrap();
        assert_eq!(out["webhooks"][1]["clientConfig"]["caBundle"], "TkVX");
        assert_eq!(out["webhooks"][0]["clientConfig"], json!({}));
        assert!(ca_bundle_patch(&out, "NEW").is_none());
    }
}
