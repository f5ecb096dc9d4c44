"""Tests of the seeded cluster's Kubernetes API (eks_kube.py, inside aws_emulator.py --seed
sandbox): what DescribeCluster and the ready file say about it, kubectl with the emulator's
kubeconfig (exec plugin `aws eks get-token`), the seeded objects, the add-on -> CSIDriver
link and the controller stand-ins that act on moto (ALBs via boto3 elbv2, IAM roles).

Run with:  .venv/bin/python -m pytest tests/emulators -q
"""

from __future__ import annotations

import base64
import json
import os
import re
import shutil
import ssl
import stat
import subprocess
import sys
import urllib.error
import urllib.parse
import urllib.request

import pytest
from botocore.exceptions import ClientError

from test_emulators import CLEAN_ENV, REGION, client, start_emulator

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import kube_server  # noqa: E402

KUBECTL = "/usr/bin/kubectl" if os.path.exists("/usr/bin/kubectl") else (shutil.which("kubectl") or "kubectl")
CLUSTER = "comfyui-sandbox"
NODE_ROLE = "KarpenterNodeRole-comfyui-sandbox"
TOKEN = kube_server.make_token(CLUSTER, REGION)
APPLY = "application/apply-patch+yaml"
S3_ADDON = "aws-mountpoint-s3-csi-driver"


# --------------------------------------------------------------------------
# fixtures and helpers
# --------------------------------------------------------------------------


@pytest.fixture(scope="module")
def emu(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("ekskube")
    kubeconfig = tmp / "kube" / "config"
    proc, info = start_emulator(tmp, extra=["--kubeconfig", str(kubeconfig)])
    kube = info["kube"]
    # as comfyplat does it: trust the CA that DescribeCluster returns
    ca = base64.b64decode(client("eks", info["endpoint"]).describe_cluster(name=CLUSTER)["cluster"]
                          ["certificateAuthority"]["data"]).decode()
    info["ctx"] = ssl.create_default_context(cadata=ca)
    info["tmp"] = tmp
    # kubectl with a static token (fast) for what is not about the exec plugin
    info["token_kubeconfig"] = str(tmp / "token-kubeconfig")
    (tmp / "token-kubeconfig").write_text(json.dumps({
        "apiVersion": "v1", "kind": "Config",
        "clusters": [{"name": "c", "cluster": {"server": kube["endpoint"], "certificate-authority-data":
                                               kube["ca_data"]}}],
        "users": [{"name": "u", "user": {"token": TOKEN}}],
        "contexts": [{"name": "c", "context": {"cluster": "c", "user": "u", "namespace": "default"}}],
        "current-context": "c"}))
    yield info
    rc = proc.stop()
    assert rc == 0, f"emulator exited with {rc}"
    # the emulator removes what it wrote: kubeconfig and the CA's temp dir
    assert not os.path.exists(kube["kubeconfig"])
    assert not os.path.exists(os.path.dirname(kube["ca_file"]))
    assert "Traceback" not in (tmp / "aws.log").read_text()


def kubectl(emu, *args, ok=True, kubeconfig=None, env=None, timeout=30):
    p = subprocess.run([KUBECTL, "--kubeconfig", kubeconfig or emu["token_kubeconfig"],
                        "--cache-dir", str(emu["tmp"] / "kcache"), "--request-timeout", "10s", *args],
                       capture_output=True, text=True, timeout=timeout, env=env)
    if ok:
        assert p.returncode == 0, f"kubectl {' '.join(args)} failed: {p.stderr}"
    return p


def call(emu, method, path, body=None, ctype="application/json", token=TOKEN, **query):
    url = emu["kube"]["endpoint"] + path + ("?" + urllib.parse.urlencode(query) if query else "")
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(url, data=data, method=method)
    if data is not None:
        req.add_header("Content-Type", ctype)
    if token:
        req.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(req, context=emu["ctx"], timeout=10) as r:
            return r.status, json.loads(r.read() or b"null")
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read() or b"null")


def ok(resp, code=200):
    assert resp[0] == code, resp[1]
    return resp[1]


def apply(emu, path, obj, manager="comfyplat"):
    return ok(call(emu, "PATCH", f"{path}/{obj['metadata']['name']}", obj, APPLY, fieldManager=manager), 200)


def cond(obj, ctype):
    return next((c for c in (obj.get("status") or {}).get("conditions") or [] if c["type"] == ctype), None)


def ensure_namespace(emu, name):
    status, _ = call(emu, "POST", "/api/v1/namespaces", {"apiVersion": "v1", "kind": "Namespace",
                                                          "metadata": {"name": name}})
    assert status in (201, 409)


def ingress(name, annotations=None, rules=None, **spec):
    return {"apiVersion": "networking.k8s.io/v1", "kind": "Ingress",
            "metadata": {"name": name, "annotations": annotations or {}},
            "spec": {"ingressClassName": "alb", "rules": rules or [{"http": {"paths": [
                {"path": "/", "pathType": "Prefix",
                 "backend": {"service": {"name": "comfyui", "port": {"number": 8848}}}}]}}], **spec}}


def hostname_after_reads(emu, path, reads=2):
    """The Ingress's hostname after `reads` GETs (the ALB stand-in acts on the first read)."""
    seen = []
    for _ in range(reads):
        obj = ok(call(emu, "GET", path))
        seen.append((((obj.get("status") or {}).get("loadBalancer") or {}).get("ingress") or [{}])[0]
                    .get("hostname"))
    return seen


def lbs_of(elbv2, stack):
    out = []
    for lb in elbv2.describe_load_balancers()["LoadBalancers"]:
        tags = tags_of(elbv2, lb["LoadBalancerArn"])
        if tags.get("ingress.k8s.aws/stack") == stack:
            out.append((lb, tags))
    return out


def tgs_of(elbv2, stack):
    out = []
    for tg in elbv2.describe_target_groups()["TargetGroups"]:
        tags = tags_of(elbv2, tg["TargetGroupArn"])
        if tags.get("ingress.k8s.aws/stack") == stack:
            out.append((tg, tags))
    return out


