//! Admission webhooks, called the way kube-apiserver calls them.
//!
//! An [`AdmissionChain`] is built from the stored `MutatingWebhookConfiguration` and
//! `ValidatingWebhookConfiguration` objects. [`AdmissionChain::admit`] runs a write through it:
//!
//! 1. mutating webhooks, configurations ordered by name and webhooks in declaration order, one at
//!    a time, each seeing the object as patched by the ones before (JSONPatch responses);
//!    webhooks with `reinvocationPolicy: IfNeeded` are called once more when a later webhook
//!    changed the object;
//! 2. validating webhooks, all matching ones concurrently, on the final object; the first denial
//!    (in configuration order) wins.
//!
//! A webhook is called when one of its `rules` matches (operations, apiGroups, apiVersions,
//! resources with `*` and `resource/subresource` forms, scope), its `namespaceSelector` matches
//! the namespace's labels and its `objectSelector` matches the labels of the object or of the old
//! object. Requests on webhook configurations themselves never go to webhooks.
//!
//! Simplified on purpose: `matchPolicy: Equivalent` behaves like `Exact` (the sim serves one
//! version per resource, so there is no equivalent resource to convert to); `matchConditions`
//! (CEL) are refused when the configuration is validated; a webhook without `caBundle` trusts no
//! certificate (no system roots); audit annotations in responses are ignored.
//!
//! Errors carry kube-apiserver's wording, so messages users search for match:
//! `admission webhook "NAME" denied the request: MESSAGE` and `Internal error occurred: failed
//! calling webhook "NAME": failed to call webhook: Post "URL": CAUSE`.

mod client;
mod config;
mod gate;

use std::collections::BTreeMap;
use std::collections::BTreeSet;
use std::fmt;
use std::sync::Arc;

use base64::Engine as _;
use serde_json::{Value, json};

pub use client::ServiceMap;
pub use config::{
    ConfigError, ConfigurationKind, FieldError, default_configuration, invalid_message,
    validate_configuration,
};
pub use gate::{WebhookGate, WriteTarget, to_api_error};

use config::{FailurePolicy, Webhook};

/// The operation being admitted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Operation {
    /// `CREATE` (POST, and server-side apply that creates)
    Create,
    /// `UPDATE` (PUT, PATCH, and server-side apply that changes)
    Update,
    /// `DELETE`
    Delete,
    /// `CONNECT` (exec, attach, port-forward, proxy)
    Connect,
}

impl Operation {
    /// The wire form: `CREATE`, `UPDATE`, `DELETE` or `CONNECT`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Create => "CREATE",
            Self::Update => "UPDATE",
            Self::Delete => "DELETE",
            Self::Connect => "CONNECT",
        }
    }
}

impl fmt::Display for Operation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Who makes the request (`request.userInfo`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct UserInfo {
    /// `username`
    pub username: String,
    /// `uid`
    pub uid: String,
    /// `groups`
    pub groups: Vec<String>,
    /// `extra`
    pub extra: BTreeMap<String, Vec<String>>,
}

impl UserInfo {
    fn to_json(&self) -> Value {
        let mut out = serde_json::Map::new();
        if !self.username.is_empty() {
            out.insert("username".into(), json!(self.username));
        }
        if !self.uid.is_empty() {
            out.insert("uid".into(), json!(self.uid));
        }
        if !self.groups.is_empty() {
            out.insert("groups".into(), json!(self.groups));
        }
        if !self.extra.is_empty() {
            out.insert("extra".into(), json!(self.extra));
        }
        Value::Object(out)
    }
}

/// What is being admitted: everything about the request except the objects.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AdmissionAttributes {
    /// The operation.
    pub operation: Operation,
    /// API group of the resource (`""` for core).
    pub group: String,
    /// API version of the resource, e.g. `v1`.
    pub version: String,
    /// Plural resource, e.g. `deployments`.
    pub resource: String,
    /// Subresource, e.g. `status` or `scale`; `""` for the main resource.
    pub subresource: String,
    /// Kind of the object sent to the webhook, e.g. `Deployment` (`Scale` for `/scale`).
    pub kind: String,
    /// Namespace of the object; `""` for cluster-scoped objects. For a `Namespace` object this is
    /// its own name (as in kube-apiserver).
    pub namespace: String,
    /// Name of the object; may be `""` on a create with `generateName`.
    pub name: String,
    /// The requesting user.
    pub user_info: UserInfo,
    /// Whether the request is a dry run (`?dryRun=All`).
    pub dry_run: bool,
    /// The request options object (`CreateOptions`, `UpdateOptions`, `DeleteOptions`), if any.
    pub options: Option<Value>,
}

