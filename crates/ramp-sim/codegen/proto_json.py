#!/usr/bin/env python3
"""Writes crates/ramp-sim/src/proto/generated.rs: JSON <-> protobuf for the k8s-pb messages.

The `k8s-pb` crate holds prost messages for every Kubernetes type but no JSON
form. This script reads its sources (field numbers, wire kinds) and the
`k8s-openapi` sources (the JSON name of each field), both from the cargo
registry, and writes one `ToJson` and one `FromJson` impl per message of the
modules below. Messages whose JSON is not an object with the proto's fields
(Time, IntOrString, Quantity, RawExtension, ...) are written by hand in
`src/proto.rs` and skipped here.

Run from the workspace root after changing the k8s-pb version:
    python3 crates/ramp-sim/codegen/proto_json.py && cargo fmt --all
"""

import json
import os
import re
import subprocess
import sys

# k8s-pb module paths (under k8s_pb::) whose messages get impls.
MODULES = [
    "apimachinery/pkg/apis/meta/v1",
    "apimachinery/pkg/runtime",
    "api/core/v1",
    "api/apps/v1",
    "api/batch/v1",
    "api/rbac/v1",
    "api/networking/v1",
    "api/policy/v1",
    "api/scheduling/v1",
    "api/coordination/v1",
    "api/autoscaling/v1",
    "api/autoscaling/v2",
    "api/authentication/v1",
    "api/authorization/v1",
    "api/admissionregistration/v1",
    "api/events/v1",
    "api/discovery/v1",
    "apiextensions_apiserver/pkg/apis/apiextensions/v1",
]

# Go structs embedded with `json:",inline"`: a message field in protobuf, its
# fields flattened into the parent in JSON.
INLINE = {
    ("api/core/v1", "ConfigMapEnvSource", "local_object_reference"),
    ("api/core/v1", "ConfigMapKeySelector", "local_object_reference"),
    ("api/core/v1", "ConfigMapProjection", "local_object_reference"),
    ("api/core/v1", "ConfigMapVolumeSource", "local_object_reference"),
    ("api/core/v1", "SecretEnvSource", "local_object_reference"),
    ("api/core/v1", "SecretKeySelector", "local_object_reference"),
    ("api/core/v1", "SecretProjection", "local_object_reference"),
    ("api/core/v1", "EphemeralContainer", "ephemeral_container_common"),
    ("api/core/v1", "PersistentVolumeSpec", "persistent_volume_source"),
    ("api/core/v1", "Probe", "handler"),
    ("api/core/v1", "Volume", "volume_source"),
    ("api/networking/v1", "IngressRule", "ingress_rule_value"),
    ("api/admissionregistration/v1", "NamedRuleWithOperations", "rule_with_operations"),
    ("api/admissionregistration/v1", "RuleWithOperations", "rule"),
}

# Go writes every non-pointer scalar into protobuf, zero or not, and leaves
# out `omitempty` zeros in JSON. A pointer field's zero (replicas: 0,
# runAsUser: 0, gracePeriodSeconds: 0) means something, and the protobuf
# does not say which is which, so zeros are kept except for these
# non-pointer `omitempty` fields ((module, message) -> JSON names), the ones
# clients send most: their zero is the same as leaving them out.
OMIT_ZERO = {
    ("apimachinery/pkg/apis/meta/v1", "ObjectMeta"): {"generation"},
    ("api/core/v1", "Container"): {"stdin", "stdinOnce", "tty"},
    ("api/core/v1", "EphemeralContainerCommon"): {"stdin", "stdinOnce", "tty"},
    ("api/core/v1", "ContainerPort"): {"hostPort"},
    ("api/core/v1", "PodSpec"): {"hostNetwork", "hostPID", "hostIPC"},
    ("api/core/v1", "VolumeMount"): {"readOnly"},
    ("api/core/v1", "Probe"): {
        "initialDelaySeconds",
        "timeoutSeconds",
        "periodSeconds",
        "successThreshold",
        "failureThreshold",
    },
    ("api/core/v1", "ServicePort"): {"nodePort"},
    ("api/core/v1", "ServiceSpec"): {"publishNotReadyAddresses"},
    ("api/core/v1", "EnvVarSource"): set(),
    ("api/apps/v1", "DeploymentSpec"): {"minReadySeconds", "paused"},
    ("api/apps/v1", "ReplicaSetSpec"): {"minReadySeconds"},
    ("api/apps/v1", "StatefulSetSpec"): {"minReadySeconds"},
    ("api/apps/v1", "DaemonSetSpec"): {"minReadySeconds"},
    ("api/apps/v1", "DeploymentStatus"): {
        "observedGeneration",
        "replicas",
        "updatedReplicas",
        "readyReplicas",
        "availableReplicas",
        "unavailableReplicas",
        "collisionCount",
    },
    ("api/apps/v1", "ReplicaSetStatus"): {
        "fullyLabeledReplicas",
        "readyReplicas",
        "availableReplicas",
        "observedGeneration",
    },
    ("api/batch/v1", "JobStatus"): {"active", "succeeded", "failed"},
}

