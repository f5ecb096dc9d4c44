"""The Kubernetes API of the seeded EKS cluster, served by aws_emulator.py in its own process.

    server, info = eks_kube.start(region, account_id, cluster_name, kubeconfig=None)
    ...
    eks_kube.stop(server)

start() runs kube_server.py's server over TLS on 127.0.0.1 (a free port, own thread) with a
Store that
  * holds what the sandbox cluster's platform team installed (seed.seed_kubernetes: Karpenter's
    CRDs, the `alb` IngressClass, NVIDIA's device plugin DaemonSet), again after a
    /__control/reset;
  * has `cloud` = MotoCloud, so the controller stand-ins act on moto's backends in-process:
    the ALB controller creates/deletes real (moto) load balancers, Karpenter looks node roles
    up in moto IAM;
  * serves kube_server.py's test controls too (/__control/nodes, /__control/pods/log: nodes,
    DaemonSet pods, their readiness and logs); the seeded NVIDIA device plugin DaemonSet then
    runs a pod on every node it tolerates (no nodeSelector), as in the real cluster;
and connects the cluster to moto's EKS (eks_extension.attach_kubernetes): DescribeCluster
answers with this server's endpoint and CA, and add-ons that become ACTIVE put their
Kubernetes objects into the store (ADDON_OBJECTS) and take them away when deleted.

The ALB controller stand-in (MotoCloud.ensure_alb/delete_alb; what it creates is listed in
kube_server.py's docstring) keeps the HTTP:80 listener of a load balancer and reconciles it in
place on every change of the Ingress, as the controller's deployer does: the default action
(forward to spec.defaultBackend, else a fixed 404) is modified, rules are modified, created
or deleted by priority (ARNs stay), and each carries the controller's tags
(elbv2.k8s.aws/cluster, ingress.k8s.aws/stack, ingress.k8s.aws/resource=80:<priority>, the
tags annotation). A path's rule gets the conditions of the annotation
alb.ingress.kubernetes.io/conditions.<service of the path> (the controller's JSON, e.g.
[{"field":"http-header","httpHeaderConfig":{"httpHeaderName":"X-Origin-Verify",
"values":["secret"]}}]; fields host-header, path-pattern, http-header, http-request-method,
query-string, source-ip) the way the controller builds them: the non host/path conditions
first, then host-header (the rule's host + the annotation's), then path-pattern (the path's
patterns + the annotation's). So an Ingress with a `/` Prefix path to service S and
conditions.S gets rule 1 = [http-header, path-pattern /*] -> S, and everything else meets the
default 404. As in the controller, the annotation does nothing for spec.defaultBackend (no
rule, the listener's default action forwards), and a malformed annotation fails the
reconciliation before anything changes (logged; the Ingress keeps its old status).

info = {"endpoint": "https://127.0.0.1:N", "port": N, "ca_data": <base64 PEM, as EKS
certificateAuthority.data>, "ca_file": <PEM path>, "kubeconfig": <path>}. The kubeconfig
(written to `kubeconfig`, or into a temp dir) authenticates with `aws eks get-token` of the
same virtualenv (see write_kubeconfig). stop() stops the server and removes the temp dirs and
the kubeconfig.

Only loopback is ever used; moto is never called over HTTP from here.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import sys
import tempfile
from typing import Any

import eks_extension
import kube_server
from seed import seed_kubernetes

# ---------------------------------------------------------------------------
# objects EKS add-ons install
# ---------------------------------------------------------------------------


def _mountpoint_s3_csi_driver(version: str) -> list[dict[str, Any]]:
    """The CSIDriver of the Mountpoint for Amazon S3 CSI driver (awslabs/mountpoint-s3-csi-driver,
    deploy/kubernetes/base/csidriver.yaml; v1.x asks for STS tokens only), labelled as the
    chart labels it for an EKS add-on install (managed-by EKS, no helm.sh/chart)."""
    app_version = version.lstrip("v").split("-")[0]
    audiences = ["sts.amazonaws.com"] if app_version.startswith("1.") else ["sts.amazonaws.com",
                                                                            "pods.eks.amazonaws.com"]
    return [{
        "apiVersion": "storage.k8s.io/v1", "kind": "CSIDriver",
        "metadata": {"name": "s3.csi.aws.com", "labels": {
            "app.kubernetes.io/name": "aws-mountpoint-s3-csi-driver",
            "app.kubernetes.io/instance": "aws-mountpoint-s3-csi-driver",
            "app.kubernetes.io/version": app_version,
            "app.kubernetes.io/component": "csi-driver",
            "app.kubernetes.io/managed-by": "EKS"}},
        "spec": {"attachRequired": False, "podInfoOnMount": True, "requiresRepublish": True,
                 "tokenRequests": [{"audience": a, "expirationSeconds": 3600} for a in audiences]}}]


# add-on name -> objects(version) it server-side-applies (field manager "eks") once ACTIVE
ADDON_OBJECTS = {"aws-mountpoint-s3-csi-driver": _mountpoint_s3_csi_driver}
ADDON_MANAGER = "eks"


class AddonObjects:
    """eks_extension's hook: add-on installed / removed -> objects in the cluster's store."""

    def __init__(self, store: kube_server.Store):
        self.store = store

    def _res_and_key(self, obj: dict[str, Any]):
        group, _, version = obj["apiVersion"].rpartition("/")
        plural = obj["kind"].lower() + "s"
        res = self.store.find_res(group, version, plural)
        return res, obj["metadata"].get("namespace")

    def addon_installed(self, name: str, version: str) -> None:
        make = ADDON_OBJECTS.get(name)
        if make is None:
            return
        with self.store.lock:
            for obj in make(version):
                res, ns = self._res_and_key(obj)
                self.store.patch(res, ns, obj["metadata"]["name"], "application/apply-patch+yaml",
                                 json.dumps(obj).encode(), {"fieldManager": ADDON_MANAGER, "force": "true"},
                                 ADDON_MANAGER, False)

    def addon_removed(self, name: str, version: str) -> None:
        make = ADDON_OBJECTS.get(name)
        if make is None:
            return
        with self.store.lock:
            for obj in make(version):
                res, ns = self._res_and_key(obj)
                if self.store._key(res, ns, obj["metadata"]["name"]) in self.store.objects:
                    self.store.delete(res, ns, obj["metadata"]["name"], {}, False)


# ---------------------------------------------------------------------------
# the controllers' view of AWS: moto's backends, in process
# ---------------------------------------------------------------------------

_NON_ALNUM = re.compile(r"[^A-Za-z0-9]")
TAG_CLUSTER = "elbv2.k8s.aws/cluster"
TAG_STACK = "ingress.k8s.aws/stack"
TAG_RESOURCE = "ingress.k8s.aws/resource"
ANN = "alb.ingress.kubernetes.io/"


def _hash10(*parts: str) -> str:
    return hashlib.sha256("\x00".join(parts).encode()).hexdigest()[:10]


def _name(a: str, b: str, h: str) -> str:
    """The AWS Load Balancer Controller's naming: k8s-<8>-<8>-<10 hex> (<= 32 characters)."""
    return f"k8s-{_NON_ALNUM.sub('', a)[:8]}-{_NON_ALNUM.sub('', b)[:8]}-{h}"