impl AdmissionAttributes {
    /// Attributes with the given operation and resource coordinates and everything else empty.
    pub fn new(
        operation: Operation,
        (group, version, resource): (&str, &str, &str),
        kind: &str,
        namespace: &str,
        name: &str,
    ) -> Self {
        Self {
            operation,
            group: group.to_string(),
            version: version.to_string(),
            resource: resource.to_string(),
            subresource: String::new(),
            kind: kind.to_string(),
            namespace: namespace.to_string(),
            name: name.to_string(),
            user_info: UserInfo::default(),
            dry_run: false,
            options: None,
        }
    }

    /// The same attributes for a subresource (`status`, `scale`).
    pub fn with_subresource(mut self, subresource: &str) -> Self {
        self.subresource = subresource.to_string();
        self
    }

    pub(crate) fn is_namespace_object(&self) -> bool {
        self.group.is_empty() && self.resource == "namespaces"
    }
}

/// The result of a successful admission.
#[derive(Debug, Clone, PartialEq)]
pub struct AdmissionOutcome {
    /// The object after every mutating webhook's patch (unchanged when none applied).
    pub object: Value,
    /// Whether any webhook changed the object.
    pub mutated: bool,
    /// Warnings returned by webhooks, in call order; the server sends each as a
    /// `Warning: 299 - "TEXT"` response header.
    pub warnings: Vec<String>,
}

/// Why a write was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AdmissionError {
    /// A webhook answered `allowed: false`.
    #[error("{message}")]
    Denied {
        /// The webhook's name.
        webhook: String,
        /// `admission webhook "NAME" denied the request: ...`
        message: String,
        /// The HTTP code: the webhook's `status.code` when it is 400 or more, else 400.
        code: u16,
        /// The webhook's `status.reason`, possibly empty.
        reason: String,
        /// The webhook's `status.details`, if any.
        details: Option<Value>,
    },
    /// A webhook could not be called or answered nonsense, and its `failurePolicy` is `Fail`.
    /// `message` is the part after `Internal error occurred: `.
    #[error("Internal error occurred: {message}")]
    CallFailed {
        /// The webhook's name.
        webhook: String,
        /// `failed calling webhook "NAME": failed to call webhook: Post "URL": CAUSE` and similar.
        message: String,
    },
    /// A mutating webhook's patch could not be decoded or applied. Not subject to failurePolicy.
    #[error("Internal error occurred: {message}")]
    PatchFailed {
        /// The webhook's name.
        webhook: String,
        /// What went wrong, naming the webhook.
        message: String,
    },
    /// A dry-run request matched a webhook that may have side effects.
    #[error("admission webhook {webhook:?} does not support dry run")]
    DryRunUnsupported {
        /// The webhook's name.
        webhook: String,
    },
    /// A stored configuration is unusable; no write can be admitted safely until it is fixed.
    #[error("Internal error occurred: {0}")]
    Configuration(ConfigError),
}

impl AdmissionError {
    /// The HTTP status code of the `Status` object for this error.
    pub fn status_code(&self) -> u16 {
        match self {
            Self::Denied { code, .. } => *code,
            Self::DryRunUnsupported { .. } => 400,
            Self::CallFailed { .. } | Self::PatchFailed { .. } | Self::Configuration(_) => 500,
        }
    }

    /// The `reason` of the `Status` object: the webhook's own reason for a denial (may be empty,
    /// as in kube-apiserver), `BadRequest` for a dry-run refusal, `InternalError` otherwise.
    pub fn reason(&self) -> &str {
        match self {
            Self::Denied { reason, .. } => reason,
            Self::DryRunUnsupported { .. } => "BadRequest",
            Self::CallFailed { .. } | Self::PatchFailed { .. } | Self::Configuration(_) => {
                "InternalError"
            }
        }
    }

    /// The name of the webhook involved, if one is.
    pub fn webhook(&self) -> Option<&str> {
        match self {
            Self::Denied { webhook, .. }
            | Self::CallFailed { webhook, .. }
            | Self::PatchFailed { webhook, .. }
            | Self::DryRunUnsupported { webhook } => Some(webhook),
            Self::Configuration(_) => None,
        }
    }

