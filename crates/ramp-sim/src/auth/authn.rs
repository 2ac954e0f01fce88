//! Authentication: who a request is.
//!
//! - No `Authorization` header, or the kubeconfig's bearer token: the admin
//!   (`ramp-sim-admin`, groups `system:masters` and `system:authenticated`), as before.
//! - A ServiceAccount token minted by the TokenRequest subresource
//!   (`POST .../serviceaccounts/NAME/token`, `kubectl create token`): the user
//!   `system:serviceaccount:NS:NAME` with groups `system:serviceaccounts`,
//!   `system:serviceaccounts:NS` and `system:authenticated`, while the token has not expired
//!   and its ServiceAccount still exists with the same uid (a bound token dies with its
//!   ServiceAccount, as on a real cluster).
//! - Anything else: `401 Unauthorized`.
//!
//! Tokens are JWT-shaped; the signature is an HMAC-SHA256 of `header.claims` under a key
//! drawn at random once per process, so a token is valid for every sim in the process that
//! holds its ServiceAccount, and for no other process.

use std::sync::OnceLock;

use base64::Engine as _;
use serde_json::Value;

use crate::errors::ApiError;
use crate::resources::GroupResource;
use crate::store::{Store, meta_str};

/// The user name of the admin credentials.
pub use crate::server::ADMIN_USER;

/// An authenticated user.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct User {
    /// User name, e.g. `system:serviceaccount:ramp:ramp`.
    pub name: String,
    /// Uid (the ServiceAccount's uid for ServiceAccount tokens).
    pub uid: String,
    /// Groups, `system:authenticated` included.
    pub groups: Vec<String>,
}

impl User {
    /// The admin of the sim (the kubeconfig's token).
    pub fn admin() -> User {
        User {
            name: ADMIN_USER.to_string(),
            uid: ADMIN_USER.to_string(),
            groups: vec!["system:masters".into(), "system:authenticated".into()],
        }
    }

    /// A user by name and groups as impersonated or reviewed: a ServiceAccount name gets the
    /// ServiceAccount groups, and every user `system:authenticated`.
    pub fn named(name: &str, groups: &[String]) -> User {
        let mut all: Vec<String> = groups.to_vec();
        if let Some(ns) = service_account_namespace(name) {
            for g in [
                "system:serviceaccounts".to_string(),
                format!("system:serviceaccounts:{ns}"),
            ] {
                if !all.contains(&g) {
                    all.push(g);
                }
            }
        }
        if !all.iter().any(|g| g == "system:authenticated") {
            all.push("system:authenticated".into());
        }
        User {
            name: name.to_string(),
            uid: String::new(),
            groups: all,
        }
    }

    /// True for members of `system:masters` (every request is allowed).
    pub fn is_master(&self) -> bool {
        self.groups.iter().any(|g| g == "system:masters")
    }
}

/// The namespace of a `system:serviceaccount:NS:NAME` user name.
pub fn service_account_namespace(user: &str) -> Option<&str> {
    let rest = user.strip_prefix("system:serviceaccount:")?;
    let (ns, name) = rest.split_once(':')?;
    (!ns.is_empty() && !name.is_empty() && !name.contains(':')).then_some(ns)
}

fn key() -> &'static ring::hmac::Key {
    static KEY: OnceLock<ring::hmac::Key> = OnceLock::new();
    KEY.get_or_init(|| {
        let secret: [u8; 32] = rand::random();
        ring::hmac::Key::new(ring::hmac::HMAC_SHA256, &secret)
    })
}

fn b64() -> base64::engine::GeneralPurpose {
    base64::engine::general_purpose::URL_SAFE_NO_PAD
}

/// The signature part of a token whose first two parts are `signed` (`header.claims`).
pub fn signature(signed: &str) -> String {
    b64().encode(ring::hmac::sign(key(), signed.as_bytes()).as_ref())
}

fn unauthorized() -> ApiError {
    ApiError::new(401, "Unauthorized", "Unauthorized")
}

/// The ServiceAccount a token minted here stands for, if its signature holds and it has not
/// expired: `(namespace, name, uid)`.
pub fn token_claims(token: &str, now: i64) -> Option<(String, String, String)> {
    let (signed, sig) = token.rsplit_once('.')?;
    let given = b64().decode(sig).ok()?;
    ring::hmac::verify(key(), signed.as_bytes(), &given).ok()?;
    let (_, claims) = signed.split_once('.')?;
    let claims: Value = serde_json::from_slice(&b64().decode(claims).ok()?).ok()?;
    if claims.get("exp").and_then(Value::as_i64)? <= now {
        return None;
    }
    let k = claims.get("kubernetes.io")?;
    let ns = k.get("namespace")?.as_str()?;
    let sa = k.get("serviceaccount")?;
    Some((
        ns.to_string(),
        sa.get("name")?.as_str()?.to_string(),
        sa.get("uid")?.as_str()?.to_string(),
    ))
}

/// Who presents `authorization` (the header's value, if any).
pub fn authenticate(
    store: &Store,
    authorization: Option<&str>,
    admin_token: &str,
) -> Result<User, ApiError> {
    let Some(auth) = authorization else {
        return Ok(User::admin());
    };
    let token = auth
        .strip_prefix("Bearer ")
        .map(str::trim)
        .ok_or_else(unauthorized)?;
    if token == admin_token {
        return Ok(User::admin());
    }
    let (ns, name, uid) =
        token_claims(token, chrono::Utc::now().timestamp()).ok_or_else(unauthorized)?;
    let sa = store
        .get(&GroupResource::new("", "serviceaccounts"), Some(&ns), &name)
        .map_err(|_| unauthorized())?;
    if meta_str(&sa, "uid") != uid {
        return Err(unauthorized());
    }
    let mut user = User::named(&format!("system:serviceaccount:{ns}:{name}"), &[]);
    user.uid = uid;
    Ok(user)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn token(claims: &Value) -> String {
        let signed = format!(
            "{}.{}",
            b64().encode(br#"{"alg":"RS256"}"#),
            b64().encode(claims.to_string())
        );
        format!("{signed}.{}", signature(&signed))
    }

    #[test]
    fn a_signed_unexpired_token_names_its_service_account() {
        let t = token(&serde_json::json!({"exp": 2000,
            "kubernetes.io": {"namespace": "ramp", "serviceaccount": {"name": "op", "uid": "u1"}}}));
        assert_eq!(
            token_claims(&t, 1000),
            Some(("ramp".into(), "op".into(), "u1".into()))
        );
        assert_eq!(token_claims(&t, 2000), None, "expired");
        let (signed, _) = t.rsplit_once('.').unwrap();
        let forged = format!("{signed}.{}", b64().encode([0u8; 32]));
        assert_eq!(token_claims(&forged, 1000), None, "bad signature");
    }

    #[test]
    fn service_account_users_get_their_groups() {
        let u = User::named("system:serviceaccount:ramp:op", &[]);
        assert_eq!(
            u.groups,
            vec![
                "system:serviceaccounts",
                "system:serviceaccounts:ramp",
                "system:authenticated"
            ]
        );
        assert!(!u.is_master());
        assert_eq!(service_account_namespace("alice"), None);
    }
}