def _tag_list(tags: dict[str, str]) -> list[dict[str, str]]:
    return [{"Key": k, "Value": v} for k, v in tags.items()]


def parse_tags_annotation(value: str) -> dict[str, str]:
    """alb.ingress.kubernetes.io/tags: "k1=v1,k2=v2" (the value may be empty)."""
    out = {}
    for pair in (value or "").split(","):
        pair = pair.strip()
        if not pair:
            continue
        k, sep, v = pair.partition("=")
        if not sep or not k.strip():
            raise ValueError(f"bad tags annotation entry {pair!r}")
        out[k.strip()] = v.strip()
    return out


# alb.ingress.kubernetes.io/conditions.<service>: the controller's JSON field -> ELBv2's config
CONDITION_CONFIGS = {"host-header": "HostHeaderConfig", "path-pattern": "PathPatternConfig",
                     "http-header": "HttpHeaderConfig", "http-request-method": "HttpRequestMethodConfig",
                     "query-string": "QueryStringConfig", "source-ip": "SourceIpConfig"}


def _member(obj: Any, name: str) -> Any:
    """obj[name], matching the key case-insensitively as Go's encoding/json does (None if absent)."""
    if not isinstance(obj, dict):
        return None
    return next((v for k, v in obj.items() if k.lower() == name.lower()), None)


def _strings(value: Any, what: str) -> list[str]:
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ValueError(f"conditions annotation: {what}: expected a list of strings")
    return list(value)


