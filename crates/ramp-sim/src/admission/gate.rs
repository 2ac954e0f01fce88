//! The API server's side of admission: runs writes through the webhooks configured in the store.
//!
//! The store applies a write under one lock, but webhooks are slow network calls that must not
//! hold it. So a write that some webhook may care about goes like kube-apiserver's optimistic
//! path: a dry run computes the object the write would store (patch applied, defaults, pruning,
//! validation), the webhooks see it and may patch it, and the result is committed with the
//! resourceVersion the dry run started from as a precondition. A conflict with a concurrent
//! writer is retried when the client itself gave no resourceVersion, as the apiserver does for
//! patches. Writes no webhook matches go straight to the store at the cost of two short lists.
//!
//! Writes of webhook configurations are validated and defaulted here (kube-apiserver's
//! registry rules), so a configuration that would break the chain is never stored.
//!
//! Not sent to webhooks: the `scale` subresource (the sim would have to build `Scale` objects
//! for the review), and review resources (`TokenReview`, ...) that are never stored.

use std::sync::{Arc, Mutex};

use serde_json::{Value, json};

use super::{
    AdmissionAttributes, AdmissionChain, AdmissionError, ConfigurationKind, Operation, ServiceMap,
    UserInfo, default_configuration, validate_configuration,
};
use crate::errors::{ApiError, ApiResult, Cause};
use crate::resources::{GroupResource, ResourceType};
use crate::store::{ListOptions, PatchType, Store, Subresource, WriteOptions, Written};

/// How often a write whose precondition went stale during admission is retried.
const CONFLICT_RETRIES: usize = 5;

const ADMISSION_GROUP: &str = "admissionregistration.k8s.io";

/// Admission for the API server: keeps an [`AdmissionChain`] in step with the stored
/// `MutatingWebhookConfiguration` and `ValidatingWebhookConfiguration` objects and runs
/// create, update, patch and delete requests through it.
#[derive(Debug, Default)]
pub struct WebhookGate {
    services: ServiceMap,
    user: UserInfo,
    cache: Mutex<Option<(Vec<String>, Arc<AdmissionChain>)>>,
}

/// One request, as the gate needs to know it.
#[derive(Debug, Clone, Copy)]
pub struct WriteTarget<'a> {
    /// The resource type.
    pub rt: &'a ResourceType,
    /// The version in the request URL.
    pub version: &'a str,
    /// The namespace in the URL (None for cluster-scoped requests).
    pub namespace: Option<&'a str>,
    /// The subresource in the URL.
    pub subresource: Option<Subresource>,
}

impl WriteTarget<'_> {
    fn gr(&self) -> GroupResource {
        self.rt.group_resource()
    }

    fn subresource_name(&self) -> &'static str {
        match self.subresource {
            None => "",
            Some(Subresource::Status) => "status",
            Some(Subresource::Scale) => "scale",
        }
    }

    fn configuration_kind(&self) -> Option<ConfigurationKind> {
        if self.rt.group != ADMISSION_GROUP {
            return None;
        }
        match self.rt.resource.as_str() {
            "mutatingwebhookconfigurations" => Some(ConfigurationKind::Mutating),
            "validatingwebhookconfigurations" => Some(ConfigurationKind::Validating),
            _ => None,
        }
    }
}

impl WebhookGate {
    /// A gate that reaches `clientConfig.service` webhooks through `services`. Requests are
    /// attributed to `user` in each AdmissionReview.
    pub fn new(services: ServiceMap, user: UserInfo) -> Self {
        Self {
            services,
            user,
            cache: Mutex::new(None),
        }
    }

    /// The service map (shared: add routes to it while the server runs).
    pub fn services(&self) -> &ServiceMap {
        &self.services
    }

