"""Update validation of kube_server.py: the fields kube-apiserver refuses to change, and the
CEL transition rules of CRDs, with upstream's field paths, reasons and messages.

Every check returns causes {"reason", "field", "message"} where message is the field error's
ErrorBody() (k8s.io/apimachinery/pkg/util/validation/field, v0.33: "Invalid value: <value>:
<detail>", "Forbidden: <detail>", ...); kube_server.invalid() joins them into the Status as
errors.NewInvalid does. Values are rendered as Go's %#v renders them there (quoted strings,
`[]string{"a"}`, `v1.LabelSelector{MatchLabels:map[string]string{"app":"x"}, ...}`).

Sources (kubernetes/kubernetes): pkg/apis/core/validation/validation.go
(ValidatePersistentVolumeUpdate, ValidatePersistentVolumeClaimUpdate, ValidateConfigMapUpdate,
ValidateSecretUpdate, validateUpgradeDowngradeClusterIPs/IPFamilies,
validateLoadBalancerClassField), pkg/registry/apps/{deployment,daemonset}/strategy.go
(selector immutable on apps/v1), pkg/apis/networking/validation (ValidateIngressClassUpdate),
pkg/apis/storage/validation (ValidateCSIDriverUpdate), apiextensions-apiserver
pkg/apis/apiextensions/validation (group, names.plural; scope and names.kind once Established)
and pkg/apiserver/schema/cel/validation.go (transition rules).

Simplification: the PersistentVolume/PersistentVolumeClaim "immutable after creation" messages
end with a go-cmp diff upstream (whose output go-cmp deliberately randomises between spaces
and non-breaking spaces). Here the prefix is exact and the diff is a simplified rendering in
go-cmp's layout: only the changed fields of the Go struct, old value on a "-" line, new value
on a "+" line (values as compact JSON), and "... // N identical fields".
"""

from __future__ import annotations

import json
import re

# --------------------------------------------------------------------------
# field errors
# --------------------------------------------------------------------------


def invalid_value(field, value_repr, detail):
    return {"reason": "FieldValueInvalid", "field": field, "message": f"Invalid value: {value_repr}: {detail}"}


def forbidden(field, detail):
    return {"reason": "FieldValueForbidden", "field": field, "message": f"Forbidden: {detail}"}


def required(field, detail=""):
    return {"reason": "FieldValueRequired", "field": field,
            "message": "Required value" + (f": {detail}" if detail else "")}


def immutable(field, value_repr):
    return invalid_value(field, value_repr, "field is immutable")


# --------------------------------------------------------------------------
# Go %#v of the values these checks report
# --------------------------------------------------------------------------


def gq(s):
    return json.dumps(s, ensure_ascii=False) if isinstance(s, str) else json.dumps(str(s))


def go_str(v):
    """A (named) string type, or a nil pointer to one."""
    return "null" if v is None else gq(v)


def go_strings(v, typ="[]string"):
    if v is None:
        return f"{typ}(nil)"
    return typ + "{" + ", ".join(gq(x) for x in v) + "}"


def go_string_map(v):
    if v is None:
        return "map[string]string(nil)"
    return "map[string]string{" + ", ".join(f"{gq(k)}:{gq(v[k])}" for k in sorted(v)) + "}"


def go_label_selector(sel):
    if sel is None:
        return "null"
    exprs = sel.get("matchExpressions")
    if exprs is None:
        e = "[]v1.LabelSelectorRequirement(nil)"
    else:
        e = "[]v1.LabelSelectorRequirement{" + ", ".join(
            f'v1.LabelSelectorRequirement{{Key:{gq(x.get("key", ""))}, Operator:{gq(x.get("operator", ""))}, '
            f'Values:{go_strings(x.get("values"))}}}' for x in exprs) + "}"
    return f'v1.LabelSelector{{MatchLabels:{go_string_map(sel.get("matchLabels"))}, MatchExpressions:{e}}}'


def go_bool(v):
    return "null" if v is None else ("true" if v else "false")


# --------------------------------------------------------------------------
# simplified go-cmp diffs
# --------------------------------------------------------------------------