def tags_of(elbv2, arn):
    desc = elbv2.describe_tags(ResourceArns=[arn])["TagDescriptions"][0]
    return {t["Key"]: t["Value"] for t in desc["Tags"]}


def sgs_of(ec2, stack):
    return [g for g in ec2.describe_security_groups(Filters=[
        {"Name": "tag:ingress.k8s.aws/stack", "Values": [stack]}])["SecurityGroups"]]


# --------------------------------------------------------------------------
# where the API is
# --------------------------------------------------------------------------


def test_ready_file_and_describe_cluster(emu):
    kube = emu["kube"]
    assert set(kube) == {"endpoint", "port", "ca_data", "ca_file", "kubeconfig"}
    assert kube["endpoint"] == f"https://127.0.0.1:{kube['port']}" and kube["port"] != emu["port"]
    with open(kube["ca_file"], "rb") as f:
        pem = f.read()
    assert pem.startswith(b"-----BEGIN CERTIFICATE-----") and base64.b64decode(kube["ca_data"]) == pem
    assert kube["kubeconfig"] == str(emu["tmp"] / "kube" / "config")
    assert stat.S_IMODE(os.stat(kube["kubeconfig"]).st_mode) == 0o600

    eks = client("eks", emu["endpoint"])
    cluster = eks.describe_cluster(name=CLUSTER)["cluster"]
    assert cluster["endpoint"] == kube["endpoint"]
    assert cluster["certificateAuthority"]["data"] == kube["ca_data"]
    assert eks.list_clusters()["clusters"] == [CLUSTER]

    # what comfyplat does with it: TLS verified against that CA, a k8s-aws-v1. bearer token
    assert ok(call(emu, "GET", "/version"))["gitVersion"].startswith("v1.33.")
    assert ok(call(emu, "GET", "/api/v1/namespaces", token=None), 401)["reason"] == "Unauthorized"
    # the certificate names 127.0.0.1: a context with another CA refuses it
    with pytest.raises(urllib.error.URLError):
        urllib.request.urlopen(kube["endpoint"] + "/version", context=ssl.create_default_context(), timeout=5)


def test_kubectl_with_the_emulators_kubeconfig(emu):
    kc = emu["kube"]["kubeconfig"]
    text = open(kc).read()
    assert 'current-context: "comfyui-sandbox"' in text
    assert "client.authentication.k8s.io/v1beta1" in text and "interactiveMode: Never" in text
    aws = os.path.join(os.path.dirname(os.path.abspath(sys.executable)), "aws")
    assert f"command: {json.dumps(aws)}" in text
    # as after `source .sandbox/env`: AWS_ENDPOINT_URL points at moto; the exec plugin must still
    # presign for sts.<region>.amazonaws.com (which is all the API server accepts)
    env = {**CLEAN_ENV, "AWS_ENDPOINT_URL": emu["endpoint"], "HOME": str(emu["tmp"])}
    out = kubectl(emu, "get", "crd,ingressclass,daemonset", "-A", "-o", "json", kubeconfig=kc, env=env).stdout
    items = json.loads(out)["items"]
    crds = {i["metadata"]["name"]: i for i in items if i["kind"] == "CustomResourceDefinition"}
    assert sorted(crds) == ["ec2nodeclasses.karpenter.k8s.aws", "nodeclaims.karpenter.sh", "nodepools.karpenter.sh"]
    for name, group, kind in (("nodepools.karpenter.sh", "karpenter.sh", "NodePool"),
                              ("nodeclaims.karpenter.sh", "karpenter.sh", "NodeClaim"),
                              ("ec2nodeclasses.karpenter.k8s.aws", "karpenter.k8s.aws", "EC2NodeClass")):
        spec = crds[name]["spec"]
        assert (spec["group"], spec["scope"], spec["names"]["kind"]) == (group, "Cluster", kind)
        assert [(v["name"], v["served"], v["storage"], v["subresources"]) for v in spec["versions"]] == \
            [("v1", True, True, {"status": {}})]
        assert cond(crds[name], "Established")["status"] == "True"
    classes = [i for i in items if i["kind"] == "IngressClass"]
    assert [(c["metadata"]["name"], c["spec"]["controller"]) for c in classes] == [("alb", "ingress.k8s.aws/alb")]
    ds = [i for i in items if i["kind"] == "DaemonSet"]
    assert [(d["metadata"]["namespace"], d["metadata"]["name"]) for d in ds] == \
        [("kube-system", "nvidia-device-plugin-daemonset")]
    assert ds[0]["metadata"]["labels"]["app.kubernetes.io/name"] == "nvidia-device-plugin"
    assert ds[0]["spec"]["template"]["spec"]["containers"][0]["image"] == "nvcr.io/nvidia/k8s-device-plugin:v0.17.1"
    # nothing else was installed: no CSI driver before the add-on
    assert ok(call(emu, "GET", "/apis/storage.k8s.io/v1/csidrivers"))["items"] == []