    /// The chain for the configurations stored now (rebuilt only when they changed).
    pub fn chain(&self, store: &Store) -> ApiResult<Arc<AdmissionChain>> {
        let list = |resource: &str| -> ApiResult<Vec<Arc<Value>>> {
            let gr = GroupResource {
                group: ADMISSION_GROUP.to_string(),
                resource: resource.to_string(),
            };
            match store.list(&gr, None, &ListOptions::default()) {
                Ok(list) => Ok(list.items),
                // A store without admissionregistration types has no webhooks.
                Err(e) if e.is_not_found() => Ok(Vec::new()),
                Err(e) => Err(e),
            }
        };
        let mutating = list("mutatingwebhookconfigurations")?;
        let validating = list("validatingwebhookconfigurations")?;
        let fingerprint: Vec<String> = mutating
            .iter()
            .map(|c| format!("m/{}", meta(c, "uid")) + "/" + meta(c, "resourceVersion"))
            .chain(
                validating
                    .iter()
                    .map(|c| format!("v/{}/{}", meta(c, "uid"), meta(c, "resourceVersion"))),
            )
            .collect();
        let mut cache = self
            .cache
            .lock()
            .map_err(|_| ApiError::internal("admission cache lock poisoned"))?;
        if let Some((seen, chain)) = cache.as_ref()
            && *seen == fingerprint
        {
            return Ok(chain.clone());
        }
        let chain = AdmissionChain::new(
            mutating.iter().map(AsRef::as_ref),
            validating.iter().map(AsRef::as_ref),
        )
        .map_err(|e| ApiError::internal(format!("Internal error occurred: {e}")))?
        .with_service_map(self.services.clone());
        let chain = Arc::new(chain);
        *cache = Some((fingerprint, chain.clone()));
        Ok(chain)
    }

    /// `POST`: create `obj`.
    pub async fn create(
        &self,
        store: &Store,
        t: WriteTarget<'_>,
        obj: Value,
        opts: &WriteOptions,
    ) -> ApiResult<Written> {
        let gr = t.gr();
        let name = meta(&obj, "name").to_string();
        let mode = Mode {
            may_exist: false,
            unconditional: false,
        };
        self.write(store, t, &name, mode, opts, |o| {
            store.create(&gr, t.namespace, obj.clone(), o)
        })
        .await
    }

    /// `PUT`: replace object `name` (or its status) with `obj`.
    pub async fn update(
        &self,
        store: &Store,
        t: WriteTarget<'_>,
        name: &str,
        obj: Value,
        opts: &WriteOptions,
    ) -> ApiResult<Written> {
        let gr = t.gr();
        let mode = Mode {
            may_exist: true,
            unconditional: meta(&obj, "resourceVersion").is_empty(),
        };
        self.write(store, t, name, mode, opts, |o| {
            store.update(&gr, t.namespace, name, obj.clone(), t.subresource, o)
        })
        .await
    }

    /// `PATCH` (all four patch types; `Apply` may create).
    pub async fn patch(
        &self,
        store: &Store,
        t: WriteTarget<'_>,
        name: &str,
        patch_type: PatchType,
        patch: &Value,
        opts: &WriteOptions,
    ) -> ApiResult<Written> {
        let gr = t.gr();
        let unconditional = patch
            .pointer("/metadata/resourceVersion")
            .is_none_or(Value::is_null);
        let mode = Mode {
            may_exist: true,
            unconditional,
        };
        self.write(store, t, name, mode, opts, |o| {
            store.patch(&gr, t.namespace, name, patch_type, patch, t.subresource, o)
        })
        .await
    }

    /// Whether a DELETE of this target may go to a webhook (to skip listing a collection).
    pub fn may_apply_delete(&self, store: &Store, t: WriteTarget<'_>) -> ApiResult<bool> {
        let chain = self.chain(store)?;
        let attrs = self.attributes(t, Operation::Delete, "");
        Ok(!chain.is_empty()
            && t.subresource != Some(Subresource::Scale)
            && chain.may_apply(&attrs))
    }

    /// `DELETE`: run the webhooks for deleting `old` (the stored object). The caller deletes after.
    pub async fn admit_delete(
        &self,
        store: &Store,
        t: WriteTarget<'_>,
        old: &Value,
        options: Option<Value>,
        dry_run: bool,
    ) -> ApiResult<()> {
        let chain = self.chain(store)?;
        let mut attrs = self.attributes(t, Operation::Delete, meta(old, "name"));
        attrs.dry_run = dry_run;
        attrs.options = options;
        if chain.is_empty() || !chain.may_apply(&attrs) || t.subresource == Some(Subresource::Scale)
        {
            return Ok(());
        }
        let labels = namespace_labels(store, &attrs);
        chain
            .admit(&attrs, Value::Null, Some(old.clone()), labels.as_ref())
            .await
            .map(|_| ())
            .map_err(|e| to_api_error(&e))
    }

