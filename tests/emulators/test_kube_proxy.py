"""Tests of recording_proxy.py --kubernetes in front of kube_server.py --tls.

kubectl (the independent client) and raw HTTPS go through the proxy; kube_server's own request
log (/__control/requests) and direct reads tell what reached the upstream.
"""

from __future__ import annotations

import base64
import http.client
import json
import os
import shutil
import signal
import socket
import ssl
import stat
import subprocess
import sys
import time

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import kube_proxy  # noqa: E402
import kube_server  # noqa: E402

KUBECTL = "/usr/bin/kubectl" if os.path.exists("/usr/bin/kubectl") else (shutil.which("kubectl") or "kubectl")
TOKEN = kube_server.make_token("comfyplat", "us-west-2")
DEPLOYMENT_PATH = "/apis/apps/v1/namespaces/comfyui/deployments/comfyui"
CONFLICT_MESSAGE = ('Operation cannot be fulfilled on deployments.apps "comfyui": the object has been modified; '
                    "please apply your changes to the latest version and try again")


def deployment(image="comfyui:1"):
    return {
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "comfyui", "namespace": "comfyui"},
        "spec": {"replicas": 1, "selector": {"matchLabels": {"app": "comfyui"}},
                 "template": {"metadata": {"labels": {"app": "comfyui"}},
                              "spec": {"containers": [{"name": "comfyui", "image": image}]}}},
    }


# --------------------------------------------------------------------------
# processes
# --------------------------------------------------------------------------


def wait_ready(proc, ready, out, timeout=60.0) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if os.path.exists(ready):
            with open(ready) as f:
                return json.load(f)
        if proc.poll() is not None:
            break
        time.sleep(0.05)
    stop(proc)
    raise RuntimeError(f"not ready: {proc.args}\n{open(out).read()[-4000:]}")


def stop(proc) -> int:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)
    return proc.returncode


