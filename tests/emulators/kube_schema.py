"""Schemas for kube_server.py: what kube-apiserver's decoders know about each kind's fields.

Built-in kinds: the field names and types come from the model classes of the pinned
`kubernetes` Python client (generated from the upstream OpenAPI document of the same
Kubernetes minor version), read lazily. `typed_decode()` walks a request body the way the
apiserver's strict JSON decoding of a typed object does: unknown fields are dropped and
reported with their full path (`unknown field "spec.template.spec.containers[0].foo"`), a
repeated key of a known field is reported as `duplicate field "name"`, and the values of
resource.Quantity fields are parsed and stored in canonical form (an invalid one raises
kube_quantity.QuantityError with apimachinery's message).

Custom resources: `prune()` is the apiextensions-apiserver's structural pruning
(pkg/apiserver/schema/pruning/algorithm.go): fields not declared in the schema are removed
unless x-kubernetes-preserve-unknown-fields; apiVersion/kind/metadata are kept at the root
and in x-kubernetes-embedded-resource objects; unknown metadata fields are dropped. The
pruned paths come back sorted, as PruneWithOptions returns them.

Server-side apply: `ssa_unknown()` is structured-merge-diff's check of an applied
configuration against the type (`.spec.foo: field not declared in schema`, list items named
by their keys, `[name="c"]`, or index). Keys are visited in sorted order (the Go walker
visits a map in random order and stops at the first unknown key of each map).

JSON bodies: `load_json()` keeps duplicate keys (Go's decoder takes the last value and the
strict decoder reports the repeats) and the text of numbers (a Quantity given as a JSON
number is parsed from its text, as Quantity.UnmarshalJSON does).
"""

from __future__ import annotations

import json
import re

from kube_quantity import QuantityError, parse_quantity

# --------------------------------------------------------------------------
# JSON with duplicate keys
# --------------------------------------------------------------------------


class Pairs(list):
    """A JSON object as decoded: its (key, value) pairs in document order."""


class JFloat(float):
    """A JSON number with a fraction or exponent, keeping its text."""
    json_text: str = ""

    def __new__(cls, text):
        f = super().__new__(cls, text)
        f.json_text = text
        return f


def load_json(body):
    """The raw document: objects are Pairs (duplicates kept), floats JFloat."""
    return json.loads(body, object_pairs_hook=Pairs, parse_float=JFloat)


def plain(node, dups=None):
    """Pairs -> dict (the last value of a repeated key wins); duplicate keys appended to
    `dups` in document order as `duplicate field "k"` (the unstructured decoder's wording)."""
    if isinstance(node, Pairs):
        out, seen = {}, set()
        for k, v in node:
            if k in seen and dups is not None:
                dups.append(f'duplicate field "{k}"')
            seen.add(k)
            out[k] = plain(v, dups)
        return out
    if isinstance(node, list):
        return [plain(v, dups) for v in node]
    return node


# --------------------------------------------------------------------------
# built-in kinds: the kubernetes client's models
# --------------------------------------------------------------------------

_models = None

MODEL_OF_KIND = {
    ("", "Namespace"): "V1Namespace", ("", "ServiceAccount"): "V1ServiceAccount", ("", "Service"): "V1Service",
    ("", "ConfigMap"): "V1ConfigMap", ("", "Secret"): "V1Secret", ("", "PersistentVolume"): "V1PersistentVolume",
    ("", "PersistentVolumeClaim"): "V1PersistentVolumeClaim", ("apps", "Deployment"): "V1Deployment",
    ("apps", "DaemonSet"): "V1DaemonSet", ("networking.k8s.io", "Ingress"): "V1Ingress",
    ("networking.k8s.io", "IngressClass"): "V1IngressClass",
    ("networking.k8s.io", "NetworkPolicy"): "V1NetworkPolicy", ("storage.k8s.io", "CSIDriver"): "V1CSIDriver",
    ("apiextensions.k8s.io", "CustomResourceDefinition"): "V1CustomResourceDefinition",
    ("autoscaling", "Scale"): "V1Scale",
}

