//! The HTTP(S) client that posts AdmissionReview objects to webhooks.
//!
//! Connections are kept alive and reused, as kube-apiserver's webhook client does (a TLS handshake
//! per call made a mass change through the mutating webhook cost seconds per thousand writes): an
//! idle connection per target waits up to [`IDLE_TIMEOUT`], at most [`MAX_IDLE_PER_TARGET`] of them;
//! a call on a reused connection that the server closed meanwhile is sent again on a new one. TLS
//! is rustls with the
//! webhook's `caBundle` as the only trust root, and the certificate must match the host name the
//! real apiserver would use: the URL's host, or `NAME.NAMESPACE.svc` for a service reference.
//! Errors are phrased like Go's net/http errors, because users search for those.

use std::collections::HashMap;
use std::sync::{Arc, LazyLock, Mutex, PoisonError, RwLock};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt as _, Full, Limited};
use hyper_util::rt::TokioIo;
use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::{CertificateDer, ServerName};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;

use super::config::{Endpoint, WebhookUrl, parse_url};

/// Largest webhook response accepted (the apiserver's request size limit is 3 MiB; a response is
/// an AdmissionReview that may carry a patch of a large object).
const MAX_RESPONSE_BYTES: usize = 16 * 1024 * 1024;

/// Maps Kubernetes service references (`namespace/name:port`) to loopback URLs, so a webhook
/// declared with `clientConfig.service` can be reached without cluster DNS. Cloning shares the map:
/// entries added later are seen by every chain built from it.
#[derive(Debug, Clone, Default)]
pub struct ServiceMap {
    entries: Arc<RwLock<HashMap<ServiceKey, String>>>,
}

/// `(namespace, name, port)`
type ServiceKey = (String, String, u16);

impl ServiceMap {
    /// An empty map.
    pub fn new() -> Self {
        Self::default()
    }

    /// Route `service` `namespace/name` port `port` to `url`, e.g. `https://127.0.0.1:8443`. The
    /// URL's scheme decides TLS; its path is ignored (the webhook's `service.path` is used). The
    /// certificate must still be valid for `name.namespace.svc`, as in a real cluster.
    pub fn insert(&self, namespace: &str, name: &str, port: u16, url: &str) -> Result<(), String> {
        parse_url(url).map_err(|e| {
            format!("service map target {url:?} for {namespace}/{name}:{port}: {e}")
        })?;
        let mut entries = self
            .entries
            .write()
            .map_err(|_| "service map lock poisoned".to_string())?;
        entries.insert(
            (namespace.to_string(), name.to_string(), port),
            url.to_string(),
        );
        Ok(())
    }

    /// Remove a route; returns whether it existed.
    pub fn remove(&self, namespace: &str, name: &str, port: u16) -> bool {
        self.entries
            .write()
            .map(|mut e| {
                e.remove(&(namespace.to_string(), name.to_string(), port))
                    .is_some()
            })
            .unwrap_or(false)
    }

    fn get(&self, namespace: &str, name: &str, port: u16) -> Option<String> {
        self.entries.read().ok().and_then(|e| {
            e.get(&(namespace.to_string(), name.to_string(), port))
                .cloned()
        })
    }
}

/// Where one call goes, resolved from the webhook's endpoint and the service map.
#[derive(Debug, Clone)]
pub(crate) struct Target {
    /// The URL as the real apiserver would print it in errors, with `?timeout=Ns`.
    pub display_url: String,
    /// Where to open the TCP connection.
    connect: (String, u16),
    /// The name the server certificate must be valid for; `None` for plain HTTP.
    tls_name: Option<String>,
    host_header: String,
    path_and_query: String,
}