@pytest.fixture(scope="module")
def upstream(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("kube-upstream")
    ready, out = str(tmp / "ready.json"), str(tmp / "server.log")
    with open(out, "w") as log:
        proc = subprocess.Popen([sys.executable, os.path.join(HERE, "kube_server.py"), "--port", "0", "--tls",
                                 "--ready-file", ready], stdout=log, stderr=subprocess.STDOUT)
    info = wait_ready(proc, ready, out)
    info["ctx"] = ssl.create_default_context(cafile=info["ca_file"])
    # the upstream's kubeconfig: a static token user (the emulator's has an exec plugin instead)
    info["kubeconfig"] = str(tmp / "upstream.kubeconfig")
    with open(info["kubeconfig"], "w") as f:
        json.dump({"apiVersion": "v1", "kind": "Config",
                   "clusters": [{"name": "up", "cluster": {"server": info["endpoint"],
                                                           "certificate-authority-data": info["ca_data"]}}],
                   "users": [{"name": "tester", "user": {"token": TOKEN}}],
                   "contexts": [{"name": "ctx", "context": {"cluster": "up", "user": "tester",
                                                            "namespace": "default"}}],
                   "current-context": "ctx"}, f)
    yield info
    assert stop(proc) == 0
    assert "Traceback" not in open(out).read()


@pytest.fixture(autouse=True)
def fresh_upstream(upstream):
    call(upstream, "POST", "/__control/reset", token=None)
    ok(call(upstream, "POST", "/api/v1/namespaces", {"apiVersion": "v1", "kind": "Namespace",
                                                      "metadata": {"name": "comfyui"}}), 201)
    yield


class KubeProxy:
    def __init__(self, info, log, proc, tmp):
        self.info, self.log_path, self.proc, self.tmp = info, log, proc, tmp
        self.endpoint = info["endpoint"]
        self.ctx = ssl.create_default_context(cafile=info["ca_file"])
        self.cache = str(tmp / f"cache-{info['port']}")

    def log(self) -> list[dict]:
        with open(self.log_path) as f:
            return [json.loads(line) for line in f if line.strip()]

    def api(self) -> list[dict]:
        """Log entries of resource requests (discovery and /version left out)."""
        return [e for e in self.log() if e["resource"] is not None]

    def kubectl(self, *args, stdin=None, timeout="10s"):
        return subprocess.run([KUBECTL, "--kubeconfig", self.info["kubeconfig"], "--cache-dir", self.cache,
                               "--request-timeout", timeout, *args], capture_output=True, text=True,
                              input=stdin, timeout=60)


@pytest.fixture
def kproxy(tmp_path, upstream):
    procs = []

    def make(*flags, kubeconfig_from=True, upstream_url=None, **opts):
        n = len(procs)
        ready, log, out = (str(tmp_path / f"kproxy{n}.json"), str(tmp_path / f"kproxy{n}.jsonl"),
                           str(tmp_path / f"kproxy{n}.out"))
        args = [sys.executable, os.path.join(HERE, "recording_proxy.py"), "--kubernetes",
                "--upstream", upstream_url or upstream["endpoint"], "--upstream-ca", upstream["ca_file"],
                "--port", "0", "--ready-file", ready, "--log", log, *flags]
        if kubeconfig_from:
            args += ["--kubeconfig-from", upstream["kubeconfig"]]
        for key, value in opts.items():
            args += ["--" + key.replace("_", "-"), str(value)]
        with open(out, "w") as o:
            proc = subprocess.Popen(args, stdout=o, stderr=subprocess.STDOUT, cwd=HERE)
        procs.append(proc)
        return KubeProxy(wait_ready(proc, ready, out, timeout=30), log, proc, tmp_path)

    yield make
    for proc in procs:
        assert stop(proc) == 0


def request(target, method, path, body=None, ctype="application/json", token=TOKEN, headers=None, timeout=10):
    """Raw HTTPS to the upstream (its info dict) or a KubeProxy: (status, headers, body bytes)."""
    endpoint, ctx = (target["endpoint"], target["ctx"]) if isinstance(target, dict) else (target.endpoint, target.ctx)
    conn = http.client.HTTPSConnection("127.0.0.1", int(endpoint.rsplit(":", 1)[1]), timeout=timeout, context=ctx)
    data = None if body is None else (body if isinstance(body, bytes) else json.dumps(body).encode())
    hdrs = dict(headers or {})
    if data is not None:
        hdrs["Content-Type"] = ctype
    if token:
        hdrs["Authorization"] = f"Bearer {token}"
    try:
        conn.request(method, path, body=data, headers=hdrs)
        resp = conn.getresponse()
        return resp.status, resp.headers, resp.read()
    finally:
        conn.close()


def call(target, method, path, body=None, **kw):
    """request() with a JSON answer: (status, object, headers)."""
    status, headers, data = request(target, method, path, body, **kw)
    try:
        obj = json.loads(data) if data else None
    except ValueError:
        obj = data
    return status, obj, headers


def ok(resp, code=200):
    assert resp[0] == code, resp[1]
    return resp[1]


def upstream_requests(upstream) -> list[dict]:
    return call(upstream, "GET", "/__control/requests", token=None)[1]


class Forwarded:
    """What reaches the upstream from now on (kube_server's request log)."""

    def __init__(self, upstream):
        self.upstream, self.start = upstream, len(upstream_requests(upstream))

    def __call__(self) -> list[str]:
        return [f"{r['method']} {r['path']}" for r in upstream_requests(self.upstream)[self.start:]]


def upstream_deployment(upstream):
    return call(upstream, "GET", DEPLOYMENT_PATH)


def apply_deployment(p, image="comfyui:1", *extra, timeout="10s"):
    return p.kubectl("apply", "--server-side", "-f", "-", *extra, stdin=json.dumps(deployment(image)), timeout=timeout)


# --------------------------------------------------------------------------
# ready file, kubeconfig, forwarding
# --------------------------------------------------------------------------


def test_ready_file_and_kubeconfig(kproxy, upstream, tmp_path):
    p = kproxy()
    info = p.info
    assert info["endpoint"] == f"https://127.0.0.1:{info['port']}" and info["pid"] == p.proc.pid
    assert info["upstream"] == upstream["endpoint"]
    with open(info["ca_file"], "rb") as f:
        assert base64.b64decode(info["ca_data"]) == f.read()
    assert info["ca_data"] != upstream["ca_data"]  # its own CA, not the upstream's
    assert info["kubeconfig"] == str(tmp_path / "kproxy0.kubeconfig")
    assert stat.S_IMODE(os.stat(info["kubeconfig"]).st_mode) == 0o600
    with open(info["kubeconfig"]) as f:
        kc = json.load(f)
    assert kc["current-context"] == "ctx"
    assert kc["contexts"] == [{"name": "ctx", "context": {"cluster": "up", "user": "tester", "namespace": "default"}}]
    assert kc["clusters"] == [{"name": "up", "cluster": {"server": info["endpoint"],
                                                         "certificate-authority-data": info["ca_data"]}}]
    assert kc["users"] == [{"name": "tester", "user": {"token": TOKEN}}]
    # the stats endpoint, over TLS
    assert ok(call(p, "GET", "/__proxy/stats", token=None)) == {"requests": 0, "writes": 0, "faults": 0}
    # at exit the kubeconfig and the TLS directory (CA key) are removed
    assert stop(p.proc) == 0
    assert not os.path.exists(info["kubeconfig"])
    assert not os.path.exists(os.path.dirname(info["ca_file"]))


def test_kubeconfig_from_the_emulators_format(tmp_path):
    """eks_kube's YAML kubeconfig (exec plugin, names = the cluster name) keeps its user entry."""
    src = tmp_path / "eks.kubeconfig"
    src.write_text("\n".join([
        "apiVersion: v1", "kind: Config", "clusters:", '- name: "comfyui-sandbox"', "  cluster:",
        '    server: "https://127.0.0.1:1"', '    certificate-authority-data: "eA=="', "contexts:",
        '- name: "comfyui-sandbox"', "  context:", '    cluster: "comfyui-sandbox"', '    user: "comfyui-sandbox"',
        'current-context: "comfyui-sandbox"', "users:", '- name: "comfyui-sandbox"', "  user:", "    exec:",
        "      apiVersion: client.authentication.k8s.io/v1beta1", '      command: "/venv/bin/aws"', "      args:",
        '      - "eks"', '      - "get-token"', "      env:", '      - name: "AWS_ACCESS_KEY_ID"',
        '        value: "testing"', "      interactiveMode: Never", ""]))
    kc = kube_proxy.kubeconfig("https://127.0.0.1:9", "Q0E=", str(src))
    assert kc["clusters"] == [{"name": "comfyui-sandbox", "cluster": {"server": "https://127.0.0.1:9",
                                                                      "certificate-authority-data": "Q0E="}}]
    assert kc["users"][0] == {"name": "comfyui-sandbox", "user": {"exec": {
        "apiVersion": "client.authentication.k8s.io/v1beta1", "command": "/venv/bin/aws",
        "args": ["eks", "get-token"], "env": [{"name": "AWS_ACCESS_KEY_ID", "value": "testing"}],
        "interactiveMode": "Never"}}}
    assert kc["current-context"] == "comfyui-sandbox"
    # without a source: an empty user
    assert kube_proxy.kubeconfig("https://127.0.0.1:9", "Q0E=")["users"] == [{"name": "kube-proxy", "user": {}}]


def test_kubectl_get_namespaces_is_logged(kproxy):
    p = kproxy()
    r = p.kubectl("get", "ns", "-o", "name")
    assert r.returncode == 0, r.stderr
    assert "namespace/comfyui" in r.stdout.split()
    entries = p.log()
    for e in entries:
        assert set(e) == {"ts", "method", "path", "query", "service", "action", "verb", "group", "version",
                          "resource", "namespace", "name", "subresource", "dry_run", "write", "status", "fault",
                          "upstream_status", "end"}
        assert e["service"] == "kubernetes" and e["action"] == f"{e['method']} {e['path']}"
        assert e["fault"] is None and e["write"] is False and e["status"] == e["upstream_status"] == 200
    discovery = [e for e in entries if e["resource"] is None]
    assert {"/api", "/apis"} <= {e["path"] for e in discovery}
    assert all(e["group"] is None and e["verb"] == "get" for e in discovery)
    [listing] = p.api()
    assert listing == {**listing, "method": "GET", "path": "/api/v1/namespaces", "verb": "list", "group": "",
                       "version": "v1", "resource": "namespaces", "namespace": None, "name": None,
                       "subresource": None}
    assert listing["query"] == {"limit": "500", "timeout": "10s"}  # kubectl --request-timeout
    assert ok(call(p, "GET", "/__proxy/stats", token=None)) == {"requests": len(entries), "writes": 0, "faults": 0}


def test_authorization_is_forwarded(kproxy):
    p = kproxy()
    ok(call(p, "GET", "/api/v1/namespaces/comfyui"))
    status, obj, _ = call(p, "GET", "/api/v1/namespaces/comfyui", token=None)
    assert status == 401 and obj["reason"] == "Unauthorized"
    a, b = p.log()
    assert (a["status"], b["status"], b["upstream_status"]) == (200, 401, 401)
    # the namespace object: namespace and name are both its name, as in the apiserver
    assert (a["verb"], a["resource"], a["namespace"], a["name"]) == ("get", "namespaces", "comfyui", "comfyui")


def test_kubectl_server_side_apply_is_logged(kproxy, upstream):
    p = kproxy()
    r = apply_deployment(p)
    assert r.returncode == 0, r.stderr
    assert "deployment.apps/comfyui serverside-applied" in r.stdout
    assert ok(upstream_deployment(upstream))["spec"]["template"]["spec"]["containers"][0]["image"] == "comfyui:1"
    [patch] = [e for e in p.api() if e["method"] == "PATCH"]
    assert patch == {**patch, "path": DEPLOYMENT_PATH, "verb": "patch", "group": "apps", "version": "v1",
                     "resource": "deployments", "namespace": "comfyui", "name": "comfyui", "subresource": None,
                     "write": True, "dry_run": False, "fault": None}
    # kube_server answers an apply that creates with 200 (a real apiserver: 201); passed on as it is
    assert patch["status"] == patch["upstream_status"] in (200, 201)
    assert patch["query"]["fieldManager"] == "kubectl"
    # a server dry run is no write
    r = apply_deployment(p, "comfyui:2", "--dry-run=server")
    assert r.returncode == 0, r.stderr
    dry = [e for e in p.api() if e["method"] == "PATCH"][-1]
    assert dry["query"]["dryRun"] == "All" and dry["dry_run"] is True and dry["write"] is False
    # a subresource
    r = p.kubectl("-n", "comfyui", "scale", "deployment/comfyui", "--replicas=2")
    assert r.returncode == 0, r.stderr
    scale = p.api()[-1]
    assert (scale["method"], scale["resource"], scale["name"], scale["subresource"], scale["write"]) == (
        "PATCH", "deployments", "comfyui", "scale", True)
    writes = [e for e in p.log() if e["write"]]
    assert ok(call(p, "GET", "/__proxy/stats", token=None))["writes"] == len(writes) == 2


def test_kubectl_watch_streams_through(kproxy, upstream):
    p = kproxy()
    watch = subprocess.Popen([KUBECTL, "--kubeconfig", p.info["kubeconfig"], "--cache-dir", p.cache,
                              "-n", "comfyui", "get", "configmaps", "-w", "-o", "name"],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 20
        while not any(e["verb"] == "watch" for e in p.api()):
            assert time.monotonic() < deadline and watch.poll() is None, watch.stderr.read()
            time.sleep(0.1)
        # created upstream directly: the event reaches kubectl while the watch answer is open
        ok(call(upstream, "POST", "/api/v1/namespaces/comfyui/configmaps",
                {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "streamed"}}), 201)
        assert watch.stdout.readline().strip() == "configmap/streamed"
    finally:
        watch.kill()
        watch.wait()
    [w] = [e for e in p.api() if e["verb"] == "watch"]
    assert w == {**w, "method": "GET", "path": "/api/v1/namespaces/comfyui/configmaps", "group": "", "version": "v1",
                 "resource": "configmaps", "namespace": "comfyui", "name": None, "status": 200, "write": False}
    assert w["query"]["watch"] == "true"


def proxy_threads(p) -> int:
    return len(os.listdir(f"/proc/{p.proc.pid}/task"))


def test_raw_watch_is_chunked_and_ends_with_its_client(kproxy, upstream):
    p = kproxy()
    ok(call(p, "GET", "/version"))
    time.sleep(0.3)
    idle = proxy_threads(p)
    conn = http.client.HTTPSConnection("127.0.0.1", p.info["port"], timeout=10, context=p.ctx)
    conn.request("GET", "/api/v1/namespaces/comfyui/configmaps?watch=true&resourceVersion=0",
                 headers={"Authorization": f"Bearer {TOKEN}"})
    resp = conn.getresponse()
    assert resp.status == 200 and resp.getheader("Transfer-Encoding") == "chunked"
    assert resp.getheader("Content-Length") is None
    ok(call(upstream, "POST", "/api/v1/namespaces/comfyui/configmaps",
            {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "raw"}}), 201)
    event = json.loads(resp.readline())
    assert event["type"] == "ADDED" and event["object"]["metadata"]["name"] == "raw"
    assert proxy_threads(p) > idle  # the relay (and its client monitor) are running
    conn.close()
    deadline = time.monotonic() + 10
    while proxy_threads(p) > idle:
        assert time.monotonic() < deadline, "the relay did not end when its client left"
        time.sleep(0.1)


