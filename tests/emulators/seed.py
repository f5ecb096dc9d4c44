"""Seed a moto server with the world a real comfyplat user already has.

Usage (as a library):

    from seed import seed_sandbox
    facts = seed_sandbox("http://127.0.0.1:5000", "us-west-2")

Everything created here is *unowned* by comfyplat: the tests check that
comfyplat reads some of it (cluster, node role, subnets) and never modifies
the rest (the node role's inline policy, the platform-team bucket).

seed_kubernetes(store) fills the seeded cluster's Kubernetes API (a kube_server.Store in
aws_emulator's process, see eks_kube.py) with what the platform team installed: Karpenter's
v1 CRDs (nodepools/nodeclaims.karpenter.sh, ec2nodeclasses.karpenter.k8s.aws, with the
`default:`s of the real schemas), the AWS Load Balancer Controller's IngressClass `alb` and
NVIDIA's device plugin DaemonSet kube-system/nvidia-device-plugin-daemonset.
"""

from __future__ import annotations

import json

import boto3
from botocore.config import Config
from botocore.exceptions import ClientError

ACCOUNT_ID = "123456789012"  # moto's default account
CLUSTER_NAME = "comfyui-sandbox"
CLUSTER_ROLE_NAME = "comfyui-sandbox-cluster-role"
NODE_ROLE_NAME = "KarpenterNodeRole-comfyui-sandbox"
NODE_ROLE_INLINE_POLICY = "platform-team-existing"
NODE_ROLE_MANAGED_POLICIES = [
    "arn:aws:iam::aws:policy/AmazonEKSWorkerNodePolicy",
    "arn:aws:iam::aws:policy/AmazonEC2ContainerRegistryReadOnly",
]
UNOWNED_BUCKET = f"platform-team-datasets-{ACCOUNT_ID}"
UNOWNED_OBJECT_KEY = "README.txt"
UNOWNED_OBJECT_BODY = b"Datasets of the platform team. Not managed by comfyplat.\n"
KUBERNETES_VERSION = "1.33"
CLUSTER_AUTHENTICATION_MODE = "CONFIG_MAP"
# IAM roles people use; examples/sandbox.yaml gives them access entries.
PEOPLE_ROLES = ("comfyui-admins", "comfyui-artists", "platform-team-ops")


def _trust(service: str) -> str:
    return json.dumps(
        {
            "Version": "2012-10-17",
            "Statement": [
                {
                    "Effect": "Allow",
                    "Principal": {"Service": service},
                    "Action": "sts:AssumeRole",
                }
            ],
        }
    )


def _client(service: str, endpoint: str, region: str):
    return boto3.client(
        service,
        endpoint_url=endpoint,
        region_name=region,
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
        config=Config(retries={"max_attempts": 3, "mode": "standard"}),
    )