# Written by hand in src/proto.rs (their JSON is a string, a number or raw JSON).
SPECIAL = {
    "apimachinery/pkg/apis/meta/v1": {"Time", "MicroTime", "Duration", "FieldsV1"},
    "apimachinery/pkg/runtime": {"RawExtension"},
    "apiextensions_apiserver/pkg/apis/apiextensions/v1": {
        "Json",
        "JsonSchemaPropsOrArray",
        "JsonSchemaPropsOrBool",
        "JsonSchemaPropsOrStringArray",
    },
}


# The group version of each module, for messages k8s-pb gives no `Resource`
# impl (reviews, TokenRequest, Eviction, ...): a message with `metadata` is
# taken under its own name as kind.
GROUP_VERSIONS = {
    "api/core/v1": "v1",
    "api/apps/v1": "apps/v1",
    "api/batch/v1": "batch/v1",
    "api/rbac/v1": "rbac.authorization.k8s.io/v1",
    "api/networking/v1": "networking.k8s.io/v1",
    "api/policy/v1": "policy/v1",
    "api/scheduling/v1": "scheduling.k8s.io/v1",
    "api/coordination/v1": "coordination.k8s.io/v1",
    "api/autoscaling/v1": "autoscaling/v1",
    "api/autoscaling/v2": "autoscaling/v2",
    "api/authentication/v1": "authentication.k8s.io/v1",
    "api/authorization/v1": "authorization.k8s.io/v1",
    "api/admissionregistration/v1": "admissionregistration.k8s.io/v1",
    "api/events/v1": "events.k8s.io/v1",
    "api/discovery/v1": "discovery.k8s.io/v1",
    "apiextensions_apiserver/pkg/apis/apiextensions/v1": "apiextensions.k8s.io/v1",
}


def crate_dirs():
    meta = json.loads(
        subprocess.check_output(["cargo", "metadata", "--format-version", "1"], text=True)
    )
    dirs = {}
    for p in meta["packages"]:
        if p["name"] in ("k8s-pb", "k8s-openapi"):
            dirs[p["name"]] = os.path.dirname(p["manifest_path"])
    return dirs["k8s-pb"], dirs["k8s-openapi"]


def norm(name):
    return re.sub(r"[^a-z0-9]", "", name.lower())


def openapi_names(openapi_dir):
    """(module, normalized struct) -> {normalized field: json name}; and a global map."""
    per_struct = {}
    global_names = {}
    versions = sorted(
        (d for d in os.listdir(os.path.join(openapi_dir, "src")) if d.startswith("v1_")),
        key=lambda v: int(v.split("_")[1]),
    )
    for version in versions:  # oldest first: newer versions override
        root = os.path.join(openapi_dir, "src", version)
        for dirpath, _, files in os.walk(root):
            module = os.path.relpath(dirpath, root)
            for f in files:
                if not f.endswith(".rs") or f == "mod.rs":
                    continue
                text = open(os.path.join(dirpath, f)).read()
                m = re.search(r"pub struct (\w+)", text)
                if not m:
                    continue
                fields = {}
                for json_name, _ in re.findall(r'"([^"]+)" => Field::Key_(\w+)', text):
                    fields[norm(json_name)] = json_name
                    global_names.setdefault(norm(json_name), set()).add(json_name)
                per_struct[(module, norm(m.group(1)))] = fields
    return per_struct, global_names


FIELD_RE = re.compile(
    r"#\[prost\((?P<attr>[^\]]*)\)\]\s*pub (?P<name>(?:r#)?\w+):", re.S
)


def parse_module(pb_dir, module):
    text = open(os.path.join(pb_dir, "src", module, "mod.rs")).read()
    structs = []
    resources = []
    for m in re.finditer(
        r"::prost::Message\)\]\s*pub struct (\w+) \{(\}|.*?\n\})", text, re.S
    ):
        fields = []
        for f in FIELD_RE.finditer(m.group(2)):
            attr = f.group("attr")
            tag = re.search(r'tag = "(\d+)"', attr).group(1)
            kind = attr.split(",")[0].strip()
            if kind.startswith("btree_map"):
                value = re.search(r'btree_map = "string, (\w+)"', attr).group(1)
                shape = "map_" + value
            else:
                card = "rep" if "repeated" in attr else "opt"
                base = {"bytes = \"vec\"": "bytes"}.get(kind, kind)
                if base in ("int32", "int64", "bool", "double"):
                    base = "scalar"
                shape = card + "_" + base
            fields.append(
                {
                    "rust": f.group("name"),
                    "bare": f.group("name").removeprefix("r#"),
                    "shape": shape,
                    "boxed": "boxed" in attr,
                    "tag": int(tag),
                }
            )
        structs.append((m.group(1), fields))
    for m in re.finditer(
        r'impl crate::Resource for (\w+) \{\s*const API_VERSION: &\'static str = "([^"]+)";'
        r'.*?const KIND: &\'static str = "([^"]+)";',
        text,
        re.S,
    ):
        resources.append((m.group(1), m.group(2), m.group(3)))
    return structs, resources