/// Resolve a webhook endpoint. `Err` holds the URL for messages and the reason it has no route.
pub(crate) fn resolve(
    endpoint: &Endpoint,
    services: &ServiceMap,
    timeout: Duration,
) -> Result<Target, (String, String)> {
    let timeout_param = format!("timeout={}s", timeout.as_secs());
    let with_timeout = |path: &str| {
        if path.contains('?') {
            format!("{path}&{timeout_param}")
        } else {
            format!("{path}?{timeout_param}")
        }
    };
    match endpoint {
        Endpoint::Url(url) => {
            let path_and_query = with_timeout(&url.path_and_query);
            let scheme = if url.https { "https" } else { "http" };
            let authority = display_authority(url);
            Ok(Target {
                display_url: format!("{scheme}://{authority}{path_and_query}"),
                connect: (url.host.clone(), url.port),
                tls_name: url.https.then(|| url.host.clone()),
                host_header: authority,
                path_and_query,
            })
        }
        Endpoint::Service {
            namespace,
            name,
            port,
            path,
        } => {
            let host = format!("{name}.{namespace}.svc");
            let path_and_query = with_timeout(path);
            let display_url = format!("https://{host}:{port}{path_and_query}");
            let Some(mapped) = services.get(namespace, name, *port) else {
                return Err((
                    display_url,
                    format!(
                        "no endpoints available for service \"{name}\" (ramp-sim: no service map entry for \
                         {namespace}/{name}:{port})"
                    ),
                ));
            };
            let mapped = parse_url(&mapped).map_err(|e| (display_url.clone(), e))?;
            Ok(Target {
                display_url,
                connect: (mapped.host.clone(), mapped.port),
                tls_name: mapped.https.then(|| host.clone()),
                host_header: format!("{host}:{port}"),
                path_and_query,
            })
        }
    }
}

fn display_authority(url: &WebhookUrl) -> String {
    let default_port = if url.https { 443 } else { 80 };
    if url.port == default_port {
        if url.host.contains(':') {
            format!("[{}]", url.host)
        } else {
            url.host.clone()
        }
    } else {
        url.authority()
    }
}

/// Build the TLS client configuration for one webhook: its caBundle is the only trust root.
/// A webhook without a caBundle trusts nothing (this server carries no system roots).
pub(crate) fn tls_config(ca_bundle: Option<&[u8]>) -> Result<Arc<rustls::ClientConfig>, String> {
    let mut roots = rustls::RootCertStore::empty();
    if let Some(pem) = ca_bundle {
        let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(pem)
            .collect::<Result<_, _>>()
            .map_err(|e| {
                format!("unable to load root certificates: unable to parse bytes as PEM block: {e}")
            })?;
        if certs.is_empty() {
            return Err(
                "unable to load root certificates: unable to parse bytes as PEM block".to_string(),
            );
        }
        for cert in certs {
            roots
                .add(cert)
                .map_err(|e| format!("unable to load root certificates: {e}"))?;
        }
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("TLS setup failed: {e}"))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(Arc::new(config))
}

/// POST `body` to the target and return the response body. The whole exchange (connect, TLS,
/// request, response) must finish within `timeout`. The error is the Go-style cause, without the
/// `Post "URL": ` prefix.
pub(crate) async fn post(
    target: &Target,
    tls: Option<&Result<Arc<rustls::ClientConfig>, String>>,
    body: Vec<u8>,
    timeout: Duration,
) -> Result<Bytes, String> {
    match tokio::time::timeout(timeout, post_inner(target, tls, body)).await {
        Ok(result) => result,
        Err(_) => Err("context deadline exceeded".to_string()),
    }
}

/// How long an idle webhook connection is kept (kube-apiserver's transport keeps them 90 s).
pub(crate) const IDLE_TIMEOUT: Duration = Duration::from_secs(90);
/// Idle connections kept per target.
pub(crate) const MAX_IDLE_PER_TARGET: usize = 16;

type Sender = hyper::client::conn::http1::SendRequest<Full<Bytes>>;

