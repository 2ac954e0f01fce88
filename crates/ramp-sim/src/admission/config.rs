//! Webhook configurations: validation (what kube-apiserver refuses to store), defaulting (what it
//! fills in), and parsing into the [`Webhook`] values the chain calls.

use std::collections::BTreeSet;
use std::fmt;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use base64::Engine as _;
use serde_json::{Map, Value, json};

use crate::selector::{LabelSelector, SelectorError};

/// Which of the two webhook configuration kinds an object is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConfigurationKind {
    /// `MutatingWebhookConfiguration`
    Mutating,
    /// `ValidatingWebhookConfiguration`
    Validating,
}

impl ConfigurationKind {
    /// The object kind, e.g. `MutatingWebhookConfiguration`.
    pub fn kind(self) -> &'static str {
        match self {
            Self::Mutating => "MutatingWebhookConfiguration",
            Self::Validating => "ValidatingWebhookConfiguration",
        }
    }

    /// The plural resource name, e.g. `mutatingwebhookconfigurations`.
    pub fn resource(self) -> &'static str {
        match self {
            Self::Mutating => "mutatingwebhookconfigurations",
            Self::Validating => "validatingwebhookconfigurations",
        }
    }
}

/// One invalid field of a webhook configuration, in the shape of a Kubernetes `StatusCause`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldError {
    /// The field path, e.g. `webhooks[0].clientConfig.url`.
    pub field: String,
    /// The cause reason: `FieldValueRequired`, `FieldValueInvalid`, `FieldValueNotSupported`,
    /// `FieldValueDuplicate` or `FieldValueForbidden`.
    pub reason: &'static str,
    /// The message without the field, e.g. `Invalid value: 31: must be between 1 and 30`.
    pub message: String,
}

impl FieldError {
    fn required(field: impl Into<String>, detail: &str) -> Self {
        let message = if detail.is_empty() {
            "Required value".to_string()
        } else {
            format!("Required value: {detail}")
        };
        Self {
            field: field.into(),
            reason: "FieldValueRequired",
            message,
        }
    }

    fn invalid(field: impl Into<String>, value: &Value, detail: &str) -> Self {
        Self {
            field: field.into(),
            reason: "FieldValueInvalid",
            message: format!("Invalid value: {}: {detail}", go_value(value)),
        }
    }

    fn not_supported(field: impl Into<String>, value: &Value, supported: &[&str]) -> Self {
        let list: Vec<String> = supported.iter().map(|s| format!("\"{s}\"")).collect();
        Self {
            field: field.into(),
            reason: "FieldValueNotSupported",
            message: format!(
                "Unsupported value: {}: supported values: {}",
                go_value(value),
                list.join(", ")
            ),
        }
    }

    fn duplicate(field: impl Into<String>, value: &Value) -> Self {
        Self {
            field: field.into(),
            reason: "FieldValueDuplicate",
            message: format!("Duplicate value: {}", go_value(value)),
        }
    }

    fn forbidden(field: impl Into<String>, detail: &str) -> Self {
        Self {
            field: field.into(),
            reason: "FieldValueForbidden",
            message: format!("Forbidden: {detail}"),
        }
    }

    /// This error as a `StatusCause` object (`reason`, `message`, `field`).
    pub fn to_cause(&self) -> Value {
        json!({ "reason": self.reason, "message": self.message, "field": self.field })
    }
}

impl fmt::Display for FieldError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.field, self.message)
    }
}

/// Render a JSON value the way Go's `%#v`-ish field errors do: strings quoted, numbers bare.
fn go_value(value: &Value) -> String {
    match value {
        Value::String(s) => format!("{s:?}"),
        Value::Null => "null".to_string(),
        other => other.to_string(),
    }
}

/// The whole-object message kube-apiserver gives for an invalid webhook configuration:
/// `MutatingWebhookConfiguration.admissionregistration.k8s.io "NAME" is invalid: [a, b]`.
pub fn invalid_message(kind: ConfigurationKind, name: &str, errors: &[FieldError]) -> String {
    let list: Vec<String> = errors.iter().map(ToString::to_string).collect();
    let joined = if list.len() == 1 {
        list.join("")
    } else {
        format!("[{}]", list.join(", "))
    };
    format!(
        "{}.admissionregistration.k8s.io {name:?} is invalid: {joined}",
        kind.kind()
    )
}