# --------------------------------------------------------------------------
# faults, by raw HTTP: exactly what the apiserver / load balancer answers
# --------------------------------------------------------------------------


def test_fault_429_is_the_priority_and_fairness_answer(kproxy, upstream):
    p = kproxy(fault_rate=1, fault_modes="429")
    forwarded = Forwarded(upstream)
    status, headers, body = request(p, "GET", "/api/v1/namespaces")
    assert status == 429
    assert body == b"Too many requests, please try again later.\n"
    assert headers["Retry-After"] == "1"
    assert headers["Content-Type"] == "text/plain; charset=utf-8"
    assert headers["X-Content-Type-Options"] == "nosniff"
    assert headers["X-Kubernetes-Pf-Flowschema-Uid"] and headers["X-Kubernetes-Pf-Prioritylevel-Uid"]
    assert headers["Content-Length"] == str(len(body))
    assert forwarded() == []  # not forwarded
    [e] = p.log()
    assert (e["status"], e["fault"], e["upstream_status"]) == (429, "429", None)


def test_fault_429_status_is_the_watch_cache_answer(kproxy, upstream):
    p = kproxy(fault_rate=1, fault_modes="429-status")
    status, obj, headers = call(p, "GET", "/api/v1/namespaces/comfyui/configmaps")
    assert status == 429 and headers["Retry-After"] == "1"
    assert headers["Content-Type"] == "application/json"
    assert obj == {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
                   "message": "storage is (re)initializing", "reason": "TooManyRequests",
                   "details": {"retryAfterSeconds": 1}, "code": 429}