PV_SOURCE_FIELDS = [("gcePersistentDisk", "GCEPersistentDisk"), ("awsElasticBlockStore", "AWSElasticBlockStore"),
                    ("hostPath", "HostPath"), ("glusterfs", "Glusterfs"), ("nfs", "NFS"), ("rbd", "RBD"),
                    ("quobyte", "Quobyte"), ("iscsi", "ISCSI"), ("flexVolume", "FlexVolume"), ("cinder", "Cinder"),
                    ("cephfs", "CephFS"), ("fc", "FC"), ("flocker", "Flocker"), ("azureFile", "AzureFile"),
                    ("vsphereVolume", "VsphereVolume"), ("azureDisk", "AzureDisk"),
                    ("photonPersistentDisk", "PhotonPersistentDisk"), ("portworxVolume", "PortworxVolume"),
                    ("scaleIO", "ScaleIO"), ("local", "Local"), ("storageos", "StorageOS"), ("csi", "CSI")]
PVC_SPEC_FIELDS = [("accessModes", "AccessModes"), ("selector", "Selector"), ("resources", "Resources"),
                   ("volumeName", "VolumeName"), ("storageClassName", "StorageClassName"),
                   ("volumeMode", "VolumeMode"), ("dataSource", "DataSource"), ("dataSourceRef", "DataSourceRef"),
                   ("volumeAttributesClassName", "VolumeAttributesClassName")]


def cmp_diff(type_name, fields, old, new):
    lines = [f"  {type_name}{{"]
    same = 0
    for js, go in fields:
        a, b = old.get(js), new.get(js)
        if a == b:
            same += 1
            continue
        lines.append(f"- \t{go}: {_cmp_value(a)},")
        lines.append(f"+ \t{go}: {_cmp_value(b)},")
    if same:
        lines.append(f"  \t... // {same} identical fields")
    lines.append("  }")
    return "\n".join(lines) + "\n"


def _cmp_value(v):
    return "nil" if v is None else json.dumps(v, separators=(",", ":"), sort_keys=True)


# --------------------------------------------------------------------------
# immutable fields of the built-in kinds
# --------------------------------------------------------------------------


def validate_update(group, kind, old, new):
    """Causes for an update of a built-in object (old and new are the stored forms)."""
    fn = UPDATE_RULES.get((group, kind))
    return fn(old, new) if fn else []


def _spec(o):
    s = o.get("spec")
    return s if isinstance(s, dict) else {}


def _pv(old, new):
    os_, ns = _spec(old), _spec(new)
    out = []
    osrc = {k: os_.get(k) for k, _ in PV_SOURCE_FIELDS if os_.get(k) is not None}
    nsrc = {k: ns.get(k) for k, _ in PV_SOURCE_FIELDS if ns.get(k) is not None}
    # setting csi.controllerExpandSecretRef where there was none is allowed
    if isinstance(osrc.get("csi"), dict) and isinstance(nsrc.get("csi"), dict) and \
            "controllerExpandSecretRef" not in osrc["csi"] and "controllerExpandSecretRef" in nsrc["csi"]:
        nsrc["csi"] = {k: v for k, v in nsrc["csi"].items() if k != "controllerExpandSecretRef"}
    if osrc != nsrc:
        out.append(forbidden("spec.persistentvolumesource", "spec.persistentvolumesource is immutable after "
                                                            "creation\n" + cmp_diff("core.PersistentVolumeSource",
                                                                                    PV_SOURCE_FIELDS, osrc, nsrc)))
    if os_.get("volumeMode") != ns.get("volumeMode"):
        out.append(immutable("volumeMode", go_str(ns.get("volumeMode"))))
    if os_.get("nodeAffinity") is not None and os_.get("nodeAffinity") != ns.get("nodeAffinity"):
        na = ns.get("nodeAffinity")
        out.append(immutable("nodeAffinity", "null" if na is None else
                             "core.VolumeNodeAffinity{Required:(*core.NodeSelector)(%s)}" %
                             ("nil" if not na.get("required") else "0xc000a2c0c0")))
    return out


