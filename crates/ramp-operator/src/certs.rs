//! The webhook's own CA and serving certificate.
//!
//! At start the operator reads its certificate Secret; when it is missing,
//! unreadable, or does not cover the names the webhook is reached by, it makes
//! a new CA and serving certificate and stores them. The CA goes into the
//! webhook configurations' `caBundle`.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::sync::Arc;

use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::Secret;
use kube::api::{Api, ObjectMeta, PostParams};
use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose, SanType,
};

/// Keys of the certificate Secret.
pub const CA_CERT_KEY: &str = "ca.crt";
/// CA private key.
pub const CA_KEY_KEY: &str = "ca.key";
/// Serving certificate (kubernetes.io/tls layout).
pub const TLS_CERT_KEY: &str = "tls.crt";
/// Serving key (kubernetes.io/tls layout).
pub const TLS_KEY_KEY: &str = "tls.key";
/// Annotation listing the names the serving certificate covers.
pub const SANS_ANNOTATION: &str = "rollouts.ramp.dev/serving-names";

/// Errors making or loading certificates.
#[derive(Debug, thiserror::Error)]
pub enum CertError {
    /// Certificate generation failed.
    #[error("generating the webhook certificate: {0}")]
    Generate(#[from] rcgen::Error),
    /// The PEM data could not be used for TLS.
    #[error("loading the webhook certificate into TLS: {0}")]
    Tls(String),
    /// Reading or writing the Secret failed.
    #[error("certificate Secret {namespace}/{name}: {source}")]
    Secret {
        /// Namespace of the Secret.
        namespace: String,
        /// Name of the Secret.
        name: String,
        /// The API error.
        source: kube::Error,
    },
}

/// A CA and a serving certificate signed by it, as PEM.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CertBundle {
    /// CA certificate (the webhook configurations' caBundle).
    pub ca_cert_pem: String,
    /// CA private key.
    pub ca_key_pem: String,
    /// Serving certificate.
    pub cert_pem: String,
    /// Serving key.
    pub key_pem: String,
    /// The DNS names and IPs the serving certificate covers.
    pub names: Vec<String>,
}

impl CertBundle {
    /// Make a new CA and a serving certificate for `names` (DNS names or IP addresses).
    pub fn generate(names: &[String]) -> Result<Self, CertError> {
        let ca_key = KeyPair::generate()?;
        let mut ca_params = CertificateParams::new(Vec::<String>::new())?;
        let mut dn = DistinguishedName::new();
        dn.push(DnType::CommonName, "ramp webhook CA");
        ca_params.distinguished_name = dn;
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
        ca_params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        ca_params.not_after = rcgen::date_time_ymd(2100, 1, 1);
        let ca_cert = ca_params.self_signed(&ca_key)?;

        let key = KeyPair::generate()?;
        let mut params = CertificateParams::new(Vec::<String>::new())?;
        let mut dn = DistinguishedName::new();
        dn.push(
            DnType::CommonName,
            names
                .first()
                .cloned()
                .unwrap_or_else(|| "ramp-webhook".into()),
        );
        params.distinguished_name = dn;
        params.subject_alt_names = names
            .iter()
            .map(|n| match n.parse::<IpAddr>() {
                Ok(ip) => Ok(SanType::IpAddress(ip)),
                Err(_) => n.clone().try_into().map(SanType::DnsName),
            })
            .collect::<Result<_, _>>()?;
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        params.key_usages = vec![
            KeyUsagePurpose::DigitalSignature,
            KeyUsagePurpose::KeyEncipherment,
        ];
        params.not_after = rcgen::date_time_ymd(2100, 1, 1);
        let issuer = Issuer::new(ca_params, ca_key);
        let cert = params.signed_by(&key, &issuer)?;
        Ok(Self {
            ca_cert_pem: ca_cert.pem(),
            ca_key_pem: issuer_key_pem(&issuer),
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
            names: names.to_vec(),
        })
    }

    /// Whether this bundle's serving certificate covers every one of `names`.
    pub fn covers(&self, names: &[String]) -> bool {
        names.iter().all(|n| self.names.contains(n))
    }