def seed_sandbox(endpoint: str, region: str) -> dict:
    """Create the pre-existing sandbox world. Returns a dict of what was made."""
    ec2 = _client("ec2", endpoint, region)
    iam = _client("iam", endpoint, region)
    eks = _client("eks", endpoint, region)
    s3 = _client("s3", endpoint, region)

    # --- network -----------------------------------------------------------
    vpc_id = ec2.create_vpc(CidrBlock="10.0.0.0/16")["Vpc"]["VpcId"]
    ec2.create_tags(
        Resources=[vpc_id], Tags=[{"Key": "Name", "Value": f"{CLUSTER_NAME}-vpc"}]
    )
    azs = sorted(
        az["ZoneName"]
        for az in ec2.describe_availability_zones()["AvailabilityZones"]
        if az.get("State", "available") == "available"
    )[:2]
    if len(azs) < 2:
        raise RuntimeError(f"region {region} has fewer than two availability zones")
    subnet_ids = []
    for i, az in enumerate(azs):
        subnet = ec2.create_subnet(
            VpcId=vpc_id, CidrBlock=f"10.0.{i + 1}.0/24", AvailabilityZone=az
        )["Subnet"]
        subnet_ids.append(subnet["SubnetId"])
        ec2.create_tags(
            Resources=[subnet["SubnetId"]],
            Tags=[
                {"Key": "Name", "Value": f"{CLUSTER_NAME}-private-{az}"},
                {"Key": "kubernetes.io/role/internal-elb", "Value": "1"},
                {"Key": "karpenter.sh/discovery", "Value": CLUSTER_NAME},
            ],
        )
    sg_id = ec2.create_security_group(
        GroupName=f"{CLUSTER_NAME}-cluster-sg",
        Description=f"Cluster security group of {CLUSTER_NAME}",
        VpcId=vpc_id,
    )["GroupId"]
    ec2.create_tags(
        Resources=[sg_id],
        Tags=[{"Key": "karpenter.sh/discovery", "Value": CLUSTER_NAME}],
    )

    # --- EKS cluster -------------------------------------------------------
    cluster_role_arn = iam.create_role(
        RoleName=CLUSTER_ROLE_NAME,
        AssumeRolePolicyDocument=_trust("eks.amazonaws.com"),
        Description=f"EKS cluster role of {CLUSTER_NAME}",
    )["Role"]["Arn"]
    cluster = eks.create_cluster(
        name=CLUSTER_NAME,
        version=KUBERNETES_VERSION,
        roleArn=cluster_role_arn,
        resourcesVpcConfig={"subnetIds": subnet_ids, "securityGroupIds": [sg_id]},
        # What a cluster created through the API/CloudFormation has: the aws-auth ConfigMap
        # only, no access entries yet (eks_extension emulates accessConfig).
        accessConfig={
            "authenticationMode": CLUSTER_AUTHENTICATION_MODE,
            "bootstrapClusterCreatorAdminPermissions": True,
        },
        tags={"owner": "platform-team"},
    )["cluster"]
    cluster = eks.describe_cluster(name=CLUSTER_NAME)["cluster"]
    oidc_issuer = cluster["identity"]["oidc"]["issuer"]
    if cluster["accessConfig"]["authenticationMode"] != CLUSTER_AUTHENTICATION_MODE:
        raise RuntimeError("the EKS extension is not installed (no accessConfig)")

    # --- Karpenter node role (pre-existing, partly unowned) ------------------
    node_role_arn = iam.create_role(
        RoleName=NODE_ROLE_NAME,
        AssumeRolePolicyDocument=_trust("ec2.amazonaws.com"),
        Description="Karpenter node role, created by the platform team",
        Tags=[{"Key": "owner", "Value": "platform-team"}],
    )["Role"]["Arn"]
    attached = []
    for arn in NODE_ROLE_MANAGED_POLICIES:
        try:
            iam.attach_role_policy(RoleName=NODE_ROLE_NAME, PolicyArn=arn)
            attached.append(arn)
        except ClientError:
            # moto only knows AWS managed policies when
            # MOTO_IAM_LOAD_MANAGED_POLICIES=true; skip silently otherwise.
            pass
    iam.put_role_policy(
        RoleName=NODE_ROLE_NAME,
        PolicyName=NODE_ROLE_INLINE_POLICY,
        PolicyDocument=json.dumps(
            {
                "Version": "2012-10-17",
                "Statement": [
                    {
                        "Effect": "Allow",
                        "Action": "ec2:DescribeInstances",
                        "Resource": "*",
                    }
                ],
            }
        ),
    )

    # --- people who sign in to the cluster (their IAM roles exist already) ----
    people = {}
    for name in PEOPLE_ROLES:
        people[name] = iam.create_role(
            RoleName=name,
            AssumeRolePolicyDocument=json.dumps(
                {
                    "Version": "2012-10-17",
                    "Statement": [
                        {
                            "Effect": "Allow",
                            "Principal": {"AWS": f"arn:aws:iam::{ACCOUNT_ID}:root"},
                            "Action": "sts:AssumeRole",
                        }
                    ],
                }
            ),
            Description="people of the studio, created by the platform team",
        )["Role"]["Arn"]

    # --- unowned bucket ------------------------------------------------------
    create_args = {"Bucket": UNOWNED_BUCKET}
    if region != "us-east-1":
        create_args["CreateBucketConfiguration"] = {"LocationConstraint": region}
    s3.create_bucket(**create_args)
    s3.put_object(
        Bucket=UNOWNED_BUCKET, Key=UNOWNED_OBJECT_KEY, Body=UNOWNED_OBJECT_BODY
    )

    return {
        "region": region,
        "account_id": ACCOUNT_ID,
        "vpc_id": vpc_id,
        "subnet_ids": subnet_ids,
        "availability_zones": azs,
        "security_group_id": sg_id,
        "cluster_name": CLUSTER_NAME,
        "cluster_arn": cluster["arn"],
        "cluster_version": cluster.get("version"),
        "cluster_oidc_issuer": oidc_issuer,
        "cluster_authentication_mode": cluster["accessConfig"]["authenticationMode"],
        "cluster_role_arn": cluster_role_arn,
        "node_role_name": NODE_ROLE_NAME,
        "node_role_arn": node_role_arn,
        "node_role_managed_policies": attached,
        "node_role_inline_policy": NODE_ROLE_INLINE_POLICY,
        "people_roles": people,
        "unowned_bucket": UNOWNED_BUCKET,
        "unowned_object_key": UNOWNED_OBJECT_KEY,
    }