# resource.Quantity fields of the served kinds (the client types them as plain strings):
# (model, json field) -> "map" (ResourceList) or "scalar"
QUANTITY_FIELDS = {
    ("V1ResourceRequirements", "limits"): "map", ("V1ResourceRequirements", "requests"): "map",
    ("V1VolumeResourceRequirements", "limits"): "map", ("V1VolumeResourceRequirements", "requests"): "map",
    ("V1PodSpec", "overhead"): "map", ("V1EmptyDirVolumeSource", "sizeLimit"): "scalar",
    ("V1ResourceFieldSelector", "divisor"): "scalar", ("V1PersistentVolumeSpec", "capacity"): "map",
    ("V1PersistentVolumeClaimStatus", "capacity"): "map",
    ("V1PersistentVolumeClaimStatus", "allocatedResources"): "map",
}


def models():
    global _models
    if _models is None:
        from kubernetes.client import models as m  # ~0.4 s, once
        _models = m
    return _models


_fields_cache: dict = {}


def model_fields(name):
    """json field name -> type string of a model class."""
    f = _fields_cache.get(name)
    if f is None:
        cls = getattr(models(), name)
        f = {cls.attribute_map[k]: t for k, t in cls.openapi_types.items()}
        _fields_cache[name] = f
    return f


def typed_model(group, kind):
    return MODEL_OF_KIND.get((group, kind))


def _elem(t):
    m = re.fullmatch(r"list\[(.+)\]", t)
    if m:
        return "list", m.group(1)
    m = re.fullmatch(r"dict\(str, (.+)\)", t)
    if m:
        return "dict", m.group(1)
    return None, t


def _is_model(t):
    return t not in ("str", "int", "bool", "float", "object", "datetime", "date") and not _elem(t)[0]


def _join(path, key):
    return f"{path}.{key}" if path else key


def typed_decode(model, node, strict_errs=None):
    """Decode a raw JSON value (Pairs/lists) as the typed model: returns the plain value without
    unknown fields and with canonical quantities; appends `unknown field "p"` (first occurrence)
    and `duplicate field "k"` (known fields) to strict_errs in document order."""
    errs = strict_errs if strict_errs is not None else []
    return _decode(model, node, "", errs)


def _decode(t, node, path, errs, qkind=None):
    if node is None:
        return None
    if qkind == "scalar":
        return _quantity(node)
    kind, inner = _elem(t)
    if kind == "list":
        if not isinstance(node, list):
            return plain(node)
        return [_decode(inner, v, f"{path}[{i}]", errs) for i, v in enumerate(node)]
    if kind == "dict":
        if not isinstance(node, Pairs):
            return plain(node)
        out, seen = {}, set()
        for k, v in node:
            if k in seen:
                errs.append(f'duplicate field "{k}"')
            seen.add(k)
            out[k] = _quantity(v) if qkind == "map" and v is not None else _decode(inner, v, _join(path, k), errs)
        return out
    if not _is_model(t) or not isinstance(node, Pairs):
        return plain(node)
    fields = model_fields(t)
    out, seen, unknown = {}, set(), set()
    for k, v in node:
        if k not in fields:
            if k not in unknown:
                errs.append(f'unknown field "{_join(path, k)}"')
                unknown.add(k)
            continue
        if k in seen:
            errs.append(f'duplicate field "{k}"')
        seen.add(k)
        out[k] = _decode(fields[k], v, _join(path, k), errs, QUANTITY_FIELDS.get((t, k)))
    return out


def _quantity(v):
    if isinstance(v, (Pairs, list)) or isinstance(v, bool):
        raise QuantityError("quantities must match the regular expression "
                            "'^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$'")
    return str(parse_quantity(v))


def to_raw(v):
    """A plain value as the raw form typed_decode() takes."""
    if isinstance(v, dict):
        return Pairs((k, to_raw(x)) for k, x in v.items())
    if isinstance(v, list):
        return [to_raw(x) for x in v]
    return v