def parse_conditions_annotation(value: str) -> list[dict[str, Any]]:
    """alb.ingress.kubernetes.io/conditions.<service> (the controller's format, e.g.
    [{"field":"http-header","httpHeaderConfig":{"httpHeaderName":"X-Origin-Verify","values":["s"]}}])
    -> ELBv2 rule conditions ({"Field": ..., "HttpHeaderConfig": {"HttpHeaderName", "Values"}}, ...),
    in order. The value may be empty (no conditions). A condition without the config its field
    needs is an error, as in the controller; a condition with another field is ignored, as
    there."""
    if not (value or "").strip():
        return []
    try:
        items = json.loads(value)
    except json.JSONDecodeError as e:
        # (the value is not repeated: it may hold a secret header value)
        raise ValueError(f"bad conditions annotation: {e}") from None
    if not isinstance(items, list):
        raise ValueError("bad conditions annotation: expected a JSON list")
    out: list[dict[str, Any]] = []
    for item in items:
        field = _member(item, "field")
        config_name = CONDITION_CONFIGS.get(field) if isinstance(field, str) else None
        if config_name is None:
            continue
        json_name = config_name[0].lower() + config_name[1:]  # as the controller spells it
        config = _member(item, config_name)
        if not isinstance(config, dict):
            raise ValueError(f"conditions annotation: missing {json_name} for field {field}")
        values = _member(config, "values")
        if field == "http-header":
            name = _member(config, "httpHeaderName")
            if not isinstance(name, str) or not name:
                raise ValueError("conditions annotation: http-header without httpHeaderName")
            elbv2_config: dict[str, Any] = {"HttpHeaderName": name,
                                            "Values": _strings(values, f"{json_name}.values")}
        elif field == "query-string":
            if not isinstance(values, list) or not all(isinstance(v, dict) for v in values):
                raise ValueError("conditions annotation: queryStringConfig.values: expected a list of "
                                 "{key, value}")
            pairs = []
            for pair in values:
                key, val = _member(pair, "key"), _member(pair, "value")
                pairs.append({"Value": val} if key is None else {"Key": key, "Value": val})
            elbv2_config = {"Values": pairs}
        else:
            elbv2_config = {"Values": _strings(values, f"{json_name}.values")}
        out.append({"Field": field, config_name: elbv2_config})
    return out