    /// The full `Status` object kube-apiserver would answer with.
    pub fn to_status(&self) -> Value {
        let mut status = json!({
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": self.to_string(),
            "code": self.status_code(),
        });
        if !self.reason().is_empty() {
            status["reason"] = json!(self.reason());
        }
        match self {
            Self::Denied {
                details: Some(details),
                ..
            } => status["details"] = details.clone(),
            Self::CallFailed { message, .. } | Self::PatchFailed { message, .. } => {
                status["details"] = json!({ "causes": [{ "message": message }] });
            }
            Self::Configuration(e) => {
                status["details"] = json!({ "causes": [{ "message": e.to_string() }] });
            }
            _ => {}
        }
        status
    }
}

/// The admission webhooks in force, ready to be called.
#[derive(Debug, Clone, Default)]
pub struct AdmissionChain {
    mutating: Vec<Arc<PreparedHook>>,
    validating: Vec<Arc<PreparedHook>>,
    services: ServiceMap,
}

#[derive(Debug)]
struct PreparedHook {
    hook: Webhook,
    /// Built once per chain; an unusable caBundle is reported on each call, as kube-apiserver does.
    tls: Result<Arc<rustls::ClientConfig>, String>,
}

impl AdmissionChain {
    /// A chain with no webhooks: every write is admitted unchanged.
    pub fn empty() -> Self {
        Self::default()
    }