# ---------------------------------------------------------------------------
# the Kubernetes side of the sandbox cluster
# ---------------------------------------------------------------------------
# What the cluster's API server holds before comfyplat runs, as a platform team that installed
# Karpenter (its CRDs), the AWS Load Balancer Controller (its IngressClass) and NVIDIA's device
# plugin (its DaemonSet) would have. The controllers themselves are played by kube_server.py.
# The Mountpoint S3 CSI driver is NOT here: its CSIDriver appears when the EKS add-on is
# installed (eks_kube.py).

KARPENTER_CRD_GEN = "v0.17.1"  # controller-gen of the Karpenter v1.x CRDs
NVIDIA_DEVICE_PLUGIN_IMAGE = "nvcr.io/nvidia/k8s-device-plugin:v0.17.1"
ALB_CONTROLLER_CHART = "aws-load-balancer-controller-1.13.4"
ALB_CONTROLLER_VERSION = "v2.13.4"

_STR = {"type": "string"}
_BOOL = {"type": "boolean"}
_OBJ = {"type": "object"}
_STR_MAP = {"type": "object", "additionalProperties": {"type": "string"}}
_DURATION = {"type": "string", "pattern": r"^(([0-9]+(s|m|h))+)|(Never)$"}
_QUANTITY_MAP = {"type": "object", "additionalProperties": {
    "anyOf": [{"type": "integer"}, {"type": "string"}], "x-kubernetes-int-or-string": True}}
_CONDITIONS = {"type": "array", "items": {"type": "object", "required": [
    "lastTransitionTime", "message", "reason", "status", "type"], "properties": {
    "lastTransitionTime": {"type": "string", "format": "date-time"}, "message": _STR,
    "observedGeneration": {"type": "integer", "format": "int64", "minimum": 0}, "reason": _STR,
    "status": {"type": "string", "enum": ["True", "False", "Unknown"]}, "type": _STR}}}
_REQUIREMENTS = {"type": "array", "maxItems": 100, "items": {"type": "object", "required": ["key", "operator"],
                                                              "properties": {
    "key": _STR, "minValues": {"type": "integer", "minimum": 1, "maximum": 50},
    "operator": {"type": "string", "enum": ["In", "NotIn", "Exists", "DoesNotExist", "Gt", "Lt"]},
    "values": {"type": "array", "items": _STR, "x-kubernetes-list-type": "atomic"}}}}
_TAINTS = {"type": "array", "items": {"type": "object", "required": ["effect", "key"], "properties": {
    "effect": {"type": "string", "enum": ["NoSchedule", "PreferNoSchedule", "NoExecute"]}, "key": _STR,
    "timeAdded": {"type": "string", "format": "date-time"}, "value": _STR}}}
_NODE_CLASS_REF = {"type": "object", "required": ["group", "kind", "name"],
                   "properties": {"group": _STR, "kind": _STR, "name": _STR}}
# NodePool's nodeClassRef carries Karpenter's CEL transition rules (kube_server evaluates them)
_NODEPOOL_NODE_CLASS_REF = {**_NODE_CLASS_REF, "x-kubernetes-validations": [
    {"message": "nodeClassRef.group is immutable", "rule": "self.group == oldSelf.group"},
    {"message": "nodeClassRef.kind is immutable", "rule": "self.kind == oldSelf.kind"}]}
_SELECTOR_TERMS = {"type": "array", "maxItems": 30, "items": {"type": "object", "properties": {
    "id": _STR, "name": _STR, "tags": _STR_MAP}}}


def _root(spec: dict, status: dict) -> dict:
    return {"type": "object", "properties": {"apiVersion": _STR, "kind": _STR, "metadata": _OBJ,
                                             "spec": spec, "status": status}}