class MotoCloud:
    """kube_server.Store.cloud for a cluster in moto (account, region, cluster name).

    Backends are looked up on every call, so a moto reset is seen (the cluster is then gone and
    the calls fail, as a controller of a deleted cluster would)."""

    def __init__(self, account_id: str, region: str, cluster_name: str):
        self.account_id, self.region, self.cluster_name = account_id, region, cluster_name

    # ---- backends ----
    def _elbv2(self):
        from moto.elbv2.models import elbv2_backends
        return elbv2_backends[self.account_id][self.region]

    def _ec2(self):
        from moto.ec2.models import ec2_backends
        return ec2_backends[self.account_id][self.region]

    def _iam(self):
        from moto.iam.models import iam_backends
        return iam_backends[self.account_id]["aws"]

    def _cluster(self):
        from moto.eks.models import eks_backends
        cluster = eks_backends[self.account_id][self.region].clusters.get(self.cluster_name)
        if cluster is None:
            raise RuntimeError(f"EKS cluster {self.cluster_name} not found")
        return cluster

    # ---- Karpenter ----
    def nodeclass_problem(self, spec: dict[str, Any]):
        iam = self._iam()
        role = spec.get("role")
        if isinstance(role, str) and role:
            name = role.rsplit("/", 1)[-1]
            try:
                iam.get_role(name)
            except Exception:
                return ("InstanceProfileReady", "RoleNotFound",
                        f'role "{name}" not found: NoSuchEntity: The role with name {name} cannot be found.')
            return None
        profile = spec.get("instanceProfile")
        if isinstance(profile, str) and profile:
            try:
                iam.get_instance_profile(profile)
            except Exception:
                return ("ValidationSucceeded", "InstanceProfileNotFound", f'Instance profile "{profile}" not found')
        return None

    # ---- AWS Load Balancer Controller ----
    def _tagged(self, arns, want: dict[str, str]) -> list[str]:
        ts = self._elbv2().tagging_service
        return [a for a in arns if all(ts.get_tag_dict_for_resource(a).get(k) == v for k, v in want.items())]

    def _subnets(self, ann: dict[str, str], scheme: str, cluster) -> list[str]:
        ec2 = self._ec2()
        cluster_subnets = list((cluster.resources_vpc_config or {}).get("subnetIds") or
                               (cluster.resources_vpc_config or {}).get("subnet_ids") or [])
        vpc_id = ec2.get_subnet(cluster_subnets[0]).vpc_id if cluster_subnets else None
        in_vpc = [s for s in ec2.describe_subnets() if s.vpc_id == vpc_id]

        def tags(s):
            return {t["key"]: t["value"] for t in s.get_tags()}

        if ann.get(ANN + "subnets"):
            out = []
            for ref in (x.strip() for x in ann[ANN + "subnets"].split(",") if x.strip()):
                match = [s.id for s in in_vpc if s.id == ref or tags(s).get("Name") == ref]
                if not match:
                    raise RuntimeError(f"subnet {ref} not found in {vpc_id}")
                out += match
            return out
        role_tag = "kubernetes.io/role/elb" if scheme == "internet-facing" else "kubernetes.io/role/internal-elb"
        chosen: dict[str, str] = {}
        for s in sorted(in_vpc, key=lambda s: s.id):
            t = tags(s)
            if t.get(role_tag) in ("", "1") and t.get(f"kubernetes.io/cluster/{self.cluster_name}", "shared") in (
                    "owned", "shared"):
                chosen.setdefault(s.availability_zone, s.id)
        # Simplification: with no subnet tagged for the scheme, the cluster's own subnets (the
        # real controller reports "couldn't auto-discover subnets" instead).
        return sorted(chosen.values()) or cluster_subnets

    @staticmethod
    def _backends(ing: dict[str, Any]) -> list[tuple[str, str, str, str]]:
        """(host, path pattern(s) json, service, port) of every backend, in order; path '' = default."""
        spec = ing.get("spec") or {}
        out = []

        def svc(backend):
            s = (backend or {}).get("service") or {}
            port = s.get("port") or {}
            return s.get("name"), str(port.get("number") if port.get("number") is not None else port.get("name"))

        if spec.get("defaultBackend"):
            n, p = svc(spec["defaultBackend"])
            if n:
                out.append(("", "", n, p))
        for rule in spec.get("rules") or []:
            for path in ((rule.get("http") or {}).get("paths") or []):
                n, p = svc(path.get("backend"))
                if not n:
                    continue
                value = path.get("path") or "/"
                if path.get("pathType") == "Exact":
                    patterns = [value]
                elif value == "/":
                    patterns = ["/*"]
                else:
                    patterns = [value.rstrip("/"), value.rstrip("/") + "/*"]
                out.append((rule.get("host") or "", json.dumps(patterns), n, p))
        return out

    def ensure_alb(self, ing: dict[str, Any]) -> str:
        md = ing["metadata"]
        ns, name = md["namespace"], md["name"]
        ann = md.get("annotations") or {}
        stack = f"{ns}/{name}"
        scheme = ann.get(ANN + "scheme", "internal")
        if scheme not in ("internal", "internet-facing"):
            raise ValueError(f"unknown scheme {scheme!r}")
        target_type = ann.get(ANN + "target-type", "instance")
        extra = parse_tags_annotation(ann.get(ANN + "tags", ""))
        for key, value in ann.items():  # as the controller: a bad annotation fails before any change
            if key.startswith(ANN + "conditions."):
                parse_conditions_annotation(value)
        cluster = self._cluster()
        subnets = self._subnets(ann, scheme, cluster)
        elbv2, ec2 = self._elbv2(), self._ec2()
        vpc_id = ec2.get_subnet(subnets[0]).vpc_id
        base = {TAG_CLUSTER: self.cluster_name, TAG_STACK: stack}
        lb_name = _name(ns, name, _hash10(self.cluster_name, stack, scheme))

        # load balancers of this Ingress under another name (the scheme changed) go
        for arn in self._tagged(list(elbv2.load_balancers), {**base, TAG_RESOURCE: "LoadBalancer"}):
            if elbv2.load_balancers[arn].name != lb_name:
                elbv2.delete_load_balancer(arn)

        # security group: the annotation's, or a managed one
        if ann.get(ANN + "security-groups"):
            sgs = []
            for ref in (x.strip() for x in ann[ANN + "security-groups"].split(",") if x.strip()):
                g = ec2.get_security_group_by_name_or_id(ref, vpc_id)
                if g is None:
                    raise RuntimeError(f"security group {ref} not found")
                sgs.append(g.id)
            self._delete_managed_sgs(stack)
        else:
            sg_tags = {**extra, **base, TAG_RESOURCE: "ManagedLBSecurityGroup"}
            sg = ec2.get_security_group_by_name_or_id(lb_name, vpc_id)
            if sg is None:
                sg = ec2.create_security_group(lb_name, "[k8s] Managed SecurityGroup for LoadBalancer", vpc_id,
                                               tags=sg_tags)
                ec2.authorize_security_group_ingress(sg.id, "tcp", 80, 80, [{"CidrIp": "0.0.0.0/0",
                                                                               "Description": ""}], vpc_id=vpc_id)
            else:
                ec2.create_tags([sg.id], sg_tags)
            sgs = [sg.id]

        lb_tags = {**extra, **base, TAG_RESOURCE: "LoadBalancer"}
        lb = next((b for b in elbv2.load_balancers.values() if b.name == lb_name), None)
        if lb is None:
            lb = elbv2.create_load_balancer(name=lb_name, security_groups=sgs, subnet_ids=subnets, scheme=scheme,
                                            loadbalancer_type="application", tags=_tag_list(lb_tags))
        else:
            self._retag(lb.arn, lb_tags)
            lb.security_groups = sgs

        # target groups, one per (service, port)
        backends = self._backends(ing)
        wanted: dict[tuple[str, str], str] = {}
        for _, _, svc, port in backends:
            if (svc, port) in wanted:
                continue
            resource = f"{stack}-{svc}:{port}"
            tg_tags = {**extra, **base, TAG_RESOURCE: resource}
            found = self._tagged(list(elbv2.target_groups), {**base, TAG_RESOURCE: resource})
            if found:
                self._retag(found[0], tg_tags)
                wanted[(svc, port)] = found[0]
                continue
            tg = elbv2.create_target_group(
                _name(ns, svc, _hash10(self.cluster_name, stack, svc, port, target_type)),
                vpc_id=vpc_id, protocol="HTTP", protocol_version="HTTP1",
                port=int(port) if port.isdigit() else 80, target_type=target_type,
                healthcheck_protocol="HTTP", healthcheck_path="/", matcher={"HttpCode": "200"},
                tags=_tag_list(tg_tags))
            wanted[(svc, port)] = tg.arn

        # one HTTP:80 listener, kept (same ARN) and reconciled in place: default action, then the
        # rules by priority (modified, created, deleted), as the controller's deployer does
        default = next((b for b in backends if b[0] == "" and b[1] == ""), None)
        action = ({"Type": "forward", "TargetGroupArn": wanted[(default[2], default[3])]} if default else
                  {"Type": "fixed-response", "FixedResponseConfig": {"ContentType": "text/plain",
                                                                    "StatusCode": "404"}})
        listener = next((li for li in lb.listeners.values() if str(li.port) == "80" and li.protocol == "HTTP"), None)
        for arn in [a for a in lb.listeners if listener is None or a != listener.arn]:
            self._delete_listener(arn)
        listener_tags = {**extra, **base, TAG_RESOURCE: "80"}
        if listener is None:
            listener = elbv2.create_listener(load_balancer_arn=lb.arn, protocol="HTTP", port=80, ssl_policy=None,
                                             certificate=None, actions=[action], tags=_tag_list(listener_tags))
        else:
            if [a.data for a in listener.default_actions] != [action]:
                elbv2.modify_listener(listener.arn, actions=[action])
                self._used_by(lb.arn, [action])
            self._retag(listener.arn, listener_tags)
        existing = {int(r.priority): r for r in listener.rules.values() if not r.is_default}
        for priority, (conditions, actions) in enumerate(self._rules(ann, backends, wanted), start=1):
            rule_tags = {**extra, **base, TAG_RESOURCE: f"80:{priority}"}
            rule = existing.pop(priority, None)
            if rule is None:
                elbv2.create_rule(listener.arn, conditions, priority, actions, tags=_tag_list(rule_tags))
                continue
            if rule.conditions != conditions or [a.data for a in rule.actions] != actions:
                elbv2.modify_rule(rule.arn, conditions, actions)
                self._used_by(lb.arn, actions)
            self._retag(rule.arn, rule_tags)
        for rule in existing.values():
            elbv2.delete_rule(rule.arn)
            elbv2.tagging_service.delete_all_tags_for_resource(rule.arn)

        # target groups no backend uses any more
        for arn in self._tagged(list(elbv2.target_groups), base):
            if arn not in wanted.values():
                elbv2.delete_target_group(arn)
        return lb.dns_name

    def _rules(self, ann: dict[str, str], backends: list[tuple[str, str, str, str]],
               wanted: dict[tuple[str, str], str]) -> list[tuple[list[dict[str, Any]], list[dict[str, Any]]]]:
        """(conditions, actions) of the listener rules, in priority order: one per path, as the
        controller's buildRuleConditions makes them: the conditions.<service> annotation's
        conditions other than host-header/path-pattern first, in its order, then host-header
        (the rule's host + the annotation's hosts), then path-pattern (the path's patterns + the
        annotation's paths); none at all -> path-pattern /*."""
        out = []
        for host, patterns, svc, port in backends:
            if not patterns:
                continue  # spec.defaultBackend: the listener's default action, no rule
            hosts = [host] if host else []
            paths = list(json.loads(patterns))
            conditions = []
            for c in parse_conditions_annotation(ann.get(f"{ANN}conditions.{svc}", "")):
                if c["Field"] == "host-header":
                    hosts += c["HostHeaderConfig"]["Values"]
                elif c["Field"] == "path-pattern":
                    paths += c["PathPatternConfig"]["Values"]
                else:
                    conditions.append(c)
            if hosts:
                conditions.append({"Field": "host-header", "HostHeaderConfig": {"Values": hosts}})
            if paths:
                conditions.append({"Field": "path-pattern", "PathPatternConfig": {"Values": paths}})
            if not conditions:
                conditions.append({"Field": "path-pattern", "PathPatternConfig": {"Values": ["/*"]}})
            out.append((conditions, [{"Type": "forward", "TargetGroupArn": wanted[(svc, port)]}]))
        return out

    def _used_by(self, lb_arn: str, actions: list[dict[str, Any]]) -> None:
        """What moto's CreateListener/CreateRule do and ModifyListener/ModifyRule forget: a target
        group forwarded to lists the load balancer (DescribeTargetGroups LoadBalancerArns)."""
        elbv2 = self._elbv2()
        for action in actions:
            tg = elbv2.target_groups.get(action.get("TargetGroupArn", ""))
            if tg is not None and lb_arn not in tg.load_balancer_arns:
                tg.load_balancer_arns.append(lb_arn)

    def _delete_listener(self, arn: str) -> None:
        """The listener, its rules and their tags."""
        elbv2 = self._elbv2()
        listener = elbv2.delete_listener(arn)
        for tagged in [arn, *(r.arn for r in listener.rules.values() if not r.is_default)]:
            elbv2.tagging_service.delete_all_tags_for_resource(tagged)

    def _retag(self, arn: str, tags: dict[str, str]) -> None:
        ts = self._elbv2().tagging_service
        current = ts.get_tag_dict_for_resource(arn)
        stale = [k for k in current if k not in tags]
        if stale:
            ts.untag_resource_using_names(arn, stale)
        if current != tags:
            ts.tag_resource(arn, _tag_list(tags))

    def _delete_managed_sgs(self, stack: str) -> None:
        ec2 = self._ec2()
        for g in ec2.describe_security_groups():
            t = {x["key"]: x["value"] for x in g.get_tags()}
            if t.get(TAG_CLUSTER) == self.cluster_name and t.get(TAG_STACK) == stack \
                    and t.get(TAG_RESOURCE) == "ManagedLBSecurityGroup":
                ec2.delete_security_group(group_id=g.id)

    def delete_alb(self, ing: dict[str, Any]) -> None:
        md = ing["metadata"]
        stack = f'{md["namespace"]}/{md["name"]}'
        base = {TAG_CLUSTER: self.cluster_name, TAG_STACK: stack}
        elbv2 = self._elbv2()
        for arn in self._tagged(list(elbv2.load_balancers), base):
            for listener in list(elbv2.load_balancers[arn].listeners):
                self._delete_listener(listener)
            elbv2.delete_load_balancer(arn)
        for arn in self._tagged(list(elbv2.target_groups), base):
            elbv2.delete_target_group(arn)
        self._delete_managed_sgs(stack)