def _pvc(old, new):
    os_, ns = _spec(old), _spec(new)
    oc, nc = json.loads(json.dumps(os_)), json.loads(json.dumps(ns))
    out = []
    if not os_.get("volumeName"):  # volumeName may be set once (the binder does it)
        if "volumeName" in nc:
            oc["volumeName"] = nc["volumeName"]
        else:
            oc.pop("volumeName", None)
    ann_old = ((old.get("metadata") or {}).get("annotations") or {})
    ann_new = ((new.get("metadata") or {}).get("annotations") or {})
    beta = "volume.beta.kubernetes.io/storage-class"
    if beta in ann_old and "storageClassName" not in os_ and nc.get("storageClassName") == ann_old[beta] and \
            (beta not in ann_new or ann_new[beta] == ann_old[beta]):
        nc.pop("storageClassName", None)
    else:
        if ann_new.get(beta, "") != ann_old.get(beta, ""):
            out.append(immutable(f"metadata.annotations.{beta}", go_str(ann_new.get(beta, ""))))
        if "storageClassName" in nc and "storageClassName" not in os_ and \
                (beta not in ann_old or nc["storageClassName"] == ann_old[beta]):
            nc.pop("storageClassName")
    bound = ((new.get("status") or {}).get("phase")) == "Bound"
    if bound and isinstance((nc.get("resources") or {}).get("requests"), dict):
        old_storage = ((os_.get("resources") or {}).get("requests") or {}).get("storage")
        if old_storage is None:
            nc["resources"]["requests"].pop("storage", None)
        else:
            nc["resources"]["requests"]["storage"] = old_storage
    if bound and nc.get("volumeAttributesClassName") is not None:
        if os_.get("volumeAttributesClassName") is None:
            nc.pop("volumeAttributesClassName")
        else:
            nc["volumeAttributesClassName"] = os_["volumeAttributesClassName"]
    if oc != nc:
        out.append(forbidden("spec", "spec is immutable after creation except resources.requests and "
                                     "volumeAttributesClassName for bound claims\n" +
                             cmp_diff("core.PersistentVolumeClaimSpec", PVC_SPEC_FIELDS, oc, nc)))
    from kube_quantity import parse_quantity, QuantityError
    try:
        osz = ((os_.get("resources") or {}).get("requests") or {}).get("storage")
        nsz = ((ns.get("resources") or {}).get("requests") or {}).get("storage")
        o_q = parse_quantity(osz).value if osz is not None else 0
        n_q = parse_quantity(nsz).value if nsz is not None else 0
        cap = ((old.get("status") or {}).get("capacity") or {}).get("storage")
        c_q = parse_quantity(cap).value if cap is not None else 0
    except QuantityError:
        o_q = n_q = c_q = 0
    if n_q < o_q and n_q <= c_q:
        # RecoverVolumeExpansionFailure (on by default since 1.32): shrinking is allowed down to
        # just above status.capacity
        out.append(forbidden("spec.resources.requests.storage", "field can not be less than status.capacity"))
    if os_.get("volumeMode") != ns.get("volumeMode"):
        out.append(immutable("volumeMode", go_str(ns.get("volumeMode"))))
    ovac, nvac = os_.get("volumeAttributesClassName"), ns.get("volumeAttributesClassName")
    if ovac is not None and ovac != nvac:
        if nvac is None:
            out.append(forbidden("spec.volumeAttributesClassName", "update from non-nil value to nil is forbidden"))
        elif nvac == "":
            out.append(forbidden("spec.volumeAttributesClassName",
                                 "update from non-nil value to an empty string is forbidden"))
    return out


def _selector(old, new):
    if _spec(old).get("selector") != _spec(new).get("selector"):
        return [immutable("spec.selector", go_label_selector(_spec(new).get("selector")))]
    return []