def test_fault_500_is_an_internal_error(kproxy, upstream):
    p = kproxy(fault_rate=1, fault_modes="500")
    status, obj, headers = call(p, "POST", "/api/v1/namespaces/comfyui/configmaps",
                                {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c500"}})
    assert status == 500 and "Retry-After" not in headers
    assert obj == {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
                   "message": "Internal error occurred: resource quota evaluation timed out",
                   "reason": "InternalError",
                   "details": {"causes": [{"message": "resource quota evaluation timed out"}]}, "code": 500}
    assert call(upstream, "GET", "/api/v1/namespaces/comfyui/configmaps/c500")[0] == 404


def test_fault_409_is_an_update_conflict(kproxy, upstream):
    assert call(upstream, "PATCH", DEPLOYMENT_PATH + "?fieldManager=setup", deployment(),
                ctype="application/apply-patch+yaml")[0] in (200, 201)
    before = ok(upstream_deployment(upstream))["metadata"]["resourceVersion"]
    p = kproxy(fault_rate=1, fault_modes="409")
    status, obj, headers = call(p, "PUT", DEPLOYMENT_PATH, deployment("comfyui:2"))
    assert status == 409 and headers["Content-Type"] == "application/json"
    assert obj == {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
                   "message": CONFLICT_MESSAGE, "reason": "Conflict",
                   "details": {"name": "comfyui", "group": "apps", "kind": "deployments"}, "code": 409}
    assert ok(upstream_deployment(upstream))["metadata"]["resourceVersion"] == before
    # core group: no group in details; a create names the object from its body
    status, obj, _ = call(p, "POST", "/api/v1/namespaces/comfyui/configmaps",
                          {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "cm"}})
    assert status == 409 and obj["details"] == {"name": "cm", "kind": "configmaps"}
    assert obj["message"].startswith('Operation cannot be fulfilled on configmaps "cm": the object has been')


def test_fault_503_is_the_shutting_down_answer(kproxy):
    p = kproxy(fault_rate=1, fault_modes="503")
    status, obj, headers = call(p, "GET", "/api/v1/namespaces")
    assert status == 503 and headers["Retry-After"] == "1" and headers["X-Content-Type-Options"] == "nosniff"
    assert obj == {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
                   "message": "apiserver is shutting down", "reason": "ServiceUnavailable", "code": 503}


def test_fault_reset_before_is_not_forwarded(kproxy, upstream):
    p = kproxy(fault_rate=1, fault_modes="reset")
    forwarded = Forwarded(upstream)
    with pytest.raises((ConnectionResetError, http.client.RemoteDisconnected, ssl.SSLError)):
        request(p, "POST", "/api/v1/namespaces", {"apiVersion": "v1", "kind": "Namespace",
                                                  "metadata": {"name": "reset-before"}})
    assert forwarded() == []
    [e] = p.log()
    assert (e["status"], e["fault"], e["upstream_status"], e["write"]) == (0, "reset", None, True)
    ok(call(p, "GET", "/__proxy/stats", token=None))  # still serving


def test_fault_reset_after_forwards_then_drops(kproxy, upstream):
    p = kproxy(fault_rate=1, fault_modes="reset-after")
    with pytest.raises((ConnectionResetError, http.client.RemoteDisconnected, ssl.SSLError)):
        request(p, "POST", "/api/v1/namespaces/comfyui/configmaps",
                {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "made-unseen"}})
    ok(call(upstream, "GET", "/api/v1/namespaces/comfyui/configmaps/made-unseen"))  # it happened
    [e] = p.log()
    assert (e["status"], e["fault"], e["upstream_status"]) == (0, "reset-after", 201)