const OPERATIONS: [&str; 5] = ["*", "CREATE", "UPDATE", "DELETE", "CONNECT"];
const SCOPES: [&str; 3] = ["*", "Cluster", "Namespaced"];
const FAILURE_POLICIES: [&str; 2] = ["Fail", "Ignore"];
const MATCH_POLICIES: [&str; 2] = ["Exact", "Equivalent"];
const SIDE_EFFECTS: [&str; 2] = ["None", "NoneOnDryRun"];
const REINVOCATION_POLICIES: [&str; 2] = ["Never", "IfNeeded"];

/// Check a webhook configuration object the way kube-apiserver validates it on create and update.
/// Returns every problem found, each naming its field; an empty list means valid.
///
/// Differences from kube-apiserver, on purpose: `clientConfig.url` may use plain `http` when the
/// host is a loopback address or `localhost` (for tests); `admissionReviewVersions` must contain
/// `v1` (the only version this server speaks); `matchConditions` (CEL) are refused as unsupported.
pub fn validate_configuration(kind: ConfigurationKind, config: &Value) -> Vec<FieldError> {
    let mut errors = Vec::new();
    let Some(obj) = config.as_object() else {
        errors.push(FieldError::invalid("", config, "must be an object"));
        return errors;
    };
    let name = obj
        .get("metadata")
        .and_then(|m| m.get("name"))
        .and_then(Value::as_str)
        .unwrap_or("");
    if name.is_empty() {
        errors.push(FieldError::required(
            "metadata.name",
            "name or generateName is required",
        ));
    }
    let webhooks = match obj.get("webhooks") {
        None | Some(Value::Null) => return errors,
        Some(Value::Array(list)) => list,
        Some(other) => {
            errors.push(FieldError::invalid("webhooks", other, "must be a list"));
            return errors;
        }
    };
    let mut names = BTreeSet::new();
    for (i, hook) in webhooks.iter().enumerate() {
        let path = format!("webhooks[{i}]");
        validate_webhook(kind, &path, hook, &mut names, &mut errors);
    }
    errors
}

fn validate_webhook(
    kind: ConfigurationKind,
    path: &str,
    hook: &Value,
    names: &mut BTreeSet<String>,
    errors: &mut Vec<FieldError>,
) {
    let Some(hook) = hook.as_object() else {
        errors.push(FieldError::invalid(path, hook, "must be an object"));
        return;
    };
    match hook.get("name").and_then(Value::as_str) {
        None | Some("") => errors.push(FieldError::required(format!("{path}.name"), "")),
        Some(name) => {
            let segments = name.split('.').count();
            if segments < 3 || !name.split('.').all(is_dns_label) {
                errors.push(FieldError::invalid(
                    format!("{path}.name"),
                    &json!(name),
                    "should be a domain with at least three segments separated by dots",
                ));
            }
            if !names.insert(name.to_string()) {
                errors.push(FieldError::duplicate(format!("{path}.name"), &json!(name)));
            }
        }
    }

    validate_client_config(
        &format!("{path}.clientConfig"),
        hook.get("clientConfig"),
        errors,
    );

    match hook.get("rules") {
        None | Some(Value::Null) => {}
        Some(Value::Array(rules)) => {
            for (j, rule) in rules.iter().enumerate() {
                validate_rule(&format!("{path}.rules[{j}]"), rule, errors);
            }
        }
        Some(other) => errors.push(FieldError::invalid(
            format!("{path}.rules"),
            other,
            "must be a list",
        )),
    }

    check_enum(
        hook,
        path,
        "failurePolicy",
        &FAILURE_POLICIES,
        false,
        errors,
    );
    check_enum(hook, path, "matchPolicy", &MATCH_POLICIES, false, errors);
    check_enum(hook, path, "sideEffects", &SIDE_EFFECTS, true, errors);
    if kind == ConfigurationKind::Mutating {
        check_enum(
            hook,
            path,
            "reinvocationPolicy",
            &REINVOCATION_POLICIES,
            false,
            errors,
        );
    } else if hook.contains_key("reinvocationPolicy") {
        errors.push(FieldError::forbidden(
            format!("{path}.reinvocationPolicy"),
            "only mutating webhooks may set reinvocationPolicy",
        ));
    }

    match hook.get("timeoutSeconds") {
        None | Some(Value::Null) => {}
        Some(value) => match value.as_i64() {
            Some(1..=30) => {}
            _ => errors.push(FieldError::invalid(
                format!("{path}.timeoutSeconds"),
                value,
                "the timeout value must be between 1 and 30 seconds",
            )),
        },
    }

    match hook.get("admissionReviewVersions") {
        None | Some(Value::Null) => errors.push(FieldError::required(
            format!("{path}.admissionReviewVersions"),
            "must specify one of v1, v1beta1",
        )),
        Some(Value::Array(versions)) => {
            if !versions.iter().any(|v| v.as_str() == Some("v1")) {
                errors.push(FieldError::invalid(
                    format!("{path}.admissionReviewVersions"),
                    &Value::Array(versions.clone()),
                    "must include v1: this server sends AdmissionReview v1 only",
                ));
            }
        }
        Some(other) => errors.push(FieldError::invalid(
            format!("{path}.admissionReviewVersions"),
            other,
            "must be a list of strings",
        )),
    }

    for field in ["namespaceSelector", "objectSelector"] {
        if let Some(selector) = hook.get(field).filter(|v| !v.is_null())
            && let Err(e) = LabelSelector::from_json(selector)
        {
            errors.push(FieldError::invalid(
                format!("{path}.{field}"),
                selector,
                &selector_reason(e),
            ));
        }
    }

    if hook
        .get("matchConditions")
        .is_some_and(|v| v.as_array().is_some_and(|a| !a.is_empty()))
    {
        errors.push(FieldError::forbidden(
            format!("{path}.matchConditions"),
            "matchConditions (CEL expressions) are not supported by ramp-sim",
        ));
    }
}