def test_karpenter_crd_defaults(emu):
    pool = apply(emu, "/apis/karpenter.sh/v1/nodepools", {
        "apiVersion": "karpenter.sh/v1", "kind": "NodePool", "metadata": {"name": "defaults"},
        "spec": {"template": {"spec": {"nodeClassRef": {"group": "karpenter.k8s.aws", "kind": "EC2NodeClass",
                                                        "name": "defaults"}, "requirements": []}}}})
    assert pool["spec"]["disruption"] == {"consolidateAfter": "0s", "budgets": [{"nodes": "10%"}],
                                          "consolidationPolicy": "WhenEmptyOrUnderutilized"}
    assert pool["spec"]["template"]["spec"]["expireAfter"] == "720h"
    given = apply(emu, "/apis/karpenter.sh/v1/nodepools", {
        "apiVersion": "karpenter.sh/v1", "kind": "NodePool", "metadata": {"name": "given"},
        "spec": {"disruption": {"consolidationPolicy": "WhenEmpty", "consolidateAfter": "5m",
                                "budgets": [{"nodes": "1", "schedule": "@daily", "duration": "1h"}, {}]},
                 "template": {"spec": {"expireAfter": "Never", "nodeClassRef": {
                     "group": "karpenter.k8s.aws", "kind": "EC2NodeClass", "name": "x"}, "requirements": []}}}})
    assert given["spec"]["disruption"] == {"consolidationPolicy": "WhenEmpty", "consolidateAfter": "5m",
                                           "budgets": [{"nodes": "1", "schedule": "@daily", "duration": "1h"},
                                                       {"nodes": "10%"}]}
    assert given["spec"]["template"]["spec"]["expireAfter"] == "Never"
    nc = apply(emu, "/apis/karpenter.k8s.aws/v1/ec2nodeclasses", {
        "apiVersion": "karpenter.k8s.aws/v1", "kind": "EC2NodeClass", "metadata": {"name": "defaults"},
        "spec": {"role": NODE_ROLE, "amiSelectorTerms": [{"alias": "al2023@latest"}],
                 "subnetSelectorTerms": [{"tags": {"karpenter.sh/discovery": CLUSTER}}],
                 "securityGroupSelectorTerms": [{"tags": {"karpenter.sh/discovery": CLUSTER}}]}})
    assert nc["spec"]["metadataOptions"] == {"httpEndpoint": "enabled", "httpProtocolIPv6": "disabled",
                                             "httpPutResponseHopLimit": 1, "httpTokens": "required"}
    hop2 = apply(emu, "/apis/karpenter.k8s.aws/v1/ec2nodeclasses", {
        "apiVersion": "karpenter.k8s.aws/v1", "kind": "EC2NodeClass", "metadata": {"name": "hop2"},
        "spec": {"role": NODE_ROLE, "metadataOptions": {"httpPutResponseHopLimit": 2}}})
    assert hop2["spec"]["metadataOptions"] == {"httpEndpoint": "enabled", "httpProtocolIPv6": "disabled",
                                               "httpPutResponseHopLimit": 2, "httpTokens": "required"}
    claim = ok(call(emu, "POST", "/apis/karpenter.sh/v1/nodeclaims", {
        "apiVersion": "karpenter.sh/v1", "kind": "NodeClaim", "metadata": {"name": "c1"},
        "spec": {"nodeClassRef": {"group": "karpenter.k8s.aws", "kind": "EC2NodeClass", "name": "x"},
                 "requirements": []}}), 201)
    assert claim["spec"]["expireAfter"] == "720h"
    for path in ("/apis/karpenter.sh/v1/nodeclaims/c1", "/apis/karpenter.k8s.aws/v1/ec2nodeclasses/defaults",
                 "/apis/karpenter.k8s.aws/v1/ec2nodeclasses/hop2"):
        assert call(emu, "DELETE", path)[0] == 200


# --------------------------------------------------------------------------
# EKS add-on -> CSIDriver
# --------------------------------------------------------------------------


def test_csi_driver_follows_the_s3_addon(emu):
    eks = client("eks", emu["endpoint"])
    path = "/apis/storage.k8s.io/v1/csidrivers/s3.csi.aws.com"
    assert ok(call(emu, "GET", path), 404)["reason"] == "NotFound"
    eks.create_addon(clusterName=CLUSTER, addonName=S3_ADDON, addonVersion="v2.1.0-eksbuild.1")
    statuses = []
    for _ in range(3):
        statuses.append(eks.describe_addon(clusterName=CLUSTER, addonName=S3_ADDON)["addon"]["status"])
        if statuses[-1] == "CREATING":
            assert call(emu, "GET", path)[0] == 404, "the CSIDriver exists before the add-on is ACTIVE"
    assert statuses == ["CREATING", "CREATING", "ACTIVE"]
    drv = ok(call(emu, "GET", path))
    assert drv["metadata"]["labels"] == {
        "app.kubernetes.io/name": "aws-mountpoint-s3-csi-driver",
        "app.kubernetes.io/instance": "aws-mountpoint-s3-csi-driver",
        "app.kubernetes.io/version": "2.1.0", "app.kubernetes.io/component": "csi-driver",
        "app.kubernetes.io/managed-by": "EKS"}
    spec = drv["spec"]
    assert (spec["attachRequired"], spec["podInfoOnMount"], spec["requiresRepublish"]) == (False, True, True)
    assert [t["audience"] for t in spec["tokenRequests"]] == ["sts.amazonaws.com", "pods.eks.amazonaws.com"]
    assert spec["fsGroupPolicy"] == "ReadWriteOnceWithFSType" and spec["volumeLifecycleModes"] == ["Persistent"]
    assert [(m["manager"], m["operation"]) for m in drv["metadata"]["managedFields"]] == [("eks", "Apply")]

    eks.delete_addon(clusterName=CLUSTER, addonName=S3_ADDON)
    assert eks.describe_addon(clusterName=CLUSTER, addonName=S3_ADDON)["addon"]["status"] == "DELETING"
    assert call(emu, "GET", path)[0] == 200  # still there while DELETING
    eks.describe_addon(clusterName=CLUSTER, addonName=S3_ADDON)
    with pytest.raises(ClientError) as exc:
        eks.describe_addon(clusterName=CLUSTER, addonName=S3_ADDON)
    assert exc.value.response["Error"]["Code"] == "ResourceNotFoundException"
    assert call(emu, "GET", path)[0] == 404

    # DeleteAddon with preserve=true leaves the add-on's objects on the cluster, as EKS does
    eks.create_addon(clusterName=CLUSTER, addonName=S3_ADDON)
    for _ in range(3):
        eks.describe_addon(clusterName=CLUSTER, addonName=S3_ADDON)
    assert call(emu, "GET", path)[0] == 200
    eks.delete_addon(clusterName=CLUSTER, addonName=S3_ADDON, preserve=True)
    for _ in range(2):
        eks.describe_addon(clusterName=CLUSTER, addonName=S3_ADDON)
    with pytest.raises(ClientError):
        eks.describe_addon(clusterName=CLUSTER, addonName=S3_ADDON)
    assert call(emu, "GET", path)[0] == 200
    assert call(emu, "DELETE", path)[0] == 200