    /// A rustls server configuration serving this certificate.
    pub fn server_config(&self) -> Result<Arc<rustls::ServerConfig>, CertError> {
        let certs = rustls_pemfile::certs(&mut self.cert_pem.as_bytes())
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| CertError::Tls(e.to_string()))?;
        let key = rustls_pemfile::private_key(&mut self.key_pem.as_bytes())
            .map_err(|e| CertError::Tls(e.to_string()))?
            .ok_or_else(|| CertError::Tls("no private key in tls.key".into()))?;
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| CertError::Tls(e.to_string()))?
            .with_no_client_auth()
            .with_single_cert(certs, key)
            .map_err(|e| CertError::Tls(e.to_string()))?;
        Ok(Arc::new(config))
    }

    fn to_secret(&self, namespace: &str, name: &str) -> Secret {
        let data = [
            (CA_CERT_KEY, &self.ca_cert_pem),
            (CA_KEY_KEY, &self.ca_key_pem),
            (TLS_CERT_KEY, &self.cert_pem),
            (TLS_KEY_KEY, &self.key_pem),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), ByteString(v.as_bytes().to_vec())))
        .collect::<BTreeMap<_, _>>();
        Secret {
            metadata: ObjectMeta {
                name: Some(name.into()),
                namespace: Some(namespace.into()),
                labels: Some(BTreeMap::from([(
                    ramp_api::names::MANAGED_BY_LABEL.to_string(),
                    ramp_api::names::MANAGED_BY_VALUE.to_string(),
                )])),
                annotations: Some(BTreeMap::from([(
                    SANS_ANNOTATION.to_string(),
                    self.names.join(","),
                )])),
                ..Default::default()
            },
            type_: Some("kubernetes.io/tls".into()),
            data: Some(data),
            ..Default::default()
        }
    }

    fn from_secret(s: &Secret) -> Option<Self> {
        let data = s.data.as_ref()?;
        let get = |k: &str| {
            data.get(k)
                .and_then(|b| String::from_utf8(b.0.clone()).ok())
                .filter(|v| !v.is_empty())
        };
        let names = s
            .metadata
            .annotations
            .as_ref()?
            .get(SANS_ANNOTATION)?
            .split(',')
            .filter(|n| !n.is_empty())
            .map(String::from)
            .collect();
        Some(Self {
            ca_cert_pem: get(CA_CERT_KEY)?,
            ca_key_pem: get(CA_KEY_KEY)?,
            cert_pem: get(TLS_CERT_KEY)?,
            key_pem: get(TLS_KEY_KEY)?,
            names,
        })
    }
}

fn issuer_key_pem(issuer: &Issuer<'_, KeyPair>) -> String {
    issuer.key().serialize_pem()
}

/// Load the bundle from the Secret, or make and store a new one.
///
/// Safe with several replicas starting at once: when creating the Secret
/// conflicts, the winner's bundle is read back and used.
pub async fn load_or_create(
    client: kube::Client,
    namespace: &str,
    name: &str,
    names: &[String],
) -> Result<CertBundle, CertError> {
    let api: Api<Secret> = Api::namespaced(client, namespace);
    let err = |source| CertError::Secret {
        namespace: namespace.into(),
        name: name.into(),
        source,
    };
    let existing = api.get_opt(name).await.map_err(err)?;
    if let Some(b) = existing.as_ref().and_then(CertBundle::from_secret)
        && b.covers(names)
        && b.server_config().is_ok()
    {
        return Ok(b);
    }
    let bundle = CertBundle::generate(names)?;
    let mut secret = bundle.to_secret(namespace, name);
    let written = match existing {
        Some(old) => {
            secret.metadata.resource_version = old.metadata.resource_version;
            api.replace(name, &PostParams::default(), &secret).await
        }
        None => api.create(&PostParams::default(), &secret).await,
    };
    match written {
        Ok(_) => Ok(bundle),
        // Another replica wrote first: use its bundle.
        Err(kube::Error::Api(e)) if e.code == 409 => {
            let s = api.get(name).await.map_err(err)?;
            CertBundle::from_secret(&s)
                .filter(|b| b.covers(names))
                .ok_or_else(|| {
                    CertError::Tls(format!(
                        "Secret {namespace}/{name} was rewritten concurrently without a usable certificate"
                    ))
                })
        }
        Err(e) => Err(err(e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_bundle_serves_tls_and_round_trips_through_a_secret() {
        let names = vec![
            "ramp-webhook.ramp-system.svc".to_string(),
            "127.0.0.1".to_string(),
        ];
        let b = CertBundle::generate(&names).unwrap();
        assert!(b.ca_cert_pem.starts_with("-----BEGIN CERTIFICATE-----"));
        assert!(b.server_config().is_ok());
        assert!(b.covers(&names[..1]));
        assert!(!b.covers(&["other.svc".to_string()]));
        let s = b.to_secret("ramp-system", "ramp-webhook-cert");
        assert_eq!(CertBundle::from_secret(&s), Some(b));
    }
}