def test_fault_after_answers_replace_the_real_one(kproxy, upstream):
    p = kproxy(fault_rate=1, fault_modes="500-after")
    status, obj, _ = call(p, "POST", "/api/v1/namespaces/comfyui/configmaps",
                          {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "made-anyway"}})
    assert status == 500 and obj["reason"] == "InternalError"
    ok(call(upstream, "GET", "/api/v1/namespaces/comfyui/configmaps/made-anyway"))
    [e] = p.log()
    assert (e["status"], e["fault"], e["upstream_status"]) == (500, "500-after", 201)


# --------------------------------------------------------------------------
# faults as kubectl (client-go) sees them
# --------------------------------------------------------------------------


@pytest.mark.parametrize("mode", ["429", "429-status", "503"])
def test_kubectl_waits_retry_after_and_retries(kproxy, mode):
    p = kproxy(fault_rate=1, fault_modes=mode, fault_match="GET /api/v1/namespaces", fault_limit=1)
    r = p.kubectl("get", "ns", "-o", "name")
    assert r.returncode == 0, r.stderr
    first, retry = [e for e in p.api()]
    assert (first["status"], first["fault"]) == (int(mode[:3]), mode)
    assert (retry["status"], retry["fault"]) == (200, None)
    assert retry["ts"] - first["ts"] >= 0.95  # client-go waited the Retry-After second