# --------------------------------------------------------------------------
# ALB controller stand-in -> moto ELBv2
# --------------------------------------------------------------------------


def test_ingress_gets_an_alb_in_moto(emu):
    ensure_namespace(emu, "comfy")
    elbv2, ec2 = client("elbv2", emu["endpoint"]), client("ec2", emu["endpoint"])
    base = "/apis/networking.k8s.io/v1/namespaces/comfy/ingresses"
    ing = apply(emu, base, ingress("comfyui", {
        "alb.ingress.kubernetes.io/scheme": "internet-facing",
        "alb.ingress.kubernetes.io/target-type": "ip",
        "alb.ingress.kubernetes.io/tags": "team=studio, env=dev"}))
    assert ing["metadata"]["finalizers"] == ["ingress.k8s.aws/resources"]
    assert lbs_of(elbv2, "comfy/comfyui") == []  # the controller acts after the write
    first, second = hostname_after_reads(emu, f"{base}/comfyui")
    assert first is None and second
    [(lb, tags)] = lbs_of(elbv2, "comfy/comfyui")
    assert lb["DNSName"] == second
    assert re.fullmatch(r"k8s-comfy-comfyui-[0-9a-f]{10}", lb["LoadBalancerName"])
    assert len(lb["LoadBalancerName"]) <= 32
    assert (lb["Scheme"], lb["Type"]) == ("internet-facing", "application")
    assert lb["VpcId"] == emu["seed"]["vpc_id"]
    assert sorted(az["SubnetId"] for az in lb["AvailabilityZones"]) == sorted(emu["seed"]["subnet_ids"])
    assert tags == {"elbv2.k8s.aws/cluster": CLUSTER, "ingress.k8s.aws/stack": "comfy/comfyui",
                    "ingress.k8s.aws/resource": "LoadBalancer", "team": "studio", "env": "dev"}
    [sg] = sgs_of(ec2, "comfy/comfyui")
    assert lb["SecurityGroups"] == [sg["GroupId"]] and sg["VpcId"] == emu["seed"]["vpc_id"]
    assert [(p["FromPort"], p["IpRanges"][0]["CidrIp"]) for p in sg["IpPermissions"]] == [(80, "0.0.0.0/0")]
    [(tg, tg_tags)] = tgs_of(elbv2, "comfy/comfyui")
    assert tg_tags == {"elbv2.k8s.aws/cluster": CLUSTER, "ingress.k8s.aws/stack": "comfy/comfyui",
                       "ingress.k8s.aws/resource": "comfy/comfyui-comfyui:8848", "team": "studio", "env": "dev"}
    assert (tg["Protocol"], tg["Port"], tg["TargetType"], tg["VpcId"]) == ("HTTP", 8848, "ip",
                                                                             emu["seed"]["vpc_id"])
    [listener] = elbv2.describe_listeners(LoadBalancerArn=lb["LoadBalancerArn"])["Listeners"]
    assert (listener["Protocol"], listener["Port"]) == ("HTTP", 80)
    rules = [r for r in elbv2.describe_rules(ListenerArn=listener["ListenerArn"])["Rules"] if not r["IsDefault"]]
    assert [(r["Priority"], r["Conditions"][0]["Field"], r["Conditions"][0]["PathPatternConfig"]["Values"],
             r["Actions"][0]["Type"], r["Actions"][0]["TargetGroupArn"]) for r in rules] == \
        [("1", "path-pattern", ["/*"], "forward", tg["TargetGroupArn"])]
    [default] = [r for r in elbv2.describe_rules(ListenerArn=listener["ListenerArn"])["Rules"] if r["IsDefault"]]
    assert default["Actions"][0]["FixedResponseConfig"]["StatusCode"] == "404"

    # a changed tags annotation is reconciled on the next read; the hostname stays
    apply(emu, base, ingress("comfyui", {
        "alb.ingress.kubernetes.io/scheme": "internet-facing",
        "alb.ingress.kubernetes.io/target-type": "ip",
        "alb.ingress.kubernetes.io/tags": "team=studio"}))
    assert hostname_after_reads(emu, f"{base}/comfyui", 1) == [second]
    [(_, tags)] = lbs_of(elbv2, "comfy/comfyui")
    assert "env" not in tags and tags["team"] == "studio"

    # no scheme annotation: internal, in the subnets tagged kubernetes.io/role/internal-elb
    apply(emu, base, ingress("internal"))
    host = hostname_after_reads(emu, f"{base}/internal")[-1]
    [(lb2, _)] = lbs_of(elbv2, "comfy/internal")
    assert lb2["Scheme"] == "internal" and lb2["DNSName"] == host and lb2["LoadBalancerName"] != \
        lb["LoadBalancerName"]
    for name in ("comfyui", "internal"):
        assert call(emu, "DELETE", f"{base}/{name}")[0] == 202
        hostname_after_reads(emu, f"{base}/{name}", 1)