    /// The shared create/update/patch path. `op` runs the store write with the options given.
    async fn write(
        &self,
        store: &Store,
        t: WriteTarget<'_>,
        name: &str,
        mode: Mode,
        opts: &WriteOptions,
        op: impl Fn(&WriteOptions) -> ApiResult<Written>,
    ) -> ApiResult<Written> {
        let chain = self.chain(store)?;
        let config_kind = t.configuration_kind();
        let mut attrs = self.attributes(t, Operation::Create, name);
        attrs.dry_run = opts.dry_run;
        let webhooks = !chain.is_empty() && t.subresource != Some(Subresource::Scale) && {
            let mut update = attrs.clone();
            update.operation = Operation::Update;
            chain.may_apply(&attrs) || chain.may_apply(&update)
        };
        if !webhooks && config_kind.is_none() {
            return op(opts);
        }
        let gr = t.gr();
        let dry = WriteOptions {
            dry_run: true,
            ..opts.clone()
        };
        let mut attempt = 0;
        loop {
            attempt += 1;
            let old = if mode.may_exist {
                match store.get(&gr, t.namespace, name) {
                    Ok(old) => Some(old),
                    Err(e) if e.is_not_found() => None,
                    Err(e) => return Err(e),
                }
            } else {
                None
            };
            let preview = op(&dry)?;
            let created = preview.created;
            if created == old.is_some() {
                // The object appeared or vanished between the read and the dry run.
                if attempt <= CONFLICT_RETRIES {
                    continue;
                }
                return Err(ApiError::conflict(
                    &gr.group,
                    &gr.resource,
                    name,
                    "the object changed during admission; please retry",
                ));
            }
            let mut object = (*preview.object).clone();
            if created {
                // Mutating webhooks see what the client sent, before the server assigns identity.
                if let Some(m) = object.get_mut("metadata").and_then(Value::as_object_mut) {
                    for field in ["uid", "creationTimestamp", "resourceVersion", "generation"] {
                        m.remove(field);
                    }
                }
            }
            if let Some(kind) = config_kind {
                check_configuration(kind, name, &mut object)?;
            }
            attrs.operation = if created {
                Operation::Create
            } else {
                Operation::Update
            };
            attrs.name = meta(&object, "name").to_string();
            let outcome = if webhooks {
                let labels = namespace_labels(store, &attrs);
                chain
                    .admit(&attrs, object, old.as_deref().cloned(), labels.as_ref())
                    .await
                    .map_err(|e| to_api_error(&e))?
            } else {
                super::AdmissionOutcome {
                    object,
                    mutated: false,
                    warnings: Vec::new(),
                }
            };
            let mut warnings = preview.warnings.clone();
            warnings.extend(outcome.warnings);
            if opts.dry_run {
                let object = if outcome.mutated {
                    Arc::new(outcome.object)
                } else {
                    preview.object
                };
                return Ok(Written {
                    object,
                    created,
                    warnings,
                });
            }
            let committed = match &old {
                None => store.create(&gr, t.namespace, outcome.object, opts),
                Some(old) => {
                    let mut object = outcome.object;
                    if let Some(m) = object.get_mut("metadata").and_then(Value::as_object_mut) {
                        m.insert(
                            "resourceVersion".into(),
                            json!(meta(old, "resourceVersion")),
                        );
                    }
                    // The preview already did the field bookkeeping (an
                    // apply's own entry, or the update's): committing must not
                    // record the write again as an `Update` of the same manager,
                    // which would then conflict with that manager's next apply.
                    let commit = WriteOptions {
                        field_manager: None,
                        ..opts.clone()
                    };
                    store.update(&gr, t.namespace, name, object, t.subresource, &commit)
                }
            };
            match committed {
                Err(e)
                    if mode.unconditional
                        && attempt <= CONFLICT_RETRIES
                        && (e.is_conflict() || e.reason == "AlreadyExists") =>
                {
                    tracing::debug!(resource = %gr, name, "write changed under admission, retrying");
                }
                Err(e) => return Err(e),
                Ok(mut written) => {
                    warnings.append(&mut written.warnings);
                    warnings.dedup();
                    written.warnings = warnings;
                    return Ok(written);
                }
            }
        }
    }

