//! Header modifiers: what a rule does to the request headers a backend
//! receives and to the response headers the client gets back.

use std::collections::BTreeMap;

use serde_json::Value;

use super::MeshError;
use super::json::Ctx;

/// Set, add and remove operations on one header map. Names are lower-cased
/// (header names are case-insensitive); `add` appends to an existing value
/// after a comma, as proxies join repeated headers.
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct HeaderOps {
    set: Vec<(String, String)>,
    add: Vec<(String, String)>,
    remove: Vec<String>,
}

impl HeaderOps {
    /// Applies set, then add, then remove.
    pub fn apply(&self, headers: &mut BTreeMap<String, String>) {
        for (k, v) in &self.set {
            headers.insert(k.clone(), v.clone());
        }
        for (k, v) in &self.add {
            headers
                .entry(k.clone())
                .and_modify(|old| {
                    old.push(',');
                    old.push_str(v);
                })
                .or_insert_with(|| v.clone());
        }
        for k in &self.remove {
            headers.remove(k);
        }
    }

    /// Istio `HeaderOperations`: `{set: {name: value}, add: {name: value}, remove: [name]}`.
    pub fn istio(ctx: &Ctx, v: Option<&Value>, field: &str) -> Result<Self, MeshError> {
        let Some(m) = ctx.obj(v, field)? else {
            return Ok(HeaderOps::default());
        };
        let map = |k: &str| -> Result<Vec<(String, String)>, MeshError> {
            Ok(ctx
                .string_map(m.get(k), &format!("{field}.{k}"))?
                .into_iter()
                .map(|(n, v)| (n.to_ascii_lowercase(), v))
                .collect())
        };
        Ok(HeaderOps {
            set: map("set")?,
            add: map("add")?,
            remove: names(ctx, m.get("remove"), &format!("{field}.remove"))?,
        })
    }

    /// Gateway API `HTTPHeaderFilter`: `{set: [{name, value}], add: [{name, value}], remove: [name]}`.
    pub fn gateway_api(ctx: &Ctx, v: Option<&Value>, field: &str) -> Result<Self, MeshError> {
        let Some(m) = ctx.obj(v, field)? else {
            return Err(ctx.err(field, "is required for this filter type"));
        };
        let list = |k: &str| -> Result<Vec<(String, String)>, MeshError> {
            let mut out = Vec::new();
            for (i, h) in ctx
                .arr(m.get(k), &format!("{field}.{k}"))?
                .iter()
                .enumerate()
            {
                let f = format!("{field}.{k}[{i}]");
                ctx.obj(Some(h), &f)?;
                let name = ctx
                    .str(h.get("name"), &format!("{f}.name"))?
                    .filter(|n| !n.is_empty())
                    .ok_or_else(|| ctx.err(&format!("{f}.name"), "is required"))?;
                let value = ctx
                    .str(h.get("value"), &format!("{f}.value"))?
                    .unwrap_or("");
                out.push((name.to_ascii_lowercase(), value.to_owned()));
            }
            Ok(out)
        };
        Ok(HeaderOps {
            set: list("set")?,
            add: list("add")?,
            remove: names(ctx, m.get("remove"), &format!("{field}.remove"))?,
        })
    }

    /// These operations followed by `other`'s.
    pub fn then(&self, other: &HeaderOps) -> HeaderOps {
        let mut out = self.clone();
        out.set.extend(other.set.iter().cloned());
        out.add.extend(other.add.iter().cloned());
        out.remove.extend(other.remove.iter().cloned());
        out
    }
}

fn names(ctx: &Ctx, v: Option<&Value>, field: &str) -> Result<Vec<String>, MeshError> {
    ctx.arr(v, field)?
        .iter()
        .enumerate()
        .map(|(i, n)| {
            let f = format!("{field}[{i}]");
            ctx.str(Some(n), &f)?
                .map(str::to_ascii_lowercase)
                .ok_or_else(|| ctx.err(&f, "must be a header name"))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn set_overwrites_add_appends_remove_deletes_case_insensitively() {
        let obj = json!({"metadata": {"name": "r"}});
        let ctx = Ctx::new("HTTPRoute", &obj);
        let ops = HeaderOps::gateway_api(
            &ctx,
            Some(&json!({"set": [{"name": "X-Set", "value": "new"}],
                         "add": [{"name": "X-Add", "value": "two"}],
                         "remove": ["X-Gone"]})),
            "f",
        )
        .unwrap();
        let mut h: BTreeMap<String, String> = [("x-set", "old"), ("x-add", "one"), ("x-gone", "1")]
            .into_iter()
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .collect();
        ops.apply(&mut h);
        assert_eq!(h.get("x-set").map(String::as_str), Some("new"));
        assert_eq!(h.get("x-add").map(String::as_str), Some("one,two"));
        assert!(!h.contains_key("x-gone"));
        let err =
            HeaderOps::gateway_api(&ctx, Some(&json!({"set": [{"value": "v"}]})), "f").unwrap_err();
        assert_eq!(err.to_string(), "HTTPRoute r: f.set[0].name: is required");
    }
}
