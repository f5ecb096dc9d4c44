"""Tests for kube_server.py: kubectl (the independent client) plus direct HTTP for SSA details.

kubectl only sends bearer tokens over TLS, so the server runs with --tls and kubectl trusts
the CA from the ready file.
"""

from __future__ import annotations

import json
import os
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
    crd("karpenter.k8s.aws", "ec2nodeclasses", "EC2NodeClass", schema={
        "type": "object", "properties": {"spec": {"type": "object", "properties": {
            "metadataOptions": {"type": "object", "default": {"httpPutResponseHopLimit": 1}}}}}}),
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