fn check_enum(
    hook: &Map<String, Value>,
    path: &str,
    field: &str,
    allowed: &[&str],
    required: bool,
    errors: &mut Vec<FieldError>,
) {
    match hook.get(field) {
        None | Some(Value::Null) => {
            if required {
                errors.push(FieldError::not_supported(
                    format!("{path}.{field}"),
                    &json!(""),
                    allowed,
                ));
            }
        }
        Some(value) => {
            if !value.as_str().is_some_and(|s| allowed.contains(&s)) {
                errors.push(FieldError::not_supported(
                    format!("{path}.{field}"),
                    value,
                    allowed,
                ));
            }
        }
    }
}

fn validate_client_config(path: &str, config: Option<&Value>, errors: &mut Vec<FieldError>) {
    let Some(config) = config.and_then(Value::as_object) else {
        errors.push(FieldError::required(
            path,
            "exactly one of url or service is required",
        ));
        return;
    };
    let url = config.get("url").filter(|v| !v.is_null());
    let service = config.get("service").filter(|v| !v.is_null());
    match (url, service) {
        (Some(_), Some(_)) | (None, None) => {
            errors.push(FieldError::required(
                path,
                "exactly one of url or service is required",
            ));
        }
        (Some(url), None) => {
            let field = format!("{path}.url");
            match url.as_str().map(parse_webhook_url) {
                Some(Ok(_)) => {}
                Some(Err(detail)) => errors.push(FieldError::invalid(field, url, &detail)),
                None => errors.push(FieldError::invalid(field, url, "must be a string")),
            }
        }
        (None, Some(service)) => {
            let field = format!("{path}.service");
            for key in ["namespace", "name"] {
                if service
                    .get(key)
                    .and_then(Value::as_str)
                    .is_none_or(str::is_empty)
                {
                    errors.push(FieldError::required(
                        format!("{field}.{key}"),
                        &format!("service {key} is required"),
                    ));
                }
            }
            if let Some(port) = service.get("port").filter(|v| !v.is_null())
                && !port.as_i64().is_some_and(|p| (1..=65535).contains(&p))
            {
                errors.push(FieldError::invalid(
                    format!("{field}.port"),
                    port,
                    "port is not valid: must be between 1 and 65535, inclusive",
                ));
            }
            if let Some(p) = service.get("path").filter(|v| !v.is_null()) {
                match p.as_str() {
                    Some(s) if s.starts_with('/') && !s.contains(['?', '#']) => {}
                    _ => errors.push(FieldError::invalid(
                        format!("{field}.path"),
                        p,
                        "must be an absolute path without a query or fragment",
                    )),
                }
            }
        }
    }
    if let Some(bundle) = config.get("caBundle").filter(|v| !v.is_null()) {
        let decoded = bundle
            .as_str()
            .and_then(|s| base64::engine::general_purpose::STANDARD.decode(s).ok());
        if decoded.is_none() {
            errors.push(FieldError::invalid(
                format!("{path}.caBundle"),
                bundle,
                "must be base64-encoded",
            ));
        }
    }
}

