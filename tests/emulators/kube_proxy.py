"""The Kubernetes side of recording_proxy.py (`recording_proxy.py --kubernetes ...`).

recording_proxy.py holds the proxy itself (forwarding, logging, fault decisions, delay, hang);
this module holds what is particular to a Kubernetes API server:

* request_info(): the resource a request addresses, parsed from its path as the apiserver's
  RequestInfoFactory does (k8s.io/apiserver/pkg/endpoints/request/requestinfo.go): verb, group,
  version, resource, namespace, name, subresource.
* KubeMode.answer(): the fault answers, in the shapes the apiserver (or the load balancer in
  front of it) really sends (k8s.io/apiserver/pkg/server/filters, k8s.io/apimachinery errors):

    429         the priority-and-fairness (or max-in-flight) filter rejecting a request:
                `http.Error(w, "Too many requests, please try again later.", 429)` with
                `Retry-After: 1`: a text/plain body, NOT a Status (client-go turns it into reason
                TooManyRequests itself; kube-rs into reason "Failed to parse error data")
    429-status  the watch cache not ready yet: Status reason TooManyRequests, message
                "storage is (re)initializing", details.retryAfterSeconds 1, `Retry-After: 1`
    500         Status reason InternalError "Internal error occurred: resource quota evaluation
                timed out" (ResourceQuota admission giving up), details.causes [{message}]
    409         Status reason Conflict, an update on a stale resourceVersion: `Operation cannot
                be fulfilled on deployments.apps "comfyui": the object has been modified; please
                apply your changes to the latest version and try again`, details {name, group,
                kind} (kind = the resource, group left out for the core group)
    503         Status reason ServiceUnavailable "apiserver is shutting down", `Retry-After: 1`
                (the WithWaitGroup filter of an apiserver in graceful shutdown)
    reset       the connection is reset (TCP RST) without an answer (the load balancer)

  Each is answered before forwarding (nothing happens upstream); with the suffix `-after`
  (`500-after`, `reset-after`, ...) the request is forwarded first (the change happens), then
  the client gets that answer instead of the real one.
* kubeconfig(): a kubeconfig pointing at the proxy, the user entry copied from another one.
"""

from __future__ import annotations

import copy
import json
import os
import urllib.parse
import uuid

WRITE_METHODS = {"POST", "PUT", "PATCH", "DELETE"}
# namespace subresources: /api/v1/namespaces/{name}/{status|finalize} address the namespace
NAMESPACE_SUBRESOURCES = {"status", "finalize"}

BASE_FAULTS = ("429", "429-status", "500", "409", "503", "reset")
FAULT_MODES = BASE_FAULTS + tuple(f"{m}-after" for m in BASE_FAULTS)
DEFAULT_FAULT_MODES = "429,500,503,reset"

OPTIMISTIC_LOCK_MSG = "the object has been modified; please apply your changes to the latest version and try again"
# the APF filter's response headers (UIDs of the matched FlowSchema / PriorityLevelConfiguration)
PF_HEADERS = [("X-Kubernetes-Pf-Flowschema-Uid", "9d6b1f0e-0f5c-4a44-9d3b-5a1e2f3c4d5e"),
              ("X-Kubernetes-Pf-Prioritylevel-Uid", "4c2e8a7b-3d1f-4e6a-8b9c-0d1e2f3a4b5c")]