    fn attributes(
        &self,
        t: WriteTarget<'_>,
        operation: Operation,
        name: &str,
    ) -> AdmissionAttributes {
        let mut attrs = AdmissionAttributes::new(
            operation,
            (&t.rt.group, t.version, &t.rt.resource),
            &t.rt.kind,
            t.namespace.unwrap_or(""),
            name,
        )
        .with_subresource(t.subresource_name());
        if attrs.is_namespace_object() {
            attrs.namespace = name.to_string();
        }
        attrs.user_info = self.user.clone();
        attrs
    }
}

fn meta<'a>(obj: &'a Value, field: &str) -> &'a str {
    obj.get("metadata")
        .and_then(|m| m.get(field))
        .and_then(Value::as_str)
        .unwrap_or("")
}

/// The labels of the request's namespace (for `namespaceSelector`), if it is namespaced.
fn namespace_labels(store: &Store, attrs: &AdmissionAttributes) -> Option<Value> {
    if attrs.namespace.is_empty() {
        return None;
    }
    let gr = GroupResource {
        group: String::new(),
        resource: "namespaces".to_string(),
    };
    let ns = store.get(&gr, None, &attrs.namespace).ok()?;
    Some(ns.pointer("/metadata/labels").cloned().unwrap_or(json!({})))
}

/// The `Status` kube-apiserver would answer with, as the server's error type.
pub fn to_api_error(e: &AdmissionError) -> ApiError {
    let mut api = ApiError::new(e.status_code(), static_reason(e.reason()), e.to_string());
    match e {
        AdmissionError::Denied {
            details: Some(details),
            ..
        } => {
            if let Some(causes) = details.get("causes").and_then(Value::as_array) {
                api.causes = causes
                    .iter()
                    .map(|c| {
                        let s =
                            |k: &str| c.get(k).and_then(Value::as_str).unwrap_or("").to_string();
                        Cause::new(s("reason"), s("field"), s("message"))
                    })
                    .collect();
            }
            let s = |k: &str| details.get(k).and_then(Value::as_str).map(str::to_string);
            api.name = s("name");
            api.group = s("group");
            api.kind = s("kind");
        }
        AdmissionError::CallFailed { message, .. }
        | AdmissionError::PatchFailed { message, .. } => {
            api.causes = vec![Cause::new("", "", message.clone())];
        }
        _ => {}
    }
    api
}

/// `ApiError` keeps reasons as static strings: map a webhook's reason onto the known
/// `metav1.StatusReason` values; anything else becomes empty, as an unknown reason would mean
/// nothing to clients anyway.
fn static_reason(reason: &str) -> &'static str {
    const KNOWN: [&str; 17] = [
        "Unauthorized",
        "Forbidden",
        "NotFound",
        "AlreadyExists",
        "Conflict",
        "Gone",
        "Invalid",
        "ServerTimeout",
        "Timeout",
        "TooManyRequests",
        "BadRequest",
        "MethodNotAllowed",
        "NotAcceptable",
        "RequestEntityTooLarge",
        "UnsupportedMediaType",
        "InternalError",
        "Expired",
    ];
    KNOWN.iter().find(|k| **k == reason).copied().unwrap_or("")
}

/// How a write relates to what is stored.
#[derive(Debug, Clone, Copy)]
struct Mode {
    /// The object may already exist (update, patch): read it as the old object.
    may_exist: bool,
    /// The client gave no resourceVersion: a conflict caused by admission's two steps is retried.
    unconditional: bool,
}

/// kube-apiserver's validation and defaulting of webhook configurations.
fn check_configuration(kind: ConfigurationKind, name: &str, object: &mut Value) -> ApiResult<()> {
    let errors = validate_configuration(kind, object);
    if !errors.is_empty() {
        let causes = errors
            .iter()
            .map(|e| Cause::new(e.reason, e.field.clone(), e.message.clone()))
            .collect();
        return Err(ApiError::invalid(
            ADMISSION_GROUP,
            kind.kind(),
            name,
            causes,
        ));
    }
    default_configuration(kind, object);
    Ok(())
}