fn validate_rule(path: &str, rule: &Value, errors: &mut Vec<FieldError>) {
    let Some(rule) = rule.as_object() else {
        errors.push(FieldError::invalid(path, rule, "must be an object"));
        return;
    };
    for key in ["operations", "apiGroups", "apiVersions", "resources"] {
        let field = format!("{path}.{key}");
        let Some(list) = rule
            .get(key)
            .and_then(Value::as_array)
            .filter(|l| !l.is_empty())
        else {
            errors.push(FieldError::required(field, ""));
            continue;
        };
        let strings: Vec<Option<&str>> = list.iter().map(Value::as_str).collect();
        if strings.iter().any(Option::is_none) {
            errors.push(FieldError::invalid(
                field,
                &Value::Array(list.clone()),
                "must be a list of strings",
            ));
            continue;
        }
        let strings: Vec<&str> = strings.into_iter().flatten().collect();
        if strings.len() > 1 && strings.contains(&"*") {
            errors.push(FieldError::invalid(
                field.clone(),
                &Value::Array(list.clone()),
                "if '*' is present, must not specify other values",
            ));
        }
        match key {
            "operations" => {
                for (k, op) in strings.iter().enumerate() {
                    if !OPERATIONS.contains(op) {
                        errors.push(FieldError::not_supported(
                            format!("{field}[{k}]"),
                            &json!(op),
                            &OPERATIONS,
                        ));
                    }
                }
            }
            "resources" => {
                for (k, res) in strings.iter().enumerate() {
                    if res.is_empty() {
                        errors.push(FieldError::required(format!("{field}[{k}]"), ""));
                    } else if res.starts_with('/') {
                        errors.push(FieldError::invalid(
                            format!("{field}[{k}]"),
                            &json!(res),
                            "resource must not be empty",
                        ));
                    }
                }
            }
            "apiVersions" => {
                for (k, v) in strings.iter().enumerate() {
                    if v.is_empty() {
                        errors.push(FieldError::required(
                            format!("{field}[{k}]"),
                            "version must not be empty",
                        ));
                    }
                }
            }
            _ => {}
        }
    }
    if let Some(scope) = rule.get("scope").filter(|v| !v.is_null())
        && !scope.as_str().is_some_and(|s| SCOPES.contains(&s))
    {
        errors.push(FieldError::not_supported(
            format!("{path}.scope"),
            scope,
            &SCOPES,
        ));
    }
}

fn is_dns_label(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 63
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !s.starts_with('-')
        && !s.ends_with('-')
}

/// Fill in the defaults kube-apiserver stores for a webhook configuration (v1): `failurePolicy:
/// Fail`, `matchPolicy: Equivalent`, `namespaceSelector: {}`, `objectSelector: {}`,
/// `timeoutSeconds: 10`, `reinvocationPolicy: Never` (mutating), rule `scope: "*"` and service
/// `port: 443`. Fields already set are left alone; a value that is not an object is left as is.
pub fn default_configuration(kind: ConfigurationKind, config: &mut Value) {
    let Some(hooks) = config.get_mut("webhooks").and_then(Value::as_array_mut) else {
        return;
    };
    for hook in hooks.iter_mut().filter_map(Value::as_object_mut) {
        let mut set = |key: &str, value: Value| {
            if hook.get(key).is_none_or(Value::is_null) {
                hook.insert(key.to_string(), value);
            }
        };
        set("failurePolicy", json!("Fail"));
        set("matchPolicy", json!("Equivalent"));
        set("namespaceSelector", json!({}));
        set("objectSelector", json!({}));
        set("timeoutSeconds", json!(10));
        if kind == ConfigurationKind::Mutating {
            set("reinvocationPolicy", json!("Never"));
        }
        if let Some(rules) = hook.get_mut("rules").and_then(Value::as_array_mut) {
            for rule in rules.iter_mut().filter_map(Value::as_object_mut) {
                if rule.get("scope").is_none_or(Value::is_null) {
                    rule.insert("scope".to_string(), json!("*"));
                }
            }
        }
        if let Some(service) = hook
            .get_mut("clientConfig")
            .and_then(|c| c.get_mut("service"))
            .and_then(Value::as_object_mut)
            && service.get("port").is_none_or(Value::is_null)
        {
            service.insert("port".to_string(), json!(443));
        }
    }
}