def test_deleting_the_ingress_removes_the_alb_first(emu):
    ensure_namespace(emu, "comfy")
    elbv2, ec2 = client("elbv2", emu["endpoint"]), client("ec2", emu["endpoint"])
    base = "/apis/networking.k8s.io/v1/namespaces/comfy/ingresses"
    rules = [{"host": "comfy.example.com", "http": {"paths": [
        {"path": "/", "pathType": "Prefix", "backend": {"service": {"name": "comfyui", "port": {"number": 8848}}}},
        {"path": "/api", "pathType": "Prefix", "backend": {"service": {"name": "api", "port": {"number": 80}}}}]}}]
    apply(emu, base, ingress("gone", rules=rules))
    host = hostname_after_reads(emu, f"{base}/gone")[-1]
    [(lb, _)] = lbs_of(elbv2, "comfy/gone")
    assert lb["DNSName"] == host
    assert len(tgs_of(elbv2, "comfy/gone")) == 2 and len(sgs_of(ec2, "comfy/gone")) == 1

    deleted = ok(call(emu, "DELETE", f"{base}/gone"), 202)
    assert deleted["metadata"]["deletionTimestamp"]
    assert len(lbs_of(elbv2, "comfy/gone")) == 1  # nothing happens before the controller runs
    obj = ok(call(emu, "GET", f"{base}/gone"))
    assert obj["metadata"]["deletionTimestamp"] and obj["metadata"]["finalizers"] == ["ingress.k8s.aws/resources"]
    # by the time the finalizer is gone, so are the load balancer, its listener, TGs and SG
    assert ok(call(emu, "GET", f"{base}/gone"), 404)["reason"] == "NotFound"
    assert lbs_of(elbv2, "comfy/gone") == [] and tgs_of(elbv2, "comfy/gone") == []
    assert sgs_of(ec2, "comfy/gone") == []
    with pytest.raises(ClientError):
        elbv2.describe_listeners(LoadBalancerArn=lb["LoadBalancerArn"])

    # deleting the namespace: kubectl waits for it to go, which the controller lets happen
    ensure_namespace(emu, "doomed")
    apply(emu, "/apis/networking.k8s.io/v1/namespaces/doomed/ingresses", ingress("web"))
    hostname_after_reads(emu, "/apis/networking.k8s.io/v1/namespaces/doomed/ingresses/web")
    assert len(lbs_of(elbv2, "doomed/web")) == 1
    kubectl(emu, "delete", "namespace", "doomed", "--timeout=10s")
    assert call(emu, "GET", "/api/v1/namespaces/doomed")[0] == 404
    assert lbs_of(elbv2, "doomed/web") == [] and tgs_of(elbv2, "doomed/web") == []


def listener_of(elbv2, stack):
    [(lb, _)] = lbs_of(elbv2, stack)
    [listener] = elbv2.describe_listeners(LoadBalancerArn=lb["LoadBalancerArn"])["Listeners"]
    return listener


def rules_of(elbv2, listener):
    """(default rule, [non-default rules by priority])."""
    rules = elbv2.describe_rules(ListenerArn=listener["ListenerArn"])["Rules"]
    [default] = [r for r in rules if r["IsDefault"]]
    return default, sorted((r for r in rules if not r["IsDefault"]), key=lambda r: int(r["Priority"]))


def conditions_of(rule):
    """The rule's conditions as (field, values) pairs; http-header: (field, name, values)."""
    out = []
    for c in rule["Conditions"]:
        if c["Field"] == "http-header":
            out.append((c["Field"], c["HttpHeaderConfig"]["HttpHeaderName"], c["HttpHeaderConfig"]["Values"]))
        else:
            config = {"host-header": "HostHeaderConfig", "path-pattern": "PathPatternConfig",
                      "http-request-method": "HttpRequestMethodConfig", "source-ip": "SourceIpConfig",
                      "query-string": "QueryStringConfig"}[c["Field"]]
            out.append((c["Field"], c[config]["Values"]))
    return out


def header_condition(value, name="X-Origin-Verify"):
    return json.dumps([{"field": "http-header", "httpHeaderConfig": {"httpHeaderName": name, "values": [value]}}])