def typed_unknown_paths(model, obj):
    """Unknown field paths of a plain object against the model (no duplicates possible)."""
    errs: list = []
    clean = typed_decode(model, to_raw(obj), errs)
    return clean, [e for e in errs if e.startswith("unknown field")]


# --------------------------------------------------------------------------
# custom resources: structural pruning
# --------------------------------------------------------------------------

META_FIELDS = ("apiVersion", "kind", "metadata")


def prune(obj, schema):
    """Prune a custom resource in place (root = resource). Returns the sorted unknown paths,
    unknown metadata fields (as metadata.foo) first, as the apiextensions decoder lists them."""
    paths: list = []
    md = obj.get("metadata")
    meta_unknown = []
    if isinstance(md, dict):
        clean, errs = typed_unknown_paths("V1ObjectMeta", md)
        meta_unknown = ["metadata." + e[len('unknown field "'):-1] for e in errs]
        obj["metadata"] = clean
    s = dict(schema or {})
    s["x-kubernetes-embedded-resource"] = True
    _prune(obj, s, "", paths)
    paths.sort()
    return meta_unknown + paths


def _prune(x, s, path, paths):
    if s is not None and s.get("x-kubernetes-preserve-unknown-fields"):
        _skip_prune(x, s, path, paths)
        return
    if isinstance(x, dict):
        if s is None:
            for k in list(x):
                paths.append(_join(path, k))
                del x[k]
            return
        props = s.get("properties") or {}
        addl = s.get("additionalProperties")
        for k in list(x):
            if s.get("x-kubernetes-embedded-resource") and k in META_FIELDS:
                continue
            if k in props:
                _prune(x[k], props[k], _join(path, k), paths)
            elif isinstance(addl, dict):
                _prune(x[k], addl, _join(path, k), paths)
            elif addl is True:
                continue
            else:
                if k not in META_FIELDS or path:
                    paths.append(_join(path, k))
                del x[k]
    elif isinstance(x, list):
        items = s.get("items") if isinstance(s, dict) else None
        for i, v in enumerate(x):
            _prune(v, items if isinstance(items, dict) else None, f"{path}[{i}]", paths)


def _skip_prune(x, s, path, paths):
    if s is None:
        return
    if isinstance(x, dict):
        props = s.get("properties") or {}
        addl = s.get("additionalProperties")
        for k in list(x):
            if s.get("x-kubernetes-embedded-resource") and k in META_FIELDS:
                continue
            if k in props:
                _prune(x[k], props[k], _join(path, k), paths)
            elif isinstance(addl, dict):
                _prune(x[k], addl, _join(path, k), paths)
    elif isinstance(x, list):
        items = s.get("items")
        for i, v in enumerate(x):
            _skip_prune(v, items if isinstance(items, dict) else None, f"{path}[{i}]", paths)


# --------------------------------------------------------------------------
# server-side apply: structured-merge-diff's "field not declared in schema"
# --------------------------------------------------------------------------


def _smd_value(v):
    return json.dumps(v, separators=(",", ":"))


def _item_elem(item, keys, i):
    if keys and isinstance(item, dict) and all(k in item for k in keys[:1]):
        return "[" + ",".join(f"{k}={_smd_value(item[k])}" for k in keys if k in item) + "]"
    return f"[{i}]"


def ssa_unknown_typed(model, obj, assoc_keys):
    """SMD errors ("<path>: field not declared in schema") of an applied object of a built-in kind;
    assoc_keys(name, items) gives the keys of an associative list (or None)."""
    errs: list = []
    _smd_typed(model, obj, "", errs, assoc_keys, None)
    return errs