/// A parsed `clientConfig.url`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct WebhookUrl {
    pub https: bool,
    /// Host without brackets (an IPv6 address is bare).
    pub host: String,
    pub port: u16,
    /// Path and query, starting with `/`.
    pub path_and_query: String,
}

impl WebhookUrl {
    pub(crate) fn authority(&self) -> String {
        if self.host.contains(':') {
            format!("[{}]:{}", self.host, self.port)
        } else {
            format!("{}:{}", self.host, self.port)
        }
    }
}

/// Parse a webhook URL. `https` always; `http` only for loopback hosts. No user info, no fragment.
pub(crate) fn parse_webhook_url(url: &str) -> Result<WebhookUrl, String> {
    let parsed = parse_url(url)?;
    if !parsed.https && !is_loopback_host(&parsed.host) {
        return Err("'https' is the only allowed URL scheme (ramp-sim also accepts 'http' for loopback hosts)"
            .to_string());
    }
    Ok(parsed)
}

/// Parse any `http`/`https` URL into its parts (used for webhook URLs and service map targets).
pub(crate) fn parse_url(url: &str) -> Result<WebhookUrl, String> {
    let uri: http::Uri = url.parse().map_err(|e| format!("not a valid URL: {e}"))?;
    let https = match uri.scheme_str() {
        Some("https") => true,
        Some("http") => false,
        Some(other) => {
            return Err(format!(
                "unsupported URL scheme {other:?}: 'https' is the only allowed URL scheme"
            ));
        }
        None => return Err("must be an absolute URL with scheme https".to_string()),
    };
    let authority = uri.authority().ok_or("must contain a host")?;
    if authority.as_str().contains('@') {
        return Err("user information is not permitted in the URL".to_string());
    }
    if url.contains('#') {
        return Err("fragments are not permitted in the URL".to_string());
    }
    let host = authority
        .host()
        .trim_start_matches('[')
        .trim_end_matches(']')
        .to_string();
    if host.is_empty() {
        return Err("must contain a host".to_string());
    }
    let port = authority.port_u16().unwrap_or(if https { 443 } else { 80 });
    let path_and_query = uri.path_and_query().map_or("/".to_string(), |p| {
        let s = p.as_str();
        if s.is_empty() {
            "/".to_string()
        } else {
            s.to_string()
        }
    });
    Ok(WebhookUrl {
        https,
        host,
        port,
        path_and_query,
    })
}

fn is_loopback_host(host: &str) -> bool {
    host == "localhost" || host.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

/// `failurePolicy`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum FailurePolicy {
    Fail,
    Ignore,
}

/// Where a webhook is called.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Endpoint {
    Url(WebhookUrl),
    Service {
        namespace: String,
        name: String,
        port: u16,
        path: String,
    },
}

/// One rule of a webhook (`rules[]`).
#[derive(Debug, Clone)]
pub(crate) struct Rule {
    pub operations: Vec<String>,
    pub api_groups: Vec<String>,
    pub api_versions: Vec<String>,
    pub resources: Vec<String>,
    pub scope: String,
}

/// One webhook of a configuration, parsed and defaulted.
#[derive(Debug, Clone)]
pub(crate) struct Webhook {
    pub name: String,
    pub configuration: String,
    pub endpoint: Endpoint,
    /// PEM bytes from `clientConfig.caBundle`.
    pub ca_bundle: Option<Arc<Vec<u8>>>,
    pub rules: Vec<Rule>,
    pub failure_policy: FailurePolicy,
    pub namespace_selector: LabelSelector,
    pub object_selector: LabelSelector,
    pub side_effects: String,
    pub timeout: Duration,
    pub reinvoke_if_needed: bool,
}

/// A configuration that cannot be used: names the object and lists the invalid fields.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    /// Which kind of configuration.
    pub kind: ConfigurationKind,
    /// `metadata.name` of the configuration.
    pub name: String,
    /// Every invalid field.
    pub errors: Vec<FieldError>,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&invalid_message(self.kind, &self.name, &self.errors))
    }
}

impl std::error::Error for ConfigError {}