    /// Build a chain from the stored configuration objects (any order; they are sorted by name as
    /// kube-apiserver does). Fails on the first configuration that does not validate, naming it.
    pub fn new<'a>(
        mutating: impl IntoIterator<Item = &'a Value>,
        validating: impl IntoIterator<Item = &'a Value>,
    ) -> Result<Self, ConfigError> {
        Ok(Self {
            mutating: prepare(ConfigurationKind::Mutating, mutating)?,
            validating: prepare(ConfigurationKind::Validating, validating)?,
            services: ServiceMap::default(),
        })
    }

    /// Use `services` to reach webhooks declared with `clientConfig.service`.
    pub fn with_service_map(mut self, services: ServiceMap) -> Self {
        self.services = services;
        self
    }

    /// The service map in use (shared: inserting into it affects this chain).
    pub fn service_map(&self) -> &ServiceMap {
        &self.services
    }

    /// Whether the chain has no webhooks at all.
    pub fn is_empty(&self) -> bool {
        self.mutating.is_empty() && self.validating.is_empty()
    }

    /// Whether any webhook's rules match these attributes (selectors not considered). Lets the
    /// server skip work such as looking up namespace labels.
    pub fn may_apply(&self, attrs: &AdmissionAttributes) -> bool {
        !exempt(attrs)
            && self
                .mutating
                .iter()
                .chain(&self.validating)
                .any(|p| p.hook.rules.iter().any(|r| rule_matches(r, attrs)))
    }

    /// Run a write through the webhooks.
    ///
    /// `object` is the new object (`Value::Null` for DELETE and CONNECT), `old_object` the stored
    /// one for UPDATE and DELETE. `namespace_labels` are the labels of the object's namespace
    /// (ignored for cluster-scoped objects; for a `Namespace` being created or updated its own
    /// labels are used; `None` is treated as no labels).
    pub async fn admit(
        &self,
        attrs: &AdmissionAttributes,
        object: Value,
        old_object: Option<Value>,
        namespace_labels: Option<&Value>,
    ) -> Result<AdmissionOutcome, AdmissionError> {
        let mut outcome = AdmissionOutcome {
            object,
            mutated: false,
            warnings: Vec::new(),
        };
        if exempt(attrs) || self.is_empty() {
            return Ok(outcome);
        }
        let old = old_object.unwrap_or(Value::Null);
        self.run_mutating(attrs, &mut outcome, &old, namespace_labels)
            .await?;
        self.run_validating(attrs, &mut outcome, &old, namespace_labels)
            .await?;
        Ok(outcome)
    }

    async fn run_mutating(
        &self,
        attrs: &AdmissionAttributes,
        outcome: &mut AdmissionOutcome,
        old: &Value,
        namespace_labels: Option<&Value>,
    ) -> Result<(), AdmissionError> {
        // Reinvocation as in kube-apiserver: when a webhook changes the object, every earlier
        // IfNeeded webhook that was called becomes due for one more call after the first round.
        let mut invoked_if_needed: Vec<usize> = Vec::new();
        let mut reinvoke: BTreeSet<usize> = BTreeSet::new();
        for (i, prepared) in self.mutating.iter().enumerate() {
            if !matches(
                &prepared.hook,
                attrs,
                &outcome.object,
                old,
                namespace_labels,
            ) {
                continue;
            }
            let changed = self.call_mutating(prepared, attrs, outcome, old).await?;
            if changed {
                reinvoke.extend(invoked_if_needed.drain(..));
            }
            if prepared.hook.reinvoke_if_needed {
                invoked_if_needed.push(i);
            }
        }
        for i in reinvoke {
            let Some(prepared) = self.mutating.get(i) else {
                continue;
            };
            if matches(
                &prepared.hook,
                attrs,
                &outcome.object,
                old,
                namespace_labels,
            ) {
                self.call_mutating(prepared, attrs, outcome, old).await?;
            }
        }
        Ok(())
    }

    /// Call one mutating webhook; returns whether it changed the object.
    async fn call_mutating(
        &self,
        prepared: &PreparedHook,
        attrs: &AdmissionAttributes,
        outcome: &mut AdmissionOutcome,
        old: &Value,
    ) -> Result<bool, AdmissionError> {
        let hook = &prepared.hook;
        let response = match self.call(prepared, attrs, &outcome.object, old).await {
            Ok(response) => response,
            Err(e) => return fail_open_or_closed(hook, e).map(|()| false),
        };
        outcome.warnings.extend(response.warnings);
        if !response.allowed {
            return Err(denial(hook, response.status));
        }
        let Some(patch) = response.patch else {
            return Ok(false);
        };
        let patch_failed = |message: String| AdmissionError::PatchFailed {
            webhook: hook.name.clone(),
            message,
        };
        if outcome.object.is_null() {
            return Err(patch_failed(format!(
                "admission webhook {:?} returned a patch for a {} request, which has no object to patch",
                hook.name, attrs.operation
            )));
        }
        let operations: json_patch::Patch = serde_json::from_slice(&patch).map_err(|e| {
            patch_failed(format!(
                "admission webhook {:?} returned an invalid JSONPatch: {e}",
                hook.name
            ))
        })?;
        let mut patched = outcome.object.clone();
        json_patch::patch(&mut patched, &operations).map_err(|e| {
            patch_failed(format!(
                "admission webhook {:?} returned a patch that does not apply: {e}",
                hook.name
            ))
        })?;
        if !patched.is_object() {
            return Err(patch_failed(format!(
                "admission webhook {:?} returned a patch that replaced the object with a non-object",
                hook.name
            )));
        }
        let changed = patched != outcome.object;
        if changed {
            outcome.object = patched;
            outcome.mutated = true;
        }
        Ok(changed)
    }

    async fn run_validating(
        &self,
        attrs: &AdmissionAttributes,
        outcome: &mut AdmissionOutcome,
        old: &Value,
        namespace_labels: Option<&Value>,
    ) -> Result<(), AdmissionError> {
        let matched: Vec<&Arc<PreparedHook>> = self
            .validating
            .iter()
            .filter(|p| matches(&p.hook, attrs, &outcome.object, old, namespace_labels))
            .collect();
        let object = &outcome.object;
        let calls = matched.iter().map(|prepared| async move {
            let hook = &prepared.hook;
            match self.call(prepared, attrs, object, old).await {
                Err(e) => fail_open_or_closed(hook, e).map(|()| Vec::new()),
                Ok(response) if !response.allowed => Err(denial(hook, response.status)),
                Ok(response) => Ok(response.warnings),
            }
        });
        let results = futures::future::join_all(calls).await;
        for result in results {
            outcome.warnings.extend(result?);
        }
        Ok(())
    }

    /// Send one AdmissionReview and verify the answer. Errors are the `failed calling webhook`
    /// kind, subject to failurePolicy, except a dry-run refusal which is returned at once.
    async fn call(
        &self,
        prepared: &PreparedHook,
        attrs: &AdmissionAttributes,
        object: &Value,
        old: &Value,
    ) -> Result<ReviewResponse, CallError> {
        let hook = &prepared.hook;
        if attrs.dry_run && !matches!(hook.side_effects.as_str(), "None" | "NoneOnDryRun") {
            return Err(CallError::DryRun);
        }
        let target = client::resolve(&hook.endpoint, &self.services, hook.timeout).map_err(
            |(url, cause)| {
                CallError::failed(
                    hook,
                    format!("failed to call webhook: Post {url:?}: {cause}"),
                )
            },
        )?;
        let uid = new_uid();
        let review = review_request(&uid, attrs, object, old);
        let body = serde_json::to_vec(&review).map_err(|e| {
            CallError::failed(hook, format!("failed to encode the AdmissionReview: {e}"))
        })?;
        tracing::debug!(webhook = %hook.name, url = %target.display_url, operation = %attrs.operation, "calling admission webhook");
        let bytes = client::post(&target, Some(&prepared.tls), body, hook.timeout)
            .await
            .map_err(|cause| {
                CallError::failed(
                    hook,
                    format!(
                        "failed to call webhook: Post {:?}: {cause}",
                        target.display_url
                    ),
                )
            })?;
        verify_response(&uid, &bytes)
            .map_err(|e| CallError::failed(hook, format!("received invalid webhook response: {e}")))
    }
}