def test_conditions_annotation_makes_a_header_rule_in_front_of_the_404(emu):
    """alb.ingress.kubernetes.io/conditions.<service>: the path's rule also needs the header;
    the rule follows the annotation on every change (same rule, modified in place)."""
    ensure_namespace(emu, "cdn")
    elbv2 = client("elbv2", emu["endpoint"])
    base = "/apis/networking.k8s.io/v1/namespaces/cdn/ingresses"
    ann = {"alb.ingress.kubernetes.io/target-type": "ip", "alb.ingress.kubernetes.io/tags": "team=art"}
    cond_key = "alb.ingress.kubernetes.io/conditions.comfyui"
    apply(emu, base, ingress("comfyui", {**ann, cond_key: header_condition("s3cret")}))
    assert hostname_after_reads(emu, f"{base}/comfyui")[-1]
    [(tg, _)] = tgs_of(elbv2, "cdn/comfyui")
    listener = listener_of(elbv2, "cdn/comfyui")
    default, [rule] = rules_of(elbv2, listener)
    # requests without the header match no rule: the listener's 404
    assert [(a["Type"], a["FixedResponseConfig"]) for a in default["Actions"]] == [
        ("fixed-response", {"ContentType": "text/plain", "StatusCode": "404"})]
    assert rule["Priority"] == "1"
    assert conditions_of(rule) == [("http-header", "X-Origin-Verify", ["s3cret"]), ("path-pattern", ["/*"])]
    assert [(a["Type"], a["TargetGroupArn"]) for a in rule["Actions"]] == [("forward", tg["TargetGroupArn"])]
    assert tags_of(elbv2, rule["RuleArn"]) == {
        "elbv2.k8s.aws/cluster": CLUSTER, "ingress.k8s.aws/stack": "cdn/comfyui",
        "ingress.k8s.aws/resource": "80:1", "team": "art"}
    assert tags_of(elbv2, listener["ListenerArn"])["ingress.k8s.aws/resource"] == "80"
    assert tg["LoadBalancerArns"] == [listener["LoadBalancerArn"]]

    # a new secret: the same rule, modified; the listener stays
    apply(emu, base, ingress("comfyui", {**ann, cond_key: header_condition("n3w")}))
    hostname_after_reads(emu, f"{base}/comfyui", 1)
    assert listener_of(elbv2, "cdn/comfyui")["ListenerArn"] == listener["ListenerArn"]
    _, [modified] = rules_of(elbv2, listener)
    assert modified["RuleArn"] == rule["RuleArn"]
    assert conditions_of(modified)[0] == ("http-header", "X-Origin-Verify", ["n3w"])

    # other condition fields, the controller's order: others, then hosts, then paths
    apply(emu, base, ingress("comfyui", {**ann, cond_key: json.dumps([
        {"field": "path-pattern", "pathPatternConfig": {"values": ["/api/*"]}},
        {"field": "source-ip", "sourceIpConfig": {"values": ["10.0.0.0/8"]}},
        {"field": "host-header", "hostHeaderConfig": {"values": ["b.example.com"]}},
        {"field": "http-request-method", "httpRequestMethodConfig": {"values": ["GET"]}}])},
        rules=[{"host": "a.example.com", "http": {"paths": [
            {"path": "/", "pathType": "Prefix",
             "backend": {"service": {"name": "comfyui", "port": {"number": 8848}}}}]}}]))
    hostname_after_reads(emu, f"{base}/comfyui", 1)
    _, [rule2] = rules_of(elbv2, listener)
    assert rule2["RuleArn"] == rule["RuleArn"]
    assert conditions_of(rule2) == [("source-ip", ["10.0.0.0/8"]), ("http-request-method", ["GET"]),
                                    ("host-header", ["a.example.com", "b.example.com"]),
                                    ("path-pattern", ["/*", "/api/*"])]

    # without the annotation the rule is the path's alone; the default stays 404
    apply(emu, base, ingress("comfyui", ann))
    hostname_after_reads(emu, f"{base}/comfyui", 1)
    default, [plain] = rules_of(elbv2, listener)
    assert plain["RuleArn"] == rule["RuleArn"] and conditions_of(plain) == [("path-pattern", ["/*"])]
    assert default["Actions"][0]["Type"] == "fixed-response"

    # a malformed annotation: the controller changes nothing (and logs why)
    apply(emu, base, ingress("comfyui", {**ann, cond_key: "[{not json"}))
    hostname_after_reads(emu, f"{base}/comfyui", 1)
    _, [same] = rules_of(elbv2, listener)
    assert same == plain
    apply(emu, base, ingress("comfyui", {**ann, cond_key: json.dumps([{"field": "http-header"}])}))
    hostname_after_reads(emu, f"{base}/comfyui", 1)
    assert rules_of(elbv2, listener)[1] == [plain]

    # a second path: a second rule, created; then removed again: deleted with its tags
    two_paths = [{"http": {"paths": [
        {"path": "/", "pathType": "Prefix", "backend": {"service": {"name": "comfyui", "port": {"number": 8848}}}},
        {"path": "/api", "pathType": "Prefix", "backend": {"service": {"name": "api", "port": {"number": 80}}}}]}}]
    apply(emu, base, ingress("comfyui", {**ann, cond_key: header_condition("s3cret")}, rules=two_paths))
    hostname_after_reads(emu, f"{base}/comfyui", 1)
    _, [first, second] = rules_of(elbv2, listener)
    assert first["RuleArn"] == rule["RuleArn"] and second["Priority"] == "2"
    assert conditions_of(first) == [("http-header", "X-Origin-Verify", ["s3cret"]), ("path-pattern", ["/*"])]
    assert conditions_of(second) == [("path-pattern", ["/api", "/api/*"])]  # only comfyui's paths
    assert tags_of(elbv2, second["RuleArn"])["ingress.k8s.aws/resource"] == "80:2"
    apply(emu, base, ingress("comfyui", {**ann, cond_key: header_condition("s3cret")}))
    hostname_after_reads(emu, f"{base}/comfyui", 1)
    _, [only] = rules_of(elbv2, listener)
    assert only["RuleArn"] == rule["RuleArn"]
    assert len(tgs_of(elbv2, "cdn/comfyui")) == 1
    with pytest.raises(ClientError):
        elbv2.describe_rules(RuleArns=[second["RuleArn"]])
    assert call(emu, "DELETE", f"{base}/comfyui")[0] == 202
    hostname_after_reads(emu, f"{base}/comfyui", 1)
    assert lbs_of(elbv2, "cdn/comfyui") == [] and tgs_of(elbv2, "cdn/comfyui") == []


def test_conditions_annotation_does_not_apply_to_the_default_backend(emu):
    """As in the controller: spec.defaultBackend is the listener's default action, which has no
    conditions; only paths get rules (so the header is not enforced for a default backend)."""
    ensure_namespace(emu, "cdn")
    elbv2 = client("elbv2", emu["endpoint"])
    base = "/apis/networking.k8s.io/v1/namespaces/cdn/ingresses"
    backend = {"service": {"name": "comfyui", "port": {"number": 8848}}}
    ing = ingress("default-only", {"alb.ingress.kubernetes.io/conditions.comfyui": header_condition("s3cret")},
                  defaultBackend=backend)
    del ing["spec"]["rules"]
    apply(emu, base, ing)
    assert hostname_after_reads(emu, f"{base}/default-only")[-1]
    [(tg, _)] = tgs_of(elbv2, "cdn/default-only")
    listener = listener_of(elbv2, "cdn/default-only")
    default, rules = rules_of(elbv2, listener)
    assert rules == []
    assert [(a["Type"], a["TargetGroupArn"]) for a in default["Actions"]] == [("forward", tg["TargetGroupArn"])]
    # adding a path to the same service: its rule has the condition; the default still forwards
    ing["spec"]["rules"] = [{"http": {"paths": [{"path": "/", "pathType": "Prefix", "backend": backend}]}}]
    apply(emu, base, ing)
    hostname_after_reads(emu, f"{base}/default-only", 1)
    default, [rule] = rules_of(elbv2, listener)
    assert conditions_of(rule)[0] == ("http-header", "X-Origin-Verify", ["s3cret"])
    assert default["Actions"][0]["Type"] == "forward"
    # dropping the default backend: the default action becomes the 404 (listener modified)
    del ing["spec"]["defaultBackend"]
    apply(emu, base, ing)
    hostname_after_reads(emu, f"{base}/default-only", 1)
    assert listener_of(elbv2, "cdn/default-only")["ListenerArn"] == listener["ListenerArn"]
    default, [same] = rules_of(elbv2, listener)
    assert same["RuleArn"] == rule["RuleArn"]
    assert default["Actions"][0]["FixedResponseConfig"]["StatusCode"] == "404"
    assert call(emu, "DELETE", f"{base}/default-only")[0] == 202
    hostname_after_reads(emu, f"{base}/default-only", 1)
    assert lbs_of(elbv2, "cdn/default-only") == []