# The parts of the Karpenter v1 schemas that matter here: every `default:` the real CRDs
# declare (aws/karpenter-provider-aws pkg/apis/crds), with the properties leading to them, the
# fields comfyplat's manifests set (the API server prunes undeclared fields and server-side
# apply refuses them), and the x-kubernetes-validations transition rules (rules using oldSelf)
# of NodePool as v1.14.1 has them (the other rules are listed where kube_server ignores them).
NODEPOOL_SCHEMA = _root(
    {"type": "object", "required": ["template"], "properties": {
        "disruption": {"type": "object", "default": {"consolidateAfter": "0s"}, "required": ["consolidateAfter"],
                       "properties": {
            "budgets": {"type": "array", "maxItems": 50, "default": [{"nodes": "10%"}], "items": {
                "type": "object", "required": ["nodes"], "properties": {
                    "duration": _STR, "nodes": {"type": "string", "default": "10%",
                                                "pattern": r"^((100|[0-9]{1,2})%|[0-9]+)$"},
                    "reasons": {"type": "array", "items": {"type": "string", "enum": [
                        "Underutilized", "Empty", "Drifted"]}},
                    "schedule": _STR}}},
            "consolidateAfter": _DURATION,
            "consolidationPolicy": {"type": "string", "default": "WhenEmptyOrUnderutilized",
                                    "enum": ["WhenEmpty", "WhenEmptyOrUnderutilized"]}}},
        "limits": _QUANTITY_MAP,
        "template": {"type": "object", "required": ["spec"], "properties": {
            "metadata": {"type": "object", "properties": {"annotations": _STR_MAP, "labels": _STR_MAP}},
            "spec": {"type": "object", "required": ["nodeClassRef", "requirements"], "properties": {
                "expireAfter": {**_DURATION, "default": "720h"},
                "nodeClassRef": _NODEPOOL_NODE_CLASS_REF,
                "requirements": _REQUIREMENTS,
                "startupTaints": _TAINTS,
                "taints": _TAINTS,
                "terminationGracePeriod": {"type": "string", "pattern": r"^([0-9]+(s|m|h))+$"}}}}},
        "replicas": {"type": "integer", "format": "int64", "minimum": 0},
        "weight": {"type": "integer", "format": "int32", "minimum": 1, "maximum": 100}},
     "x-kubernetes-validations": [
        {"message": "Cannot transition NodePool between static (replicas set) and dynamic (replicas unset) "
                    "provisioning modes", "rule": "has(self.replicas) == has(oldSelf.replicas)"},
        {"message": "only 'limits.nodes' is supported on static NodePools",
         "rule": "!has(self.replicas) || (!has(self.limits) || size(self.limits) == 0 || "
                 "(size(self.limits) == 1 && 'nodes' in self.limits))"},
        {"message": "'weight' is not supported on static NodePools", "rule": "!has(self.replicas) || !has(self.weight)"}]},
    {"type": "object", "properties": {"conditions": _CONDITIONS, "resources": _QUANTITY_MAP}})

NODECLAIM_SCHEMA = _root(
    {"type": "object", "required": ["nodeClassRef", "requirements"], "properties": {
        "expireAfter": {**_DURATION, "default": "720h"},
        "nodeClassRef": _NODE_CLASS_REF,
        "requirements": _REQUIREMENTS,
        "resources": {"type": "object", "properties": {"requests": _QUANTITY_MAP}},
        "startupTaints": _TAINTS,
        "taints": _TAINTS,
        "terminationGracePeriod": {"type": "string", "pattern": r"^([0-9]+(s|m|h))+$"}}},
    {"type": "object", "properties": {
        "allocatable": _QUANTITY_MAP, "capacity": _QUANTITY_MAP, "conditions": _CONDITIONS, "imageID": _STR,
        "lastPodEventTime": {"type": "string", "format": "date-time"}, "nodeName": _STR, "providerID": _STR}})

