//! Label selectors as webhooks use them (`objectSelector`, `namespaceSelector`).

use serde_json::Value;

/// A parsed `metav1.LabelSelector`. An empty selector (or a missing one) matches everything.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LabelSelector {
    requirements: Vec<Requirement>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Requirement {
    In(String, Vec<String>),
    NotIn(String, Vec<String>),
    Exists(String),
    DoesNotExist(String),
}

impl LabelSelector {
    /// Parse `{matchLabels: {..}, matchExpressions: [{key, operator, values}]}`; `null` is empty.
    pub fn from_json(value: &Value) -> Result<Self, String> {
        let mut requirements = Vec::new();
        let obj = match value {
            Value::Null => return Ok(Self::default()),
            Value::Object(obj) => obj,
            _ => return Err("a label selector must be an object".to_string()),
        };
        match obj.get("matchLabels") {
            None | Some(Value::Null) => {}
            Some(Value::Object(labels)) => {
                for (key, value) in labels {
                    let value = value
                        .as_str()
                        .ok_or_else(|| format!("matchLabels[{key}] must be a string"))?;
                    requirements.push(Requirement::In(key.clone(), vec![value.to_string()]));
                }
            }
            Some(_) => return Err("matchLabels must be a map of strings".to_string()),
        }
        match obj.get("matchExpressions") {
            None | Some(Value::Null) => {}
            Some(Value::Array(exprs)) => {
                for (i, expr) in exprs.iter().enumerate() {
                    requirements.push(parse_expression(i, expr)?);
                }
            }
            Some(_) => return Err("matchExpressions must be a list".to_string()),
        }
        Ok(Self { requirements })
    }

    /// Whether this selector selects everything.
    pub fn is_empty(&self) -> bool {
        self.requirements.is_empty()
    }

    /// Whether a `metadata.labels` value (an object of strings, or null) satisfies this selector.
    pub fn matches(&self, labels: &Value) -> bool {
        let get = |key: &str| labels.get(key).and_then(Value::as_str);
        self.requirements.iter().all(|req| match req {
            Requirement::In(key, values) => get(key).is_some_and(|v| values.iter().any(|x| x == v)),
            Requirement::NotIn(key, values) => {
                get(key).is_none_or(|v| values.iter().all(|x| x != v))
            }
            Requirement::Exists(key) => get(key).is_some(),
            Requirement::DoesNotExist(key) => get(key).is_none(),
        })
    }
}

fn parse_expression(i: usize, expr: &Value) -> Result<Requirement, String> {
    let key = expr
        .get("key")
        .and_then(Value::as_str)
        .filter(|k| !k.is_empty())
        .ok_or_else(|| format!("matchExpressions[{i}].key is required"))?
        .to_string();
    let values: Vec<String> = match expr.get("values") {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::Array(list)) => list
            .iter()
            .map(|v| v.as_str().map(str::to_string))
            .collect::<Option<_>>()
            .ok_or_else(|| format!("matchExpressions[{i}].values must be strings"))?,
        Some(_) => return Err(format!("matchExpressions[{i}].values must be a list")),
    };
    let operator = expr.get("operator").and_then(Value::as_str).unwrap_or("");
    match operator {
        "In" | "NotIn" if values.is_empty() => Err(format!(
            "matchExpressions[{i}].values must be non-empty when operator is {operator}"
        )),
        "Exists" | "DoesNotExist" if !values.is_empty() => Err(format!(
            "matchExpressions[{i}].values must be empty when operator is {operator}"
        )),
        "In" => Ok(Requirement::In(key, values)),
        "NotIn" => Ok(Requirement::NotIn(key, values)),
        "Exists" => Ok(Requirement::Exists(key)),
        "DoesNotExist" => Ok(Requirement::DoesNotExist(key)),
        other => Err(format!(
            "matchExpressions[{i}].operator {other:?} is not a valid selector operator (In, NotIn, Exists, DoesNotExist)"
        )),
    }
}