def request_info(method: str, path: str, query: dict) -> dict:
    """{verb, group, version, resource, namespace, name, subresource} of an API request.

    Non-resource requests (/version, /api, /apis, /apis/apps/v1, /openapi/...) get verb =
    the lowercase method and None for the rest. The core group is "". A namespace object
    (/api/v1/namespaces/x) has namespace "x" and name "x", as in the apiserver."""
    info = {"verb": method.lower(), "group": None, "version": None, "resource": None,
            "namespace": None, "name": None, "subresource": None}
    parts = [urllib.parse.unquote(p) for p in path.strip("/").split("/") if p]
    if len(parts) >= 3 and parts[0] == "apis":
        group, version, rest = parts[1], parts[2], parts[3:]
    elif len(parts) >= 2 and parts[0] == "api":
        group, version, rest = "", parts[1], parts[2:]
    else:
        return info
    verb = {"POST": "create", "PUT": "update", "PATCH": "patch", "DELETE": "delete", "GET": "get",
            "HEAD": "get"}.get(method)
    if rest and rest[0] == "watch":  # deprecated /api/v1/watch/... form
        rest, verb = rest[1:], "watch"
    if not rest or verb is None:
        return info
    namespace = None
    if rest[0] == "namespaces" and len(rest) > 1:
        namespace = rest[1]
        if len(rest) > 2 and rest[2] not in NAMESPACE_SUBRESOURCES:
            rest = rest[2:]
    name = rest[1] if len(rest) > 1 else None
    if name is None:
        if verb == "get":
            verb = "watch" if query.get("watch") in ("true", "1") else "list"
        elif verb == "delete":
            verb = "deletecollection"
    info.update(verb=verb, group=group, version=version, resource=rest[0], namespace=namespace,
                name=name, subresource=rest[2] if len(rest) > 2 else None)
    return info


def is_dry_run(method: str, query_lists: dict, body: bytes) -> bool:
    """dryRun=All in the query, or (DELETE) in the DeleteOptions body."""
    if "All" in query_lists.get("dryRun", []):
        return True
    if method == "DELETE" and body:
        try:
            opts = json.loads(body)
        except ValueError:
            return False
        return isinstance(opts, dict) and "All" in (opts.get("dryRun") or [])
    return False


def status_body(code: int, reason: str, message: str, details: dict | None = None) -> bytes:
    """A metav1.Status as the apiserver encodes it (field order of the Go struct, trailing
    newline of its JSON encoder; empty details left out)."""
    s = {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
         "message": message, "reason": reason}
    if details:
        s["details"] = details
    s["code"] = code
    return (json.dumps(s, separators=(",", ":")) + "\n").encode()


def _status_headers(extra=()):
    return [("Audit-Id", str(uuid.uuid4())), ("Cache-Control", "no-cache, private"),
            ("Content-Type", "application/json"), ("X-Content-Type-Options", "nosniff"), *extra]


def conflict_answer(fields: dict, body: bytes) -> tuple[int, list, bytes]:
    group, resource = fields.get("group") or "", fields.get("resource") or ""
    name = fields.get("name")
    if name is None and body:  # a create: the name is in the object
        try:
            name = (json.loads(body).get("metadata") or {}).get("name")
        except (ValueError, AttributeError):
            name = None
    name = name or ""
    qualified = f"{resource}.{group}" if group else resource
    details = {"name": name, **({"group": group} if group else {}), "kind": resource}
    message = f"Operation cannot be fulfilled on {qualified} {json.dumps(name)}: {OPTIMISTIC_LOCK_MSG}"
    return 409, _status_headers(), status_body(409, "Conflict", message, details)


