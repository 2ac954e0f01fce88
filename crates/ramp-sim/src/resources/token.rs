//! TokenRequest: the answer to `POST .../serviceaccounts/NAME/token`.

use serde_json::Value;

use crate::errors::{ApiError, ApiResult, Cause};
use crate::object::{meta_str, new_uid};

/// The answer to a TokenRequest (`POST .../serviceaccounts/NAME/token`) for `sa`: the
/// request with defaults (`expirationSeconds` 3600, the API server's audience) and a status
/// holding a JWT-shaped token for `system:serviceaccount:NS:NAME`, signed so that the sim
/// accepts it as that ServiceAccount's credential (see [`crate::auth::authn`]).
pub fn token_request(sa: &Value, req: Value) -> ApiResult<Value> {
    use base64::Engine as _;
    let kind = req
        .get("kind")
        .and_then(Value::as_str)
        .unwrap_or("TokenRequest");
    if kind != "TokenRequest" {
        return Err(ApiError::bad_request(format!(
            "the kind of the object ({kind}) does not match the kind of the resource (TokenRequest)"
        )));
    }
    let (ns, name) = (meta_str(sa, "namespace"), meta_str(sa, "name"));
    let mut out = req;
    out["apiVersion"] = serde_json::json!("authentication.k8s.io/v1");
    out["kind"] = serde_json::json!("TokenRequest");
    out["metadata"] = serde_json::json!({"name": name, "namespace": ns, "creationTimestamp": null});
    let spec = out
        .get("spec")
        .cloned()
        .unwrap_or_else(|| serde_json::json!({}));
    let expiration = match spec.get("expirationSeconds") {
        None | Some(Value::Null) => 3600,
        Some(v) => match v.as_i64() {
            Some(s) if s >= 600 => s,
            _ => {
                return Err(ApiError::invalid(
                    "authentication.k8s.io",
                    "TokenRequest",
                    name,
                    vec![Cause::new(
                        "FieldValueInvalid",
                        "spec.expirationSeconds",
                        format!(
                            "Invalid value: {v}: may not specify a duration less than 10 minutes"
                        ),
                    )],
                ));
            }
        },
    };
    let audiences = spec
        .get("audiences")
        .and_then(Value::as_array)
        .filter(|a| !a.is_empty())
        .cloned()
        .unwrap_or_else(|| {
            vec![serde_json::json!(
                "https://kubernetes.default.svc.cluster.local"
            )]
        });
    out["spec"]["expirationSeconds"] = serde_json::json!(expiration);
    out["spec"]["audiences"] = Value::Array(audiences.clone());
    let now = chrono::Utc::now();
    let exp = now + chrono::Duration::seconds(expiration);
    let b64 = |v: &Value| {
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v.to_string().as_bytes())
    };
    let header = serde_json::json!({"alg": "RS256", "kid": "ramp-sim"});
    let claims = serde_json::json!({
        "aud": audiences,
        "exp": exp.timestamp(),
        "iat": now.timestamp(),
        "nbf": now.timestamp(),
        "iss": "https://kubernetes.default.svc.cluster.local",
        "jti": new_uid(),
        "sub": format!("system:serviceaccount:{ns}:{name}"),
        "kubernetes.io": {"namespace": ns, "serviceaccount": {
            "name": name, "uid": meta_str(sa, "uid")}},
    });
    let signed = format!("{}.{}", b64(&header), b64(&claims));
    let token = format!("{signed}.{}", crate::auth::authn::signature(&signed));
    out["status"] = serde_json::json!({
        "token": token,
        "expirationTimestamp": exp.format("%Y-%m-%dT%H:%M:%SZ").to_string(),
    });
    Ok(out)
}