def main():
    pb_dir, openapi_dir = crate_dirs()
    per_struct, global_names = openapi_names(openapi_dir)
    out = []
    w = out.append
    w("// @generated by crates/ramp-sim/codegen/proto_json.py from the k8s-pb and k8s-openapi")
    w("// sources (field numbers from k8s-pb, JSON names from k8s-openapi). Do not edit.")
    w("")
    w("use serde_json::{Map, Value};")
    w("")
    w("use super::conv::*;")
    w("")
    dispatch = []
    warnings = []
    for module in MODULES:
        structs, resources = parse_module(pb_dir, module)
        path = "k8s_pb::" + module.replace("/", "::")
        for name, fields in structs:
            if name in SPECIAL.get(module, set()):
                continue
            known = per_struct.get((module, norm(name)), {})
            for f in fields:
                n = norm(f["bare"])
                if (module, name, f["bare"]) in INLINE:
                    f["shape"] = "inline"
                    f["json"] = ""
                elif n in known:
                    f["json"] = known[n]
                elif len(global_names.get(n, ())) == 1:
                    f["json"] = next(iter(global_names[n]))
                else:
                    parts = f["bare"].split("_")
                    f["json"] = parts[0] + "".join(p[:1].upper() + p[1:] for p in parts[1:])
                    warnings.append(f"{module} {name}.{f['bare']} -> {f['json']} (guessed)")
            w(f"impl ToJson for {path}::{name} {{")
            w("    fn to_json(&self) -> Value {")
            w("        #[allow(unused_mut)]")
            w("        let mut m = Map::new();")
            for f in fields:
                acc = f"&self.{f['rust']}"
                if f["shape"] in ("opt_message", "inline"):
                    acc = f"self.{f['rust']}.as_deref()" if f["boxed"] else f"self.{f['rust']}.as_ref()"
                if f["shape"] == "inline":
                    w(f"        put_inline(&mut m, {acc});")
                elif f["json"] in OMIT_ZERO.get((module, name), set()):
                    w(f'        put_opt_scalar_omitempty(&mut m, "{f["json"]}", {acc});')
                else:
                    w(f'        put_{f["shape"]}(&mut m, "{f["json"]}", {acc});')
            w("        Value::Object(m)")
            w("    }")
            w("}")
            w("")
            w(f"impl FromJson for {path}::{name} {{")
            w("    #[allow(unused_variables)]")
            w("    fn from_json(v: &Value) -> Result<Self, String> {")
            w("        let o = as_object(v)?;")
            w("        Ok(Self {")
            for f in fields:
                if f["shape"] == "inline":
                    get = "Some(FromJson::from_json(v)?)"
                else:
                    get = f'get_{f["shape"]}(o, "{f["json"]}")?'
                if f["boxed"]:
                    get += ".map(Box::new)"
                w(f"            {f['rust']}: {get},")
            w("        })")
            w("    }")
            w("}")
            w("")
        with_impl = {name for name, _, _ in resources}
        for name, api_version, kind in resources:
            dispatch.append((api_version, kind, f"{path}::{name}"))
        for name, fields in structs:
            if (
                name not in with_impl
                and module in GROUP_VERSIONS
                and not name.endswith(("List", "Spec", "Template"))
                and any(f["rust"] == "metadata" for f in fields)
            ):
                dispatch.append((GROUP_VERSIONS[module], name, f"{path}::{name}"))
    w("/// Decodes a message of the given type and turns it into its JSON object")
    w("/// (without `apiVersion`/`kind`); `None` for a type not listed.")
    w("pub(super) fn decode_object(api_version: &str, kind: &str, raw: &[u8]) -> Option<Result<Value, prost::DecodeError>> {")
    w("    Some(match (api_version, kind) {")
    for api_version, kind, ty in sorted(dispatch):
        w(f'        ("{api_version}", "{kind}") => decode_as::<{ty}>(raw),')
    w("        _ => return None,")
    w("    })")
    w("}")
    w("")
    w("/// Encodes a JSON object of the given type; `None` for a type not listed.")
    w("pub(super) fn encode_object(api_version: &str, kind: &str, obj: &Value) -> Option<Result<Vec<u8>, String>> {")
    w("    Some(match (api_version, kind) {")
    for api_version, kind, ty in sorted(dispatch):
        w(f'        ("{api_version}", "{kind}") => encode_as::<{ty}>(obj),')
    w("        _ => return None,")
    w("    })")
    w("}")
    w("")
    w("/// The types `decode_object` takes, as (apiVersion, kind).")
    w("pub(super) const TYPES: &[(&str, &str)] = &[")
    for api_version, kind, _ in sorted(dispatch):
        w(f'    ("{api_version}", "{kind}"),')
    w("];")
    target = os.path.join(os.path.dirname(__file__), "..", "src", "proto", "generated.rs")
    with open(target, "w") as fh:
        fh.write("\n".join(out) + "\n")
    for line in warnings:
        print("warning:", line, file=sys.stderr)
    print(f"wrote {os.path.normpath(target)}: {len(dispatch)} types", file=sys.stderr)


if __name__ == "__main__":
    main()