EC2NODECLASS_SCHEMA = _root(
    {"type": "object", "required": ["amiSelectorTerms", "securityGroupSelectorTerms", "subnetSelectorTerms"],
     "properties": {
        "amiFamily": {"type": "string", "enum": ["AL2", "AL2023", "Bottlerocket", "Custom", "Windows2019",
                                                 "Windows2022"]},
        "amiSelectorTerms": {"type": "array", "minItems": 1, "maxItems": 30, "items": {
            "type": "object", "properties": {"alias": {"type": "string", "maxLength": 30}, "id": _STR,
                                             "name": _STR, "owner": _STR, "ssmParameter": _STR,
                                             "tags": _STR_MAP}}},
        "associatePublicIPAddress": _BOOL,
        "blockDeviceMappings": {"type": "array", "maxItems": 50, "items": {"type": "object", "properties": {
            "deviceName": _STR, "rootVolume": _BOOL, "ebs": {"type": "object", "properties": {
                "deleteOnTermination": _BOOL, "encrypted": _BOOL, "iops": {"type": "integer"},
                "kmsKeyID": _STR, "snapshotID": _STR, "throughput": {"type": "integer"}, "volumeSize": _STR,
                "volumeType": {"type": "string", "enum": ["standard", "io1", "io2", "gp2", "sc1", "st1",
                                                          "gp3"]}}}}}},
        "context": _STR,
        "detailedMonitoring": _BOOL,
        "instanceProfile": _STR,
        "instanceStorePolicy": {"type": "string", "enum": ["RAID0"]},
        "kubelet": {"type": "object", "properties": {
            "clusterDNS": {"type": "array", "items": _STR}, "cpuCFSQuota": _BOOL, "evictionHard": _STR_MAP,
            "evictionMaxPodGracePeriod": {"type": "integer"}, "evictionSoft": _STR_MAP,
            "evictionSoftGracePeriod": _STR_MAP, "imageGCHighThresholdPercent": {"type": "integer"},
            "imageGCLowThresholdPercent": {"type": "integer"}, "kubeReserved": _STR_MAP,
            "maxPods": {"type": "integer"}, "podsPerCore": {"type": "integer"}, "systemReserved": _STR_MAP}},
        "metadataOptions": {
            "type": "object",
            "default": {"httpEndpoint": "enabled", "httpProtocolIPv6": "disabled", "httpPutResponseHopLimit": 1,
                        "httpTokens": "required"},
            "properties": {
                "httpEndpoint": {"type": "string", "default": "enabled", "enum": ["enabled", "disabled"]},
                "httpProtocolIPv6": {"type": "string", "default": "disabled", "enum": ["enabled", "disabled"]},
                "httpPutResponseHopLimit": {"type": "integer", "format": "int64", "default": 1, "minimum": 1,
                                            "maximum": 64},
                "httpTokens": {"type": "string", "default": "required", "enum": ["required", "optional"]}}},
        "role": _STR,
        "securityGroupSelectorTerms": _SELECTOR_TERMS,
        "subnetSelectorTerms": _SELECTOR_TERMS,
        "tags": _STR_MAP,
        "userData": _STR}},
    {"type": "object", "properties": {
        "amis": {"type": "array", "items": {"type": "object", "properties": {
            "deprecated": _BOOL, "id": _STR, "name": _STR, "requirements": _REQUIREMENTS}}},
        "conditions": _CONDITIONS, "instanceProfile": _STR,
        "securityGroups": {"type": "array", "items": {"type": "object", "properties": {"id": _STR, "name": _STR}}},
        "subnets": {"type": "array", "items": {"type": "object", "properties": {
            "id": _STR, "zone": _STR, "zoneID": _STR}}}}})


def _crd(group: str, plural: str, kind: str, schema: dict, columns: list, short=None) -> dict:
    names = {"categories": ["karpenter"], "kind": kind, "listKind": kind + "List", "plural": plural,
             "singular": kind.lower()}
    if short:
        names["shortNames"] = short
    return {
        "apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
        "metadata": {"name": f"{plural}.{group}",
                     "annotations": {"controller-gen.kubebuilder.io/version": KARPENTER_CRD_GEN}},
        "spec": {"group": group, "names": names, "scope": "Cluster", "versions": [{
            "name": "v1", "served": True, "storage": True, "subresources": {"status": {}},
            "additionalPrinterColumns": columns, "schema": {"openAPIV3Schema": schema}}]}}


_READY_COLUMN = {"jsonPath": '.status.conditions[?(@.type=="Ready")].status', "name": "Ready", "type": "string"}
_AGE_COLUMN = {"jsonPath": ".metadata.creationTimestamp", "name": "Age", "type": "date"}