fn prepare<'a>(
    kind: ConfigurationKind,
    configs: impl IntoIterator<Item = &'a Value>,
) -> Result<Vec<Arc<PreparedHook>>, ConfigError> {
    let mut configs: Vec<&Value> = configs.into_iter().collect();
    let name_of = |c: &Value| {
        c.pointer("/metadata/name")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string()
    };
    configs.sort_by_key(|c| name_of(c));
    let mut hooks = Vec::new();
    for config in configs {
        for hook in config::parse_configuration(kind, config)? {
            let tls = client::tls_config(hook.ca_bundle.as_deref().map(Vec::as_slice));
            hooks.push(Arc::new(PreparedHook { hook, tls }));
        }
    }
    Ok(hooks)
}

enum CallError {
    /// The webhook could not be called or answered badly: `failed calling webhook "NAME": REASON`.
    Failed {
        webhook: String,
        reason: String,
    },
    DryRun,
}

impl CallError {
    fn failed(hook: &Webhook, reason: String) -> Self {
        Self::Failed {
            webhook: hook.name.clone(),
            reason,
        }
    }
}

fn fail_open_or_closed(hook: &Webhook, error: CallError) -> Result<(), AdmissionError> {
    match error {
        CallError::DryRun => Err(AdmissionError::DryRunUnsupported {
            webhook: hook.name.clone(),
        }),
        CallError::Failed { webhook, reason } => {
            let message = format!("failed calling webhook {webhook:?}: {reason}");
            if hook.failure_policy == FailurePolicy::Ignore {
                tracing::warn!(webhook = %hook.name, configuration = %hook.configuration, "Failed calling webhook, failing open: {message}");
                Ok(())
            } else {
                tracing::warn!(webhook = %hook.name, configuration = %hook.configuration, "Failed calling webhook, failing closed: {message}");
                Err(AdmissionError::CallFailed { webhook, message })
            }
        }
    }
}

/// kube-apiserver's `ToStatusErr`: code at least 400, message prefixed with who denied.
fn denial(hook: &Webhook, status: Value) -> AdmissionError {
    let denied_by = format!("admission webhook {:?} denied the request", hook.name);
    let text = |key: &str| {
        status
            .get(key)
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string()
    };
    let (message, reason) = (text("message"), text("reason"));
    let message = if !message.is_empty() {
        format!("{denied_by}: {message}")
    } else if !reason.is_empty() {
        format!("{denied_by}: {reason}")
    } else {
        format!("{denied_by} without explanation")
    };
    let code = status
        .get("code")
        .and_then(Value::as_u64)
        .and_then(|c| u16::try_from(c).ok())
        .filter(|c| (400..=599).contains(c))
        .unwrap_or(400);
    AdmissionError::Denied {
        webhook: hook.name.clone(),
        message,
        code,
        reason,
        details: status.get("details").filter(|d| !d.is_null()).cloned(),
    }
}

/// Requests that never go to webhooks: the webhook configurations themselves (so a broken
/// webhook can always be removed).
fn exempt(attrs: &AdmissionAttributes) -> bool {
    attrs.group == "admissionregistration.k8s.io"
        && matches!(
            attrs.resource.as_str(),
            "mutatingwebhookconfigurations"
                | "validatingwebhookconfigurations"
                | "validatingadmissionpolicies"
                | "validatingadmissionpolicybindings"
        )
}

fn matches(
    hook: &Webhook,
    attrs: &AdmissionAttributes,
    object: &Value,
    old: &Value,
    namespace_labels: Option<&Value>,
) -> bool {
    hook.rules.iter().any(|r| rule_matches(r, attrs))
        && namespace_selector_matches(hook, attrs, object, old, namespace_labels)
        && object_selector_matches(hook, object, old)
}

fn rule_matches(rule: &config::Rule, attrs: &AdmissionAttributes) -> bool {
    let any = |list: &[String], value: &str| list.iter().any(|x| x == "*" || x == value);
    any(&rule.operations, attrs.operation.as_str())
        && any(&rule.api_groups, &attrs.group)
        && any(&rule.api_versions, &attrs.version)
        && rule.resources.iter().any(|entry| {
            let (res, sub) = entry.split_once('/').unwrap_or((entry.as_str(), ""));
            (res == "*" || res == attrs.resource) && (sub == "*" || sub == attrs.subresource)
        })
        && match rule.scope.as_str() {
            "Namespaced" => !attrs.is_namespace_object() && !attrs.namespace.is_empty(),
            "Cluster" => attrs.is_namespace_object() || attrs.namespace.is_empty(),
            _ => true,
        }
}