/// Connections are shared by calls to the same address, under the same TLS name and trust.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct PoolKey {
    host: String,
    port: u16,
    tls_name: Option<String>,
    /// The TLS configuration (its caBundle) by identity; the entry holds it, so the address is
    /// not reused while the entry lives.
    tls: usize,
}

struct Idle {
    sender: Sender,
    since: Instant,
    _tls: Option<Arc<rustls::ClientConfig>>,
}

static POOL: LazyLock<Mutex<HashMap<PoolKey, Vec<Idle>>>> = LazyLock::new(Mutex::default);

fn take_idle(key: &PoolKey) -> Option<Sender> {
    let mut pool = POOL.lock().unwrap_or_else(PoisonError::into_inner);
    let list = pool.get_mut(key)?;
    let now = Instant::now();
    let mut found = None;
    while let Some(idle) = list.pop() {
        if now.duration_since(idle.since) < IDLE_TIMEOUT && !idle.sender.is_closed() {
            found = Some(idle.sender);
            break;
        }
    }
    if list.is_empty() {
        pool.remove(key);
    }
    found
}

fn put_back(key: PoolKey, sender: Sender, tls: Option<Arc<rustls::ClientConfig>>) {
    if sender.is_closed() {
        return;
    }
    let mut pool = POOL.lock().unwrap_or_else(PoisonError::into_inner);
    let list = pool.entry(key).or_default();
    let now = Instant::now();
    list.retain(|i| now.duration_since(i.since) < IDLE_TIMEOUT && !i.sender.is_closed());
    if list.len() < MAX_IDLE_PER_TARGET {
        list.push(Idle {
            sender,
            since: now,
            _tls: tls,
        });
    }
}

async fn post_inner(
    target: &Target,
    tls: Option<&Result<Arc<rustls::ClientConfig>, String>>,
    body: Vec<u8>,
) -> Result<Bytes, String> {
    let config = match (&target.tls_name, tls) {
        (None, _) => None,
        (Some(_), Some(Ok(config))) => Some(config.clone()),
        (Some(_), Some(Err(e))) => return Err(e.clone()),
        (Some(_), None) => Some(tls_config(None)?),
    };
    let key = PoolKey {
        host: target.connect.0.clone(),
        port: target.connect.1,
        tls_name: target.tls_name.clone(),
        tls: config.as_ref().map_or(0, |c| Arc::as_ptr(c) as usize),
    };
    if let Some(mut sender) = take_idle(&key) {
        match send(&mut sender, target, body.clone()).await {
            Ok(bytes) => {
                put_back(key, sender, config);
                return Ok(bytes);
            }
            // The server closed the idle connection before it read the request: send it again
            // on a new one (Go's transport retries such requests too).
            Err(Failure::Connection(_)) => {}
            Err(Failure::Answer(e)) => return Err(e),
        }
    }
    let mut sender = dial(target, config.clone()).await?;
    match send(&mut sender, target, body).await {
        Ok(bytes) => {
            put_back(key, sender, config);
            Ok(bytes)
        }
        Err(Failure::Connection(e) | Failure::Answer(e)) => Err(e),
    }
}

/// Open a connection (TCP, TLS when the target has a TLS name) and start its HTTP/1.1 driver,
/// which runs until the connection closes.
async fn dial(
    target: &Target,
    config: Option<Arc<rustls::ClientConfig>>,
) -> Result<Sender, String> {
    let (host, port) = &target.connect;
    let addr_text = if host.contains(':') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    };
    let tcp = TcpStream::connect((host.as_str(), *port))
        .await
        .map_err(|e| dial_error(&addr_text, &e))?;
    let _ = tcp.set_nodelay(true);
    match (&target.tls_name, config) {
        (Some(name), Some(config)) => {
            let server_name = ServerName::try_from(name.clone())
                .map_err(|e| format!("invalid TLS server name {name:?}: {e}"))?;
            let connector = tokio_rustls::TlsConnector::from(config);
            let stream = connector
                .connect(server_name, tcp)
                .await
                .map_err(|e| tls_error(&e))?;
            handshake(stream).await
        }
        _ => handshake(tcp).await,
    }
}