def _service(old, new):
    os_, ns = _spec(old), _spec(new)
    out = []
    if "ExternalName" not in (os_.get("type"), ns.get("type")):
        oips, nips = os_.get("clusterIPs") or [], ns.get("clusterIPs") or []
        o_headless, n_headless = oips == ["None"], nips == ["None"]
        if not (o_headless and n_headless):
            rep = go_strings(ns.get("clusterIPs"))
            if len(oips) == len(nips):
                for i, ip in enumerate(oips):
                    if ip != nips[i]:
                        out.append(invalid_value(f"spec.clusterIPs[{i}]", rep, "may not change once set"))
            elif len(oips) > len(nips):
                if not nips:
                    out.append(invalid_value("spec.clusterIPs[0]", rep, "primary clusterIP can not be unset"))
                elif oips[0] != nips[0]:
                    out.append(invalid_value("spec.clusterIPs[0]", rep, "may not change once set"))
                if len(nips) == 1 and ns.get("ipFamilyPolicy") != "SingleStack":
                    out.append(invalid_value("spec.ipFamilyPolicy", go_str(ns.get("ipFamilyPolicy")),
                                             "must be set to 'SingleStack' when releasing the secondary clusterIP"))
            elif oips and nips[0] != oips[0]:
                out.append(invalid_value("spec.clusterIPs[0]", rep, "may not change once set"))
        ofam, nfam = os_.get("ipFamilies") or [], ns.get("ipFamilies") or []
        if o_headless == n_headless and not n_headless and ofam and nfam:
            if len(ofam) == len(nfam):
                for i, f in enumerate(ofam):
                    if f != nfam[i]:
                        out.append(invalid_value("spec.ipFamilies[0]", go_strings(nfam, "[]core.IPFamily"),
                                                 "may not change once set"))
            elif nfam[0] != ofam[0]:
                out.append(invalid_value("spec.ipFamilies[0]", go_strings(ns.get("clusterIPs")),
                                         "may not change once set"))
    if os_.get("type") == "LoadBalancer" and ns.get("type") == "LoadBalancer" and \
            os_.get("loadBalancerClass") != ns.get("loadBalancerClass"):
        out.append(invalid_value("spec.loadBalancerClass", go_str(ns.get("loadBalancerClass")),
                                 "may not change once set"))
    return out


def _immutable_data(old, new, with_type):
    out = []
    if with_type and old.get("type") != new.get("type"):
        out.append(immutable("type", go_str(new.get("type"))))
    if old.get("immutable") is True:
        msg = "field is immutable when `immutable` is set"
        if new.get("immutable") is not True:
            out.append(forbidden("immutable", msg))
        if (old.get("data") or None) != (new.get("data") or None):
            out.append(forbidden("data", msg))
        if not with_type and (old.get("binaryData") or None) != (new.get("binaryData") or None):
            out.append(forbidden("binaryData", msg))
    return out


def _ingress_class(old, new):
    if _spec(old).get("controller") != _spec(new).get("controller"):
        return [immutable("spec.controller", go_str(_spec(new).get("controller")))]
    return []


def _csidriver(old, new):
    os_, ns = _spec(old), _spec(new)
    out = []
    if os_.get("attachRequired") != ns.get("attachRequired"):
        out.append(immutable("spec.attachedRequired", go_bool(ns.get("attachRequired"))))
    if os_.get("volumeLifecycleModes") != ns.get("volumeLifecycleModes"):
        out.append(immutable("spec.volumeLifecycleModes",
                             go_strings(ns.get("volumeLifecycleModes"), "[]storage.VolumeLifecycleMode")))
    return out


def _crd(old, new):
    os_, ns = _spec(old), _spec(new)
    out = []
    established = any(c.get("type") == "Established" and c.get("status") == "True"
                      for c in ((old.get("status") or {}).get("conditions") or []))
    if established:
        if os_.get("scope") != ns.get("scope"):
            out.append(immutable("spec.scope", go_str(ns.get("scope"))))
        if (os_.get("names") or {}).get("kind") != (ns.get("names") or {}).get("kind"):
            out.append(immutable("spec.names.kind", go_str((ns.get("names") or {}).get("kind"))))
    if os_.get("group") != ns.get("group"):
        out.append(immutable("spec.group", go_str(ns.get("group"))))
    if (os_.get("names") or {}).get("plural") != (ns.get("names") or {}).get("plural"):
        out.append(immutable("spec.names.plural", go_str((ns.get("names") or {}).get("plural"))))
    return out


UPDATE_RULES = {
    ("", "PersistentVolume"): _pv,
    ("", "PersistentVolumeClaim"): _pvc,
    ("apps", "Deployment"): _selector,
    ("apps", "DaemonSet"): _selector,
    ("", "Service"): _service,
    ("", "ConfigMap"): lambda o, n: _immutable_data(o, n, False),
    ("", "Secret"): lambda o, n: _immutable_data(o, n, True),
    ("networking.k8s.io", "IngressClass"): _ingress_class,
    ("storage.k8s.io", "CSIDriver"): _csidriver,
    ("apiextensions.k8s.io", "CustomResourceDefinition"): _crd,
}