# ---------------------------------------------------------------------------
# kubeconfig
# ---------------------------------------------------------------------------


def aws_cli() -> str:
    """The `aws` of this interpreter's virtualenv (awscli is in requirements.txt)."""
    return os.path.join(os.path.dirname(os.path.abspath(sys.executable)), "aws")


def kubeconfig_text(cluster: str, endpoint: str, ca_data: str, region: str) -> str:
    """A kubeconfig as `aws eks update-kubeconfig` writes one (names = the cluster name), in YAML.

    The exec plugin runs `aws eks get-token`, which only presigns an STS URL locally. Its env
    pins fake credentials and no profile, and AWS_IGNORE_CONFIGURED_ENDPOINT_URLS=true: with
    an inherited AWS_ENDPOINT_URL (e.g. from .sandbox/env) the presigned URL would point at
    the emulator instead of sts.<region>.amazonaws.com, which the API server refuses."""
    q = json.dumps  # JSON strings are YAML double-quoted scalars
    env = [("AWS_ACCESS_KEY_ID", "testing"), ("AWS_SECRET_ACCESS_KEY", "testing"),
           ("AWS_CONFIG_FILE", "/dev/null"), ("AWS_SHARED_CREDENTIALS_FILE", "/dev/null"),
           ("AWS_EC2_METADATA_DISABLED", "true"), ("AWS_IGNORE_CONFIGURED_ENDPOINT_URLS", "true")]
    args = ["--region", region, "eks", "get-token", "--cluster-name", cluster]
    lines = [
        "apiVersion: v1",
        "kind: Config",
        "clusters:",
        f"- name: {q(cluster)}",
        "  cluster:",
        f"    server: {q(endpoint)}",
        f"    certificate-authority-data: {q(ca_data)}",
        "contexts:",
        f"- name: {q(cluster)}",
        "  context:",
        f"    cluster: {q(cluster)}",
        f"    user: {q(cluster)}",
        f"current-context: {q(cluster)}",
        "preferences: {}",
        "users:",
        f"- name: {q(cluster)}",
        "  user:",
        "    exec:",
        "      apiVersion: client.authentication.k8s.io/v1beta1",
        f"      command: {q(aws_cli())}",
        "      args:",
        *[f"      - {q(a)}" for a in args],
        "      env:",
        *[f"      - name: {q(k)}\n        value: {q(v)}" for k, v in env],
        "      interactiveMode: Never",
        "      provideClusterInfo: false",
    ]
    return "\n".join(lines) + "\n"