async fn handshake<S>(stream: S) -> Result<Sender, String>
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .map_err(|e| format!("http handshake: {e}"))?;
    tokio::spawn(async move {
        let _ = conn.await;
    });
    Ok(sender)
}

/// Why a call failed: the connection (before any answer; a reused one may be retried) or the
/// answer itself.
enum Failure {
    Connection(String),
    Answer(String),
}

async fn send(sender: &mut Sender, target: &Target, body: Vec<u8>) -> Result<Bytes, Failure> {
    sender
        .ready()
        .await
        .map_err(|e| Failure::Connection(hyper_error(&e)))?;
    let request = http::Request::post(target.path_and_query.as_str())
        .header(http::header::HOST, target.host_header.as_str())
        .header(http::header::CONTENT_TYPE, "application/json")
        .header(http::header::ACCEPT, "application/json, */*")
        .header(http::header::USER_AGENT, "ramp-sim/admission")
        .body(Full::new(Bytes::from(body)))
        .map_err(|e| Failure::Answer(format!("building request: {e}")))?;
    let response = sender
        .send_request(request)
        .await
        .map_err(|e| Failure::Connection(hyper_error(&e)))?;
    let status = response.status();
    let bytes = Limited::new(response.into_body(), MAX_RESPONSE_BYTES)
        .collect()
        .await
        .map_err(|e| Failure::Answer(format!("reading response body: {e}")))?
        .to_bytes();
    if !status.is_success() {
        let text = String::from_utf8_lossy(&bytes);
        let snippet: String = text.trim().chars().take(300).collect();
        return Err(Failure::Answer(format!(
            "the server responded with HTTP status {status} (body: {snippet:?})"
        )));
    }
    Ok(bytes)
}

fn dial_error(addr: &str, e: &std::io::Error) -> String {
    match e.kind() {
        std::io::ErrorKind::ConnectionRefused => {
            format!("dial tcp {addr}: connect: connection refused")
        }
        _ => format!("dial tcp {addr}: {e}"),
    }
}

fn hyper_error(e: &hyper::Error) -> String {
    if e.is_incomplete_message() || e.is_closed() {
        "EOF".to_string()
    } else {
        e.to_string()
    }
}

/// Phrase a TLS handshake failure as Go's crypto/tls would, so it reads like kube-apiserver's.
fn tls_error(e: &std::io::Error) -> String {
    use rustls::CertificateError as C;
    let Some(err) = e
        .get_ref()
        .and_then(|inner| inner.downcast_ref::<rustls::Error>())
    else {
        return format!("tls: {e}");
    };
    match err {
        rustls::Error::InvalidCertificate(cert) => {
            let detail = match cert {
                C::UnknownIssuer => "x509: certificate signed by unknown authority".to_string(),
                C::NotValidForName => {
                    "x509: certificate is not valid for the requested host name".to_string()
                }
                C::NotValidForNameContext {
                    expected,
                    presented,
                } => {
                    let expected = match expected {
                        ServerName::DnsName(d) => d.as_ref().to_string(),
                        ServerName::IpAddress(ip) => std::net::IpAddr::from(*ip).to_string(),
                        other => format!("{other:?}"),
                    };
                    let presented: Vec<&str> = presented.iter().map(|p| bare_name(p)).collect();
                    format!(
                        "x509: certificate is valid for {}, not {expected}",
                        presented.join(", ")
                    )
                }
                C::Expired | C::ExpiredContext { .. } => {
                    "x509: certificate has expired or is not yet valid".to_string()
                }
                C::NotValidYet | C::NotValidYetContext { .. } => {
                    "x509: certificate has expired or is not yet valid".to_string()
                }
                // webpki picks candidate issuers by subject name; a CA with the same name but another
                // key shows up as a bad signature. Go reports both cases as an unknown authority.
                C::BadSignature => "x509: certificate signed by unknown authority (possibly because of a \
                                    signature verification error while trying to verify a candidate authority \
                                    certificate with the same name)"
                    .to_string(),
                other => format!("x509: {other:?}"),
            };
            format!("tls: failed to verify certificate: {detail}")
        }
        other => format!("tls: {other}"),
    }
}