# --------------------------------------------------------------------------
# CEL transition rules (x-kubernetes-validations that use oldSelf)
# --------------------------------------------------------------------------

_PATH = r"((?:\.[A-Za-z_][A-Za-z0-9_]*)*)"
RULE_FORMS = [
    ("eq", re.compile(r"^\s*self" + _PATH + r"\s*==\s*oldSelf" + _PATH + r"\s*$")),
    ("has", re.compile(r"^\s*has\(\s*self" + _PATH + r"\s*\)\s*==\s*has\(\s*oldSelf" + _PATH + r"\s*\)\s*$")),
]
MISSING = object()


class CelError(Exception):
    pass


def _select(v, path, for_has=False):
    parts = [p for p in path.split(".") if p]
    for i, p in enumerate(parts):
        if not isinstance(v, dict):
            raise CelError(f"no such key: {p}")
        if p not in v:
            if for_has and i == len(parts) - 1:
                return MISSING
            raise CelError(f"no such key: {p}")
        v = v[p]
    return v


def eval_transition_rule(rule, new, old):
    """True/False for a supported rule form, None for a rule this server does not evaluate;
    raises CelError (e.g. "no such key: group") as CEL evaluation would."""
    for form, rx in RULE_FORMS:
        m = rx.match(rule)
        if not m:
            continue
        a, b = m.group(1), m.group(2)
        if form == "eq":
            return _select(new, a) == _select(old, b)
        if not a or not b:
            return None
        return (_select(new, a, True) is not MISSING) == (_select(old, b, True) is not MISSING)
    return None


def transition_errors(schema, new, old, path=""):
    """Causes of the failed transition rules of a custom resource's schema on an update."""
    out: list = []
    _walk_rules(schema or {}, new, old, path, out)
    return out


def _walk_rules(s, new, old, path, out):
    if not isinstance(s, dict) or new is None or old is None:
        return
    for rule in s.get("x-kubernetes-validations") or []:
        text = rule.get("rule") or ""
        if "oldSelf" not in text:
            continue
        label = (rule.get("message") or "").strip() or text.strip()
        field = path + (rule.get("fieldPath") or "")
        try:
            ok = eval_transition_rule(text, new, old)
        except CelError as e:
            out.append(invalid_value(path, gq(s.get("type", "object")), f"{e} evaluating rule: {label}"))
            continue
        if ok is False:
            msg = (rule.get("message") or "").strip() or f"failed rule: {text.strip()}"
            reason = rule.get("reason")
            if reason == "FieldValueForbidden":
                out.append(forbidden(field, msg))
            elif reason == "FieldValueRequired":
                out.append(required(field, msg))
            elif reason == "FieldValueDuplicate":
                out.append({"reason": "FieldValueDuplicate", "field": field,
                            "message": f"Duplicate value: {gq(s.get('type', 'object'))}: {msg}"})
            else:
                out.append(invalid_value(field, gq(s.get("type", "object")), msg))
    if isinstance(new, dict) and isinstance(old, dict):
        props = s.get("properties") or {}
        addl = s.get("additionalProperties") if isinstance(s.get("additionalProperties"), dict) else None
        for k in sorted(new):
            if k not in old or (not path and k in ("apiVersion", "kind", "metadata")):
                continue
            sub = props.get(k, addl)
            if sub is not None:
                _walk_rules(sub, new[k], old[k], f"{path}.{k}" if path else k, out)
    elif isinstance(new, list) and isinstance(old, list) and s.get("x-kubernetes-list-type") == "map":
        keys = s.get("x-kubernetes-list-map-keys") or []
        items = s.get("items") if isinstance(s.get("items"), dict) else None
        for i, item in enumerate(new):
            if not isinstance(item, dict):
                continue
            match = next((o for o in old if isinstance(o, dict) and all(o.get(k) == item.get(k) for k in keys)),
                         None)
            if match is not None:
                _walk_rules(items, item, match, f"{path}[{i}]", out)
