"""Tests for kube_server.py: kubectl (the independent client) plus direct HTTP for SSA details.

kubectl only sends bearer tokens over TLS, so the server runs with --tls and kubectl trusts
the CA from the ready file.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import ssl
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.parse
import urllib.request

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import kube_server  # noqa: E402

KUBECTL = "/usr/bin/kubectl" if os.path.exists("/usr/bin/kubectl") else (shutil.which("kubectl") or "kubectl")
TOKEN = kube_server.make_token("comfyplat", "us-west-2")
APPLY = "application/apply-patch+yaml"
MERGE = "application/merge-patch+json"


# --------------------------------------------------------------------------
# fixtures and helpers
# --------------------------------------------------------------------------


@pytest.fixture(scope="module")
def kube(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("kube")
    ready = tmp / "ready.json"
    log = open(tmp / "server.log", "w")
    proc = subprocess.Popen([sys.executable, os.path.join(HERE, "kube_server.py"), "--port", "0", "--tls",
                             "--ready-file", str(ready)], stdout=log, stderr=subprocess.STDOUT)
    try:
        for _ in range(200):
            if ready.exists() or proc.poll() is not None:
                break
            time.sleep(0.05)
        assert ready.exists(), (tmp / "server.log").read_text()
        info = json.loads(ready.read_text())
        assert info["pid"] == proc.pid and info["endpoint"] == f"https://127.0.0.1:{info['port']}"
        info["ctx"] = ssl.create_default_context(cafile=info["ca_file"])
        info["kubeconfig"] = write_kubeconfig(tmp / "kubeconfig", info, TOKEN)
        info["cache"] = str(tmp / "cache")
        info["tmp"] = tmp
        yield info
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                rc = proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
                rc = proc.wait()
            log.close()
            assert rc == 0, f"server exited with {rc}"
            assert "Traceback" not in (tmp / "server.log").read_text(), (tmp / "server.log").read_text()


@pytest.fixture(autouse=True)
def reset(kube):
    call(kube, "POST", "/__control/reset", token=None)
    yield


def write_kubeconfig(path, info, token):
    path.write_text(json.dumps({
        "apiVersion": "v1", "kind": "Config",
        "clusters": [{"name": "t", "cluster": {"server": info["endpoint"], "certificate-authority-data":
                                               info["ca_data"]}}],
        "users": [{"name": "t", "user": {"token": token}}],
        "contexts": [{"name": "t", "context": {"cluster": "t", "user": "t", "namespace": "default"}}],
        "current-context": "t"}))
    return str(path)


def kubectl(kube, *args, ok=True, kubeconfig=None, stdin=None):
    p = subprocess.run([KUBECTL, "--kubeconfig", kubeconfig or kube["kubeconfig"], "--cache-dir", kube["cache"],
                        "--request-timeout", "10s", *args], capture_output=True, text=True, input=stdin,
                       timeout=30)
    if ok:
        assert p.returncode == 0, f"kubectl {' '.join(args)} failed: {p.stderr}"
    return p


def kjson(kube, *args):
    return json.loads(kubectl(kube, *args, "-o", "json", "--show-managed-fields").stdout)


def call(kube, method, path, body=None, ctype="application/json", token=TOKEN, headers=None, **query):
    url = kube["endpoint"] + path + ("?" + urllib.parse.urlencode(query) if query else "")
    data = None if body is None else (body if isinstance(body, bytes) else json.dumps(body).encode())
    req = urllib.request.Request(url, data=data, method=method)
    if data is not None:
        req.add_header("Content-Type", ctype)
    if token:
        req.add_header("Authorization", f"Bearer {token}")
    for k, v in (headers or {}).items():
        req.add_header(k, v)
    try:
        with urllib.request.urlopen(req, context=kube["ctx"], timeout=10) as r:
            return r.status, json.loads(r.read() or b"null"), r.headers
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read() or b"null"), e.headers


def ok(resp, code=200):
    assert resp[0] == code, resp[1]
    return resp[1]


def fields(obj, manager, operation="Apply"):
    e = [m for m in obj["metadata"].get("managedFields", []) if m["manager"] == manager
         and m["operation"] == operation]
    return e[0]["fieldsV1"] if e else None


DEPLOY_PATH = "/apis/apps/v1/namespaces/default/deployments"


def deployment(name="web", replicas=1, image="img:1", labels=None, env=None, **spec):
    c = {"name": "c", "image": image, "ports": [{"containerPort": 80}]}
    if env is not None:
        c["env"] = env
    return {"apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": name, "labels": labels or {"app": name}},
            "spec": {"replicas": replicas, "selector": {"matchLabels": {"app": name}},
                     "template": {"metadata": {"labels": {"app": name}}, "spec": {"containers": [c], **spec}}}}


def apply(kube, obj, manager="comfyplat", path=DEPLOY_PATH, **q):
    return call(kube, "PATCH", f"{path}/{obj['metadata']['name']}", obj, APPLY, fieldManager=manager, **q)


# manifests -------------------------------------------------------------------

APP = [
    {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "comfyui", "namespace": "comfy"}},
    {"apiVersion": "v1", "kind": "PersistentVolume", "metadata": {"name": "outputs-pv"},
     "spec": {"capacity": {"storage": "1200Gi"}, "accessModes": ["ReadWriteMany"], "storageClassName": "",
              "claimRef": {"namespace": "comfy", "name": "outputs"}, "mountOptions": ["region us-west-2"],
              "csi": {"driver": "s3.csi.aws.com", "volumeHandle": "outputs-volume",
                      "volumeAttributes": {"bucketName": "outputs-bucket"}}}},
    {"apiVersion": "v1", "kind": "PersistentVolumeClaim", "metadata": {"name": "outputs", "namespace": "comfy"},
     "spec": {"accessModes": ["ReadWriteMany"], "storageClassName": "",
              "resources": {"requests": {"storage": "1200Gi"}}, "volumeName": "outputs-pv"}},
    {"apiVersion": "apps/v1", "kind": "Deployment",
     "metadata": {"name": "comfyui", "namespace": "comfy", "labels": {"app": "comfyui"}},
     "spec": {"replicas": 1, "selector": {"matchLabels": {"app": "comfyui"}},
              "template": {"metadata": {"labels": {"app": "comfyui"},
                                        "annotations": {"karpenter.sh/do-not-disrupt": "true"}},
                           "spec": {"serviceAccountName": "comfyui",
                                    "containers": [{"name": "comfyui", "image": "comfyui:1",
                                                    "ports": [{"containerPort": 8848}],
                                                    "volumeMounts": [{"name": "outputs", "mountPath": "/out"}]}],
                                    "volumes": [{"name": "outputs",
                                                 "persistentVolumeClaim": {"claimName": "outputs"}}],
                                    "tolerations": [{"key": "nvidia.com/gpu", "operator": "Exists",
                                                     "effect": "NoSchedule"}]}}}},
    {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "comfyui", "namespace": "comfy"},
     "spec": {"selector": {"app": "comfyui"}, "ports": [{"port": 8848, "targetPort": 8848}]}},
    {"apiVersion": "networking.k8s.io/v1", "kind": "Ingress",
     "metadata": {"name": "comfyui", "namespace": "comfy",
                  "annotations": {"alb.ingress.kubernetes.io/scheme": "internet-facing",
                                  "alb.ingress.kubernetes.io/target-type": "ip"}},
     "spec": {"ingressClassName": "alb", "rules": [{"http": {"paths": [
         {"path": "/", "pathType": "Prefix",
          "backend": {"service": {"name": "comfyui", "port": {"number": 8848}}}}]}}]}},
]


def crd(group, plural, kind, scope="Cluster", schema=None):
    return {"apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
            "metadata": {"name": f"{plural}.{group}"},
            "spec": {"group": group, "scope": scope,
                     "names": {"kind": kind, "listKind": kind + "List", "plural": plural, "singular": kind.lower()},
                     "versions": [{"name": "v1", "served": True, "storage": True, "subresources": {"status": {}},
                                   "schema": {"openAPIV3Schema": schema or {
                                       "type": "object", "x-kubernetes-preserve-unknown-fields": True}}}]}}


KARPENTER_CRDS = [
    # a structural schema declares every field the objects below set (a real server prunes or,
    # on server-side apply, refuses the others)
    crd("karpenter.k8s.aws", "ec2nodeclasses", "EC2NodeClass", schema={
        "type": "object", "properties": {"spec": {"type": "object", "properties": {
            "amiSelectorTerms": {"type": "array", "items": {"type": "object", "properties": {
                "alias": {"type": "string"}}}},
            "role": {"type": "string"},
            "subnetSelectorTerms": {"type": "array", "items": {"type": "object", "properties": {
                "tags": {"type": "object", "additionalProperties": {"type": "string"}}}}},
            "metadataOptions": {"type": "object", "default": {"httpPutResponseHopLimit": 1},
                                "x-kubernetes-preserve-unknown-fields": True}}},
            "status": {"type": "object", "x-kubernetes-preserve-unknown-fields": True}}}),
    crd("karpenter.sh", "nodepools", "NodePool"),
]
KARPENTER_OBJECTS = [
    {"apiVersion": "karpenter.k8s.aws/v1", "kind": "EC2NodeClass", "metadata": {"name": "gpu"},
     "spec": {"amiSelectorTerms": [{"alias": "al2023@latest"}], "role": "KarpenterNodeRole-c",
              "subnetSelectorTerms": [{"tags": {"karpenter.sh/discovery": "c"}}]}},
    {"apiVersion": "karpenter.sh/v1", "kind": "NodePool", "metadata": {"name": "gpu"},
     "spec": {"template": {"spec": {"nodeClassRef": {"group": "karpenter.k8s.aws", "kind": "EC2NodeClass",
                                                     "name": "gpu"}}},
              "disruption": {"consolidationPolicy": "WhenEmpty", "consolidateAfter": "30m"}}},
]


def manifest(kube, name, objs):
    path = kube["tmp"] / name
    path.write_text(json.dumps({"apiVersion": "v1", "kind": "List", "items": objs}))
    return str(path)


# --------------------------------------------------------------------------
# kubectl
# --------------------------------------------------------------------------


def test_kubectl_version_and_discovery(kube):
    out = kubectl(kube, "version").stdout
    assert "Server Version: v1.33.5" in out
    res = kubectl(kube, "api-resources", "--no-headers").stdout.splitlines()
    rows = {r.split()[0]: r.split() for r in res}
    assert rows["deployments"][1:] == ["deploy", "apps/v1", "true", "Deployment"]
    assert rows["persistentvolumes"][1:] == ["pv", "v1", "false", "PersistentVolume"]
    assert rows["customresourcedefinitions"][1:] == ["crd,crds", "apiextensions.k8s.io/v1", "false",
                                                     "CustomResourceDefinition"]
    assert {"ingresses", "ingressclasses", "networkpolicies", "csidrivers", "configmaps", "secrets",
            "serviceaccounts", "persistentvolumeclaims", "namespaces", "services"} <= set(rows)
    # aggregated discovery is not served: plain JSON comes back, whatever the Accept header
    agg = "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList,application/json"
    code, body, headers = call(kube, "GET", "/apis", headers={"Accept": agg})
    assert code == 200 and body["kind"] == "APIGroupList" and headers["Content-Type"] == "application/json"
    apps = next(g for g in body["groups"] if g["name"] == "apps")
    assert apps["preferredVersion"] == {"groupVersion": "apps/v1", "version": "v1"}
    rl = ok(call(kube, "GET", "/apis/apps/v1"))
    by = {r["name"]: r for r in rl["resources"]}
    assert by["deployments/scale"]["kind"] == "Scale" and by["deployments/scale"]["group"] == "autoscaling"
    assert by["deployments/status"]["verbs"] == ["get", "patch", "update"]
    assert by["deployments"]["singularName"] == "deployment" and "watch" in by["deployments"]["verbs"]
    assert ok(call(kube, "GET", "/api"))["versions"] == ["v1"]
    assert ok(call(kube, "GET", "/version"))["gitVersion"].startswith("v1.33")


def test_kubectl_apply_client_and_server_side(kube):
    kubectl(kube, "create", "ns", "comfy")
    path = manifest(kube, "app.json", APP)
    out = kubectl(kube, "apply", "-f", path).stdout
    assert out.count(" created") == 6
    assert kubectl(kube, "apply", "-f", path).stdout.count(" unchanged") == 6
    out = kubectl(kube, "apply", "--server-side", "--field-manager", "comfyplat", "-f", path).stdout
    assert out.count("serverside-applied") == 6
    dep = kjson(kube, "-n", "comfy", "get", "deploy", "comfyui")
    managers = {m["manager"] for m in dep["metadata"]["managedFields"]}
    assert "comfyplat" in managers
    f = fields(dep, "comfyplat")
    assert "f:image" in f["f:spec"]["f:template"]["f:spec"]["f:containers"]['k:{"name":"comfyui"}']
    assert dep["spec"]["template"]["spec"]["containers"][0]["ports"][0]["protocol"] == "TCP"
    st = dep["status"]
    assert st["observedGeneration"] == dep["metadata"]["generation"]
    assert st["replicas"] == st["readyReplicas"] == st["availableReplicas"] == st["updatedReplicas"] == 1
    assert {(c["type"], c["status"], c["reason"]) for c in st["conditions"]} == {
        ("Available", "True", "MinimumReplicasAvailable"), ("Progressing", "True", "NewReplicaSetAvailable")}
    assert kjson(kube, "-n", "comfy", "get", "pvc", "outputs")["status"]["phase"] == "Bound"
    assert kjson(kube, "get", "pv", "outputs-pv")["status"]["phase"] == "Bound"
    assert kjson(kube, "-n", "comfy", "get", "svc", "comfyui")["spec"]["clusterIP"].startswith("10.100.")
    ing = kjson(kube, "-n", "comfy", "get", "ingress", "comfyui")
    assert ing["metadata"]["finalizers"] == ["ingress.k8s.aws/resources"]
    # the first read already happened (creation, then kubectl apply reads): hostname is there now
    ing = kjson(kube, "-n", "comfy", "get", "ingress", "comfyui")
    host = ing["status"]["loadBalancer"]["ingress"][0]["hostname"]
    assert host.startswith("k8s-comfy-comfyui-") and host.endswith(".us-west-2.elb.amazonaws.com")
    assert len(host.split(".")[0].rsplit("-", 1)[1]) == 10
    # table output falls back to kubectl's default columns
    assert "comfyui" in kubectl(kube, "-n", "comfy", "get", "deploy").stdout
    # a second server-side apply changes nothing (resourceVersion stays)
    rv = dep["metadata"]["resourceVersion"]
    kubectl(kube, "apply", "--server-side", "--field-manager", "comfyplat", "-f", path)
    assert kjson(kube, "-n", "comfy", "get", "deploy", "comfyui")["metadata"]["resourceVersion"] == rv


def test_kubectl_scale_set_image_label_and_conflicts(kube):
    kubectl(kube, "create", "ns", "comfy")
    path = manifest(kube, "app.json", APP)
    kubectl(kube, "apply", "--server-side", "--field-manager", "comfyplat", "-f", path)
    kubectl(kube, "-n", "comfy", "scale", "deploy", "comfyui", "--replicas=3")
    scale = ok(call(kube, "GET", "/apis/apps/v1/namespaces/comfy/deployments/comfyui/scale"))
    assert scale["kind"] == "Scale" and scale["spec"]["replicas"] == 3 and scale["status"]["selector"] == "app=comfyui"
    kubectl(kube, "-n", "comfy", "set", "image", "deploy/comfyui", "comfyui=comfyui:2")
    kubectl(kube, "-n", "comfy", "label", "deploy", "comfyui", "tier=gpu")
    kubectl(kube, "-n", "comfy", "annotate", "deploy", "comfyui", "note=x")
    dep = kjson(kube, "-n", "comfy", "get", "deploy", "comfyui")
    assert dep["spec"]["replicas"] == 3 and dep["status"]["replicas"] == 3
    assert dep["spec"]["template"]["spec"]["containers"][0]["image"] == "comfyui:2"
    assert dep["metadata"]["labels"] == {"app": "comfyui", "tier": "gpu"}
    assert dep["metadata"]["annotations"]["note"] == "x"
    mf = {(m["manager"], m["operation"], m.get("subresource")): m for m in dep["metadata"]["managedFields"]}
    assert mf[("kubectl", "Update", "scale")]["fieldsV1"] == {"f:spec": {"f:replicas": {}}}
    assert "f:replicas" not in fields(dep, "comfyplat")["f:spec"]
    p = kubectl(kube, "apply", "--server-side", "--field-manager", "comfyplat", "-f", path, ok=False)
    assert p.returncode != 0
    assert "Apply failed with 2 conflicts" in p.stderr and ".spec.replicas" in p.stderr
    assert '.spec.template.spec.containers[name="comfyui"].image' in p.stderr and '"kubectl-set"' in p.stderr
    kubectl(kube, "apply", "--server-side", "--field-manager", "comfyplat", "--force-conflicts", "-f", path)
    dep = kjson(kube, "-n", "comfy", "get", "deploy", "comfyui")
    assert dep["spec"]["replicas"] == 1 and dep["spec"]["template"]["spec"]["containers"][0]["image"] == "comfyui:1"
    assert dep["metadata"]["labels"]["tier"] == "gpu"  # owned by kubectl-label, untouched
    managers = {(m["manager"], m.get("subresource")) for m in dep["metadata"]["managedFields"]}
    assert ("kubectl", "scale") not in managers and ("kubectl-set", None) not in managers
    assert ("kubectl-label", None) in managers


def test_kubectl_karpenter_crds(kube):
    kubectl(kube, "apply", "-f", manifest(kube, "crds.json", KARPENTER_CRDS))
    kubectl(kube, "wait", "--for=condition=Established", "crd/nodepools.karpenter.sh",
            "crd/ec2nodeclasses.karpenter.k8s.aws", "--timeout=5s")
    groups = {g["name"] for g in ok(call(kube, "GET", "/apis"))["groups"]}
    assert {"karpenter.sh", "karpenter.k8s.aws"} <= groups
    out = kubectl(kube, "apply", "--server-side", "--field-manager", "comfyplat", "-f",
                  manifest(kube, "karp.json", KARPENTER_OBJECTS)).stdout
    assert out.count("serverside-applied") == 2
    for kind in ("ec2nodeclass", "nodepool"):
        obj = kjson(kube, "get", kind, "gpu")
        ready = [c for c in obj["status"]["conditions"] if c["type"] == "Ready"]
        assert ready and ready[0]["status"] == "True"
    assert kjson(kube, "get", "ec2nodeclass", "gpu")["spec"]["metadataOptions"] == {"httpPutResponseHopLimit": 1}
    assert "gpu" in kubectl(kube, "get", "nodepools").stdout
    kubectl(kube, "delete", "crd", "nodepools.karpenter.sh")
    assert ok(call(kube, "GET", "/apis/karpenter.sh/v1/nodepools"), 404)["reason"] == "NotFound"
    assert "karpenter.sh" not in {g["name"] for g in ok(call(kube, "GET", "/apis"))["groups"]}
    # recreating the CRD does not bring the objects back
    kubectl(kube, "apply", "-f", manifest(kube, "crds.json", KARPENTER_CRDS))
    assert ok(call(kube, "GET", "/apis/karpenter.sh/v1/nodepools"))["items"] == []


def test_kubectl_delete_ingress_waits_for_finalizer(kube):
    kubectl(kube, "create", "ns", "comfy")
    kubectl(kube, "apply", "--server-side", "--field-manager", "comfyplat", "-f",
            manifest(kube, "ing.json", [APP[-1]]))
    kubectl(kube, "-n", "comfy", "delete", "ingress", "comfyui", "--wait=false")
    ing = kjson(kube, "-n", "comfy", "get", "ingress", "comfyui")
    assert ing["metadata"]["deletionTimestamp"] and ing["metadata"]["finalizers"] == ["ingress.k8s.aws/resources"]
    p = kubectl(kube, "-n", "comfy", "get", "ingress", "comfyui", ok=False)
    assert p.returncode != 0 and "NotFound" in p.stderr
    # kubectl delete with its default --wait (list + watch) returns once the object is gone
    kubectl(kube, "apply", "--server-side", "--field-manager", "comfyplat", "-f",
            manifest(kube, "ing.json", [APP[-1]]))
    kubectl(kube, "-n", "comfy", "delete", "ingress", "comfyui", "--timeout=10s")
    assert kubectl(kube, "-n", "comfy", "get", "ingress", ok=False).stderr.startswith("No resources")


def test_kubectl_dry_run_server(kube):
    kubectl(kube, "create", "ns", "comfy")
    path = manifest(kube, "app.json", APP)
    out = kubectl(kube, "apply", "--server-side", "--field-manager", "comfyplat", "--dry-run=server", "-f",
                  path).stdout
    assert "(server dry run)" in out
    assert ok(call(kube, "GET", "/apis/apps/v1/deployments"))["items"] == []
    kubectl(kube, "apply", "--dry-run=server", "-f", path)
    assert ok(call(kube, "GET", "/api/v1/namespaces/comfy/services"))["items"] == []
    kubectl(kube, "apply", "-f", path)
    kubectl(kube, "-n", "comfy", "delete", "deploy", "comfyui", "--dry-run=server")
    kubectl(kube, "-n", "comfy", "scale", "deploy", "comfyui", "--replicas=5", "--dry-run=server")
    assert kjson(kube, "-n", "comfy", "get", "deploy", "comfyui")["spec"]["replicas"] == 1
    writes = [r for r in ok(call(kube, "GET", "/__control/requests", token=None)) if r["write"]]
    assert writes and any(r["dryRun"] for r in writes)


def test_kubectl_and_http_bad_token(kube):
    bad = write_kubeconfig(kube["tmp"] / "bad", kube, "k8s-aws-v1.bm90LWEtdXJs")
    p = kubectl(kube, "get", "ns", ok=False, kubeconfig=bad)
    assert p.returncode != 0 and ("Unauthorized" in p.stderr or "provide credentials" in p.stderr)
    good = kube_server.make_token()
    for token in [None, "abc", good[len("k8s-aws-v1."):], good + "==",
                  kube_server.make_token(region="eu-west-1"),
                  kube_server.make_token(signed_headers="host"),
                  kube_server.make_token(expires=0)]:
        body = ok(call(kube, "GET", "/api/v1/namespaces", token=token), 401)
        assert body["kind"] == "Status" and body["reason"] == "Unauthorized" and body["code"] == 401
    url = "https://sts.us-west-2.amazonaws.com/?Action=ListUsers&Version=2011-06-15"
    import base64
    t = "k8s-aws-v1." + base64.urlsafe_b64encode(url.encode()).decode().rstrip("=")
    assert call(kube, "GET", "/api", token=t)[0] == 401
    assert call(kube, "GET", "/api", token=good)[0] == 200


# --------------------------------------------------------------------------
# server-side apply over HTTP
# --------------------------------------------------------------------------


def test_ssa_create_format_and_noop(kube):
    d = ok(apply(kube, deployment(env=[{"name": "A", "value": "1"}])))
    md = d["metadata"]
    assert md["uid"] and md["creationTimestamp"] and md["generation"] == 1 and md["resourceVersion"]
    [entry] = md["managedFields"]
    assert entry["manager"] == "comfyplat" and entry["operation"] == "Apply" and entry["fieldsType"] == "FieldsV1"
    assert entry["apiVersion"] == "apps/v1" and entry["time"].endswith("Z")
    f = entry["fieldsV1"]
    assert f["f:metadata"] == {"f:labels": {".": {}, "f:app": {}}}
    assert f["f:spec"]["f:selector"] == {}
    c = f["f:spec"]["f:template"]["f:spec"]["f:containers"]['k:{"name":"c"}']
    assert c["."] == {} and c["f:image"] == {} and c["f:env"]['k:{"name":"A"}'] == {".": {}, "f:name": {},
                                                                                   "f:value": {}}
    assert c["f:ports"]['k:{"containerPort":80,"protocol":"TCP"}'] == {".": {}, "f:containerPort": {},
                                                                         "f:protocol": {}}
    again = ok(apply(kube, deployment(env=[{"name": "A", "value": "1"}])))
    assert again["metadata"]["resourceVersion"] == md["resourceVersion"]
    assert again["metadata"]["managedFields"] == md["managedFields"]
    changed = ok(apply(kube, deployment(image="img:2", env=[{"name": "A", "value": "1"}])))
    assert changed["metadata"]["generation"] == 2
    assert int(changed["metadata"]["resourceVersion"]) > int(md["resourceVersion"])
    assert changed["status"]["observedGeneration"] == 2
    # fieldManager is required, kind/apiVersion too
    assert ok(call(kube, "PATCH", f"{DEPLOY_PATH}/web", deployment(), APPLY), 400)["reason"] == "BadRequest"
    body = deployment()
    del body["kind"]
    assert apply(kube, body)[0] == 400


def test_ssa_removes_fields_no_longer_applied(kube):
    ok(apply(kube, deployment(labels={"app": "web", "a": "1", "b": "2"},
                              env=[{"name": "A", "value": "1"}, {"name": "B", "value": "2"}],
                              nodeSelector={"x": "y"})))
    # another manager co-owns label "b" (same value: no conflict)
    ok(apply(kube, {"apiVersion": "apps/v1", "kind": "Deployment",
                    "metadata": {"name": "web", "labels": {"b": "2", "c": "3"}}}, manager="other"))
    d = ok(apply(kube, deployment(labels={"app": "web"}, env=[{"name": "A", "value": "1"}])))
    assert d["metadata"]["labels"] == {"app": "web", "b": "2", "c": "3"}  # a removed, b kept (co-owned)
    spec = d["spec"]["template"]["spec"]
    assert spec["containers"][0]["env"] == [{"name": "A", "value": "1"}]
    assert "nodeSelector" not in spec
    f = fields(d, "comfyplat")
    assert "f:a" not in f["f:metadata"]["f:labels"] and "f:b" not in f["f:metadata"]["f:labels"]
    assert "f:b" in fields(d, "other")["f:metadata"]["f:labels"]
    # fields set by a non-apply Update are not removed by an apply that omits them
    ok(call(kube, "PATCH", f"{DEPLOY_PATH}/web", {"spec": {"minReadySeconds": 5}}, MERGE, fieldManager="tool"))
    d = ok(apply(kube, deployment(labels={"app": "web"}, env=[{"name": "A", "value": "1"}])))
    assert d["spec"]["minReadySeconds"] == 5
    assert fields(d, "tool", "Update") == {"f:spec": {"f:minReadySeconds": {}}}


def test_ssa_conflicts_and_force(kube):
    ok(apply(kube, deployment(replicas=1)))
    r = apply(kube, {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web"},
                     "spec": {"replicas": 2}}, manager="hpa")
    st = ok(r, 409)
    assert st["kind"] == "Status" and st["reason"] == "Conflict" and st["code"] == 409
    assert st["message"] == 'Apply failed with 1 conflict: conflict with "comfyplat" using apps/v1: .spec.replicas'
    assert st["details"]["causes"] == [{"type": "FieldManagerConflict", "message":
                                        'conflict with "comfyplat" using apps/v1', "field": ".spec.replicas"}]
    assert st["details"]["name"] == "web" and st["details"]["group"] == "apps"
    # same value: shared ownership, no conflict
    ok(apply(kube, {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web"},
                    "spec": {"replicas": 1}}, manager="hpa"))
    d = ok(apply(kube, {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web"},
                        "spec": {"replicas": 4}}, manager="hpa", force="true"))
    assert d["spec"]["replicas"] == 4
    assert "f:replicas" not in fields(d, "comfyplat")["f:spec"]
    assert fields(d, "hpa") == {"f:spec": {"f:replicas": {}}}
    # an Update (merge patch) takes ownership silently; the next apply conflicts on it
    ok(call(kube, "PATCH", f"{DEPLOY_PATH}/web",
            {"spec": {"template": {"spec": {"containers": [{"name": "c", "image": "img:9"}]}}}},
            "application/strategic-merge-patch+json", fieldManager="kubectl-set"))
    st = ok(apply(kube, deployment(replicas=4)), 409)
    assert [c["field"] for c in st["details"]["causes"]] == ['.spec.template.spec.containers[name="c"].image']
    assert '"kubectl-set"' in st["message"]
    d = ok(apply(kube, deployment(replicas=4), force="true"))
    assert d["spec"]["template"]["spec"]["containers"][0]["image"] == "img:1"
    # a dry-run apply computes but stores nothing
    before = ok(call(kube, "GET", f"{DEPLOY_PATH}/web"))
    dry = ok(apply(kube, deployment(replicas=7), force="true", dryRun="All"))
    assert dry["spec"]["replicas"] == 7
    assert ok(call(kube, "GET", f"{DEPLOY_PATH}/web"))["metadata"]["resourceVersion"] == \
        before["metadata"]["resourceVersion"]
    assert apply(kube, deployment(name="ghost"), dryRun="All")[0] in (200, 201)
    assert call(kube, "GET", f"{DEPLOY_PATH}/ghost")[0] == 404


def test_resource_version_conflicts_and_crud(kube):
    cm = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c", "labels": {"tier": "a"}},
          "data": {"k": "v"}}
    path = "/api/v1/namespaces/default/configmaps"
    created = ok(call(kube, "POST", path, cm, fieldManager="t"), 201)
    st = ok(call(kube, "POST", path, cm), 409)
    assert st["reason"] == "AlreadyExists" and st["message"] == 'configmaps "c" already exists'
    rv = created["metadata"]["resourceVersion"]
    upd = dict(created, data={"k": "v2"})
    ok(call(kube, "PUT", f"{path}/c", upd))
    st = ok(call(kube, "PUT", f"{path}/c", upd), 409)  # same (now stale) resourceVersion
    assert st["reason"] == "Conflict" and "the object has been modified" in st["message"]
    st = ok(call(kube, "PATCH", f"{path}/c", {"metadata": {"resourceVersion": rv}, "data": {"x": "1"}}, MERGE), 409)
    assert st["reason"] == "Conflict"
    cur = ok(call(kube, "GET", f"{path}/c"))
    assert int(cur["metadata"]["resourceVersion"]) > int(rv) and cur["data"] == {"k": "v2"}
    ok(call(kube, "PATCH", f"{path}/c", [{"op": "test", "path": "/data/k", "value": "v2"},
                                          {"op": "add", "path": "/data/j", "value": "1"}],
            "application/json-patch+json"))
    assert ok(call(kube, "GET", f"{path}/c"))["data"] == {"k": "v2", "j": "1"}
    assert ok(call(kube, "GET", f"{path}/nope"), 404)["message"] == 'configmaps "nope" not found'
    assert ok(call(kube, "POST", path, {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "Bad_"}}),
              422)["reason"] == "Invalid"
    assert ok(call(kube, "POST", path, {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "x"}}),
              400)["reason"] == "BadRequest"
    assert ok(call(kube, "PUT", path, cm), 405)["reason"] == "MethodNotAllowed"
    assert ok(call(kube, "POST", "/api/v1/namespaces/missing/configmaps", cm), 404)["reason"] == "NotFound"
    bad = deployment()
    bad["spec"]["selector"] = {"matchLabels": {"app": "other"}}
    assert ok(call(kube, "POST", DEPLOY_PATH, bad), 422)["details"]["causes"][0]["field"] == \
        "spec.template.metadata.labels"
    # selectors and cross-namespace lists
    ok(call(kube, "POST", "/api/v1/namespaces", {"apiVersion": "v1", "kind": "Namespace",
                                                 "metadata": {"name": "other"}}), 201)
    for ns, name, labels in [("default", "d", {"tier": "b"}), ("other", "o", {"tier": "a", "x": "1"}),
                             ("other", "p", {})]:
        ok(call(kube, "POST", f"/api/v1/namespaces/{ns}/configmaps",
                {"metadata": {"name": name, "labels": labels}}), 201)

    def names(**q):
        return sorted(i["metadata"]["name"] for i in ok(call(kube, "GET", "/api/v1/configmaps", **q))["items"])

    assert names() == ["c", "d", "o", "p"]
    assert names(labelSelector="tier=a") == ["c", "o"]
    assert names(labelSelector="tier!=a") == ["d", "p"]
    assert names(labelSelector="tier") == ["c", "d", "o"]
    assert names(labelSelector="!tier") == ["p"]
    assert names(labelSelector="tier in (a,b),x") == ["o"]
    assert names(fieldSelector="metadata.name=o") == ["o"]
    assert names(fieldSelector="metadata.namespace=other,metadata.name!=o") == ["p"]
    assert call(kube, "GET", "/api/v1/configmaps", fieldSelector="spec.x=1")[0] == 400
    lst = ok(call(kube, "GET", "/api/v1/namespaces/other/configmaps"))
    assert lst["kind"] == "ConfigMapList" and int(lst["metadata"]["resourceVersion"]) > 0
    # generation: metadata-only changes do not bump it
    d = ok(call(kube, "POST", DEPLOY_PATH, deployment()), 201)
    d2 = ok(call(kube, "PATCH", f"{DEPLOY_PATH}/web", {"metadata": {"labels": {"z": "1"}}}, MERGE))
    assert d2["metadata"]["generation"] == d["metadata"]["generation"] == 1
    d3 = ok(call(kube, "PATCH", f"{DEPLOY_PATH}/web", {"spec": {"replicas": 2}}, MERGE))
    assert d3["metadata"]["generation"] == 2 and d3["status"]["observedGeneration"] == 2
    # status sent to the main resource is ignored; /status only changes status
    d4 = ok(call(kube, "PATCH", f"{DEPLOY_PATH}/web", {"status": {"replicas": 99}}, MERGE))
    assert d4["status"]["replicas"] == 2
    # finalizers hold deletion until removed
    ok(call(kube, "PATCH", f"{path}/c", {"metadata": {"finalizers": ["example.com/hold"]}}, MERGE))
    gone = ok(call(kube, "DELETE", f"{path}/c", {"propagationPolicy": "Foreground"}), 202)
    assert gone["metadata"]["deletionTimestamp"]
    assert ok(call(kube, "GET", f"{path}/c"))["metadata"]["deletionTimestamp"]
    ok(call(kube, "PATCH", f"{path}/c", {"metadata": {"finalizers": None}}, MERGE))
    assert call(kube, "GET", f"{path}/c")[0] == 404
    assert ok(call(kube, "DELETE", f"{path}/c"), 404)["reason"] == "NotFound"


def test_request_log_watch_and_reset(kube):
    t0 = len(ok(call(kube, "GET", "/__control/requests", token=None)))
    assert t0 == 0
    got = []

    rv = ok(call(kube, "GET", "/api/v1/namespaces/default/configmaps"))["metadata"]["resourceVersion"]

    def watch():
        url = kube["endpoint"] + "/api/v1/namespaces/default/configmaps?watch=true&timeoutSeconds=2" \
            f"&resourceVersion={rv}"
        req = urllib.request.Request(url, headers={"Authorization": f"Bearer {TOKEN}"})
        with urllib.request.urlopen(req, context=kube["ctx"], timeout=10) as r:
            for line in r:
                got.append(json.loads(line))

    t = threading.Thread(target=watch)
    t.start()
    time.sleep(0.2)
    ok(call(kube, "POST", "/api/v1/namespaces/default/configmaps", {"metadata": {"name": "w"}}), 201)
    ok(call(kube, "DELETE", "/api/v1/namespaces/default/configmaps/w"))
    t.join(10)
    assert [(e["type"], e["object"]["metadata"]["name"]) for e in got] == [("ADDED", "w"), ("DELETED", "w")]
    log = ok(call(kube, "GET", "/__control/requests", token=None))
    assert [(r["method"], r["write"]) for r in log] == [("GET", False), ("GET", False), ("POST", True),
                                                        ("DELETE", True)]
    assert log[1]["query"]["watch"] == "true" and log[2]["path"] == "/api/v1/namespaces/default/configmaps"
    ok(call(kube, "POST", "/__control/reset", token=None))
    assert ok(call(kube, "GET", "/__control/requests", token=None)) == []
    names = [n["metadata"]["name"] for n in ok(call(kube, "GET", "/api/v1/namespaces"))["items"]]
    assert names == ["default", "kube-node-lease", "kube-public", "kube-system"]


def test_namespaced_crd_and_namespace_deletion(kube):
    ok(call(kube, "POST", "/apis/apiextensions.k8s.io/v1/customresourcedefinitions",
            crd("example.com", "widgets", "Widget", scope="Namespaced")), 201)
    c = ok(call(kube, "GET", "/apis/apiextensions.k8s.io/v1/customresourcedefinitions/widgets.example.com"))
    assert {x["type"]: x["status"] for x in c["status"]["conditions"]}["Established"] == "True"
    ok(call(kube, "POST", "/api/v1/namespaces", {"metadata": {"name": "team"}}), 201)
    w = {"apiVersion": "example.com/v1", "kind": "Widget", "metadata": {"name": "w1"}, "spec": {"size": 1}}
    ok(call(kube, "POST", "/apis/example.com/v1/namespaces/team/widgets", w), 201)
    assert call(kube, "GET", "/apis/example.com/v1/widgets/w1")[0] == 404  # namespaced: needs a namespace
    assert len(ok(call(kube, "GET", "/apis/example.com/v1/widgets"))["items"]) == 1
    st = ok(call(kube, "PATCH", "/apis/example.com/v1/namespaces/team/widgets/w1", {"spec": {"size": 2}},
                 "application/strategic-merge-patch+json"), 415)
    assert st["reason"] == "UnsupportedMediaType"
    ns = ok(call(kube, "DELETE", "/api/v1/namespaces/team"))
    assert ns["status"]["phase"] == "Terminating"
    assert call(kube, "GET", "/api/v1/namespaces/team")[0] == 404
    assert ok(call(kube, "GET", "/apis/example.com/v1/widgets"))["items"] == []


def test_scale_and_status_subresources_and_keyed_lists(kube):
    ok(apply(kube, deployment(replicas=1)))
    scale = ok(call(kube, "GET", f"{DEPLOY_PATH}/web/scale"))
    scale["spec"]["replicas"] = 3
    s2 = ok(call(kube, "PUT", f"{DEPLOY_PATH}/web/scale", scale, fieldManager="autoscaler"))
    assert s2["spec"]["replicas"] == 3 and s2["status"]["replicas"] == 3
    assert ok(call(kube, "PUT", f"{DEPLOY_PATH}/web/scale", scale), 409)["reason"] == "Conflict"  # stale rv
    d = ok(call(kube, "GET", f"{DEPLOY_PATH}/web"))
    e = [m for m in d["metadata"]["managedFields"] if m["manager"] == "autoscaler"][0]
    assert e["subresource"] == "scale" and e["fieldsV1"] == {"f:spec": {"f:replicas": {}}}
    ok(call(kube, "PATCH", f"{DEPLOY_PATH}/web/scale", {"spec": {"replicas": 0}}, MERGE))
    d = ok(call(kube, "GET", f"{DEPLOY_PATH}/web"))
    assert d["spec"]["replicas"] == 0 and d["status"]["replicas"] == 0 and "readyReplicas" not in d["status"]
    # /status writes touch only status
    st = ok(call(kube, "PATCH", f"{DEPLOY_PATH}/web/status", {"spec": {"replicas": 9},
                                                              "status": {"replicas": 0, "extra": 1}}, MERGE))
    assert st["spec"]["replicas"] == 0
    # keyed lists: a second manager adds a container port and an env var without touching ours
    svc = {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "s"},
           "spec": {"selector": {"app": "web"}, "ports": [{"port": 80, "targetPort": 8080}]}}
    sp = "/api/v1/namespaces/default/services"
    s1 = ok(apply(kube, svc, path=sp))
    assert s1["spec"]["ports"] == [{"port": 80, "targetPort": 8080, "protocol": "TCP"}]
    assert 'k:{"port":80,"protocol":"TCP"}' in fields(s1, "comfyplat")["f:spec"]["f:ports"]
    s2 = ok(apply(kube, {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "s"},
                         "spec": {"ports": [{"port": 443, "targetPort": 8443}]}}, manager="other", path=sp))
    assert [p["port"] for p in s2["spec"]["ports"]] == [80, 443]
    s3 = ok(apply(kube, svc, path=sp))
    assert [p["port"] for p in s3["spec"]["ports"]] == [80, 443]
    assert s3["spec"]["clusterIP"] == s1["spec"]["clusterIP"]
    # tolerations are atomic: the whole list is one field
    ok(apply(kube, deployment(replicas=0, tolerations=[{"key": "a", "operator": "Exists"}])))
    d = ok(apply(kube, deployment(replicas=0, tolerations=[{"key": "b", "operator": "Exists"}])))
    assert d["spec"]["template"]["spec"]["tolerations"] == [{"key": "b", "operator": "Exists"}]
    assert fields(d, "comfyplat")["f:spec"]["f:template"]["f:spec"]["f:tolerations"] == {}


def test_never_ready_deployment_for_wait_timeouts(kube):
    # an image tag ending in :never-ready makes the Deployment stand-in report the pods as never
    # becoming available (the hook for comfyplat's wait timeouts)
    d = ok(apply(kube, deployment(replicas=2, image="comfyui:never-ready")))
    st = d["status"]
    assert (st["replicas"], st["updatedReplicas"], st["unavailableReplicas"]) == (2, 2, 2)
    assert "availableReplicas" not in st and "readyReplicas" not in st  # zero: omitted, as the apiserver does
    avail = [c for c in st["conditions"] if c["type"] == "Available"][0]
    assert (avail["status"], avail["reason"], avail["message"]) == (
        "False", "MinimumReplicasUnavailable", "Deployment does not have minimum availability.")
    prog = [c for c in st["conditions"] if c["type"] == "Progressing"][0]
    assert (prog["status"], prog["reason"]) == ("True", "ReplicaSetUpdated")
    p = kubectl(kube, "rollout", "status", "deployment/web", "--timeout=1s", ok=False)
    assert p.returncode != 0 and "0 of 2 updated replicas are available" in p.stdout + p.stderr
    # a good image: available on the write, and the Available condition transitions
    d = ok(apply(kube, deployment(replicas=2, image="comfyui:1")))
    avail = [c for c in d["status"]["conditions"] if c["type"] == "Available"][0]
    assert (avail["status"], d["status"]["availableReplicas"]) == ("True", 2)
    assert "successfully rolled out" in kubectl(kube, "rollout", "status", "deployment/web", "--timeout=5s").stdout


def test_daemonset_crud(kube):
    rows = {r.split()[0]: r.split() for r in kubectl(kube, "api-resources", "--api-group=apps", "--no-headers")
            .stdout.splitlines()}
    assert rows["daemonsets"][1:] == ["ds", "apps/v1", "true", "DaemonSet"]
    ds = {"apiVersion": "apps/v1", "kind": "DaemonSet",
          "metadata": {"name": "agent", "namespace": "kube-system", "labels": {"app": "agent"}},
          "spec": {"selector": {"matchLabels": {"app": "agent"}},
                   "template": {"metadata": {"labels": {"app": "agent"}},
                                "spec": {"containers": [{"name": "agent", "image": "agent:1"}]}}}}
    out = kubectl(kube, "apply", "--server-side", "--field-manager", "comfyplat", "-f",
                  manifest(kube, "ds.json", [ds])).stdout
    assert "daemonset.apps/agent serverside-applied" in out
    got = kjson(kube, "-n", "kube-system", "get", "ds", "agent")
    assert got["spec"]["updateStrategy"] == {"type": "RollingUpdate",
                                             "rollingUpdate": {"maxUnavailable": 1, "maxSurge": 0}}
    assert got["spec"]["revisionHistoryLimit"] == 10
    assert got["status"] == {"currentNumberScheduled": 0, "numberMisscheduled": 0, "desiredNumberScheduled": 0,
                             "numberReady": 0, "observedGeneration": 1}
    assert fields(got, "comfyplat")["f:spec"]["f:template"]["f:spec"]["f:containers"]
    kubectl(kube, "-n", "kube-system", "set", "image", "ds/agent", "agent=agent:2")
    got = kjson(kube, "-n", "kube-system", "get", "ds", "agent")
    assert got["spec"]["template"]["spec"]["containers"][0]["image"] == "agent:2"
    assert got["metadata"]["generation"] == 2 and got["status"]["observedGeneration"] == 2
    # across namespaces, status subresource, selector validation, delete
    assert [i["metadata"]["name"] for i in ok(call(kube, "GET", "/apis/apps/v1/daemonsets"))["items"]] == ["agent"]
    st = ok(call(kube, "PATCH", "/apis/apps/v1/namespaces/kube-system/daemonsets/agent/status",
                 {"spec": {"revisionHistoryLimit": 3}}, MERGE))
    assert st["spec"]["revisionHistoryLimit"] == 10
    bad = dict(ds, metadata={"name": "bad"}, spec={**ds["spec"], "selector": {"matchLabels": {"app": "x"}}})
    assert ok(call(kube, "POST", "/apis/apps/v1/namespaces/default/daemonsets", bad), 422)["reason"] == "Invalid"
    kubectl(kube, "-n", "kube-system", "delete", "ds", "agent")
    assert call(kube, "GET", "/apis/apps/v1/namespaces/kube-system/daemonsets/agent")[0] == 404


def test_plain_http_mode_and_sigterm(tmp_path):
    ready = tmp_path / "ready.json"
    proc = subprocess.Popen([sys.executable, os.path.join(HERE, "kube_server.py"), "--port", "0",
                             "--ready-file", str(ready), "--region", "eu-west-1"])
    try:
        for _ in range(100):
            if ready.exists():
                break
            time.sleep(0.05)
        info = json.loads(ready.read_text())
        assert info["endpoint"] == f"http://127.0.0.1:{info['port']}" and "ca_data" not in info

        def get(token):
            req = urllib.request.Request(info["endpoint"] + "/api/v1/namespaces")
            if token:
                req.add_header("Authorization", f"Bearer {token}")
            try:
                with urllib.request.urlopen(req, timeout=5) as r:
                    return r.status
            except urllib.error.HTTPError as e:
                return e.code

        assert get(kube_server.make_token(region="eu-west-1")) == 200
        assert get(kube_server.make_token(region="us-west-2")) == 401  # other region's STS
        assert get(None) == 401
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(10) == 0


def test_legacy_ingress_class_annotation(kube):
    ing = {"apiVersion": "networking.k8s.io/v1", "kind": "Ingress",
           "metadata": {"name": "old", "annotations": {"kubernetes.io/ingress.class": "alb"}},
           "spec": {"defaultBackend": {"service": {"name": "s", "port": {"number": 80}}}}}
    path = "/apis/networking.k8s.io/v1/namespaces/default/ingresses"
    created = ok(call(kube, "POST", path, ing), 201)
    assert created["metadata"]["finalizers"] == ["ingress.k8s.aws/resources"]
    assert "status" not in ok(call(kube, "GET", f"{path}/old")) or \
        not ok(call(kube, "GET", f"{path}/old"))["status"].get("loadBalancer")
    assert ok(call(kube, "GET", f"{path}/old"))["status"]["loadBalancer"]["ingress"][0]["hostname"] \
        .startswith("k8s-default-old-")
    other = dict(ing, metadata={"name": "nginx"}, spec={"ingressClassName": "nginx", **ing["spec"]})
    assert "finalizers" not in ok(call(kube, "POST", path, other), 201)["metadata"]
    assert ok(call(kube, "DELETE", f"{path}/old"), 202)["metadata"]["deletionTimestamp"]
    assert ok(call(kube, "GET", f"{path}/old"))["metadata"]["deletionTimestamp"]  # one more poll ...
    assert call(kube, "GET", f"{path}/old")[0] == 404                             # ... then gone


@pytest.mark.parametrize("binary", ["kubectl.1.32", "kubectl.1.31"])
def test_older_kubectl_discovery_fallback(kube, binary):
    path = os.path.join("/usr/lib/google-cloud-sdk/bin", binary)
    if not os.path.exists(path):
        pytest.skip(f"{binary} not installed")
    p = subprocess.run([path, "--kubeconfig", kube["kubeconfig"], "--cache-dir", kube["cache"] + binary,
                        "api-resources", "--api-group=apps"], capture_output=True, text=True, timeout=30)
    assert p.returncode == 0 and "deployments" in p.stdout, p.stderr


# --------------------------------------------------------------------------
# resource.Quantity (vectors of apimachinery's quantity_test.go)
# --------------------------------------------------------------------------

from fractions import Fraction  # noqa: E402

import kube_quantity  # noqa: E402
import seed  # noqa: E402

SEED_KARPENTER_CRDS = seed.KARPENTER_CRDS


def dec(i, exp):
    return Fraction(i) * Fraction(10) ** exp


# TestQuantityParse: input -> (value, format)
QUANTITY_PARSE = [
    ("0", dec(0, 0), "DecimalSI"), ("0n", dec(0, 0), "DecimalSI"), ("0Ki", dec(0, 0), "BinarySI"),
    ("0Mi", dec(0, 0), "BinarySI"), ("0T", dec(0, 0), "DecimalSI"), ("1", dec(1, 0), "DecimalSI"),
    ("1Ki", dec(1024, 0), "BinarySI"), ("8Ki", dec(8 * 1024, 0), "BinarySI"),
    ("7Mi", dec(7 * 1024 ** 2, 0), "BinarySI"), ("6Gi", dec(6 * 1024 ** 3, 0), "BinarySI"),
    ("5Ti", dec(5 * 1024 ** 4, 0), "BinarySI"), ("4Pi", dec(4 * 1024 ** 5, 0), "BinarySI"),
    ("3Ei", dec(3 * 1024 ** 6, 0), "BinarySI"), ("100Ti", dec(100 * 1024 ** 4, 0), "BinarySI"),
    ("5n", dec(5, -9), "DecimalSI"), ("4u", dec(4, -6), "DecimalSI"), ("3m", dec(3, -3), "DecimalSI"),
    ("8k", dec(8, 3), "DecimalSI"), ("50k", dec(5, 4), "DecimalSI"), ("7M", dec(7, 6), "DecimalSI"),
    ("6G", dec(6, 9), "DecimalSI"), ("40T", dec(4, 13), "DecimalSI"), ("300T", dec(3, 14), "DecimalSI"),
    ("2P", dec(2, 15), "DecimalSI"), ("1E", dec(1, 18), "DecimalSI"),
    ("1E-3", dec(1, -3), "DecimalExponent"), ("1e3", dec(1, 3), "DecimalExponent"),
    ("1E6", dec(1, 6), "DecimalExponent"), ("1e9", dec(1, 9), "DecimalExponent"),
    ("1E18", dec(1, 18), "DecimalExponent"), ("1e14", dec(1, 14), "DecimalExponent"),
    ("100.035k", dec(100035, 0), "DecimalSI"), ("0.001", dec(1, -3), "DecimalSI"),
    ("0.0005k", dec(5, -1), "DecimalSI"), ("0.5", dec(5, -1), "DecimalSI"),
    ("0.00050k", dec(5, -1), "DecimalSI"), ("0.50000", dec(5, -1), "DecimalSI"),
    ("0.5e0", dec(5, -1), "DecimalExponent"), ("0.5e-1", dec(5, -2), "DecimalExponent"),
    ("10.035M", dec(10035, 3), "DecimalSI"), ("1.2e3", dec(12, 2), "DecimalExponent"),
    ("1.3E+6", dec(13, 5), "DecimalExponent"), ("1.40e9", dec(14, 8), "DecimalExponent"),
    ("1.53E12", dec(153, 10), "DecimalExponent"), ("1.7E18", dec(17, 17), "DecimalExponent"),
    ("9.01", dec(901, -2), "DecimalSI"), ("8.1k", dec(81, 2), "DecimalSI"),
    ("7.123456M", dec(7123456, 0), "DecimalSI"), ("6.987654321G", dec(6987654321, 0), "DecimalSI"),
    ("5.444T", dec(5444, 9), "DecimalSI"), ("2.5P", dec(25, 14), "DecimalSI"), ("1.01E", dec(101, 16), "DecimalSI"),
    ("3.001n", dec(4, -9), "DecimalSI"), ("1.1E-9", dec(2, -9), "DecimalExponent"),
    ("0.0000000001", dec(1, -9), "DecimalSI"), ("0.0000000005", dec(1, -9), "DecimalSI"),
    ("0.5e-9", dec(1, -9), "DecimalExponent"), ("0.9n", dec(1, -9), "DecimalSI"),
    ("0.00000012345", dec(124, -9), "DecimalSI"), ("0.00000012354", dec(124, -9), "DecimalSI"),
    ("9Ei", Fraction(2 ** 63 - 1), "BinarySI"), ("9223372036854775807Ki", Fraction(2 ** 63 - 1), "BinarySI"),
    ("12E", dec(12, 18), "DecimalSI"), ("100.035Ki", dec(10243584, -2), "BinarySI"),
    ("0.5Mi", dec(512 * 1024, 0), "BinarySI"), ("0.05Gi", dec(536870912, -1), "BinarySI"),
    ("0.025Ti", dec(274877906944, -1), "BinarySI"), ("0.000000000001Ki", dec(2, -9), "DecimalSI"),
    (".001", dec(1, -3), "DecimalSI"), (".0001k", dec(100, -3), "DecimalSI"), ("1.", dec(1, 0), "DecimalSI"),
    ("1.G", dec(1, 9), "DecimalSI"),
]
# TestQuantityString: (value, format) -> canonical, and an alternate spelling of it
QUANTITY_STRING = [
    (dec(1024 ** 3, 0), "BinarySI", "1Gi", "1024Mi"), (dec(300 * 1024 ** 2, 0), "BinarySI", "300Mi", "307200Ki"),
    (dec(6 * 1024, 0), "BinarySI", "6Ki", ""), (dec(1001 * 1024 ** 3, 0), "BinarySI", "1001Gi", "1025024Mi"),
    (dec(1024 ** 4, 0), "BinarySI", "1Ti", "1024Gi"), (dec(5, 0), "BinarySI", "5", "5000m"),
    (dec(500, -3), "BinarySI", "500m", "0.5"), (dec(1, 9), "DecimalSI", "1G", "1000M"),
    (dec(1000, 6), "DecimalSI", "1G", "0.001T"), (dec(1, -3), "DecimalSI", "1m", "1000u"),
    (dec(1080, -3), "DecimalSI", "1080m", "1.08"), (dec(108, -2), "DecimalSI", "1080m", "1080000000n"),
    (dec(300, 6), "DecimalSI", "300M", ""), (dec(1234567, 6), "DecimalSI", "1234567M", ""),
    (dec(1234567, -3), "BinarySI", "1234567m", ""), (dec(1025, 0), "BinarySI", "1025", ""),
    (dec(0, 0), "DecimalSI", "0", ""), (dec(0, 0), "BinarySI", "0", ""),
    (dec(1, 9), "DecimalExponent", "1e9", ".001e12"), (dec(1, -3), "DecimalExponent", "1e-3", "0.001e0"),
    (dec(1, -9), "DecimalExponent", "1e-9", "1000e-12"), (dec(80, -3), "DecimalExponent", "80e-3", ""),
    (dec(300, 6), "DecimalExponent", "300e6", ""), (dec(3, 3), "DecimalExponent", "3e3", ""),
    (dec(0, 0), "DecimalExponent", "0", "00"), (dec(1, -9), "DecimalSI", "1n", ""),
    (dec(10800, -10), "DecimalSI", "1080n", ""), (dec(1080, -6), "DecimalSI", "1080u", ""),
]
# TestQuantityParseEmit, plus the examples of the task
QUANTITY_EMIT = [("1Ki", "1Ki"), ("1024Mi", "1Gi"), ("1000M", "1G"), (".001Ki", "1024m"), (".000001Ki", "1024u"),
                 (".000000001Ki", "1024n"), (".000000000001Ki", "2n"), ("0.5", "500m"), ("2000m", "2"),
                 ("1.5Gi", "1536Mi"), ("1e3", "1e3"), ("0.1Ki", "102400m"), ("1200Gi", "1200Gi")]
QUANTITY_INVALID = [("1.1.M", kube_quantity.ERR_FORMAT), ("1+1.0M", kube_quantity.ERR_FORMAT),
                    ("0.1mi", kube_quantity.ERR_SUFFIX), ("0.1am", kube_quantity.ERR_FORMAT),
                    ("aoeu", kube_quantity.ERR_FORMAT), (".5i", kube_quantity.ERR_SUFFIX),
                    ("1i", kube_quantity.ERR_SUFFIX), ("-3.01i", kube_quantity.ERR_SUFFIX),
                    ("-3.01e-", kube_quantity.ERR_SUFFIX), ("", kube_quantity.ERR_FORMAT)]


@pytest.mark.parametrize("text,value,fmt", QUANTITY_PARSE)
def test_quantity_parse_vectors(text, value, fmt):
    for sign, v in (("", value), ("-", -value), ("+", value)):
        q = kube_quantity.parse_quantity(sign + text)
        assert (q.value, q.format) == (v, fmt), sign + text
        # the printed form parses back to the same value
        assert kube_quantity.parse_quantity(str(q)).value == v


@pytest.mark.parametrize("value,fmt,canonical,alternate", QUANTITY_STRING)
def test_quantity_string_vectors(value, fmt, canonical, alternate):
    assert kube_quantity.canonical_string(value, fmt) == canonical
    if value:
        assert kube_quantity.canonical_string(-value, fmt) == "-" + canonical
    assert kube_quantity.parse_quantity(canonical).cached == canonical  # kept as given
    if alternate:
        q = kube_quantity.parse_quantity(alternate)
        assert q.cached is None and str(q) == canonical


@pytest.mark.parametrize("text,canonical", QUANTITY_EMIT)
def test_quantity_emit_vectors(text, canonical):
    assert kube_quantity.canonical(text) == canonical
    assert kube_quantity.canonical("-" + text) == "-" + canonical


@pytest.mark.parametrize("text,error", QUANTITY_INVALID)
def test_quantity_invalid_vectors(text, error):
    with pytest.raises(kube_quantity.QuantityError) as e:
        kube_quantity.parse_quantity(text)
    assert str(e.value) == error


def test_quantity_json_forms():
    # TestJSONWhitespace: strings are trimmed, JSON numbers parse from their text
    for given, want in ((" 1", "1"), ("1 ", "1"), (1, "1"), (10, "10"), (-1, "-1")):
        assert kube_quantity.canonical(given) == want
    assert kube_quantity.canonical(0.5) == "500m"
    assert kube_quantity.canonical("+1") == "+1"  # a canonical-looking string is kept as given


# --------------------------------------------------------------------------
# quantities in the stored objects
# --------------------------------------------------------------------------

PVC_PATH = "/api/v1/namespaces/default/persistentvolumeclaims"
PV_PATH = "/api/v1/persistentvolumes"


def pvc(name="data", storage="1Gi", **spec):
    return {"apiVersion": "v1", "kind": "PersistentVolumeClaim", "metadata": {"name": name},
            "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": storage}}, **spec}}


def pv(name="vol", capacity="10Gi", **spec):
    return {"apiVersion": "v1", "kind": "PersistentVolume", "metadata": {"name": name},
            "spec": {"capacity": {"storage": capacity}, "accessModes": ["ReadWriteOnce"],
                     "csi": {"driver": "s3.csi.aws.com", "volumeHandle": name}, **spec}}


def test_quantities_stored_canonical(kube):
    ok(call(kube, "POST", PVC_PATH, pvc(storage="1024Mi")), 201)
    assert kjson(kube, "get", "pvc", "data")["spec"]["resources"]["requests"]["storage"] == "1Gi"
    dep = deployment(name="q")
    c = dep["spec"]["template"]["spec"]["containers"][0]
    c["resources"] = {"limits": {"cpu": "0.5", "memory": "1.5Gi", "nvidia.com/gpu": 1},
                      "requests": {"cpu": "2000m", "ephemeral-storage": "1e3"}}
    c["env"] = [{"name": "MEM", "valueFrom": {"resourceFieldRef": {"resource": "limits.memory",
                                                                   "divisor": "1024Ki"}}}]
    dep["spec"]["template"]["spec"]["volumes"] = [{"name": "scratch", "emptyDir": {"sizeLimit": "0.1Ki"}}]
    kubectl(kube, "apply", "-f", manifest(kube, "q.json", [dep]))
    got = kjson(kube, "get", "deploy", "q")["spec"]["template"]["spec"]
    res = got["containers"][0]["resources"]
    assert res == {"limits": {"cpu": "500m", "memory": "1536Mi", "nvidia.com/gpu": "1"},
                   "requests": {"cpu": "2", "ephemeral-storage": "1e3"}}
    assert got["containers"][0]["env"][0]["valueFrom"]["resourceFieldRef"]["divisor"] == "1Mi"
    assert got["volumes"][0]["emptyDir"]["sizeLimit"] == "102400m"
    # server-side apply and patches store the canonical form too; re-applying the same spelling
    # is a no-op
    out = ok(apply(kube, pv(capacity="2048Mi"), path=PV_PATH))
    assert out["spec"]["capacity"]["storage"] == "2Gi"
    again = ok(apply(kube, pv(capacity="2048Mi"), path=PV_PATH))
    assert again["metadata"]["resourceVersion"] == out["metadata"]["resourceVersion"]
    out = ok(call(kube, "PATCH", f"{PV_PATH}/vol", {"spec": {"capacity": {"storage": "0.5Ti"}}}, MERGE))
    assert out["spec"]["capacity"]["storage"] == "512Gi"
    # custom resources keep their int-or-string values as given
    kubectl(kube, "apply", "-f", manifest(kube, "crds.json", SEED_KARPENTER_CRDS))
    np_ = {"apiVersion": "karpenter.sh/v1", "kind": "NodePool", "metadata": {"name": "gpu"},
           "spec": {"limits": {"memory": "1024Mi", "cpu": 1.5}, "template": {"spec": {
               "nodeClassRef": {"group": "karpenter.k8s.aws", "kind": "EC2NodeClass", "name": "gpu"},
               "requirements": []}}}}
    kubectl(kube, "apply", "--server-side", "-f", manifest(kube, "np.json", [np_]))
    assert kjson(kube, "get", "nodepool", "gpu")["spec"]["limits"] == {"memory": "1024Mi", "cpu": 1.5}


def test_invalid_quantity_refused(kube):
    bad = pvc(storage="1GB")
    p = kubectl(kube, "apply", "-f", manifest(kube, "bad.json", [bad]), ok=False)
    assert p.returncode != 0
    assert ('Error from server (BadRequest): error when creating "' in p.stderr and
            'PersistentVolumeClaim in version "v1" cannot be handled as a PersistentVolumeClaim: quantities must '
            "match the regular expression '^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$'" in p.stderr), p.stderr
    st = ok(call(kube, "POST", PVC_PATH, pvc(storage="1Gii")), 400)
    assert st["reason"] == "BadRequest" and st["message"] == (
        'PersistentVolumeClaim in version "v1" cannot be handled as a PersistentVolumeClaim: unable to parse '
        "quantity's suffix")
    # a merge patch that makes one invalid: 422 on the field "patch" of an unnamed object
    ok(call(kube, "POST", PVC_PATH, pvc()), 201)
    st = ok(call(kube, "PATCH", f"{PVC_PATH}/data", {"spec": {"resources": {"requests": {"storage": "x"}}}},
                 MERGE), 422)
    assert st["reason"] == "Invalid" and st["message"].startswith(' "" is invalid: patch: Invalid value: "{')
    assert st["message"].endswith(": quantities must match the regular expression "
                                  "'^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$'")
    assert st["details"]["causes"][0]["field"] == "patch" and "name" not in st["details"]
    # server-side apply: the conversion to the typed object fails (500, no reason)
    st = ok(apply(kube, pvc(name="ssa", storage="1x"), path=PVC_PATH), 500)
    assert "reason" not in st and st["message"] == (
        "failed to convert new object (/ssa; /v1, Kind=PersistentVolumeClaim) to proper version: unable to convert "
        "unstructured object to /v1, Kind=PersistentVolumeClaim: quantities must match the regular expression "
        "'^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$'")


# --------------------------------------------------------------------------
# immutable fields
# --------------------------------------------------------------------------

JSONP = "application/json-patch+json"
SMP = "application/strategic-merge-patch+json"


def all_write_paths(kube, path, name, base, change, manager="comfyplat"):
    """The answers to one change made by PUT, merge, JSON and strategic patches, and by
    server-side apply with and without force."""
    cur = ok(call(kube, "GET", f"{path}/{name}"))
    changed = json.loads(json.dumps(cur))
    change(changed)
    applied = json.loads(json.dumps(base))
    change(applied)
    spec_patch = {"spec": changed["spec"]}
    return {
        "put": call(kube, "PUT", f"{path}/{name}", changed),
        "merge": call(kube, "PATCH", f"{path}/{name}", spec_patch, MERGE),
        "json": call(kube, "PATCH", f"{path}/{name}", [{"op": "replace", "path": "/spec",
                                                        "value": changed["spec"]}], JSONP),
        "smp": call(kube, "PATCH", f"{path}/{name}", {"spec": {**changed["spec"], "$retainKeys": list(
            changed["spec"])}}, SMP),
        "apply": call(kube, "PATCH", f"{path}/{name}", applied, APPLY, fieldManager=manager),
        "apply-force": call(kube, "PATCH", f"{path}/{name}", applied, APPLY, fieldManager="other", force="true"),
    }


def assert_refused(answers, message, causes):
    for how, (code, body, _) in answers.items():
        assert code == 422, (how, body)
        assert body["reason"] == "Invalid" and body["message"].startswith(message), (how, body["message"])
        assert [(c["field"], c["reason"]) for c in body["details"]["causes"]] == causes, (how, body)


def test_persistent_volume_immutable_fields(kube):
    base = pv(claimRef={"namespace": "default", "name": "data"}, storageClassName="")
    ok(apply(kube, base, path=PV_PATH))

    def new_source(o):
        o["spec"]["csi"]["volumeHandle"] = "other"

    answers = all_write_paths(kube, PV_PATH, "vol", base, new_source)
    assert_refused(answers, 'PersistentVolume "vol" is invalid: spec.persistentvolumesource: Forbidden: '
                            'spec.persistentvolumesource is immutable after creation\n  core.PersistentVolumeSource{',
                   [("spec.persistentvolumesource", "FieldValueForbidden")])
    st = answers["put"][1]
    assert st["details"]["causes"][0]["message"].startswith(
        "Forbidden: spec.persistentvolumesource is immutable after creation\n")
    assert '- \tCSI: {"driver":"s3.csi.aws.com","volumeHandle":"vol"},' in st["message"]
    assert '+ \tCSI: {"driver":"s3.csi.aws.com","volumeHandle":"other"},' in st["message"]
    assert st["details"] == {**st["details"], "name": "vol", "kind": "PersistentVolume"} and \
        "group" not in st["details"]
    # a different volume type: hostPath instead of csi
    st = ok(call(kube, "PATCH", f"{PV_PATH}/vol", {"spec": {"csi": None, "hostPath": {"path": "/d"}}}, MERGE), 422)
    assert "- \tHostPath: nil," in st["message"] and "+ \tCSI: nil," in st["message"]
    # volumeMode (defaulted to Filesystem) is immutable, with upstream's field path "volumeMode"
    st = ok(call(kube, "PATCH", f"{PV_PATH}/vol", {"spec": {"volumeMode": "Block"}}, MERGE), 422)
    assert st["message"] == 'PersistentVolume "vol" is invalid: volumeMode: Invalid value: "Block": field is immutable'
    # what upstream lets change: claimRef, storageClassName, capacity, mountOptions, reclaim policy
    out = ok(call(kube, "PATCH", f"{PV_PATH}/vol", {"spec": {
        "claimRef": {"namespace": "default", "name": "other"}, "storageClassName": "fast",
        "capacity": {"storage": "20Gi"}, "mountOptions": ["ro"], "persistentVolumeReclaimPolicy": "Delete"}},
        MERGE))
    assert out["spec"]["storageClassName"] == "fast" and out["spec"]["claimRef"]["name"] == "other"
    # nodeAffinity: may be set once, then it is immutable
    aff = {"required": {"nodeSelectorTerms": [{"matchExpressions": [
        {"key": "topology.kubernetes.io/zone", "operator": "In", "values": ["us-west-2a"]}]}]}}
    ok(call(kube, "PATCH", f"{PV_PATH}/vol", {"spec": {"nodeAffinity": aff}}, MERGE))
    aff2 = json.loads(json.dumps(aff))
    aff2["required"]["nodeSelectorTerms"][0]["matchExpressions"][0]["values"] = ["us-west-2b"]
    st = ok(call(kube, "PATCH", f"{PV_PATH}/vol", {"spec": {"nodeAffinity": aff2}}, MERGE), 422)
    assert st["message"].startswith('PersistentVolume "vol" is invalid: nodeAffinity: Invalid value: '
                                    'core.VolumeNodeAffinity{Required:(*core.NodeSelector)(0x')
    assert st["message"].endswith(")}: field is immutable")
    # kubectl apply of a changed source fails as against a real cluster
    changed = json.loads(json.dumps(base))
    changed["spec"]["csi"]["volumeHandle"] = "moved"
    p = kubectl(kube, "apply", "--server-side", "--force-conflicts", "-f", manifest(kube, "pv.json", [changed]),
                ok=False)
    # (kubectl words an Invalid Status as "The <kind> "<name>" is invalid: <causes>")
    assert p.returncode != 0 and 'The PersistentVolume "vol" is invalid: ' \
        'spec.persistentvolumesource: Forbidden: spec.persistentvolumesource is immutable after creation' in p.stderr


def test_persistent_volume_claim_immutable_spec(kube):
    ok(call(kube, "POST", PV_PATH, pv(claimRef={"namespace": "default", "name": "data"})), 201)
    base = pvc(storageClassName="", volumeName="vol")
    ok(apply(kube, base, path=PVC_PATH))
    assert kjson(kube, "get", "pvc", "data")["status"]["phase"] == "Bound"

    def new_class(o):
        o["spec"]["storageClassName"] = "gp3"

    answers = all_write_paths(kube, PVC_PATH, "data", base, new_class)
    assert_refused(answers, 'PersistentVolumeClaim "data" is invalid: spec: Forbidden: spec is immutable after '
                            'creation except resources.requests and volumeAttributesClassName for bound claims\n'
                            '  core.PersistentVolumeClaimSpec{\n', [("spec", "FieldValueForbidden")])
    assert '- \tStorageClassName: "",\n+ \tStorageClassName: "gp3",' in answers["merge"][1]["message"]
    # a bound claim may grow; it may not shrink below status.capacity
    out = ok(call(kube, "PATCH", f"{PVC_PATH}/data", {"spec": {"resources": {"requests": {"storage": "20Gi"}}}},
                  MERGE))
    assert out["spec"]["resources"]["requests"]["storage"] == "20Gi"
    st = ok(call(kube, "PATCH", f"{PVC_PATH}/data", {"spec": {"resources": {"requests": {"storage": "5Gi"}}}},
                 MERGE), 422)
    assert st["message"] == ('PersistentVolumeClaim "data" is invalid: spec.resources.requests.storage: '
                             'Forbidden: field can not be less than status.capacity')
    # volumeAttributesClassName may change on a bound claim
    ok(call(kube, "PATCH", f"{PVC_PATH}/data", {"spec": {"volumeAttributesClassName": "fast"}}, MERGE))
    st = ok(call(kube, "PATCH", f"{PVC_PATH}/data", {"spec": {"volumeAttributesClassName": None}}, MERGE), 422)
    # (the spec check copies only a non-nil new volumeAttributesClassName: removing it fails both checks)
    assert st["message"].endswith("\n, spec.volumeAttributesClassName: Forbidden: update from non-nil value to "
                                  "nil is forbidden]")
    # a pending claim: requests are immutable too; volumeMode has its own error
    ok(call(kube, "POST", PVC_PATH, pvc(name="pending")), 201)
    st = ok(call(kube, "PATCH", f"{PVC_PATH}/pending", {"spec": {"resources": {"requests": {"storage": "2Gi"}},
                                                                 "volumeMode": "Block"}}, MERGE), 422)
    assert st["message"].startswith('PersistentVolumeClaim "pending" is invalid: [spec: Forbidden: spec is '
                                    'immutable after creation except')
    assert st["message"].endswith(', volumeMode: Invalid value: "Block": field is immutable]')
    assert [c["field"] for c in st["details"]["causes"]] == ["spec", "volumeMode"]
    # setting storageClassName where there was none, and volumeName once, are allowed
    ok(call(kube, "PATCH", f"{PVC_PATH}/pending", {"spec": {"storageClassName": "gp3", "volumeName": "x"}}, MERGE))
    st = ok(call(kube, "PATCH", f"{PVC_PATH}/pending", {"spec": {"volumeName": "y"}}, MERGE), 422)
    assert '- \tVolumeName: "x",\n+ \tVolumeName: "y",' in st["message"]


def test_selector_cluster_ip_and_controller_immutable(kube):
    base = deployment()
    ok(apply(kube, base))

    def new_selector(o):
        o["spec"]["selector"] = {"matchLabels": {"app": "web", "v": "2"}}
        o["spec"]["template"]["metadata"]["labels"] = {"app": "web", "v": "2"}

    answers = all_write_paths(kube, DEPLOY_PATH, "web", base, new_selector)
    assert_refused(answers, 'Deployment.apps "web" is invalid: spec.selector: Invalid value: v1.LabelSelector{'
                            'MatchLabels:map[string]string{"app":"web", "v":"2"}, MatchExpressions:'
                            '[]v1.LabelSelectorRequirement(nil)}: field is immutable',
                   [("spec.selector", "FieldValueInvalid")])
    ds = {"apiVersion": "apps/v1", "kind": "DaemonSet", "metadata": {"name": "agent"},
          "spec": {"selector": {"matchLabels": {"app": "agent"}},
                   "template": {"metadata": {"labels": {"app": "agent", "x": "1"}},
                                "spec": {"containers": [{"name": "a", "image": "a:1"}]}}}}
    kubectl(kube, "apply", "-f", manifest(kube, "ds.json", [ds]))
    ds["spec"]["selector"] = {"matchExpressions": [{"key": "x", "operator": "In", "values": ["1"]}]}
    p = kubectl(kube, "apply", "-f", manifest(kube, "ds.json", [ds]), ok=False)
    assert p.returncode != 0 and (
        'The DaemonSet "agent" is invalid: spec.selector: Invalid value: v1.LabelSelector{MatchLabels:'
        'map[string]string(nil), MatchExpressions:[]v1.LabelSelectorRequirement{v1.LabelSelectorRequirement{'
        'Key:"x", Operator:"In", Values:[]string{"1"}}}}: field is immutable') in p.stderr, p.stderr
    # Service: clusterIP/clusterIPs may not change once set
    svc = {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "s"}, "spec": {"ports": [{"port": 80}]}}
    kubectl(kube, "apply", "-f", manifest(kube, "svc.json", [svc]))
    ip = kjson(kube, "get", "svc", "s")["spec"]["clusterIP"]
    p = kubectl(kube, "patch", "svc", "s", "-p", '{"spec":{"clusterIP":"10.100.250.250"}}', ok=False)
    assert p.returncode != 0 and 'The Service "s" is invalid: spec.clusterIPs[0]: Invalid value: ' \
        '[]string{"10.100.250.250"}: may not change once set' in p.stderr, p.stderr
    st = ok(call(kube, "PATCH", "/api/v1/namespaces/default/services/s", {"spec": {"clusterIPs": ["10.100.9.9"]}},
                 MERGE), 422)
    assert st["details"]["causes"] == [{"reason": "FieldValueInvalid", "field": "spec.clusterIPs[0]", "message":
                                        'Invalid value: []string{"10.100.9.9"}: may not change once set'}]
    # a patch that leaves the IPs out keeps them (the allocated values are carried over)
    out = ok(call(kube, "PUT", "/api/v1/namespaces/default/services/s", {
        **svc, "metadata": {"name": "s"}, "spec": {"ports": [{"port": 81}]}}))
    assert out["spec"]["clusterIP"] == ip and out["spec"]["clusterIPs"] == [ip]
    # IngressClass spec.controller
    ic = {"apiVersion": "networking.k8s.io/v1", "kind": "IngressClass", "metadata": {"name": "alb"},
          "spec": {"controller": "ingress.k8s.aws/alb"}}
    ok(apply(kube, ic, path="/apis/networking.k8s.io/v1/ingressclasses"))
    ic["spec"]["controller"] = "example.com/other"
    st = ok(apply(kube, ic, path="/apis/networking.k8s.io/v1/ingressclasses", force="true"), 422)
    assert st["message"] == ('IngressClass.networking.k8s.io "alb" is invalid: spec.controller: Invalid value: '
                             '"example.com/other": field is immutable')
    # an immutable ConfigMap
    cm = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "frozen"}, "data": {"a": "1"},
          "immutable": True}
    ok(call(kube, "POST", "/api/v1/namespaces/default/configmaps", cm), 201)
    st = ok(call(kube, "PATCH", "/api/v1/namespaces/default/configmaps/frozen", {"data": {"a": "2"}}, MERGE), 422)
    assert st["message"] == 'ConfigMap "frozen" is invalid: data: Forbidden: field is immutable when `immutable` is set'


def test_cel_transition_rules_of_karpenter_crds(kube):
    kubectl(kube, "apply", "-f", manifest(kube, "crds.json", SEED_KARPENTER_CRDS))
    np_ = {"apiVersion": "karpenter.sh/v1", "kind": "NodePool", "metadata": {"name": "gpu"},
           "spec": {"template": {"spec": {
               "nodeClassRef": {"group": "karpenter.k8s.aws", "kind": "EC2NodeClass", "name": "gpu"},
               "requirements": [{"key": "kubernetes.io/os", "operator": "In", "values": ["linux"]}]}}}}
    path = manifest(kube, "np.json", [np_])
    kubectl(kube, "apply", "--server-side", "-f", path)
    # a rule of another form (name may not be empty) is not evaluated; the name may change
    np_["spec"]["template"]["spec"]["nodeClassRef"]["name"] = "gpu2"
    kubectl(kube, "apply", "--server-side", "-f", manifest(kube, "np.json", [np_]))
    np_["spec"]["template"]["spec"]["nodeClassRef"]["group"] = "example.com"
    p = kubectl(kube, "apply", "--server-side", "--force-conflicts", "-f", manifest(kube, "np.json", [np_]),
                ok=False)
    assert p.returncode != 0 and (
        'The NodePool "gpu" is invalid: spec.template.spec.nodeClassRef: '
        'Invalid value: "object": nodeClassRef.group is immutable') in p.stderr, p.stderr
    np_["spec"]["template"]["spec"]["nodeClassRef"]["kind"] = "Other"
    # (force: kubectl owns the fields; without it the apply stops at the conflict, 409, before validation)
    st = ok(apply(kube, np_, path="/apis/karpenter.sh/v1/nodepools", force="true"), 422)
    assert st["message"] == (
        'NodePool.karpenter.sh "gpu" is invalid: [spec.template.spec.nodeClassRef: Invalid value: "object": '
        'nodeClassRef.group is immutable, spec.template.spec.nodeClassRef: Invalid value: "object": '
        'nodeClassRef.kind is immutable]')
    assert st["details"]["group"] == "karpenter.sh" and st["details"]["kind"] == "NodePool"
    assert st["details"]["causes"][0] == {"reason": "FieldValueInvalid", "field": "spec.template.spec.nodeClassRef",
                                          "message": 'Invalid value: "object": nodeClassRef.group is immutable'}
    # merge patch and PUT are refused alike; has(self.replicas) == has(oldSelf.replicas) on spec
    st = ok(call(kube, "PATCH", "/apis/karpenter.sh/v1/nodepools/gpu", {"spec": {"replicas": 2}}, MERGE), 422)
    assert st["message"] == ('NodePool.karpenter.sh "gpu" is invalid: spec: Invalid value: "object": Cannot '
                             'transition NodePool between static (replicas set) and dynamic (replicas unset) '
                             'provisioning modes')
    cur = ok(call(kube, "GET", "/apis/karpenter.sh/v1/nodepools/gpu"))
    cur["spec"]["template"]["spec"]["nodeClassRef"]["kind"] = "X"
    assert ok(call(kube, "PUT", "/apis/karpenter.sh/v1/nodepools/gpu", cur), 422)["reason"] == "Invalid"
    # creation has no oldSelf: transition rules do not apply
    np2 = json.loads(json.dumps(np_))
    np2["metadata"]["name"] = "static"
    np2["spec"]["replicas"] = 1
    ok(apply(kube, np2, path="/apis/karpenter.sh/v1/nodepools"))


# --------------------------------------------------------------------------
# fieldValidation, pruning
# --------------------------------------------------------------------------


def test_field_validation_built_in_kinds(kube):
    bad = deployment(name="typo")
    bad["spec"]["replicaz"] = 2
    bad["spec"]["template"]["spec"]["containers"][0]["imagePullPolicyy"] = "Always"
    path = manifest(kube, "typo.json", [bad])
    # kubectl sends fieldValidation=Strict: client-side apply of a new object (POST)
    p = kubectl(kube, "apply", "-f", path, ok=False)
    assert p.returncode != 0 and (
        'Error from server (BadRequest): error when creating "' + path + '": Deployment in version "v1" cannot be '
        'handled as a Deployment: strict decoding error: unknown field "spec.replicaz", unknown field '
        '"spec.template.spec.containers[0].imagePullPolicyy"') in p.stderr, p.stderr
    # ... of an existing object (strategic merge patch): 422 on the patch
    kubectl(kube, "apply", "-f", manifest(kube, "good.json", [deployment(name="typo")]))
    p = kubectl(kube, "apply", "-f", path, ok=False)
    assert p.returncode != 0 and 'strict decoding error: unknown field "spec.replicaz", unknown field ' \
        '"spec.template.spec.containers[0].imagePullPolicyy"' in p.stderr and "patch: Invalid value: " \
        "\"map[" in p.stderr, p.stderr
    # server-side apply refuses undeclared fields whatever fieldValidation says (500, no reason)
    p = kubectl(kube, "apply", "--server-side", "-f", path, ok=False)
    assert p.returncode != 0 and (
        "Error from server: failed to create typed patch object (default/typo; apps/v1, Kind=Deployment): "
        '.spec.replicaz: field not declared in schema') in p.stderr, p.stderr
    st = ok(apply(kube, bad, fieldValidation="Ignore"), 500)
    assert st["message"] == ("failed to create typed patch object (/typo; apps/v1, Kind=Deployment): "
                             ".spec.replicaz: field not declared in schema") and "reason" not in st
    # the default is Warn: stored without the unknown fields, one Warning header each
    ok(call(kube, "DELETE", f"{DEPLOY_PATH}/typo"))
    code, body, headers = call(kube, "POST", DEPLOY_PATH, bad)
    assert code == 201 and "replicaz" not in body["spec"]
    assert "imagePullPolicyy" not in body["spec"]["template"]["spec"]["containers"][0]
    # (in document order: this body has spec.replicaz after spec.template)
    assert headers.get_all("Warning") == ['299 - "unknown field \\"spec.template.spec.containers[0].'
                                          'imagePullPolicyy\\""', '299 - "unknown field \\"spec.replicaz\\""']
    code, body, headers = call(kube, "PUT", f"{DEPLOY_PATH}/typo", {**bad, "metadata": body["metadata"]},
                               fieldValidation="Ignore")
    assert code == 200 and headers.get_all("Warning") is None
    # Strict on PUT: 400; on a merge patch: 422 with the patched object as the value
    st = ok(call(kube, "PUT", f"{DEPLOY_PATH}/typo", bad, fieldValidation="Strict"), 400)
    assert st["message"] == ('Deployment in version "v1" cannot be handled as a Deployment: strict decoding error: '
                             'unknown field "spec.template.spec.containers[0].imagePullPolicyy", unknown field '
                             '"spec.replicaz"')
    st = ok(call(kube, "PATCH", f"{DEPLOY_PATH}/typo", {"spec": {"paused": True, "foo": 1}}, MERGE,
                 fieldValidation="Strict"), 422)
    assert st["message"].startswith(' "" is invalid: patch: Invalid value: "{\\"apiVersion\\":\\"apps/v1\\",')
    assert st["message"].endswith('": strict decoding error: unknown field "spec.foo"')
    assert st["details"] == {"causes": [{"reason": "FieldValueInvalid", "field": "patch",
                                         "message": st["message"][len(' "" is invalid: patch: '):]}]}
    # duplicate keys: reported by the strict decoder, the last value wins
    raw = b'{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"d"},"data":{"a":"1"},"data":{"a":"2"}}'
    st = ok(call(kube, "POST", "/api/v1/namespaces/default/configmaps", raw, fieldValidation="Strict"), 400)
    assert st["message"] == ('ConfigMap in version "v1" cannot be handled as a ConfigMap: strict decoding error: '
                             'duplicate field "data"')
    code, body, headers = call(kube, "POST", "/api/v1/namespaces/default/configmaps", raw)
    assert code == 201 and body["data"] == {"a": "2"} and headers.get_all("Warning") == [
        '299 - "duplicate field \\"data\\""']
    # an unsupported directive
    st = ok(call(kube, "POST", "/api/v1/namespaces/default/configmaps", raw, fieldValidation="Loose"), 422)
    assert st["message"] == ('CreateOptions.meta.k8s.io "" is invalid: fieldValidation: Unsupported value: "Loose": '
                             'supported values: "", "Ignore", "Strict", "Warn"')
    # JSON patch operations are decoded strictly too
    st = ok(call(kube, "PATCH", "/api/v1/namespaces/default/configmaps/d",
                 [{"op": "add", "path": "/data/b", "value": "1", "foo": "bar"}], JSONP, fieldValidation="Strict"), 422)
    assert st["message"].endswith('": strict decoding error: json patch unknown field "foo"')


def test_custom_resources_pruned(kube):
    kubectl(kube, "apply", "-f", manifest(kube, "crds.json", SEED_KARPENTER_CRDS))
    nc = {"apiVersion": "karpenter.k8s.aws/v1", "kind": "EC2NodeClass", "metadata": {"name": "gpu", "labelz": {}},
          "spec": {"role": "r", "amiSelectorTerms": [{"alias": "al2023@latest", "owner2": "x"}],
                   "subnetSelectorTerms": [{"id": "s"}], "securityGroupSelectorTerms": [{"id": "g"}],
                   "spec2": True}}
    nc_path = "/apis/karpenter.k8s.aws/v1/ec2nodeclasses"
    code, body, headers = call(kube, "POST", nc_path, nc)
    assert code == 201 and "spec2" not in body["spec"] and body["spec"]["amiSelectorTerms"] == [
        {"alias": "al2023@latest"}] and "labelz" not in body["metadata"]
    assert body["spec"]["metadataOptions"]["httpTokens"] == "required"  # defaults still applied
    assert headers.get_all("Warning") == ['299 - "unknown field \\"metadata.labelz\\""',
                                          '299 - "unknown field \\"spec.amiSelectorTerms[0].owner2\\""',
                                          '299 - "unknown field \\"spec.spec2\\""']
    st = ok(call(kube, "PUT", f"{nc_path}/gpu", {**nc, "metadata": {"name": "gpu"}}, fieldValidation="Strict"), 400)
    assert st["message"] == ('EC2NodeClass in version "v1" cannot be handled as a EC2NodeClass: strict decoding '
                             'error: unknown field "spec.amiSelectorTerms[0].owner2", unknown field "spec.spec2"')
    st = ok(call(kube, "PATCH", f"{nc_path}/gpu", {"spec": {"foo": 1}}, MERGE, fieldValidation="Strict"), 422)
    assert st["message"].endswith('": strict decoding error: unknown field "spec.foo"')
    # kubectl apply (Strict) of a misspelt field: merge patch on an existing custom resource
    bad = json.loads(json.dumps(nc))
    bad["metadata"] = {"name": "gpu"}
    p = kubectl(kube, "apply", "-f", manifest(kube, "nc.json", [bad]), ok=False)
    assert p.returncode != 0 and 'unknown field "spec.amiSelectorTerms[0].owner2", unknown field "spec.spec2"' \
        in p.stderr, p.stderr
    p = kubectl(kube, "apply", "--server-side", "-f", manifest(kube, "nc.json", [bad]), ok=False)
    assert p.returncode != 0 and ("Error from server: failed to create typed patch object (/gpu; "
                                  "karpenter.k8s.aws/v1, Kind=EC2NodeClass): errors:\n"
                                  "  .spec.amiSelectorTerms[0].owner2: field not declared in schema\n"
                                  "  .spec.spec2: field not declared in schema") in p.stderr, p.stderr
    # x-kubernetes-preserve-unknown-fields keeps them (the test CRD of NodePool preserves everything)
    kubectl(kube, "apply", "-f", manifest(kube, "crds2.json", [KARPENTER_CRDS[1]]))
    code, body, headers = call(kube, "POST", "/apis/karpenter.sh/v1/nodepools",
                               {"apiVersion": "karpenter.sh/v1", "kind": "NodePool", "metadata": {"name": "p"},
                                "spec": {"anything": {"goes": 1}}})
    assert code == 201 and body["spec"]["anything"] == {"goes": 1} and headers.get_all("Warning") is None


# --------------------------------------------------------------------------
# storage object in-use protection
# --------------------------------------------------------------------------


def test_kubectl_pvc_in_use_protection(kube):
    kubectl(kube, "create", "ns", "comfy")
    kubectl(kube, "apply", "-f", manifest(kube, "app.json", APP[:4]))
    claim = kjson(kube, "-n", "comfy", "get", "pvc", "outputs")
    assert claim["metadata"]["finalizers"] == ["kubernetes.io/pvc-protection"]
    vol = kjson(kube, "get", "pv", "outputs-pv")
    assert vol["metadata"]["finalizers"] == ["kubernetes.io/pv-protection"]
    assert vol["spec"]["claimRef"]["uid"] == claim["metadata"]["uid"] and vol["status"]["phase"] == "Bound"
    assert vol["spec"]["persistentVolumeReclaimPolicy"] == "Retain" and vol["spec"]["volumeMode"] == "Filesystem"
    # the Deployment mounts the claim: deleting it leaves it Terminating
    kubectl(kube, "-n", "comfy", "delete", "pvc", "outputs", "--wait=false")
    for _ in range(3):
        claim = kjson(kube, "-n", "comfy", "get", "pvc", "outputs")
        assert claim["metadata"]["deletionTimestamp"] and claim["status"]["phase"] == "Bound"
    # deleting a bound PV leaves it Terminating until its claim is gone
    kubectl(kube, "delete", "pv", "outputs-pv", "--wait=false")
    assert kjson(kube, "get", "pv", "outputs-pv")["metadata"]["deletionTimestamp"]
    # scaled to 0 nothing uses the claim: the next read lets it go; the PV is Released, then goes
    kubectl(kube, "-n", "comfy", "scale", "deploy", "comfyui", "--replicas=0")
    kubectl(kube, "-n", "comfy", "get", "pvc", "outputs")
    p = kubectl(kube, "-n", "comfy", "get", "pvc", "outputs", ok=False)
    assert p.returncode != 0 and "NotFound" in p.stderr
    kubectl(kube, "wait", "--for=delete", "pv/outputs-pv", "--timeout=5s")


def test_pv_released_keeps_claim_ref(kube):
    ok(call(kube, "POST", PV_PATH, pv(claimRef={"namespace": "default", "name": "data"})), 201)
    vol = ok(call(kube, "GET", f"{PV_PATH}/vol"))
    assert vol["status"]["phase"] == "Available" and "uid" not in vol["spec"]["claimRef"]
    # a PV with a claimRef without uid binds to the claim it names when that claim appears
    first = ok(call(kube, "POST", PVC_PATH, pvc()), 201)
    assert first["status"]["phase"] == "Bound" and first["spec"]["volumeName"] == "vol"
    vol = ok(call(kube, "GET", f"{PV_PATH}/vol"))
    assert vol["status"]["phase"] == "Bound" and vol["spec"]["claimRef"]["uid"] == first["metadata"]["uid"]
    # kubectl delete (with its default wait) returns once the claim is gone: nothing uses it
    kubectl(kube, "delete", "pvc", "data", "--timeout=10s")
    vol = kjson(kube, "get", "pv", "vol")
    assert vol["status"]["phase"] == "Released" and vol["spec"]["claimRef"]["uid"] == first["metadata"]["uid"]
    # a new claim of the same name does not bind to the released volume
    second = ok(call(kube, "POST", PVC_PATH, pvc(volumeName="vol")), 201)
    assert second["status"]["phase"] == "Pending"
    assert kjson(kube, "get", "pv", "vol")["status"]["phase"] == "Released"
    # a released PV is not in use: deleting it completes
    kubectl(kube, "delete", "pv", "vol", "--timeout=10s")
    # a DaemonSet mounting a claim keeps it too, until the DaemonSet goes
    ok(call(kube, "POST", PVC_PATH, pvc(name="shared")), 201)
    ds = {"apiVersion": "apps/v1", "kind": "DaemonSet", "metadata": {"name": "agent"},
          "spec": {"selector": {"matchLabels": {"app": "agent"}},
                   "template": {"metadata": {"labels": {"app": "agent"}},
                                "spec": {"containers": [{"name": "a", "image": "a:1"}],
                                         "volumes": [{"name": "v", "persistentVolumeClaim": {"claimName": "shared"}}]}}}}
    ok(call(kube, "POST", "/apis/apps/v1/namespaces/default/daemonsets", ds), 201)
    ok(call(kube, "DELETE", f"{PVC_PATH}/shared"), 202)
    ok(call(kube, "GET", f"{PVC_PATH}/shared"))
    assert ok(call(kube, "GET", f"{PVC_PATH}/shared"))["metadata"]["finalizers"] == ["kubernetes.io/pvc-protection"]
    ok(call(kube, "DELETE", "/apis/apps/v1/namespaces/default/daemonsets/agent"))
    kubectl(kube, "wait", "--for=delete", "pvc/shared", "--timeout=5s")


def test_listen_backlog_takes_a_burst_of_connections():
    """A burst of connections is queued, not dropped: with socketserver's default backlog of 5 the
    kernel drops SYNs past it and clients only retransmit after a second (seen as a 1 s stall
    behind the recording proxy). The server is not accepting here, so only the backlog holds them."""
    import socket

    server = kube_server.Server((kube_server.HOST, 0), kube_server.Handler)
    socks = []
    try:
        for _ in range(64):
            sock = socket.socket()
            sock.settimeout(0.5)
            sock.connect(server.server_address)  # raises TimeoutError when the SYN is dropped
            socks.append(sock)
        assert len(socks) == 64
    finally:
        for sock in socks:
            sock.close()
        server.server_close()


# --------------------------------------------------------------------------
# nodes, DaemonSet pods, readiness and logs (the model cache agents)
# --------------------------------------------------------------------------

AGENT = "comfyplat-model-agent"
AGENT_SELECTOR = f"app.kubernetes.io/name={AGENT}"
POD_NAME_RE = r"comfyplat-model-agent-[bcdfghjklmnpqrstvwxz2456789]{5}"
GPU_TAINT = {"key": "nvidia.com/gpu", "effect": "NoSchedule"}


def agent_ds(platform="p", containers=None, **spec):
    """The model agent DaemonSet as comfyplat renders it."""
    labels = {"app.kubernetes.io/name": AGENT, "app.kubernetes.io/instance": platform}
    containers = containers or [{"name": "agent", "image": "agent:1",
                                 "readinessProbe": {"exec": {"command": ["cat", "/run/agent/synced"]},
                                                    "periodSeconds": 5}}]
    return {"apiVersion": "apps/v1", "kind": "DaemonSet",
            "metadata": {"name": AGENT, "namespace": "comfyui", "labels": labels},
            "spec": {"selector": {"matchLabels": labels},
                     "template": {"metadata": {"labels": labels},
                                  "spec": {"nodeSelector": {"karpenter.sh/nodepool": f"{platform}-gpu"},
                                           "tolerations": [{"key": "nvidia.com/gpu", "operator": "Exists",
                                                            "effect": "NoSchedule"}],
                                           "containers": containers, **spec}}}}


def nodes(kube, *entries):
    return ok(call(kube, "POST", "/__control/nodes", {"nodes": list(entries)}, token=None))["nodes"]


def gpu_node(name, pool="p-gpu", taints=(GPU_TAINT,), **labels):
    return {"name": name, "labels": {"karpenter.sh/nodepool": pool, **labels}, "taints": list(taints)}


def agent_pods(kube, *args):
    return kjson(kube, "-n", "comfyui", "get", "pods", "-l", AGENT_SELECTOR, *args)["items"]


def on_node(pods):
    return {p["spec"]["nodeName"]: p for p in pods}


def pod_control(kube, code=200, **body):
    return ok(call(kube, "POST", "/__control/pods/log", body, token=None), code)


def ds_status(kube, name=AGENT, ns="comfyui"):
    return ok(call(kube, "GET", f"/apis/apps/v1/namespaces/{ns}/daemonsets/{name}"))["status"]


def raw_get(kube, path, **query):
    """(status, Content-Type, body text) of a GET that may answer text/plain."""
    url = kube["endpoint"] + path + ("?" + urllib.parse.urlencode(query) if query else "")
    req = urllib.request.Request(url, headers={"Authorization": f"Bearer {TOKEN}"})
    try:
        with urllib.request.urlopen(req, context=kube["ctx"], timeout=15) as r:
            return r.status, r.headers["Content-Type"], r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.headers["Content-Type"], e.read().decode()


def deploy_agents(kube, *node_entries, ds=None):
    kubectl(kube, "create", "ns", "comfyui")
    if node_entries:
        nodes(kube, *node_entries)
    kubectl(kube, "apply", "-f", manifest(kube, "agent.json", [ds or agent_ds()]))


def test_nodes_control_discovery_and_kubectl_get(kube):
    rows = {r.split()[0]: r.split() for r in kubectl(kube, "api-resources", "--api-group=", "--no-headers")
            .stdout.splitlines()}
    assert rows["nodes"][1:] == ["no", "v1", "false", "Node"]
    assert rows["pods"][1:] == ["po", "v1", "true", "Pod"]
    by = {r["name"]: r for r in ok(call(kube, "GET", "/api/v1"))["resources"]}
    assert by["pods/log"] == {"name": "pods/log", "singularName": "", "namespaced": True, "kind": "Pod",
                              "verbs": ["get"]}
    assert by["pods"]["categories"] == ["all"] and "nodes/status" in by
    made = nodes(kube, gpu_node("ip-10-0-1-23.us-west-2.compute.internal",
                                **{"topology.kubernetes.io/zone": "us-west-2b"}),
                 {"name": "cpu-1", "labels": {"role": "cpu"}, "capacity": {"cpu": "2"}})
    assert [n["metadata"]["name"] for n in made] == ["ip-10-0-1-23.us-west-2.compute.internal", "cpu-1"]
    got = {n["metadata"]["name"]: n for n in kjson(kube, "get", "nodes")["items"]}
    gpu = got["ip-10-0-1-23.us-west-2.compute.internal"]
    assert gpu["metadata"]["labels"] == {
        "beta.kubernetes.io/arch": "amd64", "beta.kubernetes.io/os": "linux", "kubernetes.io/arch": "amd64",
        "kubernetes.io/hostname": "ip-10-0-1-23.us-west-2.compute.internal", "kubernetes.io/os": "linux",
        "karpenter.sh/nodepool": "p-gpu", "topology.kubernetes.io/zone": "us-west-2b"}
    assert gpu["spec"]["taints"] == [{"key": "nvidia.com/gpu", "effect": "NoSchedule"}]
    assert gpu["spec"]["providerID"].startswith("aws:///us-west-2b/i-")
    st = gpu["status"]
    assert {c["type"]: c["status"] for c in st["conditions"]} == {
        "MemoryPressure": "False", "DiskPressure": "False", "PIDPressure": "False", "Ready": "True"}
    assert st["addresses"][0] == {"type": "InternalIP", "address": "10.0.1.23"}
    assert st["nodeInfo"]["kubeletVersion"] == "v1.33.5-eks-3025e55" and st["nodeInfo"]["operatingSystem"] == "linux"
    assert got["cpu-1"]["status"]["capacity"]["cpu"] == "2" and got["cpu-1"]["status"]["allocatable"]["pods"] == "110"
    assert "taints" not in got["cpu-1"]["spec"]
    # selectors, short name, field selectors
    out = kubectl(kube, "get", "no", "-l", "karpenter.sh/nodepool=p-gpu", "-o", "name").stdout.split()
    assert out == ["node/ip-10-0-1-23.us-west-2.compute.internal"]
    assert kubectl(kube, "get", "nodes", "--field-selector", "metadata.name=cpu-1", "-o", "name").stdout.split() == \
        ["node/cpu-1"]
    assert ok(call(kube, "GET", "/api/v1/nodes", fieldSelector="spec.unschedulable=false"))["items"]
    bad = ok(call(kube, "GET", "/api/v1/nodes", fieldSelector="spec.nodeName=x"), 400)
    assert bad["message"] == "field label not supported: spec.nodeName"
    # replacing keeps the uid; an unchanged replace writes nothing
    uid, rv = got["cpu-1"]["metadata"]["uid"], got["cpu-1"]["metadata"]["resourceVersion"]
    same = nodes(kube, {"name": "cpu-1", "labels": {"role": "cpu"}, "capacity": {"cpu": "2"}})[0]
    assert same["metadata"]["resourceVersion"] == rv
    again = nodes(kube, {"name": "cpu-1", "labels": {"role": "other"}})[0]
    assert again["metadata"]["uid"] == uid and again["metadata"]["labels"]["role"] == "other"
    assert again["status"]["capacity"]["cpu"] == "8"
    # delete, errors, reset
    gone = ok(call(kube, "DELETE", "/__control/nodes/cpu-1", token=None))
    assert gone["kind"] == "Node" and gone["metadata"]["name"] == "cpu-1"
    assert ok(call(kube, "DELETE", "/__control/nodes/cpu-1", token=None), 404)["message"] == 'nodes "cpu-1" not found'
    assert ok(call(kube, "GET", "/api/v1/nodes/cpu-1"), 404)["reason"] == "NotFound"
    for body in ({}, {"nodes": [{"name": "Bad_Name"}]}, {"nodes": [{"name": "n", "taints": [{"key": "k"}]}]},
                 {"nodes": [{"name": "n", "labels": {"a": 1}}]}):
        assert ok(call(kube, "POST", "/__control/nodes", body, token=None), 400)["reason"] == "BadRequest"
    ok(call(kube, "POST", "/__control/reset", token=None))
    assert ok(call(kube, "GET", "/api/v1/nodes"))["items"] == []


def test_daemonset_runs_one_pod_per_matching_tolerated_node(kube):
    got = []
    rv = ok(call(kube, "GET", "/api/v1/pods"))["metadata"]["resourceVersion"]

    def watch():  # pods of one node, as a kubelet watches them
        url = kube["endpoint"] + "/api/v1/pods?watch=true&timeoutSeconds=3&fieldSelector=spec.nodeName%3Dgpu-2" \
            f"&resourceVersion={rv}"
        req = urllib.request.Request(url, headers={"Authorization": f"Bearer {TOKEN}"})
        with urllib.request.urlopen(req, context=kube["ctx"], timeout=10) as r:
            for line in r:
                got.append(json.loads(line))

    t = threading.Thread(target=watch)
    t.start()
    time.sleep(0.2)
    deploy_agents(kube, gpu_node("gpu-1"), gpu_node("gpu-2"), {"name": "cpu-1"},
                  gpu_node("gpu-other-taint", taints=[GPU_TAINT, {"key": "dedicated", "value": "x",
                                                                  "effect": "NoSchedule"}]),
                  gpu_node("gpu-other-pool", pool="q-gpu"),
                  gpu_node("gpu-prefer", taints=[{"key": "soft", "effect": "PreferNoSchedule"}]))
    pods = agent_pods(kube)
    assert sorted(on_node(pods)) == ["gpu-1", "gpu-2", "gpu-prefer"]
    ds = kjson(kube, "-n", "comfyui", "get", "ds", AGENT)
    for p in pods:
        md, spec, st = p["metadata"], p["spec"], p["status"]
        assert re.fullmatch(POD_NAME_RE, md["name"]) and md["generateName"] == AGENT + "-"
        assert md["namespace"] == "comfyui"
        assert {k: v for k, v in md["labels"].items() if k.startswith("app.kubernetes.io/")} == \
            ds["spec"]["template"]["metadata"]["labels"]
        assert md["labels"]["controller-revision-hash"] and md["labels"]["pod-template-generation"] == "1"
        assert md["ownerReferences"] == [{"apiVersion": "apps/v1", "kind": "DaemonSet", "name": AGENT,
                                          "uid": ds["metadata"]["uid"], "controller": True,
                                          "blockOwnerDeletion": True}]
        assert spec["nodeSelector"] == {"karpenter.sh/nodepool": "p-gpu"}
        assert spec["tolerations"][0] == {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}
        assert {"key": "node.kubernetes.io/unschedulable", "operator": "Exists", "effect": "NoSchedule"} \
            in spec["tolerations"]
        assert spec["affinity"]["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"] == {
            "nodeSelectorTerms": [{"matchFields": [{"key": "metadata.name", "operator": "In",
                                                    "values": [spec["nodeName"]]}]}]}
        assert spec["containers"][0]["readinessProbe"]["exec"]["command"] == ["cat", "/run/agent/synced"]
        assert spec["restartPolicy"] == "Always" and spec["serviceAccountName"] == "default"
        assert st["phase"] == "Running" and st["podIP"] and st["hostIP"] and st["startTime"]
        assert st["podIPs"] == [{"ip": st["podIP"]}]
        assert [c["type"] for c in st["conditions"]] == ["PodReadyToStartContainers", "Initialized", "Ready",
                                                         "ContainersReady", "PodScheduled"]
        ready = {c["type"]: c for c in st["conditions"]}["Ready"]
        # the agent has a readinessProbe: not ready until its first sync (the test says so)
        assert (ready["status"], ready["reason"], ready["message"]) == (
            "False", "ContainersNotReady", "containers with unready status: [agent]")
        [cs] = st["containerStatuses"]
        assert (cs["name"], cs["image"], cs["ready"], cs["started"], cs["restartCount"]) == (
            "agent", "docker.io/library/agent:1", False, True, 0)
        assert cs["state"]["running"]["startedAt"] and cs["containerID"].startswith("containerd://")
    assert len({p["metadata"]["name"] for p in pods}) == 3
    assert len({p["status"]["podIP"] for p in pods}) == 3
    st = ds["status"]
    assert st == {"currentNumberScheduled": 3, "numberMisscheduled": 0, "desiredNumberScheduled": 3,
                  "numberReady": 0, "observedGeneration": 1, "updatedNumberScheduled": 3, "numberUnavailable": 3}
    # field selectors, as kubelets and clients use them
    one = kjson(kube, "-n", "comfyui", "get", "pods", "--field-selector", "spec.nodeName=gpu-2")["items"]
    assert [p["metadata"]["name"] for p in one] == [on_node(pods)["gpu-2"]["metadata"]["name"]]
    p = kubectl(kube, "get", "pods", "-A", "--field-selector", "spec.nodeName=cpu-1")
    assert "No resources found" in p.stderr and not p.stdout.strip()
    both = ok(call(kube, "GET", "/api/v1/pods", fieldSelector="spec.nodeName!=gpu-1,status.phase=Running",
                   labelSelector=AGENT_SELECTOR))["items"]
    assert sorted(x["spec"]["nodeName"] for x in both) == ["gpu-2", "gpu-prefer"]
    bad = ok(call(kube, "GET", "/api/v1/pods", fieldSelector="spec.foo=x"), 400)
    assert bad["message"] == "field label not supported: spec.foo"
    t.join(10)
    added = [e for e in got if e["type"] == "ADDED"]
    assert [e["object"]["spec"]["nodeName"] for e in added] == ["gpu-2"]
    # not ready: the rollout waits; ready agents complete it
    r = kubectl(kube, "-n", "comfyui", "rollout", "status", f"ds/{AGENT}", "--timeout=1s", ok=False)
    assert r.returncode != 0 and "0 of 3 updated pods are available" in r.stdout + r.stderr
    for n in ("gpu-1", "gpu-2"):
        pod = pod_control(kube, namespace="comfyui", node=n, selector=AGENT_SELECTOR, ready=True)
        assert pod["status"]["containerStatuses"][0]["ready"] is True
        assert {c["type"]: c["status"] for c in pod["status"]["conditions"]}["Ready"] == "True"
    assert ds_status(kube)["numberReady"] == 2 and ds_status(kube)["numberUnavailable"] == 1
    pod_control(kube, namespace="comfyui", node="gpu-prefer", selector=AGENT_SELECTOR, ready=True)
    st = ds_status(kube)
    assert (st["numberReady"], st["numberAvailable"], "numberUnavailable" in st) == (3, 3, False)
    out = kubectl(kube, "-n", "comfyui", "rollout", "status", f"ds/{AGENT}", "--timeout=5s").stdout
    assert f'daemon set "{AGENT}" successfully rolled out' in out
    # readiness can be taken back
    pod_control(kube, namespace="comfyui", node="gpu-1", selector=AGENT_SELECTOR, ready=False)
    assert ds_status(kube)["numberReady"] == 2


def test_kubectl_logs_of_an_agent_pod(kube):
    sidecar = {"name": "sidecar", "image": "busybox:1.36"}
    deploy_agents(kube, gpu_node("gpu-1"), gpu_node("gpu-2"),
                  ds=agent_ds(containers=[agent_ds()["spec"]["template"]["spec"]["containers"][0], sidecar]))
    pod = on_node(agent_pods(kube))["gpu-1"]
    name = pod["metadata"]["name"]
    assert kubectl(kube, "-n", "comfyui", "logs", name, "-c", "agent").stdout == ""  # a new pod: empty log
    pod_control(kube, namespace="comfyui", node="gpu-1", selector=AGENT_SELECTOR, container="agent",
                append='starting\n{"state": "syncing", "models": 0}\n')
    pod_control(kube, namespace="comfyui", node="gpu-1", selector=AGENT_SELECTOR, container="agent",
                append='{"state": "synced", "models": 3}\n', ready=True)
    pod_control(kube, namespace="comfyui", node="gpu-1", selector=AGENT_SELECTOR, container="sidecar",
                append="sidecar line\n")
    # only the agent container's readiness was set (the sidecar has no probe: ready at once)
    st = kjson(kube, "-n", "comfyui", "get", "pod", name)["status"]
    assert {c["name"]: c["ready"] for c in st["containerStatuses"]} == {"agent": True, "sidecar": True}
    out = kubectl(kube, "-n", "comfyui", "logs", name, "-c", "agent", "--tail=1").stdout
    assert out == '{"state": "synced", "models": 3}\n'
    assert kubectl(kube, "-n", "comfyui", "logs", name, "-c", "agent").stdout.splitlines() == [
        "starting", '{"state": "syncing", "models": 0}', '{"state": "synced", "models": 3}']
    assert kubectl(kube, "-n", "comfyui", "logs", name, "-c", "sidecar").stdout == "sidecar line\n"
    stamped = kubectl(kube, "-n", "comfyui", "logs", name, "-c", "agent", "--timestamps", "--tail=2").stdout
    assert re.fullmatch(r'(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{9}Z \S.*\n){2}', stamped), stamped
    assert kubectl(kube, "-n", "comfyui", "logs", name, "-c", "agent", "--limit-bytes=5").stdout == "start"
    assert len(kubectl(kube, "-n", "comfyui", "logs", name, "-c", "agent", "--since=1h").stdout.splitlines()) == 3
    p = kubectl(kube, "-n", "comfyui", "logs", name, "-c", "agent", "--previous", ok=False)
    assert p.returncode != 0 and f'previous terminated container "agent" in pod "{name}" not found' in p.stderr
    # kubectl picks the first container itself; the server refuses a request without one
    p = kubectl(kube, "-n", "comfyui", "logs", name)
    assert p.stdout.splitlines()[-1] == '{"state": "synced", "models": 3}'
    assert 'Defaulted container "agent" out of: agent, sidecar' in p.stderr
    path = f"/api/v1/namespaces/comfyui/pods/{name}/log"
    code, ctype, body = raw_get(kube, path)
    assert (code, json.loads(body)["reason"], json.loads(body)["message"]) == (
        400, "BadRequest", f"a container name must be specified for pod {name}, choose one of: [agent sidecar]")
    code, ctype, body = raw_get(kube, path, container="nope")
    assert (code, json.loads(body)["message"]) == (400, f"container nope is not valid for pod {name}")
    code, ctype, body = raw_get(kube, path, container="agent", tailLines="2", timestamps="false")
    assert (code, ctype) == (200, "text/plain")
    assert body == '{"state": "syncing", "models": 0}\n{"state": "synced", "models": 3}\n'
    assert raw_get(kube, path, container="agent", tailLines="0")[2] == ""
    assert raw_get(kube, path, container="agent", sinceTime="2000-01-01T00:00:00Z")[2].count("\n") == 3
    code, _, body = raw_get(kube, path, container="agent", tailLines="-1", limitBytes="0")
    st = json.loads(body)
    assert (code, st["reason"]) == (422, "Invalid")
    assert st["message"] == (f'PodLogOptions "{name}" is invalid: [tailLines: Invalid value: -1: must be greater '
                             'than or equal to 0, limitBytes: Invalid value: 0: must be greater than 0]')
    code, _, body = raw_get(kube, path, container="agent", sinceSeconds="5", sinceTime="2000-01-01T00:00:00Z")
    assert code == 422 and "at most one of `sinceTime` or `sinceSeconds` may be specified" in json.loads(body)["message"]
    code, _, body = raw_get(kube, path, container="agent", tailLines="x")
    assert (code, json.loads(body)["message"]) == (400, 'strconv.ParseInt: parsing "x": invalid syntax')
    code, _, body = raw_get(kube, "/api/v1/namespaces/comfyui/pods/nope/log")
    assert (code, json.loads(body)["message"], json.loads(body)["details"]["kind"]) == (
        404, 'pods "nope" not found', "pods")
    assert ok(call(kube, "POST", path, {}), 405)["reason"] == "MethodNotAllowed"
    # the control endpoint's own errors
    assert "a container name must be specified" in pod_control(
        kube, 400, namespace="comfyui", node="gpu-1", selector=AGENT_SELECTOR, append="x\n")["message"]
    assert pod_control(kube, 404, namespace="comfyui", node="gpu-9", append="x\n")["reason"] == "NotFound"
    assert pod_control(kube, 409, namespace="comfyui", selector=AGENT_SELECTOR, container="agent",
                       append="x\n")["reason"] == "Conflict"
    assert pod_control(kube, 400, namespace="comfyui", node="gpu-1", container="nope", ready=True)["message"] == \
        f"container nope is not valid for pod {name}"
    assert pod_control(kube, 400, namespace="comfyui", node="gpu-1")["reason"] == "BadRequest"
    # kubectl logs -f: lines appended later arrive; the stream ends when the pod goes
    proc = subprocess.Popen([KUBECTL, "--kubeconfig", kube["kubeconfig"], "--cache-dir", kube["cache"], "-n",
                             "comfyui", "logs", "-f", name, "-c", "agent", "--tail=1"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        first = proc.stdout.readline()
        assert first == '{"state": "synced", "models": 3}\n'
        pod_control(kube, namespace="comfyui", pod=name, container="agent", append='{"state": "synced", "models": 4}\n')
        assert proc.stdout.readline() == '{"state": "synced", "models": 4}\n'
        kubectl(kube, "-n", "comfyui", "delete", "pod", name)
        rest, err = proc.communicate(timeout=15)
        assert proc.returncode == 0 and rest == "", err
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    # the recreated pod has another name and an empty log, and is not ready
    new = on_node(agent_pods(kube))["gpu-1"]
    assert new["metadata"]["name"] != name and re.fullmatch(POD_NAME_RE, new["metadata"]["name"])
    assert kubectl(kube, "-n", "comfyui", "logs", new["metadata"]["name"], "-c", "agent").stdout == ""
    assert {c["name"]: c["ready"] for c in new["status"]["containerStatuses"]} == {"agent": False, "sidecar": True}
    # follow ends once limitBytes is reached
    pod_control(kube, namespace="comfyui", node="gpu-1", container="sidecar", append="abcdef\n")
    t0 = time.monotonic()
    assert raw_get(kube, f"/api/v1/namespaces/comfyui/pods/{new['metadata']['name']}/log",
                   container="sidecar", follow="true", limitBytes="3")[:3:2] == (200, "abc")
    assert time.monotonic() - t0 < 5


def test_daemon_pods_follow_nodes_labels_taints_and_template(kube):
    deploy_agents(kube, gpu_node("gpu-1"), gpu_node("gpu-2"), {"name": "cpu-1"})
    before = on_node(agent_pods(kube))
    assert sorted(before) == ["gpu-1", "gpu-2"]
    pod_control(kube, namespace="comfyui", node="gpu-1", append="synced\n", ready=True)
    # kubectl delete pod: the DaemonSet controller makes another one, with a new name
    kubectl(kube, "-n", "comfyui", "delete", "pod", before["gpu-1"]["metadata"]["name"])
    after = on_node(agent_pods(kube))
    assert sorted(after) == ["gpu-1", "gpu-2"]
    assert after["gpu-1"]["metadata"]["name"] != before["gpu-1"]["metadata"]["name"]
    assert after["gpu-2"]["metadata"]["name"] == before["gpu-2"]["metadata"]["name"]
    # a node that gains the label (kubectl label) gets a pod; a node that goes loses its pod
    kubectl(kube, "label", "node", "cpu-1", "karpenter.sh/nodepool=p-gpu")
    assert sorted(on_node(agent_pods(kube))) == ["cpu-1", "gpu-1", "gpu-2"]
    ok(call(kube, "DELETE", "/__control/nodes/gpu-1", token=None))
    assert sorted(on_node(agent_pods(kube))) == ["cpu-1", "gpu-2"]
    # an untolerated NoExecute taint evicts; an untolerated NoSchedule taint added later does not
    kubectl(kube, "taint", "nodes", "cpu-1", "dedicated=x:NoExecute")
    assert sorted(on_node(agent_pods(kube))) == ["gpu-2"]
    kubectl(kube, "taint", "nodes", "cpu-1", "dedicated=x:NoExecute-")
    assert sorted(on_node(agent_pods(kube))) == ["cpu-1", "gpu-2"]
    kubectl(kube, "taint", "nodes", "cpu-1", "later=x:NoSchedule")
    assert sorted(on_node(agent_pods(kube))) == ["cpu-1", "gpu-2"]
    st = ds_status(kube)
    assert (st["desiredNumberScheduled"], st["currentNumberScheduled"], st["numberMisscheduled"]) == (1, 1, 1)
    # a changed template replaces the pods (not on the node it should no longer run on)
    old = on_node(agent_pods(kube))
    kubectl(kube, "-n", "comfyui", "set", "image", f"ds/{AGENT}", "agent=agent:2")
    new = on_node(agent_pods(kube))
    assert sorted(new) == ["gpu-2"] and new["gpu-2"]["metadata"]["name"] != old["gpu-2"]["metadata"]["name"]
    assert new["gpu-2"]["spec"]["containers"][0]["image"] == "agent:2"
    assert new["gpu-2"]["metadata"]["labels"]["pod-template-generation"] == "2"
    assert new["gpu-2"]["metadata"]["labels"]["controller-revision-hash"] != \
        old["gpu-2"]["metadata"]["labels"]["controller-revision-hash"]
    st = ds_status(kube)
    assert (st["observedGeneration"], st["updatedNumberScheduled"], st["numberMisscheduled"]) == (2, 1, 0)
    # OnDelete: the old pod stays until it is deleted
    kubectl(kube, "-n", "comfyui", "patch", "ds", AGENT, "--type=merge", "-p",
            json.dumps({"spec": {"updateStrategy": {"type": "OnDelete", "rollingUpdate": None}}}))
    kept = on_node(agent_pods(kube))["gpu-2"]["metadata"]["name"]
    kubectl(kube, "-n", "comfyui", "set", "image", f"ds/{AGENT}", "agent=agent:3")
    assert on_node(agent_pods(kube))["gpu-2"]["metadata"]["name"] == kept
    assert "updatedNumberScheduled" not in ds_status(kube)
    kubectl(kube, "-n", "comfyui", "delete", "pod", kept)
    assert on_node(agent_pods(kube))["gpu-2"]["spec"]["containers"][0]["image"] == "agent:3"
    # deleting the DaemonSet deletes its pods; with --cascade=orphan they stay, without owner
    kubectl(kube, "-n", "comfyui", "delete", "ds", AGENT)
    assert agent_pods(kube) == []
    kubectl(kube, "apply", "-f", manifest(kube, "agent.json", [agent_ds()]))
    assert len(agent_pods(kube)) == 1
    kubectl(kube, "-n", "comfyui", "delete", "ds", AGENT, "--cascade=orphan")
    [orphan] = agent_pods(kube)
    assert "ownerReferences" not in orphan["metadata"]
    # the namespace goes with its pods
    kubectl(kube, "apply", "-f", manifest(kube, "agent.json", [agent_ds()]))
    kubectl(kube, "delete", "ns", "comfyui", "--timeout=10s")
    assert ok(call(kube, "GET", "/api/v1/pods"))["items"] == []


def test_pods_through_the_api_and_the_seeded_style_daemonset(kube):
    nodes(kube, gpu_node("gpu-1"), {"name": "cpu-1"})
    pp = "/api/v1/namespaces/default/pods"
    pending = ok(call(kube, "POST", pp, {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"},
                                         "spec": {"containers": [{"name": "c", "image": "x:1"}]}}), 201)
    assert pending["status"] == {"phase": "Pending", "qosClass": "BestEffort"}
    assert pending["spec"]["containers"][0]["imagePullPolicy"] == "IfNotPresent"
    running = ok(call(kube, "POST", pp, {"metadata": {"name": "r"}, "spec": {
        "nodeName": "cpu-1", "containers": [{"name": "c", "image": "x", "resources": {
            "limits": {"cpu": "1", "memory": "1Gi"}}}]}}), 201)
    assert running["status"]["phase"] == "Running" and running["status"]["qosClass"] == "Guaranteed"
    assert running["status"]["containerStatuses"][0]["ready"] is True  # no readinessProbe
    assert raw_get(kube, f"{pp}/p/log")[:2] == (200, "text/plain")  # not scheduled: empty
    assert ok(call(kube, "POST", pp, {"metadata": {"name": "e"}, "spec": {}}), 422)["message"] == \
        'Pod "e" is invalid: spec.containers: Required value'
    strict = ok(call(kube, "POST", pp, {"metadata": {"name": "s"}, "spec": {"containers": [{"name": "c"}],
                                                                          "bogus": 1}},
                     fieldValidation="Strict"), 400)
    assert 'unknown field "spec.bogus"' in strict["message"]
    # a DaemonSet without nodeSelector (like NVIDIA's device plugin) runs on every tolerated node
    dp = {"apiVersion": "apps/v1", "kind": "DaemonSet", "metadata": {"name": "dp", "namespace": "kube-system"},
          "spec": {"selector": {"matchLabels": {"app": "dp"}},
                   "template": {"metadata": {"labels": {"app": "dp"}},
                                "spec": {"priorityClassName": "system-node-critical",
                                         "tolerations": [{"key": "nvidia.com/gpu", "operator": "Exists",
                                                          "effect": "NoSchedule"}],
                                         "containers": [{"name": "dp", "image": "dp:1"}]}}}}
    ok(call(kube, "POST", "/apis/apps/v1/namespaces/kube-system/daemonsets", dp), 201)
    pods = ok(call(kube, "GET", "/api/v1/namespaces/kube-system/pods", labelSelector="app=dp"))["items"]
    assert sorted(p["spec"]["nodeName"] for p in pods) == ["cpu-1", "gpu-1"]
    assert all(p["spec"]["priority"] == 2000001000 for p in pods)
    assert ds_status(kube, "dp", "kube-system")["numberReady"] == 2
    # across namespaces, and the control endpoint finds a pod by name
    assert len(ok(call(kube, "GET", "/api/v1/pods"))["items"]) == 4
    name = pods[0]["metadata"]["name"]
    assert pod_control(kube, pod=name, append="a\nb")["metadata"]["name"] == name
    assert raw_get(kube, f"/api/v1/namespaces/kube-system/pods/{name}/log", timestamps="1")[2].endswith(" b")
    # deleting the node takes its pods, DaemonSet or not
    ok(call(kube, "DELETE", "/__control/nodes/cpu-1", token=None))
    assert call(kube, "GET", f"{pp}/r")[0] == 404
    assert [p["spec"]["nodeName"] for p in ok(call(kube, "GET", "/api/v1/namespaces/kube-system/pods"))["items"]] \
        == ["gpu-1"]