/// rustls describes presented names as `DnsName("a.b")` / `IpAddress(1.2.3.4)`: keep the name.
fn bare_name(presented: &str) -> &str {
    let inner = presented
        .split_once('(')
        .and_then(|(_, rest)| rest.strip_suffix(')'))
        .unwrap_or(presented);
    inner.trim_matches('"')
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    /// A plain-HTTP webhook answering `ok` to every POST; counts the connections it accepts.
    /// `keep_alive: false` closes each connection after its answer.
    async fn server(keep_alive: bool) -> (u16, Arc<AtomicUsize>) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let accepted = Arc::new(AtomicUsize::new(0));
        let count = accepted.clone();
        tokio::spawn(async move {
            loop {
                let Ok((tcp, _)) = listener.accept().await else {
                    return;
                };
                count.fetch_add(1, Ordering::SeqCst);
                tokio::spawn(async move {
                    let svc = hyper::service::service_fn(|_req| async {
                        Ok::<_, std::convert::Infallible>(hyper::Response::new(Full::new(
                            Bytes::from_static(b"ok"),
                        )))
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .keep_alive(keep_alive)
                        .serve_connection(TokioIo::new(tcp), svc)
                        .await;
                });
            }
        });
        (port, accepted)
    }

    fn target(port: u16) -> Target {
        Target {
            display_url: format!("http://127.0.0.1:{port}/hook"),
            connect: ("127.0.0.1".into(), port),
            tls_name: None,
            host_header: format!("127.0.0.1:{port}"),
            path_and_query: "/hook?timeout=10s".into(),
        }
    }

    #[tokio::test]
    async fn calls_to_one_webhook_share_a_kept_alive_connection() {
        let (port, accepted) = server(true).await;
        let t = target(port);
        for _ in 0..5 {
            let body = post(&t, None, b"{}".to_vec(), Duration::from_secs(5)).await;
            assert_eq!(body.unwrap(), Bytes::from_static(b"ok"));
        }
        assert_eq!(
            accepted.load(Ordering::SeqCst),
            1,
            "one connection for five calls"
        );
    }

    #[tokio::test]
    async fn a_connection_the_server_closed_is_replaced_without_a_failed_call() {
        let (port, accepted) = server(false).await;
        let t = target(port);
        for _ in 0..3 {
            let body = post(&t, None, b"{}".to_vec(), Duration::from_secs(5)).await;
            // The next call may find the closed connection still pooled, or already gone.
            assert_eq!(body.unwrap(), Bytes::from_static(b"ok"));
        }
        assert_eq!(
            accepted.load(Ordering::SeqCst),
            3,
            "a new connection per call"
        );
    }

    #[tokio::test]
    async fn concurrent_calls_open_connections_as_needed_and_keep_them() {
        let (port, accepted) = server(true).await;
        let t = target(port);
        let calls = (0..4).map(|_| post(&t, None, b"{}".to_vec(), Duration::from_secs(5)));
        for r in futures::future::join_all(calls).await {
            assert_eq!(r.unwrap(), Bytes::from_static(b"ok"));
        }
        let opened = accepted.load(Ordering::SeqCst);
        assert!((1..=4).contains(&opened), "{opened}");
        for _ in 0..4 {
            post(&t, None, b"{}".to_vec(), Duration::from_secs(5))
                .await
                .unwrap();
        }
        assert_eq!(
            accepted.load(Ordering::SeqCst),
            opened,
            "the kept ones are reused"
        );
    }
}