def test_kubectl_retries_a_reset_get(kproxy):
    p = kproxy(fault_rate=1, fault_modes="reset", fault_match="GET /api/v1/namespaces", fault_limit=1)
    r = p.kubectl("get", "ns", "-o", "name")
    assert r.returncode == 0, r.stderr
    assert [(e["status"], e["fault"]) for e in p.api()] == [(0, "reset"), (200, None)]


def test_kubectl_shows_internal_error(kproxy):
    p = kproxy(fault_rate=1, fault_modes="500", fault_match="GET /api/v1/namespaces")
    r = p.kubectl("get", "ns")
    assert r.returncode == 1
    assert "Error from server (InternalError): Internal error occurred: resource quota evaluation timed out" \
        in r.stderr
    assert [(e["status"], e["fault"]) for e in p.api()] == [(500, "500")]  # no retry


def test_kubectl_apply_meets_a_conflict(kproxy, upstream):
    p = kproxy(fault_rate=1, fault_modes="409", fault_match="PATCH " + DEPLOYMENT_PATH)
    r = apply_deployment(p)
    assert r.returncode == 1
    # kubectl apply --server-side prints a Conflict as "error: <message>" plus its SSA advice
    assert f"error: {CONFLICT_MESSAGE}" in r.stderr, r.stderr
    assert upstream_deployment(upstream)[0] == 404  # not forwarded
    assert [e["fault"] for e in p.api() if e["method"] == "PATCH"] == ["409"]
    assert all(e["fault"] is None for e in p.log() if e["method"] != "PATCH")


