//! Every API request the operator makes, counted where it leaves: a tower
//! layer on the kube [`Client`], so watches, lists, discovery and the Event
//! recorder's writes count as much as the reconciler's own calls
//! (`ramp_api_requests_total{verb}`), and no call site can forget to count.

use std::task::{Context, Poll};

use http::{Method, Request};
use kube::Client;
use tower::{Layer, Service};

use crate::metrics::Metrics;

/// The verb of a request, in kube-apiserver's words: `get`, `list`, `watch`,
/// `create`, `update`, `patch`, `delete`, `deletecollection`.
pub fn verb_of<B>(req: &Request<B>) -> &'static str {
    let collection = is_collection(req.uri().path());
    let watch = req
        .uri()
        .query()
        .is_some_and(|q| q.split('&').any(|kv| kv == "watch=true" || kv == "watch=1"));
    match *req.method() {
        Method::GET if watch => "watch",
        Method::GET if collection => "list",
        Method::GET => "get",
        Method::POST => "create",
        Method::PUT => "update",
        Method::PATCH => "patch",
        Method::DELETE if collection => "deletecollection",
        Method::DELETE => "delete",
        _ => "other",
    }
}

/// Whether `path` names a collection (`.../pods`) rather than one object
/// (`.../pods/web`) or its subresource (`.../pods/web/status`). Discovery
/// paths (`/api`, `/apis/g/v`) count as objects (`get`).
fn is_collection(path: &str) -> bool {
    let parts: Vec<&str> = path.trim_matches('/').split('/').collect();
    let rest = match parts.as_slice() {
        ["api", _version, rest @ ..] => rest,
        ["apis", _group, _version, rest @ ..] => rest,
        _ => return false,
    };
    match rest {
        // `namespaces/NS/RESOURCE[/NAME...]`
        ["namespaces", _, _resource] => true,
        ["namespaces", _, _resource, ..] => false,
        // `namespaces` itself, or `RESOURCE` cluster-wide
        [_resource] => true,
        _ => false,
    }
}

/// The layer counting each request in [`Metrics`].
#[derive(Clone)]
pub struct CountRequestsLayer {
    metrics: Metrics,
}

impl CountRequestsLayer {
    /// Counts into `metrics`.
    pub fn new(metrics: Metrics) -> Self {
        CountRequestsLayer { metrics }
    }
}

impl<S> Layer<S> for CountRequestsLayer {
    type Service = CountRequests<S>;

    fn layer(&self, inner: S) -> Self::Service {
        CountRequests {
            inner,
            metrics: self.metrics.clone(),
        }
    }
}

/// A service counting the requests it passes on.
#[derive(Clone)]
pub struct CountRequests<S> {
    inner: S,
    metrics: Metrics,
}

impl<S, B> Service<Request<B>> for CountRequests<S>
where
    S: Service<Request<B>>,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = S::Future;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request<B>) -> Self::Future {
        self.metrics.api_request(verb_of(&req));
        self.inner.call(req)
    }
}

/// A client for `config` whose every request is counted in `metrics`.
pub fn counted_client(config: kube::Config, metrics: &Metrics) -> Result<Client, kube::Error> {
    Ok(kube::client::ClientBuilder::try_from(config)?
        .with_layer(&CountRequestsLayer::new(metrics.clone()))
        .build())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn verb(method: &str, uri: &str) -> &'static str {
        let req = Request::builder()
            .method(method)
            .uri(uri)
            .body(())
            .unwrap_or_default();
        verb_of(&req)
    }

    #[test]
    fn verbs_as_kube_apiserver_names_them() {
        let ro = "/apis/rollouts.ramp.dev/v1beta1/namespaces/shop/rollouts";
        assert_eq!(verb("GET", ro), "list");
        assert_eq!(
            verb("GET", &format!("{ro}?watch=true&resourceVersion=5")),
            "watch"
        );
        assert_eq!(
            verb("GET", &format!("{ro}?labelSelector=a%3Db&watch=1")),
            "watch"
        );
        assert_eq!(verb("GET", &format!("{ro}/web")), "get");
        assert_eq!(verb("PATCH", &format!("{ro}/web/status")), "patch");
        assert_eq!(verb("PUT", &format!("{ro}/web")), "update");
        assert_eq!(verb("POST", ro), "create");
        assert_eq!(verb("DELETE", &format!("{ro}/web")), "delete");
        assert_eq!(verb("DELETE", ro), "deletecollection");
        assert_eq!(verb("GET", "/api/v1/namespaces"), "list");
        assert_eq!(verb("GET", "/api/v1/namespaces/shop"), "get");
        assert_eq!(verb("GET", "/api/v1/pods?watch=true"), "watch");
        assert_eq!(verb("GET", "/apis/apps/v1/deployments"), "list");
        assert_eq!(verb("GET", "/apis/networking.istio.io/v1"), "get");
        assert_eq!(verb("GET", "/version"), "get");
    }
}