/// Validate and parse one configuration into its webhooks, in declaration order.
pub(crate) fn parse_configuration(
    kind: ConfigurationKind,
    config: &Value,
) -> Result<Vec<Webhook>, ConfigError> {
    let name = config
        .get("metadata")
        .and_then(|m| m.get("name"))
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_string();
    let errors = validate_configuration(kind, config);
    if !errors.is_empty() {
        return Err(ConfigError { kind, name, errors });
    }
    let mut config = config.clone();
    default_configuration(kind, &mut config);
    let hooks = config
        .get("webhooks")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let mut out = Vec::with_capacity(hooks.len());
    for (i, hook) in hooks.iter().enumerate() {
        out.push(parse_webhook(&name, hook).map_err(|e| ConfigError {
            kind,
            name: name.clone(),
            errors: vec![FieldError {
                field: format!("webhooks[{i}].{}", e.field),
                ..e
            }],
        })?);
    }
    Ok(out)
}

/// Parse one already validated and defaulted webhook. Errors carry a field path relative to it.
fn parse_webhook(configuration: &str, hook: &Value) -> Result<Webhook, FieldError> {
    let text = |key: &str| {
        hook.get(key)
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string()
    };
    let strings = |value: Option<&Value>| -> Vec<String> {
        value
            .and_then(Value::as_array)
            .map(|l| {
                l.iter()
                    .filter_map(Value::as_str)
                    .map(str::to_string)
                    .collect()
            })
            .unwrap_or_default()
    };
    let client = hook.get("clientConfig").cloned().unwrap_or(Value::Null);
    let endpoint = if let Some(url) = client.get("url").and_then(Value::as_str) {
        Endpoint::Url(
            parse_webhook_url(url)
                .map_err(|d| FieldError::invalid("clientConfig.url", &json!(url), &d))?,
        )
    } else {
        let service = client.get("service").cloned().unwrap_or(Value::Null);
        let port = service.get("port").and_then(Value::as_i64).unwrap_or(443);
        Endpoint::Service {
            namespace: service
                .get("namespace")
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_string(),
            name: service
                .get("name")
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_string(),
            port: u16::try_from(port).map_err(|_| {
                FieldError::invalid("clientConfig.service.port", &json!(port), "out of range")
            })?,
            path: service
                .get("path")
                .and_then(Value::as_str)
                .unwrap_or("/")
                .to_string(),
        }
    };
    let ca_bundle = match client.get("caBundle").and_then(Value::as_str) {
        None | Some("") => None,
        Some(b64) => Some(Arc::new(
            base64::engine::general_purpose::STANDARD
                .decode(b64)
                .map_err(|_| {
                    FieldError::invalid(
                        "clientConfig.caBundle",
                        &json!(b64),
                        "must be base64-encoded",
                    )
                })?,
        )),
    };
    let rules = hook
        .get("rules")
        .and_then(Value::as_array)
        .map(|rules| {
            rules
                .iter()
                .map(|r| Rule {
                    operations: strings(r.get("operations")),
                    api_groups: strings(r.get("apiGroups")),
                    api_versions: strings(r.get("apiVersions")),
                    resources: strings(r.get("resources")),
                    scope: r
                        .get("scope")
                        .and_then(Value::as_str)
                        .unwrap_or("*")
                        .to_string(),
                })
                .collect()
        })
        .unwrap_or_default();
    let selector = |key: &str| -> Result<LabelSelector, FieldError> {
        let value = hook.get(key).cloned().unwrap_or(Value::Null);
        LabelSelector::from_json(&value)
            .map_err(|e| FieldError::invalid(key, &value, &selector_reason(e)))
    };
    let timeout = hook
        .get("timeoutSeconds")
        .and_then(Value::as_u64)
        .unwrap_or(10)
        .clamp(1, 30);
    Ok(Webhook {
        name: text("name"),
        configuration: configuration.to_string(),
        endpoint,
        ca_bundle,
        rules,
        failure_policy: if text("failurePolicy") == "Ignore" {
            FailurePolicy::Ignore
        } else {
            FailurePolicy::Fail
        },
        namespace_selector: selector("namespaceSelector")?,
        object_selector: selector("objectSelector")?,
        side_effects: text("sideEffects"),
        timeout: Duration::from_secs(timeout),
        reinvoke_if_needed: text("reinvocationPolicy") == "IfNeeded",
    })
}

fn selector_reason(e: SelectorError) -> String {
    match e {
        SelectorError::Label { reason, .. } | SelectorError::Field { reason, .. } => reason,
    }
}