def test_parse_conditions_annotation():
    import eks_kube

    assert eks_kube.parse_conditions_annotation("") == []
    assert eks_kube.parse_conditions_annotation(header_condition("v")) == [
        {"Field": "http-header", "HttpHeaderConfig": {"HttpHeaderName": "X-Origin-Verify", "Values": ["v"]}}]
    # Go's encoding/json matches keys case-insensitively; unknown fields are ignored
    assert eks_kube.parse_conditions_annotation(json.dumps([
        {"Field": "query-string", "QueryStringConfig": {"Values": [{"key": "a", "value": "1"}, {"value": "2"}]}},
        {"field": "nonsense"}])) == [
        {"Field": "query-string", "QueryStringConfig": {"Values": [{"Key": "a", "Value": "1"}, {"Value": "2"}]}}]
    for bad in ("[{", "{}", '[{"field": "http-header"}]',
                '[{"field": "http-header", "httpHeaderConfig": {"values": ["v"]}}]',
                '[{"field": "source-ip", "sourceIpConfig": {"values": "10.0.0.0/8"}}]'):
        with pytest.raises(ValueError):
            eks_kube.parse_conditions_annotation(bad)


# --------------------------------------------------------------------------
# Resource Groups Tagging API (what comfyplat's destroy report looks for)
# --------------------------------------------------------------------------


def test_tagging_api_finds_tagged_load_balancers_and_instances(emu):
    """GetResources with TagFilters + ResourceTypeFilters, as the destroy report asks for
    leftovers: the controller's load balancers / target groups, Karpenter's instances.
    moto also returns terminated instances while their tags last (see the end)."""
    ep, account = emu["endpoint"], emu["seed"]["account_id"]
    rgta, elbv2, ec2 = client("resourcegroupstaggingapi", ep), client("elbv2", ep), client("ec2", ep)

    def resources(key, value, types):
        out = {}
        for page in rgta.get_paginator("get_resources").paginate(
                TagFilters=[{"Key": key, "Values": [value]}], ResourceTypeFilters=types):
            for mapping in page["ResourceTagMappingList"]:
                out[mapping["ResourceARN"]] = {t["Key"]: t["Value"] for t in mapping["Tags"]}
        return out

    elb_types = ["elasticloadbalancing:loadbalancer", "elasticloadbalancing:targetgroup"]
    before = resources("elbv2.k8s.aws/cluster", CLUSTER, elb_types)  # other tests' ALBs may be there
    tags = {"elbv2.k8s.aws/cluster": CLUSTER, "ingress.k8s.aws/stack": "leftover/web"}
    tag_list = [{"Key": k, "Value": v} for k, v in tags.items()]
    lb = elbv2.create_load_balancer(Name="k8s-leftover-web-0123456789", Subnets=emu["seed"]["subnet_ids"],
                                    Scheme="internal", Type="application", Tags=tag_list)["LoadBalancers"][0]
    tg = elbv2.create_target_group(Name="k8s-leftover-web-9876543210", Protocol="HTTP", Port=80,
                                   VpcId=emu["seed"]["vpc_id"], TargetType="ip", Tags=tag_list)["TargetGroups"][0]
    other = elbv2.create_load_balancer(Name="someone-elses", Subnets=emu["seed"]["subnet_ids"], Scheme="internal",
                                       Type="application",
                                       Tags=[{"Key": "elbv2.k8s.aws/cluster", "Value": "another-cluster"}])
    try:
        found = resources("elbv2.k8s.aws/cluster", CLUSTER, elb_types)
        assert {arn: t for arn, t in found.items() if arn not in before} == {
            lb["LoadBalancerArn"]: tags, tg["TargetGroupArn"]: tags}
        assert set(resources("elbv2.k8s.aws/cluster", CLUSTER, ["elasticloadbalancing:loadbalancer"])) - \
            set(before) == {lb["LoadBalancerArn"]}
        assert resources("elbv2.k8s.aws/cluster", "no-such-cluster", elb_types) == {}
        assert resources("elbv2.k8s.aws/cluster", CLUSTER, ["ec2:instance"]) == {}

        image = ec2.describe_images(Owners=["amazon"])["Images"][0]["ImageId"]
        [instance] = ec2.run_instances(ImageId=image, MinCount=1, MaxCount=1, InstanceType="g5.xlarge",
                                       SubnetId=emu["seed"]["subnet_ids"][0])["Instances"]
        node_tags = {"karpenter.sh/nodepool": "rgta-gpu", f"kubernetes.io/cluster/{CLUSTER}": "owned"}
        ec2.create_tags(Resources=[instance["InstanceId"]],
                        Tags=[{"Key": k, "Value": v} for k, v in node_tags.items()])
        instance_arn = f"arn:aws:ec2:{REGION}:{account}:instance/{instance['InstanceId']}"
        assert resources("karpenter.sh/nodepool", "rgta-gpu", ["ec2:instance"]) == {instance_arn: node_tags}
        assert resources("karpenter.sh/nodepool", "rgta-cpu", ["ec2:instance"]) == {}
        assert resources("karpenter.sh/nodepool", "rgta-gpu", elb_types) == {}

        # a terminated instance is still found (AWS too may list it for a while)
        ec2.terminate_instances(InstanceIds=[instance["InstanceId"]])
        assert resources("karpenter.sh/nodepool", "rgta-gpu", ["ec2:instance"]) == {instance_arn: node_tags}
    finally:
        elbv2.delete_load_balancer(LoadBalancerArn=lb["LoadBalancerArn"])
        elbv2.delete_load_balancer(LoadBalancerArn=other["LoadBalancers"][0]["LoadBalancerArn"])
        elbv2.delete_target_group(TargetGroupArn=tg["TargetGroupArn"])
    assert {arn for arn in resources("elbv2.k8s.aws/cluster", CLUSTER, elb_types) if arn not in before} == set()