def write_kubeconfig(path: str, text: str) -> None:
    path = os.path.abspath(path)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    tmp = f"{path}.{os.getpid()}.tmp"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(text)
    os.replace(tmp, path)


# ---------------------------------------------------------------------------
# start / stop
# ---------------------------------------------------------------------------


def start(region: str, account_id: str, cluster_name: str, kubeconfig: str | None = None,
          verbose: bool = False) -> tuple[kube_server.Server, dict[str, Any]]:
    store = kube_server.Store(region, cloud=MotoCloud(account_id, region, cluster_name),
                              on_reset=seed_kubernetes)
    server, info = kube_server.start(region, tls=True, verbose=verbose, store=store)
    try:
        workdir = None
        if kubeconfig is None:
            workdir = tempfile.mkdtemp(prefix="eks-kube-")
            kubeconfig = os.path.join(workdir, "kubeconfig")
        kubeconfig = os.path.abspath(kubeconfig)
        write_kubeconfig(kubeconfig, kubeconfig_text(cluster_name, info["endpoint"], info["ca_data"], region))
        eks_extension.attach_kubernetes(account_id, region, cluster_name, info["endpoint"], info["ca_data"],
                                        AddonObjects(store))
    except BaseException:
        server.stop()
        raise
    server.kubeconfig, server.workdir = kubeconfig, workdir
    return server, {"endpoint": info["endpoint"], "port": info["port"], "ca_data": info["ca_data"],
                    "ca_file": info["ca_file"], "kubeconfig": kubeconfig}


def stop(server: kube_server.Server) -> None:
    server.stop()
    try:
        os.unlink(server.kubeconfig)
    except OSError:
        pass
    if server.workdir:
        shutil.rmtree(server.workdir, ignore_errors=True)