def _smd_typed(t, node, path, errs, assoc_keys, name):
    if node is None:
        return
    kind, inner = _elem(t)
    if kind == "list":
        if isinstance(node, list):
            keys = assoc_keys(name, node) if name else None
            for i, v in enumerate(node):
                _smd_typed(inner, v, path + _item_elem(v, keys, i), errs, assoc_keys, None)
        return
    if kind == "dict":
        if isinstance(node, dict):
            for k in sorted(node):
                _smd_typed(inner, node[k], f"{path}.{k}", errs, assoc_keys, k)
        return
    if not _is_model(t) or not isinstance(node, dict):
        return
    fields = model_fields(t)
    for k in sorted(node):
        if k not in fields:
            errs.append(f"{path}.{k}: field not declared in schema")
            return
        _smd_typed(fields[k], node[k], f"{path}.{k}", errs, assoc_keys, k)


def ssa_unknown_schema(schema, obj):
    """SMD errors of an applied custom resource against its structural schema (metadata typed)."""
    errs: list = []
    for k in sorted(obj):
        if k in ("apiVersion", "kind"):
            continue
        if k == "metadata":
            _smd_typed("V1ObjectMeta", obj[k], ".metadata", errs, lambda n, i: None, None)
            continue
        props = (schema or {}).get("properties") or {}
        if k not in props and not (schema or {}).get("x-kubernetes-preserve-unknown-fields"):
            errs.append(f".{k}: field not declared in schema")
            break
        _smd_schema(props.get(k), obj[k], f".{k}", errs)
    return errs


def _smd_schema(s, node, path, errs):
    if s is None or node is None:
        return
    if isinstance(node, dict):
        props = s.get("properties") or {}
        addl = s.get("additionalProperties")
        for k in sorted(node):
            if k in props:
                _smd_schema(props[k], node[k], f"{path}.{k}", errs)
            elif isinstance(addl, dict):
                _smd_schema(addl, node[k], f"{path}.{k}", errs)
            elif addl is True or s.get("x-kubernetes-preserve-unknown-fields") or \
                    (s.get("x-kubernetes-embedded-resource") and k in META_FIELDS):
                continue
            else:
                errs.append(f"{path}.{k}: field not declared in schema")
                return
    elif isinstance(node, list):
        items = s.get("items") if isinstance(s.get("items"), dict) else None
        keys = s.get("x-kubernetes-list-map-keys") if s.get("x-kubernetes-list-type") == "map" else None
        for i, v in enumerate(node):
            if s.get("x-kubernetes-list-type") == "set":
                elem = f"[={_smd_value(v)}]"
            else:
                elem = _item_elem(v, keys, i)
            _smd_schema(items, v, path + elem, errs)


def smd_error_text(errs):
    """ValidationErrors.Error() of structured-merge-diff."""
    if len(errs) == 1:
        return errs[0]
    return "\n".join(["errors:"] + ["  " + e for e in errs])


# --------------------------------------------------------------------------
# Go formatting used in apiserver messages
# --------------------------------------------------------------------------


def go_quote(s: str) -> str:
    """strconv.Quote."""
    out = ['"']
    for ch in s:
        o = ord(ch)
        if ch == '"':
            out.append('\\"')
        elif ch == "\\":
            out.append("\\\\")
        elif ch == "\n":
            out.append("\\n")
        elif ch == "\t":
            out.append("\\t")
        elif ch == "\r":
            out.append("\\r")
        elif o < 0x20 or o == 0x7F:
            out.append(f"\\x{o:02x}")
        else:
            out.append(ch)
    out.append('"')
    return "".join(out)


def go_plus_v(v) -> str:
    """fmt %+v of a decoded map[string]interface{} (maps print with sorted keys)."""
    if isinstance(v, dict):
        return "map[" + " ".join(f"{k}:{go_plus_v(v[k])}" for k in sorted(v)) + "]"
    if isinstance(v, list):
        return "[" + " ".join(go_plus_v(x) for x in v) + "]"
    if v is None:
        return "<nil>"
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, float):
        return getattr(v, "json_text", "") or (str(int(v)) if v.is_integer() else repr(v))
    return str(v)