def test_kubectl_write_with_reset_after(kproxy, upstream):
    p = kproxy("--fault-writes", fault_rate=1, fault_modes="reset-after")
    r = p.kubectl("create", "namespace", "lost-answer")
    assert r.returncode == 1 and "connection reset by peer" in r.stderr, r.stderr
    ok(call(upstream, "GET", "/api/v1/namespaces/lost-answer"))
    assert [e["fault"] for e in p.log() if e["write"]] == ["reset-after"]
    assert all(e["fault"] is None for e in p.log() if not e["write"])  # --fault-writes


# --------------------------------------------------------------------------
# selection, delay, hang
# --------------------------------------------------------------------------


def test_fault_selection_is_seeded_and_limited(kproxy):
    def sequence(*flags, **opts):
        p = kproxy(*flags, fault_rate=0.5, fault_modes="429,503", **opts)
        for i in range(12):
            request(p, "GET", "/api/v1/namespaces/comfyui")
            request(p, "POST", "/api/v1/namespaces/comfyui/configmaps",
                    {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"generateName": "s-"}})
        return p.log()

    a, b = sequence("--fault-writes", fault_seed=5), sequence("--fault-writes", fault_seed=5)
    assert [e["fault"] for e in a] == [e["fault"] for e in b]
    assert all(e["fault"] is None for e in a if not e["write"])
    assert {"429", "503"} <= {e["fault"] for e in a} and None in {e["fault"] for e in a if e["write"]}
    limited = sequence(fault_seed=5, fault_limit=2)
    assert len([e for e in limited if e["fault"]]) == 2
    # never faulted with the header
    p = kproxy(fault_rate=1)
    assert request(p, "GET", "/api/v1/namespaces", headers={"x-comfyplat-no-fault": "1"})[0] == 200


def test_delay_applies_to_every_forwarded_request(kproxy):
    p = kproxy(delay_ms=300)
    t0 = time.monotonic()
    for _ in range(3):
        assert request(p, "GET", "/api/v1/namespaces")[0] == 200
    assert time.monotonic() - t0 >= 0.9
    # Each logged interval (read -> answered) holds the delay.
    assert all(e["end"] - e["ts"] >= 0.3 for e in p.log()[:3]), p.log()[:3]
    # kubectl: its discovery and its list are sequential round trips, each delayed
    t0 = time.monotonic()
    r = p.kubectl("get", "ns")
    assert r.returncode == 0, r.stderr
    assert time.monotonic() - t0 >= 0.6
    listed = [e for e in p.log()[3:] if e["verb"] == "list"][0]
    assert listed["ts"] - p.log()[3]["ts"] >= 0.3  # the list waited for the discovery answers


def test_hang_after_forwards_then_never_answers(kproxy, upstream):
    p = kproxy("--hang-after", "PATCH " + DEPLOYMENT_PATH)
    t0 = time.monotonic()
    r = apply_deployment(p, "comfyui:1", timeout="3s")
    assert r.returncode == 1 and time.monotonic() - t0 >= 3
    # kubectl words its own deadline either way
    assert "timeout" in r.stderr.lower() or "context deadline exceeded" in r.stderr, r.stderr
    assert ok(upstream_deployment(upstream))["metadata"]["name"] == "comfyui"  # it happened
    [hung] = [e for e in p.log() if e["method"] == "PATCH"]
    assert (hung["fault"], hung["status"], hung["write"]) == ("hang", 0, True)
    assert hung["upstream_status"] in (200, 201)
    # other requests are answered meanwhile
    assert request(p, "GET", DEPLOYMENT_PATH)[0] == 200
    # a raw client: the answer never comes
    with pytest.raises((socket.timeout, TimeoutError)):
        request(p, "PATCH", DEPLOYMENT_PATH + "?fieldManager=raw", deployment(),
                ctype="application/apply-patch+yaml", timeout=1.5)