# --------------------------------------------------------------------------
# Karpenter stand-in
# --------------------------------------------------------------------------


def test_nodepool_finalizer_lifecycle(emu):
    path = "/apis/karpenter.sh/v1/nodepools"
    pool = apply(emu, path, {
        "apiVersion": "karpenter.sh/v1", "kind": "NodePool", "metadata": {"name": "gpu"},
        "spec": {"template": {"spec": {"nodeClassRef": {"group": "karpenter.k8s.aws", "kind": "EC2NodeClass",
                                                        "name": "gpu"}, "requirements": []}}}})
    assert pool["metadata"]["finalizers"] == ["karpenter.sh/termination"]
    assert cond(pool, "Ready")["status"] == "True"
    assert ("karpenter", "Update") in [(m["manager"], m["operation"]) for m in pool["metadata"]["managedFields"]]
    # re-applying without finalizers leaves Karpenter's finalizer alone
    again = apply(emu, path, {"apiVersion": "karpenter.sh/v1", "kind": "NodePool", "metadata": {"name": "gpu"},
                              "spec": pool["spec"]})
    assert again["metadata"]["finalizers"] == ["karpenter.sh/termination"]
    deleted = ok(call(emu, "DELETE", f"{path}/gpu"), 202)
    assert deleted["metadata"]["deletionTimestamp"]
    first = ok(call(emu, "GET", f"{path}/gpu"))
    assert first["metadata"]["deletionTimestamp"] and first["metadata"]["finalizers"] == ["karpenter.sh/termination"]
    assert call(emu, "GET", f"{path}/gpu")[0] == 404
    # kubectl delete (waits by watching) returns once Karpenter let go
    apply(emu, path, {"apiVersion": "karpenter.sh/v1", "kind": "NodePool", "metadata": {"name": "gpu2"},
                      "spec": pool["spec"]})
    kubectl(emu, "delete", "nodepool", "gpu2", "--timeout=10s")
    assert call(emu, "GET", f"{path}/gpu2")[0] == 404


def test_ec2nodeclass_ready_follows_the_iam_role(emu):
    path = "/apis/karpenter.k8s.aws/v1/ec2nodeclasses"

    def nodeclass(name, **spec):
        return {"apiVersion": "karpenter.k8s.aws/v1", "kind": "EC2NodeClass", "metadata": {"name": name},
                "spec": {"amiSelectorTerms": [{"alias": "al2023@latest"}],
                         "subnetSelectorTerms": [{"tags": {"karpenter.sh/discovery": CLUSTER}}],
                         "securityGroupSelectorTerms": [{"tags": {"karpenter.sh/discovery": CLUSTER}}], **spec}}

    good = apply(emu, path, nodeclass("seeded-role", role=NODE_ROLE))
    assert cond(good, "Ready")["status"] == "True"
    assert {c["type"]: c["status"] for c in good["status"]["conditions"]} == {
        "AMIsReady": "True", "InstanceProfileReady": "True", "Ready": "True", "SecurityGroupsReady": "True",
        "SubnetsReady": "True", "ValidationSucceeded": "True"}

    bad = apply(emu, path, nodeclass("missing-role", role="KarpenterNodeRole-nope"))
    ready, ip = cond(bad, "Ready"), cond(bad, "InstanceProfileReady")
    assert (ready["status"], ready["reason"], ready["message"]) == ("False", "UnhealthyDependents",
                                                                    "InstanceProfileReady=False")
    assert ip["status"] == "False" and 'role "KarpenterNodeRole-nope" not found' in ip["message"]
    assert cond(ok(call(emu, "GET", f"{path}/missing-role")), "Ready")["status"] == "False"

    profile = apply(emu, path, nodeclass("missing-profile", instanceProfile="no-such-profile"))
    assert cond(profile, "ValidationSucceeded")["reason"] == "InstanceProfileNotFound"
    assert cond(profile, "Ready")["status"] == "False"

    # the role appears in IAM: Karpenter's requeue makes the class Ready (kubectl wait watches)
    iam = client("iam", emu["endpoint"])
    iam.create_role(RoleName="KarpenterNodeRole-nope", AssumeRolePolicyDocument=json.dumps({
        "Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Principal": {"Service": "ec2.amazonaws.com"},
                                                "Action": "sts:AssumeRole"}]}))
    try:
        kubectl(emu, "wait", "--for=condition=Ready", "ec2nodeclass/missing-role", "--timeout=10s")
    finally:
        iam.delete_role(RoleName="KarpenterNodeRole-nope")
    for name in ("seeded-role", "missing-role", "missing-profile"):
        assert call(emu, "DELETE", f"{path}/{name}")[0] == 200


# --------------------------------------------------------------------------
# reset
# --------------------------------------------------------------------------


def test_control_reset_restores_the_seeded_objects(emu):
    assert ok(call(emu, "POST", "/apis/networking.k8s.io/v1/ingressclasses", {
        "apiVersion": "networking.k8s.io/v1", "kind": "IngressClass", "metadata": {"name": "nginx"},
        "spec": {"controller": "k8s.io/ingress-nginx"}}), 201)
    assert call(emu, "DELETE", "/apis/apiextensions.k8s.io/v1/customresourcedefinitions/nodepools.karpenter.sh")[0] \
        == 200
    assert call(emu, "GET", "/apis/karpenter.sh/v1/nodepools")[0] == 404
    ok(call(emu, "POST", "/__control/reset", token=None))
    assert [c["metadata"]["name"] for c in ok(call(emu, "GET", "/apis/networking.k8s.io/v1/ingressclasses"))
            ["items"]] == ["alb"]
    assert ok(call(emu, "GET", "/apis/karpenter.sh/v1/nodepools"))["items"] == []
    assert ok(call(emu, "GET", "/apis/apps/v1/namespaces/kube-system/daemonsets/nvidia-device-plugin-daemonset"))