fn namespace_selector_matches(
    hook: &Webhook,
    attrs: &AdmissionAttributes,
    object: &Value,
    old: &Value,
    namespace_labels: Option<&Value>,
) -> bool {
    if hook.namespace_selector.is_empty() {
        return true;
    }
    if attrs.is_namespace_object() {
        // A Namespace is matched by its own labels: the new ones on create and update, else the
        // stored ones.
        let labels_of = |obj: &Value| {
            obj.pointer("/metadata/labels")
                .cloned()
                .unwrap_or(Value::Null)
        };
        let labels = if matches!(attrs.operation, Operation::Create | Operation::Update)
            && attrs.subresource.is_empty()
        {
            labels_of(object)
        } else {
            namespace_labels.cloned().unwrap_or_else(|| labels_of(old))
        };
        return hook.namespace_selector.matches(&labels);
    }
    if attrs.namespace.is_empty() {
        // Cluster-scoped objects other than namespaces are never exempted by a namespaceSelector.
        return true;
    }
    hook.namespace_selector
        .matches(namespace_labels.unwrap_or(&Value::Null))
}

fn object_selector_matches(hook: &Webhook, object: &Value, old: &Value) -> bool {
    if hook.object_selector.is_empty() {
        return true;
    }
    let labels_match = |obj: &Value| {
        obj.is_object()
            && hook
                .object_selector
                .matches(obj.pointer("/metadata/labels").unwrap_or(&Value::Null))
    };
    labels_match(object) || labels_match(old)
}

/// A random RFC 4122 version 4 UID.
fn new_uid() -> String {
    let mut bytes: [u8; 16] = rand::random();
    bytes[6] = (bytes[6] & 0x0f) | 0x40;
    bytes[8] = (bytes[8] & 0x3f) | 0x80;
    let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    format!(
        "{}-{}-{}-{}-{}",
        &hex[0..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..32]
    )
}