class KubeMode:
    """The Kubernetes API flavour of the proxy (see recording_proxy.py for the interface)."""

    name = "kubernetes"
    fault_modes = FAULT_MODES
    default_fault_modes = DEFAULT_FAULT_MODES
    streams = True  # chunked answers (watches) are passed on as they arrive

    def classify(self, method: str, path: str, raw_query: str, headers, body: bytes):
        """(action, write, log fields). action = "METHOD /path", what --hang-after and
        --fault-match patterns are matched against."""
        lists = urllib.parse.parse_qs(raw_query, keep_blank_values=True)
        query = {k: v[-1] for k, v in lists.items()}
        info = request_info(method, path, query)
        dry = method in WRITE_METHODS and is_dry_run(method, lists, body)
        write = method in WRITE_METHODS and not dry
        action = f"{method} {path}"
        fields = {"query": query, "service": "kubernetes", "action": action, **info, "dry_run": dry}
        return action, write, fields

    @staticmethod
    def plan(fault: str) -> tuple[str, str]:
        """(when, what): when = before|after (forwarded first), what = answer|reset."""
        base, after = (fault[:-len("-after")], True) if fault.endswith("-after") else (fault, False)
        return ("after" if after else "before"), ("reset" if base == "reset" else "answer")

    @staticmethod
    def answer(fault: str, method: str, fields: dict, body: bytes) -> tuple[int, list, bytes]:
        base = fault[:-len("-after")] if fault.endswith("-after") else fault
        if base == "429":
            # net/http's http.Error: text/plain, nosniff, the message and a newline
            return 429, [("Content-Type", "text/plain; charset=utf-8"), ("X-Content-Type-Options", "nosniff"),
                         ("Retry-After", "1"), *PF_HEADERS], b"Too many requests, please try again later.\n"
        if base == "429-status":
            return 429, _status_headers([("Retry-After", "1")]), status_body(
                429, "TooManyRequests", "storage is (re)initializing", {"retryAfterSeconds": 1})
        if base == "500":
            cause = "resource quota evaluation timed out"
            return 500, _status_headers(), status_body(500, "InternalError", f"Internal error occurred: {cause}",
                                                       {"causes": [{"message": cause}]})
        if base == "409":
            return conflict_answer(fields, body)
        if base == "503":
            return 503, _status_headers([("Retry-After", "1")]), status_body(
                503, "ServiceUnavailable", "apiserver is shutting down")
        raise ValueError(f"no answer for fault {fault!r}")


# --------------------------------------------------------------------------
# kubeconfig
# --------------------------------------------------------------------------

# user entry fields holding file paths (resolved against the kubeconfig's directory)
_USER_FILE_FIELDS = ("client-certificate", "client-key", "tokenFile")


def _load(path: str) -> dict:
    with open(path) as f:
        text = f.read()
    try:
        return json.loads(text)
    except ValueError:
        import yaml  # PyYAML (an awscli dependency in the venv); kubeconfigs are usually YAML

        return yaml.safe_load(text)


def _named(items, name):
    for item in items or []:
        if item.get("name") == name:
            return item
    return None


def kubeconfig(endpoint: str, ca_data: str, source: str | None = None) -> dict:
    """A kubeconfig for the proxy at `endpoint` trusting `ca_data` (base64 PEM). With `source`
    (a kubeconfig), its current context's names, namespace and user entry (token, exec plugin,
    client certificate: relative file paths made absolute) are kept; else the user is empty."""
    cluster_name = user_name = context_name = "kube-proxy"
    user: dict = {}
    namespace = None
    if source:
        src = _load(source) or {}
        context_name = src.get("current-context") or ""
        ctx = _named(src.get("contexts"), context_name)
        if ctx is None:
            raise ValueError(f"{source}: no current context")
        ctx = ctx.get("context") or {}
        cluster_name, user_name = ctx.get("cluster") or "kube-proxy", ctx.get("user") or "kube-proxy"
        namespace = ctx.get("namespace")
        entry = _named(src.get("users"), user_name)
        user = copy.deepcopy((entry or {}).get("user") or {})
        base = os.path.dirname(os.path.abspath(source))
        for key in _USER_FILE_FIELDS:
            if isinstance(user.get(key), str) and not os.path.isabs(user[key]):
                user[key] = os.path.join(base, user[key])
        cmd = (user.get("exec") or {}).get("command")
        if isinstance(cmd, str) and os.sep in cmd and not os.path.isabs(cmd):
            user["exec"]["command"] = os.path.join(base, cmd)
    context = {"cluster": cluster_name, "user": user_name}
    if namespace:
        context["namespace"] = namespace
    return {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": cluster_name, "cluster": {"server": endpoint, "certificate-authority-data": ca_data}}],
        "users": [{"name": user_name, "user": user}],
        "contexts": [{"name": context_name, "context": context}],
        "current-context": context_name,
        "preferences": {},
    }