KARPENTER_CRDS = [
    _crd("karpenter.sh", "nodepools", "NodePool", NODEPOOL_SCHEMA, [
        {"jsonPath": ".spec.template.spec.nodeClassRef.name", "name": "NodeClass", "type": "string"},
        {"jsonPath": ".status.resources.nodes", "name": "Nodes", "type": "string"},
        _READY_COLUMN, _AGE_COLUMN,
        {"jsonPath": ".spec.weight", "name": "Weight", "priority": 1, "type": "integer"}]),
    _crd("karpenter.sh", "nodeclaims", "NodeClaim", NODECLAIM_SCHEMA, [
        {"jsonPath": ".metadata.labels.node\\.kubernetes\\.io/instance-type", "name": "Type", "type": "string"},
        {"jsonPath": ".status.nodeName", "name": "Node", "type": "string"},
        _READY_COLUMN, _AGE_COLUMN]),
    _crd("karpenter.k8s.aws", "ec2nodeclasses", "EC2NodeClass", EC2NODECLASS_SCHEMA, [
        _READY_COLUMN, _AGE_COLUMN,
        {"jsonPath": ".spec.role", "name": "Role", "priority": 1, "type": "string"}], short=["ec2nc", "ec2ncs"]),
]

_ALB_LABELS = {"app.kubernetes.io/name": "aws-load-balancer-controller",
               "app.kubernetes.io/instance": "aws-load-balancer-controller",
               "app.kubernetes.io/version": ALB_CONTROLLER_VERSION,
               "app.kubernetes.io/managed-by": "Helm",
               "helm.sh/chart": ALB_CONTROLLER_CHART}
ALB_INGRESS_CLASS = {
    "apiVersion": "networking.k8s.io/v1", "kind": "IngressClass",
    "metadata": {"name": "alb", "labels": _ALB_LABELS,
                 "annotations": {"meta.helm.sh/release-name": "aws-load-balancer-controller",
                                 "meta.helm.sh/release-namespace": "kube-system"}},
    "spec": {"controller": "ingress.k8s.aws/alb"}}

_DP_LABELS = {"app.kubernetes.io/name": "nvidia-device-plugin"}
NVIDIA_DEVICE_PLUGIN = {
    "apiVersion": "apps/v1", "kind": "DaemonSet",
    "metadata": {"name": "nvidia-device-plugin-daemonset", "namespace": "kube-system", "labels": _DP_LABELS},
    "spec": {
        "selector": {"matchLabels": _DP_LABELS},
        "updateStrategy": {"type": "RollingUpdate"},
        "template": {
            "metadata": {"labels": _DP_LABELS},
            "spec": {
                "priorityClassName": "system-node-critical",
                "tolerations": [{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}],
                "containers": [{
                    "name": "nvidia-device-plugin-ctr",
                    "image": NVIDIA_DEVICE_PLUGIN_IMAGE,
                    "env": [{"name": "FAIL_ON_INIT_ERROR", "value": "false"}],
                    "securityContext": {"allowPrivilegeEscalation": False, "capabilities": {"drop": ["ALL"]}},
                    "volumeMounts": [{"name": "device-plugin", "mountPath": "/var/lib/kubelet/device-plugins"}]}],
                "volumes": [{"name": "device-plugin", "hostPath": {"path": "/var/lib/kubelet/device-plugins"}}]}}}}


def seed_kubernetes(store) -> dict:
    """Create the sandbox cluster's pre-installed objects in a kube_server.Store (in process).

    Called with store.lock held (kube_server calls it again after a /__control/reset)."""
    import copy

    def create(group: str, version: str, plural: str, obj: dict, manager: str) -> None:
        res = store.find_res(group, version, plural)
        store.create(res, obj["metadata"].get("namespace"), copy.deepcopy(obj), manager, False)

    with store.lock:
        for crd in KARPENTER_CRDS:
            create("apiextensions.k8s.io", "v1", "customresourcedefinitions", crd, "helm")
        create("networking.k8s.io", "v1", "ingressclasses", ALB_INGRESS_CLASS, "helm")
        create("apps", "v1", "daemonsets", NVIDIA_DEVICE_PLUGIN, "helm")
    return {
        "crds": [c["metadata"]["name"] for c in KARPENTER_CRDS],
        "ingress_classes": [ALB_INGRESS_CLASS["metadata"]["name"]],
        "daemonsets": [f'{NVIDIA_DEVICE_PLUGIN["metadata"]["namespace"]}/{NVIDIA_DEVICE_PLUGIN["metadata"]["name"]}'],
    }