def test_command_line_errors(upstream, tmp_path):
    def run(*args):
        return subprocess.run([sys.executable, os.path.join(HERE, "recording_proxy.py"), "--port", "0",
                               "--ready-file", str(tmp_path / "r.json"), "--log", str(tmp_path / "l.jsonl"), *args],
                              capture_output=True, text=True, timeout=30)

    r = run("--kubernetes", "--upstream", upstream["endpoint"])
    assert r.returncode == 2 and "--upstream-ca" in r.stderr
    r = run("--kubernetes", "--upstream", upstream["endpoint"], "--upstream-ca", upstream["ca_file"],
            "--fault-modes", "before")
    assert r.returncode == 2 and "unknown fault mode" in r.stderr
    r = run("--kubernetes", "--upstream", upstream["endpoint"], "--upstream-ca", upstream["ca_file"],
            "--deny", "X")
    assert r.returncode == 2
    r = run("--upstream", "http://127.0.0.1:1", "--upstream-ca", upstream["ca_file"])
    assert r.returncode == 2 and "needs --kubernetes" in r.stderr
    r = run("--kubernetes", "--upstream", "https://10.0.0.1:443", "--upstream-ca", upstream["ca_file"])
    assert r.returncode == 2 and "loopback" in r.stderr
    assert not os.path.exists(tmp_path / "r.json")


# --------------------------------------------------------------------------
# path parsing
# --------------------------------------------------------------------------


def test_request_info():
    cases = [
        ("GET", "/version", {}, ("get", None, None, None, None, None, None)),
        ("GET", "/apis/apps/v1", {}, ("get", None, None, None, None, None, None)),
        ("GET", "/api/v1/namespaces", {}, ("list", "", "v1", "namespaces", None, None, None)),
        ("GET", "/api/v1/namespaces/x", {}, ("get", "", "v1", "namespaces", "x", "x", None)),
        ("PUT", "/api/v1/namespaces/x/finalize", {}, ("update", "", "v1", "namespaces", "x", "x", "finalize")),
        ("GET", "/api/v1/namespaces/x/configmaps", {"watch": "true"},
         ("watch", "", "v1", "configmaps", "x", None, None)),
        ("GET", "/api/v1/watch/namespaces/x/configmaps", {}, ("watch", "", "v1", "configmaps", "x", None, None)),
        ("GET", "/apis/apps/v1/deployments", {}, ("list", "apps", "v1", "deployments", None, None, None)),
        ("PATCH", "/apis/apps/v1/namespaces/c/deployments/d/scale", {},
         ("patch", "apps", "v1", "deployments", "c", "d", "scale")),
        ("DELETE", "/apis/apps/v1/namespaces/c/deployments", {},
         ("deletecollection", "apps", "v1", "deployments", "c", None, None)),
        ("DELETE", "/apis/karpenter.sh/v1/nodepools/gpu", {},
         ("delete", "karpenter.sh", "v1", "nodepools", None, "gpu", None)),
        ("POST", "/apis/networking.k8s.io/v1/namespaces/c/ingresses", {},
         ("create", "networking.k8s.io", "v1", "ingresses", "c", None, None)),
    ]
    keys = ("verb", "group", "version", "resource", "namespace", "name", "subresource")
    for method, path, query, want in cases:
        info = kube_proxy.request_info(method, path, query)
        assert tuple(info[k] for k in keys) == want, (method, path)
    assert kube_proxy.is_dry_run("DELETE", {}, b'{"dryRun": ["All"]}')
    assert kube_proxy.is_dry_run("PATCH", {"dryRun": ["All"]}, b"")
    assert not kube_proxy.is_dry_run("DELETE", {}, b'{"propagationPolicy": "Foreground"}')