fn review_request(uid: &str, attrs: &AdmissionAttributes, object: &Value, old: &Value) -> Value {
    let kind = json!({ "group": attrs.group, "version": attrs.version, "kind": attrs.kind });
    let resource =
        json!({ "group": attrs.group, "version": attrs.version, "resource": attrs.resource });
    let mut request = json!({
        "uid": uid,
        "kind": kind,
        "resource": resource,
        "requestKind": kind,
        "requestResource": resource,
        "operation": attrs.operation.as_str(),
        "userInfo": attrs.user_info.to_json(),
        "object": object,
        "oldObject": old,
        "dryRun": attrs.dry_run,
    });
    if !attrs.subresource.is_empty() {
        request["subResource"] = json!(attrs.subresource);
        request["requestSubResource"] = json!(attrs.subresource);
    }
    if !attrs.name.is_empty() {
        request["name"] = json!(attrs.name);
    }
    if !attrs.namespace.is_empty() {
        request["namespace"] = json!(attrs.namespace);
    }
    if let Some(options) = &attrs.options {
        request["options"] = options.clone();
    }
    json!({ "apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "request": request })
}

/// The parts of `AdmissionReview.response` the chain uses.
struct ReviewResponse {
    allowed: bool,
    status: Value,
    /// Decoded JSONPatch bytes.
    patch: Option<Vec<u8>>,
    warnings: Vec<String>,
}

/// kube-apiserver's `VerifyAdmissionResponse` for v1.
fn verify_response(uid: &str, body: &[u8]) -> Result<ReviewResponse, String> {
    let review: Value =
        serde_json::from_slice(body).map_err(|e| format!("response is not JSON: {e}"))?;
    let api_version = review
        .get("apiVersion")
        .and_then(Value::as_str)
        .unwrap_or("");
    let kind = review.get("kind").and_then(Value::as_str).unwrap_or("");
    if api_version != "admission.k8s.io/v1" || kind != "AdmissionReview" {
        return Err(format!(
            "expected webhook response of admission.k8s.io/v1, Kind=AdmissionReview, got {api_version}, Kind={kind}"
        ));
    }
    let response = match review.get("response") {
        Some(r @ Value::Object(_)) => r,
        _ => return Err("webhook response was absent".to_string()),
    };
    let got_uid = response.get("uid").and_then(Value::as_str).unwrap_or("");
    if got_uid != uid {
        return Err(format!("expected response.uid {uid:?}, got {got_uid:?}"));
    }
    let allowed = response
        .get("allowed")
        .and_then(Value::as_bool)
        .unwrap_or(false);
    // Go decodes a `[]byte` from a base64 string or from an array of numbers
    // (what kube-rs sends), so both are accepted.
    let raw_patch: Option<Vec<u8>> = match response.get("patch") {
        None | Some(Value::Null) => None,
        Some(Value::String(encoded)) if encoded.is_empty() => None,
        Some(Value::String(encoded)) => Some(
            base64::engine::general_purpose::STANDARD
                .decode(encoded)
                .map_err(|e| format!("response.patch is not valid base64: {e}"))?,
        ),
        Some(Value::Array(items)) if items.is_empty() => None,
        Some(Value::Array(items)) => Some(
            items
                .iter()
                .map(|b| b.as_u64().and_then(|b| u8::try_from(b).ok()))
                .collect::<Option<Vec<u8>>>()
                .ok_or_else(|| "response.patch is not a byte array".to_string())?,
        ),
        Some(other) => {
            return Err(format!("response.patch must be base64 bytes, got {other}"));
        }
    };
    let patch = match raw_patch {
        None => None,
        Some(bytes) => {
            match response.get("patchType").and_then(Value::as_str) {
                None | Some("") => {
                    return Err(
                        "webhook returned response.patch but not response.patchType".to_string()
                    );
                }
                Some("JSONPatch") => {}
                Some(other) => {
                    return Err(format!(
                        "webhook returned invalid response.patchType of {other:?}"
                    ));
                }
            }
            Some(bytes)
        }
    };
    if patch.is_none()
        && let Some(patch_type) = response
            .get("patchType")
            .and_then(Value::as_str)
            .filter(|t| !t.is_empty())
    {
        return Err(format!(
            "webhook returned response.patchType of {patch_type:?} but not response.patch"
        ));
    }
    let warnings = response
        .get("warnings")
        .and_then(Value::as_array)
        .map(|w| {
            w.iter()
                .filter_map(Value::as_str)
                .map(str::to_string)
                .collect()
        })
        .unwrap_or_default();
    Ok(ReviewResponse {
        allowed,
        status: response.get("status").cloned().unwrap_or(Value::Null),
        patch,
        warnings,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn attrs(op: Operation, resource: &str, sub: &str, namespace: &str) -> AdmissionAttributes {
        AdmissionAttributes::new(op, ("apps", "v1", resource), "Deployment", namespace, "web")
            .with_subresource(sub)
    }

    fn rule(v: Value) -> config::Rule {
        let hook = json!({
            "metadata": {"name": "c"},
            "webhooks": [{
                "name": "a.b.c", "sideEffects": "None", "admissionReviewVersions": ["v1"],
                "clientConfig": {"url": "https://127.0.0.1:1/"}, "rules": [v],
            }],
        });
        let mut hooks = config::parse_configuration(ConfigurationKind::Validating, &hook).unwrap();
        hooks.remove(0).rules.remove(0)
    }

    #[test]
    fn rules_match_operations_groups_versions_resources_and_scope() {
        let r = rule(
            json!({"operations": ["CREATE"], "apiGroups": ["apps"], "apiVersions": ["v1"], "resources": ["deployments"]}),
        );
        assert!(rule_matches(
            &r,
            &attrs(Operation::Create, "deployments", "", "ns")
        ));
        assert!(!rule_matches(
            &r,
            &attrs(Operation::Update, "deployments", "", "ns")
        ));
        assert!(!rule_matches(
            &r,
            &attrs(Operation::Create, "replicasets", "", "ns")
        ));
        // A plain resource entry does not match its subresources.
        assert!(!rule_matches(
            &r,
            &attrs(Operation::Create, "deployments", "status", "ns")
        ));

        let r = rule(
            json!({"operations": ["*"], "apiGroups": ["*"], "apiVersions": ["*"], "resources": ["deployments/*"]}),
        );
        assert!(rule_matches(
            &r,
            &attrs(Operation::Update, "deployments", "scale", "ns")
        ));
        assert!(rule_matches(
            &r,
            &attrs(Operation::Update, "deployments", "", "ns")
        ));
        assert!(!rule_matches(
            &r,
            &attrs(Operation::Update, "pods", "", "ns")
        ));

        let r = rule(
            json!({"operations": ["UPDATE"], "apiGroups": ["apps"], "apiVersions": ["v1"], "resources": ["*/status"]}),
        );
        assert!(rule_matches(
            &r,
            &attrs(Operation::Update, "deployments", "status", "ns")
        ));
        assert!(!rule_matches(
            &r,
            &attrs(Operation::Update, "deployments", "", "ns")
        ));

        let r = rule(
            json!({"operations": ["*"], "apiGroups": ["*"], "apiVersions": ["*"], "resources": ["*"], "scope": "Cluster"}),
        );
        assert!(!rule_matches(
            &r,
            &attrs(Operation::Create, "deployments", "", "ns")
        ));
        assert!(rule_matches(
            &r,
            &attrs(Operation::Create, "clusterroles", "", "")
        ));
        let ns = AdmissionAttributes::new(
            Operation::Create,
            ("", "v1", "namespaces"),
            "Namespace",
            "team",
            "team",
        );
        assert!(rule_matches(&r, &ns));
        let r = rule(
            json!({"operations": ["*"], "apiGroups": ["*"], "apiVersions": ["*"], "resources": ["*"], "scope": "Namespaced"}),
        );
        assert!(!rule_matches(&r, &ns));
        assert!(rule_matches(
            &r,
            &attrs(Operation::Create, "deployments", "", "ns")
        ));
    }

    #[test]
    fn response_verification_follows_kube_apiserver() {
        let ok = |v: Value| verify_response("u1", &serde_json::to_vec(&v).unwrap());
        let base = |response: Value| json!({"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "response": response});
        assert_eq!(
            ok(base(json!({"uid": "other", "allowed": true})))
                .err()
                .unwrap(),
            "expected response.uid \"u1\", got \"other\""
        );
        assert_eq!(
            ok(json!({"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview"}))
                .err()
                .unwrap(),
            "webhook response was absent"
        );
        assert!(ok(json!({"apiVersion": "admission.k8s.io/v1beta1", "kind": "AdmissionReview", "response": {"uid": "u1", "allowed": true}}))
            .err()
            .unwrap()
            .starts_with("expected webhook response of admission.k8s.io/v1, Kind=AdmissionReview"));
        assert_eq!(
            ok(base(json!({"uid": "u1", "allowed": true, "patch": "W10="})))
                .err()
                .unwrap(),
            "webhook returned response.patch but not response.patchType"
        );
        assert_eq!(
            ok(base(
                json!({"uid": "u1", "allowed": true, "patch": "W10=", "patchType": "Merge"})
            ))
            .err()
            .unwrap(),
            "webhook returned invalid response.patchType of \"Merge\""
        );
        let r = ok(base(json!({"uid": "u1", "allowed": true, "patch": "W10=", "patchType": "JSONPatch", "warnings": ["w"]}))).unwrap();
        assert!(r.allowed);
        assert_eq!(r.patch.unwrap(), b"[]");
        assert_eq!(r.warnings, vec!["w".to_string()]);
        // kube-rs sends the bytes as an array of numbers; Go accepts that too.
        let r = ok(base(
            json!({"uid": "u1", "allowed": true, "patch": [91, 93], "patchType": "JSONPatch"}),
        ))
        .unwrap();
        assert_eq!(r.patch.unwrap(), b"[]");
        assert!(
            ok(base(
                json!({"uid": "u1", "allowed": true, "patch": [300], "patchType": "JSONPatch"})
            ))
            .is_err()
        );
    }

    #[test]
    fn denial_messages_and_codes() {
        let hooks = config::parse_configuration(
            ConfigurationKind::Validating,
            &json!({"metadata": {"name": "c"}, "webhooks": [{"name": "deny.example.com", "sideEffects": "None",
                "admissionReviewVersions": ["v1"], "clientConfig": {"url": "https://127.0.0.1:1/"}}]}),
        )
        .unwrap();
        let hook = &hooks[0];
        let e = denial(
            hook,
            json!({"message": "replicas must be odd", "code": 403, "reason": "Forbidden"}),
        );
        assert_eq!(
            e.to_string(),
            "admission webhook \"deny.example.com\" denied the request: replicas must be odd"
        );
        assert_eq!((e.status_code(), e.reason()), (403, "Forbidden"));
        let e = denial(hook, json!({"code": 200}));
        assert_eq!(
            e.to_string(),
            "admission webhook \"deny.example.com\" denied the request without explanation"
        );
        assert_eq!(e.status_code(), 400);
        let status = e.to_status();
        assert_eq!(status["code"], 400);
        assert!(status.get("reason").is_none());
    }

    #[test]
    fn uids_are_version_4() {
        let uid = new_uid();
        assert_eq!(uid.len(), 36);
        assert_eq!(&uid[14..15], "4");
        assert_ne!(uid, new_uid());
    }
}
