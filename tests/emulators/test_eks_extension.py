"""Tests of eks_extension.py: the EKS operations added to moto (access config and updates,
access entries, add-ons, Pod Identity associations), through boto3 (retries off) and the
`aws` CLI as an independent client.

Run with:  .venv/bin/python -m pytest tests/emulators -q
"""

from __future__ import annotations

import itertools
import json
import os
import sys
import re
import subprocess
import urllib.error
import urllib.request

import pytest
from botocore.exceptions import ClientError

from test_emulators import CLEAN_ENV, REGION, client, start_emulator

ACCOUNT = "123456789012"
SEED_CLUSTER = "comfyui-sandbox"
POLICY = "arn:aws:eks::aws:cluster-access-policy/"
VIEW = POLICY + "AmazonEKSViewPolicy"
ADMIN = POLICY + "AmazonEKSClusterAdminPolicy"
EDIT = POLICY + "AmazonEKSEditPolicy"
PIA = "eks-pod-identity-agent"
S3 = "aws-mountpoint-s3-csi-driver"
FAIL_TAG = "emulator.comfyplat.io/addon-"

_names = itertools.count(1)


# --------------------------------------------------------------------------
# fixtures and helpers
# --------------------------------------------------------------------------


@pytest.fixture(scope="module")
def emu(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("eks")
    proc, info = start_emulator(tmp)
    yield info
    rc = proc.stop()
    assert rc == 0, f"emulator exited with {rc}"


@pytest.fixture(scope="module")
def eks(emu):
    return client("eks", emu["endpoint"])


@pytest.fixture(scope="module")
def iam(emu):
    return client("iam", emu["endpoint"])


def error(fn):
    with pytest.raises(ClientError) as exc:
        fn()
    r = exc.value.response
    return r["Error"]["Code"], r["ResponseMetadata"]["HTTPStatusCode"], r["Error"]["Message"]


def code(fn):
    return error(fn)[:2]


def role(iam, name=None, service="ec2.amazonaws.com"):
    name = name or f"eksx-role-{next(_names)}"
    trust = {
        "Version": "2012-10-17",
        "Statement": [{"Effect": "Allow", "Principal": {"Service": service}, "Action": "sts:AssumeRole"}],
    }
    return iam.create_role(RoleName=name, AssumeRolePolicyDocument=json.dumps(trust))["Role"]["Arn"]


def new_cluster(eks, emu, version="1.33", mode=None, tags=None):
    name = f"eksx-{next(_names)}"
    args = dict(
        name=name,
        version=version,
        roleArn=emu["seed"]["cluster_role_arn"],
        resourcesVpcConfig={"subnetIds": emu["seed"]["subnet_ids"]},
    )
    if mode:
        args["accessConfig"] = {"authenticationMode": mode}
    if tags:
        args["tags"] = tags
    eks.create_cluster(**args)
    return name


def poll_addon(eks, cluster, addon, n):
    return [eks.describe_addon(clusterName=cluster, addonName=addon)["addon"]["status"] for _ in range(n)]


def settle_addon(eks, cluster, addon):
    """Polls until the add-on leaves its transitional state; returns the last description."""
    for _ in range(3):
        a = eks.describe_addon(clusterName=cluster, addonName=addon)["addon"]
        if a["status"] not in ("CREATING", "UPDATING", "DELETING"):
            return a
    raise AssertionError(a)


def cluster_arn(name):
    return f"arn:aws:eks:{REGION}:{ACCOUNT}:cluster/{name}"


# --------------------------------------------------------------------------
# access config, UpdateClusterConfig, DescribeUpdate
# --------------------------------------------------------------------------


def test_seeded_cluster_is_config_map_with_oidc_issuer(eks, emu):
    c = eks.describe_cluster(name=SEED_CLUSTER)["cluster"]
    assert c["accessConfig"] == {
        "authenticationMode": "CONFIG_MAP",
        "bootstrapClusterCreatorAdminPermissions": True,
    }
    assert c["version"] == "1.33"
    assert re.fullmatch(r"https://oidc\.eks\.us-west-2\.amazonaws\.com/id/[0-9A-F]{32}", c["identity"]["oidc"]["issuer"])
    assert emu["seed"]["cluster_oidc_issuer"] == c["identity"]["oidc"]["issuer"]
    assert emu["seed"]["cluster_authentication_mode"] == "CONFIG_MAP"
    assert SEED_CLUSTER in eks.list_clusters()["clusters"]
    # access entries need the EKS API authentication mode
    msg = (
        "The cluster's authentication mode must be set to one of [API, API_AND_CONFIG_MAP] "
        "to perform this operation."
    )
    assert error(lambda: eks.list_access_entries(clusterName=SEED_CLUSTER)) == ("InvalidRequestException", 400, msg)
    assert code(
        lambda: eks.create_access_entry(clusterName=SEED_CLUSTER, principalArn=emu["seed"]["node_role_arn"], type="EC2_LINUX")
    ) == ("InvalidRequestException", 400)


def test_create_cluster_honours_access_config(eks, emu):
    name = new_cluster(eks, emu, mode="API")
    c = eks.describe_cluster(name=name)["cluster"]
    assert c["accessConfig"]["authenticationMode"] == "API"
    other = new_cluster(eks, emu)
    issuer = eks.describe_cluster(name=other)["cluster"]["identity"]["oidc"]["issuer"]
    assert issuer != c["identity"]["oidc"]["issuer"]
    assert eks.describe_cluster(name=other)["cluster"]["accessConfig"]["authenticationMode"] == "CONFIG_MAP"
    assert code(
        lambda: eks.create_cluster(
            name="eksx-bad-mode", roleArn=emu["seed"]["cluster_role_arn"],
            resourcesVpcConfig={"subnetIds": emu["seed"]["subnet_ids"]},
            accessConfig={"authenticationMode": "IAM"},
        )
    ) == ("InvalidParameterException", 400)
    assert "eksx-bad-mode" not in eks.list_clusters()["clusters"]
    deleted = eks.delete_cluster(name=name)["cluster"]
    assert deleted["accessConfig"]["authenticationMode"] == "API"


def _wait_update(eks, cluster, update_id):
    statuses = [eks.describe_update(name=cluster, updateId=update_id)["update"]["status"] for _ in range(3)]
    assert statuses == ["InProgress", "InProgress", "Successful"]


def test_authentication_mode_transitions(eks, emu):
    name = new_cluster(eks, emu)

    def update(mode, **extra):
        return eks.update_cluster_config(name=name, accessConfig={"authenticationMode": mode}, **extra)

    assert error(lambda: update("CONFIG_MAP")) == (
        "InvalidParameterException", 400, "Unsupported authentication mode update from CONFIG_MAP to CONFIG_MAP")
    assert error(lambda: update("API")) == (
        "InvalidParameterException", 400, "Unsupported authentication mode update from CONFIG_MAP to API")
    assert error(
        lambda: update("API_AND_CONFIG_MAP", logging={"clusterLogging": [{"types": ["api"], "enabled": True}]})
    ) == ("InvalidParameterException", 400, "Only one type of update can be allowed.")

    u = update("API_AND_CONFIG_MAP", clientRequestToken="tok-1")["update"]
    assert re.fullmatch(r"[0-9a-f-]{36}", u["id"])
    assert u["status"] == "InProgress"
    assert u["type"] == "AccessConfigUpdate"
    assert u["params"] == [{"type": "AuthenticationMode", "value": "API_AND_CONFIG_MAP"}]
    assert u["errors"] == [] and u["createdAt"]
    # a retry with the same client request token is the same update
    assert update("API_AND_CONFIG_MAP", clientRequestToken="tok-1")["update"]["id"] == u["id"]
    c = eks.describe_cluster(name=name)["cluster"]
    assert c["status"] == "UPDATING"
    assert c["accessConfig"]["authenticationMode"] == "CONFIG_MAP"  # not yet
    assert code(lambda: update("API")) == ("ResourceInUseException", 409)
    assert code(
        lambda: eks.update_cluster_config(name=name, logging={"clusterLogging": [{"types": ["api"], "enabled": True}]})
    ) == ("ResourceInUseException", 409)
    assert eks.list_updates(name=name)["updateIds"] == [u["id"]]

    _wait_update(eks, name, u["id"])
    c = eks.describe_cluster(name=name)["cluster"]
    assert c["status"] == "ACTIVE"
    assert c["accessConfig"]["authenticationMode"] == "API_AND_CONFIG_MAP"
    assert eks.describe_update(name=name, updateId=u["id"])["update"]["status"] == "Successful"
    assert eks.list_access_entries(clusterName=name)["accessEntries"] == []  # no entries made by the switch

    assert error(lambda: update("CONFIG_MAP"))[2] == "Unsupported authentication mode update from API_AND_CONFIG_MAP to CONFIG_MAP"
    u2 = update("API")["update"]
    _wait_update(eks, name, u2["id"])
    assert eks.describe_cluster(name=name)["cluster"]["accessConfig"]["authenticationMode"] == "API"
    for mode in ("API_AND_CONFIG_MAP", "CONFIG_MAP", "API"):
        assert error(lambda: update(mode))[2] == f"Unsupported authentication mode update from API to {mode}"
    assert eks.list_updates(name=name)["updateIds"] == [u["id"], u2["id"]]
    page = eks.list_updates(name=name, maxResults=1)
    assert page["updateIds"] == [u["id"]] and page["nextToken"]
    assert eks.list_updates(name=name, maxResults=1, nextToken=page["nextToken"])["updateIds"] == [u2["id"]]

    assert code(lambda: eks.describe_update(name=name, updateId="00000000-0000-0000-0000-000000000000")) == (
        "ResourceNotFoundException", 404)
    # an add-on/cluster update id is only found in its own scope
    assert code(lambda: eks.describe_update(name=name, updateId=u["id"], addonName=PIA)) == (
        "ResourceNotFoundException", 404)


def test_other_cluster_update_kinds_keep_working(eks, emu):
    name = new_cluster(eks, emu)
    subnets = eks.describe_cluster(name=name)["cluster"]["resourcesVpcConfig"]["subnetIds"]
    u = eks.update_cluster_config(
        name=name, logging={"clusterLogging": [{"types": ["api", "audit"], "enabled": True}]}
    )["update"]
    assert u["type"] == "LoggingUpdate" and u["status"] == "InProgress"
    assert u["params"][0]["type"] == "ClusterLogging"
    _wait_update(eks, name, u["id"])
    logging = eks.describe_cluster(name=name)["cluster"]["logging"]["clusterLogging"]
    assert logging == [{"types": ["api", "audit"], "enabled": True}]

    u = eks.update_cluster_config(name=name, resourcesVpcConfig={"endpointPrivateAccess": True})["update"]
    assert u["type"] == "EndpointAccessUpdate"
    assert {"type": "EndpointPrivateAccess", "value": "true"} in u["params"]
    _wait_update(eks, name, u["id"])
    vpc = eks.describe_cluster(name=name)["cluster"]["resourcesVpcConfig"]
    assert vpc["endpointPrivateAccess"] is True
    assert vpc["subnetIds"] == subnets  # merged, not replaced
    assert code(lambda: eks.update_cluster_config(name=name)) == ("InvalidParameterException", 400)


def test_nodegroup_updates_are_describable(eks, emu):
    name = new_cluster(eks, emu)
    eks.create_nodegroup(
        clusterName=name, nodegroupName="ng", nodeRole=emu["seed"]["node_role_arn"],
        subnets=emu["seed"]["subnet_ids"],
    )
    u = eks.update_nodegroup_config(
        clusterName=name, nodegroupName="ng", scalingConfig={"minSize": 1, "maxSize": 3, "desiredSize": 1}
    )["update"]
    got = eks.describe_update(name=name, updateId=u["id"], nodegroupName="ng")["update"]
    assert got["id"] == u["id"] and got["status"] == "Successful"
    assert eks.list_updates(name=name, nodegroupName="ng")["updateIds"] == [u["id"]]
    assert code(lambda: eks.describe_update(name=name, updateId=u["id"])) == ("ResourceNotFoundException", 404)


# --------------------------------------------------------------------------
# access entries
# --------------------------------------------------------------------------


def test_access_entries(eks, iam, emu):
    name = new_cluster(eks, emu, mode="API_AND_CONFIG_MAP")
    admin = role(iam, "eksx-admin", service="eks.amazonaws.com")
    pathed = iam.create_role(
        RoleName="eksx-pathed", Path="/team/",
        AssumeRolePolicyDocument=json.dumps({"Version": "2012-10-17", "Statement": []}),
    )["Role"]["Arn"]
    node = role(iam, "eksx-node")
    user = iam.create_user(UserName="eksx-user")["User"]["Arn"]

    e = eks.create_access_entry(
        clusterName=name, principalArn=admin, kubernetesGroups=["comfy-admins"], tags={"owner": "comfyplat"}
    )["accessEntry"]
    assert e["clusterName"] == name and e["principalArn"] == admin
    assert e["type"] == "STANDARD"
    assert e["kubernetesGroups"] == ["comfy-admins"]
    assert e["username"] == f"arn:aws:sts::{ACCOUNT}:assumed-role/eksx-admin/{{{{SessionName}}}}"
    assert re.fullmatch(
        rf"arn:aws:eks:{REGION}:{ACCOUNT}:access-entry/{name}/role/{ACCOUNT}/eksx-admin/[0-9a-f-]{{36}}",
        e["accessEntryArn"],
    )
    assert e["tags"] == {"owner": "comfyplat"} and e["createdAt"] == e["modifiedAt"]
    assert eks.describe_access_entry(clusterName=name, principalArn=admin)["accessEntry"] == e

    p = eks.create_access_entry(clusterName=name, principalArn=pathed)["accessEntry"]
    assert p["username"] == f"arn:aws:sts::{ACCOUNT}:assumed-role/eksx-pathed/{{{{SessionName}}}}"
    assert p["kubernetesGroups"] == []
    u = eks.create_access_entry(clusterName=name, principalArn=user, username="alice")["accessEntry"]
    assert u["username"] == "alice"
    assert "/user/" + ACCOUNT + "/eksx-user/" in u["accessEntryArn"]

    n = eks.create_access_entry(clusterName=name, principalArn=node, type="EC2_LINUX")["accessEntry"]
    assert n["type"] == "EC2_LINUX"
    assert n["username"] == "system:node:{{EC2PrivateDNSName}}"
    assert n["kubernetesGroups"] == ["system:nodes"]
    fargate_role = role(iam)
    f = eks.create_access_entry(clusterName=name, principalArn=fargate_role, type="FARGATE_LINUX")["accessEntry"]
    assert f["username"] == "system:node:{{SessionName}}"

    # errors
    assert error(lambda: eks.create_access_entry(clusterName=name, principalArn=admin)) == (
        "ResourceInUseException", 409, "The specified access entry resource is already in use on this cluster.")
    assert code(lambda: eks.create_access_entry(clusterName=name, principalArn=node, type="STANDARD")) == (
        "ResourceInUseException", 409)
    sts = f"arn:aws:sts::{ACCOUNT}:assumed-role/eksx-admin/session"
    assert code(lambda: eks.create_access_entry(clusterName=name, principalArn=sts)) == ("InvalidParameterException", 400)
    for bad in ("eksx-admin", f"arn:aws:iam::{ACCOUNT}:group/g", "arn:aws:iam::12:role/x"):
        assert code(lambda: eks.create_access_entry(clusterName=name, principalArn=bad)) == (
            "InvalidParameterException", 400), bad
    missing = f"arn:aws:iam::{ACCOUNT}:role/eksx-does-not-exist"
    assert code(lambda: eks.create_access_entry(clusterName=name, principalArn=missing)) == (
        "InvalidParameterException", 400)
    other = role(iam)
    assert code(
        lambda: eks.create_access_entry(clusterName=name, principalArn=other, type="EC2_LINUX", kubernetesGroups=["x"])
    ) == ("InvalidParameterException", 400)
    assert code(lambda: eks.create_access_entry(clusterName=name, principalArn=user + "2", type="EC2_LINUX")) == (
        "InvalidParameterException", 400)
    assert code(lambda: eks.create_access_entry(clusterName=name, principalArn=other, type="LINUX")) == (
        "InvalidParameterException", 400)
    assert code(lambda: eks.create_access_entry(clusterName=name, principalArn=other, username="system:me")) == (
        "InvalidParameterException", 400)
    assert code(lambda: eks.describe_access_entry(clusterName=name, principalArn=other)) == (
        "ResourceNotFoundException", 404)
    assert code(lambda: eks.update_access_entry(clusterName=name, principalArn=other, username="x")) == (
        "ResourceNotFoundException", 404)
    assert code(lambda: eks.delete_access_entry(clusterName=name, principalArn=other)) == (
        "ResourceNotFoundException", 404)

    # update
    up = eks.update_access_entry(
        clusterName=name, principalArn=admin, kubernetesGroups=["a", "b"], username="comfy-admin"
    )["accessEntry"]
    assert up["kubernetesGroups"] == ["a", "b"] and up["username"] == "comfy-admin"
    assert up["modifiedAt"] >= e["modifiedAt"] and up["createdAt"] == e["createdAt"]
    assert up["accessEntryArn"] == e["accessEntryArn"] and up["type"] == "STANDARD"
    up = eks.update_access_entry(clusterName=name, principalArn=admin, kubernetesGroups=[])["accessEntry"]
    assert up["kubernetesGroups"] == [] and up["username"] == "comfy-admin"
    assert code(lambda: eks.update_access_entry(clusterName=name, principalArn=node, kubernetesGroups=["x"])) == (
        "InvalidParameterException", 400)

    # list + pagination
    everything = sorted([admin, pathed, user, node, fargate_role])
    assert eks.list_access_entries(clusterName=name)["accessEntries"] == everything
    seen, token = [], None
    while True:
        kw = {"nextToken": token} if token else {}
        page = eks.list_access_entries(clusterName=name, maxResults=2, **kw)
        assert len(page["accessEntries"]) <= 2
        seen += page["accessEntries"]
        token = page.get("nextToken")
        if not token:
            break
    assert seen == everything
    assert code(lambda: eks.list_access_entries(clusterName=name, maxResults=101)) == ("InvalidParameterException", 400)
    assert code(lambda: eks.list_access_entries(clusterName=name, nextToken="garbage")) == (
        "InvalidParameterException", 400)

    # tags on the entry ARN
    eks.tag_resource(resourceArn=e["accessEntryArn"], tags={"extra": "1"})
    assert eks.list_tags_for_resource(resourceArn=e["accessEntryArn"])["tags"] == {"owner": "comfyplat", "extra": "1"}
    eks.untag_resource(resourceArn=e["accessEntryArn"], tagKeys=["extra"])
    assert eks.describe_access_entry(clusterName=name, principalArn=admin)["accessEntry"]["tags"] == {"owner": "comfyplat"}

    # delete
    assert eks.delete_access_entry(clusterName=name, principalArn=pathed)["ResponseMetadata"]["HTTPStatusCode"] == 200
    assert code(lambda: eks.describe_access_entry(clusterName=name, principalArn=pathed)) == (
        "ResourceNotFoundException", 404)
    assert pathed not in eks.list_access_entries(clusterName=name)["accessEntries"]
    # type is immutable: recreate to change it
    eks.delete_access_entry(clusterName=name, principalArn=fargate_role)
    again = eks.create_access_entry(clusterName=name, principalArn=fargate_role)["accessEntry"]
    assert again["type"] == "STANDARD"


def test_access_policies(eks, iam, emu):
    name = new_cluster(eks, emu, mode="API")
    admin = role(iam)
    node = role(iam)
    eks.create_access_entry(clusterName=name, principalArn=admin)
    eks.create_access_entry(clusterName=name, principalArn=node, type="EC2_LINUX")

    policies = eks.list_access_policies()["accessPolicies"]
    arns = {p["arn"] for p in policies}
    for n in ("AmazonEKSClusterAdminPolicy", "AmazonEKSAdminPolicy", "AmazonEKSEditPolicy",
              "AmazonEKSViewPolicy", "AmazonEKSAdminViewPolicy"):
        assert {"name": n, "arn": POLICY + n} in policies
    first = eks.list_access_policies(maxResults=2)
    rest = eks.list_access_policies(nextToken=first["nextToken"])
    assert {p["arn"] for p in first["accessPolicies"] + rest["accessPolicies"]} == arns

    r = eks.associate_access_policy(
        clusterName=name, principalArn=admin, policyArn=VIEW,
        accessScope={"type": "namespace", "namespaces": ["comfy", "dev-*"]},
    )
    assert r["clusterName"] == name and r["principalArn"] == admin
    a = r["associatedAccessPolicy"]
    assert a["policyArn"] == VIEW
    assert a["accessScope"] == {"type": "namespace", "namespaces": ["comfy", "dev-*"]}
    assert a["associatedAt"] and a["modifiedAt"]
    eks.associate_access_policy(clusterName=name, principalArn=admin, policyArn=ADMIN, accessScope={"type": "cluster"})
    # re-associating replaces the scope
    b = eks.associate_access_policy(
        clusterName=name, principalArn=admin, policyArn=VIEW, accessScope={"type": "cluster"}
    )["associatedAccessPolicy"]
    assert b["accessScope"] == {"type": "cluster", "namespaces": []}
    assert b["associatedAt"] == a["associatedAt"]
    listed = eks.list_associated_access_policies(clusterName=name, principalArn=admin)
    assert listed["clusterName"] == name and listed["principalArn"] == admin
    assert [p["policyArn"] for p in listed["associatedAccessPolicies"]] == sorted([VIEW, ADMIN])
    assert [p["accessScope"]["type"] for p in listed["associatedAccessPolicies"]] == ["cluster", "cluster"]
    page = eks.list_associated_access_policies(clusterName=name, principalArn=admin, maxResults=1)
    assert len(page["associatedAccessPolicies"]) == 1 and page["nextToken"]
    assert eks.list_access_entries(clusterName=name, associatedPolicyArn=VIEW)["accessEntries"] == [admin]
    assert eks.list_access_entries(clusterName=name, associatedPolicyArn=EDIT)["accessEntries"] == []

    def assoc(scope, policy=EDIT, principal=admin):
        return code(lambda: eks.associate_access_policy(
            clusterName=name, principalArn=principal, policyArn=policy, accessScope=scope))

    assert assoc({"type": "cluster", "namespaces": ["a"]}) == ("InvalidParameterException", 400)
    assert assoc({"type": "namespace"}) == ("InvalidParameterException", 400)
    assert assoc({"type": "namespace", "namespaces": []}) == ("InvalidParameterException", 400)
    assert assoc({"type": "namespace", "namespaces": ["Bad_NS"]}) == ("InvalidParameterException", 400)
    assert assoc({"type": "global"}) == ("InvalidParameterException", 400)
    assert assoc({"type": "cluster"}, policy=POLICY + "AmazonEKSNoSuchPolicy") == ("ResourceNotFoundException", 404)
    assert assoc({"type": "cluster"}, policy="arn:aws:iam::aws:policy/AdministratorAccess") == (
        "InvalidParameterException", 400)
    assert assoc({"type": "cluster"}, principal=node) == ("InvalidParameterException", 400)
    assert assoc({"type": "cluster"}, principal=role(iam)) == ("ResourceNotFoundException", 404)
    assert code(lambda: eks.list_associated_access_policies(clusterName=name, principalArn=node + "x")) == (
        "ResourceNotFoundException", 404)

    eks.disassociate_access_policy(clusterName=name, principalArn=admin, policyArn=VIEW)
    assert [p["policyArn"] for p in eks.list_associated_access_policies(
        clusterName=name, principalArn=admin)["associatedAccessPolicies"]] == [ADMIN]
    assert code(lambda: eks.disassociate_access_policy(clusterName=name, principalArn=admin, policyArn=VIEW)) == (
        "ResourceNotFoundException", 404)
    assert eks.list_associated_access_policies(clusterName=name, principalArn=node)["associatedAccessPolicies"] == []


# --------------------------------------------------------------------------
# add-ons
# --------------------------------------------------------------------------


def test_addon_versions_and_configuration(eks):
    addons = eks.describe_addon_versions(addonName=PIA, kubernetesVersion="1.33")["addons"]
    assert len(addons) == 1
    info = addons[0]
    assert info["addonName"] == PIA and info["owner"] == "aws" and info["publisher"] == "eks"
    versions = [v["addonVersion"] for v in info["addonVersions"]]
    assert versions == ["v1.3.7-eksbuild.2", "v1.3.5-eksbuild.2", "v1.3.4-eksbuild.1"]
    defaults = {
        v["addonVersion"] for v in info["addonVersions"]
        for c in v["compatibilities"] if c["clusterVersion"] == "1.33" and c["defaultVersion"]
    }
    assert defaults == {"v1.3.4-eksbuild.1"}
    for v in info["addonVersions"]:
        assert v["compatibilities"][0]["platformVersions"] == ["*"]
    on134 = eks.describe_addon_versions(addonName=PIA, kubernetesVersion="1.34")["addons"][0]["addonVersions"]
    assert [v["addonVersion"] for v in on134] == ["v1.3.7-eksbuild.2", "v1.3.5-eksbuild.2"]
    assert [v["addonVersion"] for v in on134 if v["compatibilities"][0]["defaultVersion"]] == ["v1.3.7-eksbuild.2"]

    s3 = eks.describe_addon_versions(addonName=S3)["addons"][0]["addonVersions"]
    assert [v["addonVersion"] for v in s3] == ["v2.2.0-eksbuild.1", "v2.1.0-eksbuild.1", "v1.15.0-eksbuild.1"]
    v2 = next(v for v in s3 if v["addonVersion"] == "v2.1.0-eksbuild.1")
    assert {c["clusterVersion"] for c in v2["compatibilities"] if c["defaultVersion"]} >= {"1.31", "1.32", "1.33", "1.34"}
    assert v2["requiresIamPermissions"] is True

    every = eks.describe_addon_versions()["addons"]
    names = {a["addonName"] for a in every}
    assert {PIA, S3, "vpc-cni", "coredns", "kube-proxy"} <= names
    first = eks.describe_addon_versions(maxResults=2)
    assert len(first["addons"]) == 2 and first["nextToken"]
    second = eks.describe_addon_versions(maxResults=100, nextToken=first["nextToken"])
    assert [a["addonName"] for a in first["addons"] + second["addons"]] == [a["addonName"] for a in every]
    assert eks.describe_addon_versions(addonName="no-such-addon")["addons"] == []
    assert [a["addonName"] for a in eks.describe_addon_versions(types=["storage"])["addons"]] == [S3]

    v1 = eks.describe_addon_configuration(addonName=S3, addonVersion="v1.15.0-eksbuild.1")
    assert v1["addonName"] == S3 and v1["addonVersion"] == "v1.15.0-eksbuild.1"
    assert v1.get("podIdentityConfiguration", []) == []
    assert json.loads(v1["configurationSchema"])["type"] == "object"
    v2 = eks.describe_addon_configuration(addonName=S3, addonVersion="v2.1.0-eksbuild.1")
    assert [c["serviceAccount"] for c in v2["podIdentityConfiguration"]] == ["s3-csi-driver-sa"]
    assert v2["podIdentityConfiguration"][0]["recommendedManagedPolicies"]
    assert "node" in json.loads(v2["configurationSchema"])["properties"]
    assert code(lambda: eks.describe_addon_configuration(addonName=S3, addonVersion="v9.9.9-eksbuild.1")) == (
        "InvalidParameterException", 400)
    assert code(lambda: eks.describe_addon_configuration(addonName="nope", addonVersion="v1.0.0-eksbuild.1")) == (
        "InvalidParameterException", 400)


def test_addon_lifecycle(eks, iam, emu):
    name = new_cluster(eks, emu, tags={"owner": "platform"})
    irsa = role(iam, service="pods.eks.amazonaws.com")
    a = eks.create_addon(clusterName=name, addonName=PIA, tags={"owner": "comfyplat"}, resolveConflicts="OVERWRITE")["addon"]
    assert a["status"] == "CREATING"
    assert a["addonVersion"] == "v1.3.4-eksbuild.1"  # default for 1.33
    assert a["clusterName"] == name and a["health"] == {"issues": []}
    assert re.fullmatch(rf"arn:aws:eks:{REGION}:{ACCOUNT}:addon/{name}/{PIA}/[0-9a-f-]{{36}}", a["addonArn"])
    assert a["tags"] == {"owner": "comfyplat"} and a["createdAt"] and a["modifiedAt"]
    assert a.get("podIdentityAssociations", []) == []
    assert eks.list_addons(clusterName=name)["addons"] == [PIA]
    assert code(lambda: eks.create_addon(clusterName=name, addonName=PIA)) == ("ResourceInUseException", 409)
    # an add-on in a transitional state cannot be updated
    assert code(lambda: eks.update_addon(clusterName=name, addonName=PIA, addonVersion="v1.3.5-eksbuild.2")) == (
        "ResourceInUseException", 409)
    assert poll_addon(eks, name, PIA, 3) == ["CREATING", "CREATING", "ACTIVE"]
    assert poll_addon(eks, name, PIA, 1) == ["ACTIVE"]

    u = eks.update_addon(
        clusterName=name, addonName=PIA, addonVersion="v1.3.5-eksbuild.2", resolveConflicts="PRESERVE",
        configurationValues='{"resources": {"limits": {"memory": "128Mi"}}}', serviceAccountRoleArn=irsa,
    )["update"]
    assert u["type"] == "AddonUpdate" and u["status"] == "InProgress" and u["errors"] == []
    assert {"type": "AddonVersion", "value": "v1.3.5-eksbuild.2"} in u["params"]
    assert {"type": "ResolveConflicts", "value": "PRESERVE"} in u["params"]
    assert {"type": "ServiceAccountRoleArn", "value": irsa} in u["params"]
    assert any(p["type"] == "ConfigurationValues" for p in u["params"])
    d = eks.describe_addon(clusterName=name, addonName=PIA)["addon"]
    assert d["status"] == "UPDATING" and d["addonVersion"] == "v1.3.5-eksbuild.2"
    assert d["serviceAccountRoleArn"] == irsa
    assert json.loads(d["configurationValues"]) == {"resources": {"limits": {"memory": "128Mi"}}}
    assert eks.list_updates(name=name, addonName=PIA)["updateIds"] == [u["id"]]
    assert eks.list_updates(name=name)["updateIds"] == []  # add-on updates are listed under the add-on
    assert code(lambda: eks.describe_update(name=name, updateId=u["id"])) == ("ResourceNotFoundException", 404)
    # DescribeUpdate of the add-on's update is a poll too: UPDATING was seen once above
    assert eks.describe_update(name=name, updateId=u["id"], addonName=PIA)["update"]["status"] == "InProgress"
    assert eks.describe_update(name=name, updateId=u["id"], addonName=PIA)["update"]["status"] == "Successful"
    assert eks.describe_addon(clusterName=name, addonName=PIA)["addon"]["status"] == "ACTIVE"

    # YAML configuration values; "" clears them; omitted keeps them
    eks.update_addon(clusterName=name, addonName=PIA, configurationValues="tolerations:\n  - operator: Exists\n")
    d = settle_addon(eks, name, PIA)
    assert d["status"] == "ACTIVE" and d["configurationValues"].startswith("tolerations:")
    eks.update_addon(clusterName=name, addonName=PIA, addonVersion="v1.3.7-eksbuild.2")
    d = settle_addon(eks, name, PIA)
    assert d["addonVersion"] == "v1.3.7-eksbuild.2" and "configurationValues" in d
    eks.update_addon(clusterName=name, addonName=PIA, configurationValues="")
    assert "configurationValues" not in settle_addon(eks, name, PIA)

    # validation
    def create(**kw):
        return code(lambda: eks.create_addon(clusterName=name, **kw))

    assert create(addonName="no-such-addon") == ("InvalidParameterException", 400)
    assert create(addonName="coredns", addonVersion="v9.9.9-eksbuild.1") == ("InvalidParameterException", 400)
    assert create(addonName="kube-proxy", addonVersion="v1.34.0-eksbuild.1") == ("InvalidParameterException", 400)
    assert create(addonName="coredns", resolveConflicts="MERGE") == ("InvalidParameterException", 400)
    assert create(addonName="coredns", configurationValues="[1, 2]") == ("InvalidParameterException", 400)
    assert create(addonName="coredns", configurationValues="{not: [valid") == ("InvalidParameterException", 400)
    assert create(addonName="coredns", configurationValues='{"noSuchKey": 1}') == ("InvalidParameterException", 400)
    assert create(addonName="coredns", configurationValues='{"replicaCount": "two"}') == ("InvalidParameterException", 400)
    assert create(addonName="coredns", serviceAccountRoleArn="not-an-arn") == ("InvalidParameterException", 400)
    assert eks.list_addons(clusterName=name)["addons"] == [PIA]
    # PRESERVE is allowed on create (the model documents it as "similar to NONE")
    c = eks.create_addon(clusterName=name, addonName="coredns", resolveConflicts="PRESERVE",
                         configurationValues="replicaCount: 3")["addon"]
    assert c["addonVersion"] == "v1.12.1-eksbuild.2"
    page = eks.list_addons(clusterName=name, maxResults=1)
    assert page["addons"] == ["coredns"] and page["nextToken"]
    assert eks.list_addons(clusterName=name, nextToken=page["nextToken"])["addons"] == [PIA]
    assert code(lambda: eks.update_addon(clusterName=name, addonName=PIA, addonVersion="v1.3.4-eksbuild.1",
                                         resolveConflicts="bogus")) == ("InvalidParameterException", 400)

    # a 1.34 cluster: v1.3.4 is not compatible, the default is v1.3.7
    new = new_cluster(eks, emu, version="1.34")
    assert code(lambda: eks.create_addon(clusterName=new, addonName=PIA, addonVersion="v1.3.4-eksbuild.1")) == (
        "InvalidParameterException", 400)
    assert eks.create_addon(clusterName=new, addonName=PIA)["addon"]["addonVersion"] == "v1.3.7-eksbuild.2"

    # tags on the add-on ARN
    eks.tag_resource(resourceArn=a["addonArn"], tags={"t": "1"})
    assert eks.list_tags_for_resource(resourceArn=a["addonArn"])["tags"] == {"owner": "comfyplat", "t": "1"}

    # delete
    gone = eks.delete_addon(clusterName=name, addonName=PIA, preserve=True)["addon"]
    assert gone["status"] == "DELETING"
    assert eks.delete_addon(clusterName=name, addonName=PIA)["addon"]["status"] == "DELETING"  # repeat is fine
    assert eks.list_addons(clusterName=name)["addons"] == ["coredns", PIA]
    assert poll_addon(eks, name, PIA, 2) == ["DELETING", "DELETING"]
    assert error(lambda: eks.describe_addon(clusterName=name, addonName=PIA)) == (
        "ResourceNotFoundException", 404, f"No addon: {PIA} found in cluster: {name}")
    assert eks.list_addons(clusterName=name)["addons"] == ["coredns"]
    for fn in (
        lambda: eks.describe_addon(clusterName=name, addonName=PIA),
        lambda: eks.update_addon(clusterName=name, addonName=PIA),
        lambda: eks.delete_addon(clusterName=name, addonName=PIA),
        lambda: eks.list_updates(name=name, addonName=PIA),
    ):
        assert code(fn) == ("ResourceNotFoundException", 404)
    # and it can be created again
    assert eks.create_addon(clusterName=name, addonName=PIA)["addon"]["status"] == "CREATING"


def test_addon_failure_tags(eks, emu):
    name = new_cluster(eks, emu)
    arn = cluster_arn(name)

    eks.tag_resource(resourceArn=arn, tags={FAIL_TAG + PIA: "CREATE_FAILED"})
    assert eks.create_addon(clusterName=name, addonName=PIA)["addon"]["status"] == "CREATING"
    assert poll_addon(eks, name, PIA, 2) == ["CREATING", "CREATING"]
    a = eks.describe_addon(clusterName=name, addonName=PIA)["addon"]
    assert a["status"] == "CREATE_FAILED"
    issue = a["health"]["issues"][0]
    assert issue["code"] == "ConfigurationConflict" and issue["message"] and "resourceIds" in issue
    # a CREATE_FAILED add-on can be updated (CREATE_FAILED does not apply to updates)
    u = eks.update_addon(clusterName=name, addonName=PIA, resolveConflicts="OVERWRITE")["update"]
    assert settle_addon(eks, name, PIA)["status"] == "ACTIVE"
    assert eks.describe_update(name=name, updateId=u["id"], addonName=PIA)["update"]["status"] == "Successful"

    eks.tag_resource(resourceArn=arn, tags={FAIL_TAG + PIA: "UPDATE_FAILED"})
    u = eks.update_addon(clusterName=name, addonName=PIA, addonVersion="v1.3.5-eksbuild.2")["update"]
    statuses = [eks.describe_update(name=name, updateId=u["id"], addonName=PIA)["update"] for _ in range(3)]
    assert [s["status"] for s in statuses] == ["InProgress", "InProgress", "Failed"]
    assert statuses[-1]["errors"][0]["errorCode"] == "ConfigurationConflict"
    a = eks.describe_addon(clusterName=name, addonName=PIA)["addon"]
    assert a["status"] == "UPDATE_FAILED"
    assert a["health"]["issues"][0]["code"] == "ConfigurationConflict"

    eks.tag_resource(resourceArn=arn, tags={FAIL_TAG + PIA: "DEGRADED"})
    eks.update_addon(clusterName=name, addonName=PIA)
    a = settle_addon(eks, name, PIA)
    assert a["status"] == "DEGRADED"
    assert a["health"]["issues"][0]["code"] == "InsufficientNumberOfReplicas"
    assert a["health"]["issues"][0]["resourceIds"]

    # removing the tag makes later updates succeed
    eks.untag_resource(resourceArn=arn, tagKeys=[FAIL_TAG + PIA])
    eks.update_addon(clusterName=name, addonName=PIA)
    a = settle_addon(eks, name, PIA)
    assert a["status"] == "ACTIVE" and a["health"] == {"issues": []}

    # DEGRADED on create; a failed add-on can be deleted
    eks.tag_resource(resourceArn=arn, tags={FAIL_TAG + "coredns": "DEGRADED", FAIL_TAG + "kube-proxy": "CREATE_FAILED"})
    eks.create_addon(clusterName=name, addonName="coredns")
    eks.create_addon(clusterName=name, addonName="kube-proxy")
    assert settle_addon(eks, name, "coredns")["status"] == "DEGRADED"
    assert settle_addon(eks, name, "kube-proxy")["status"] == "CREATE_FAILED"
    assert eks.delete_addon(clusterName=name, addonName="kube-proxy")["addon"]["status"] == "DELETING"
    assert poll_addon(eks, name, "kube-proxy", 2) == ["DELETING", "DELETING"]
    assert code(lambda: eks.describe_addon(clusterName=name, addonName="kube-proxy")) == ("ResourceNotFoundException", 404)

    # other tags don't matter; a bad value is refused loudly
    eks.tag_resource(resourceArn=arn, tags={FAIL_TAG + "vpc-cni": "BROKEN"})
    assert code(lambda: eks.create_addon(clusterName=name, addonName="vpc-cni")) == ("InvalidParameterException", 400)


def test_pod_identity_fallback_rule(eks, iam, emu):
    """The v1 Mountpoint driver has no Pod Identity support: podIdentityAssociations are
    refused, IRSA (serviceAccountRoleArn) is the fallback; v2 accepts them."""
    name = new_cluster(eks, emu)
    r = role(iam, service="pods.eks.amazonaws.com")
    assert code(lambda: eks.create_addon(
        clusterName=name, addonName=S3, addonVersion="v1.15.0-eksbuild.1",
        podIdentityAssociations=[{"serviceAccount": "s3-csi-driver-sa", "roleArn": r}],
    )) == ("InvalidParameterException", 400)
    assert eks.list_addons(clusterName=name)["addons"] == []
    a = eks.create_addon(clusterName=name, addonName=S3, addonVersion="v1.15.0-eksbuild.1", serviceAccountRoleArn=r)["addon"]
    assert a["serviceAccountRoleArn"] == r and a.get("podIdentityAssociations", []) == []
    settle_addon(eks, name, S3)
    assert code(lambda: eks.update_addon(
        clusterName=name, addonName=S3,
        podIdentityAssociations=[{"serviceAccount": "s3-csi-driver-sa", "roleArn": r}],
    )) == ("InvalidParameterException", 400)
    # moving to v2 allows them
    eks.update_addon(
        clusterName=name, addonName=S3, addonVersion="v2.1.0-eksbuild.1",
        podIdentityAssociations=[{"serviceAccount": "s3-csi-driver-sa", "roleArn": r}],
    )
    a = settle_addon(eks, name, S3)
    assert a["status"] == "ACTIVE" and a["serviceAccountRoleArn"] == r  # omitted: kept
    assert len(a["podIdentityAssociations"]) == 1
    # ... and going back to v1 needs them removed first
    assert code(lambda: eks.update_addon(clusterName=name, addonName=S3, addonVersion="v1.15.0-eksbuild.1")) == (
        "InvalidParameterException", 400)
    # only the add-on's own service accounts
    assert code(lambda: eks.update_addon(
        clusterName=name, addonName=S3, podIdentityAssociations=[{"serviceAccount": "default", "roleArn": r}],
    )) == ("InvalidParameterException", 400)


def test_addon_owned_pod_identity_associations(eks, iam, emu):
    name = new_cluster(eks, emu)
    r1 = role(iam, service="pods.eks.amazonaws.com")
    r2 = role(iam, service="pods.eks.amazonaws.com")
    a = eks.create_addon(
        clusterName=name, addonName=S3,
        podIdentityAssociations=[{"serviceAccount": "s3-csi-driver-sa", "roleArn": r1}],
    )["addon"]
    assert a["addonVersion"] == "v2.1.0-eksbuild.1"
    [assoc_arn] = a["podIdentityAssociations"]
    [summary] = eks.list_pod_identity_associations(clusterName=name)["associations"]
    assert summary["associationArn"] == assoc_arn
    assert summary["namespace"] == "kube-system" and summary["serviceAccount"] == "s3-csi-driver-sa"
    assert summary["ownerArn"] == a["addonArn"]
    assoc = eks.describe_pod_identity_association(clusterName=name, associationId=summary["associationId"])["association"]
    assert assoc["roleArn"] == r1 and assoc["ownerArn"] == a["addonArn"]
    assert assoc_arn.endswith("/" + summary["associationId"])

    aid = summary["associationId"]
    assert code(lambda: eks.update_pod_identity_association(clusterName=name, associationId=aid, roleArn=r2)) == (
        "InvalidRequestException", 400)
    assert code(lambda: eks.delete_pod_identity_association(clusterName=name, associationId=aid)) == (
        "InvalidRequestException", 400)
    # the service account is taken
    assert code(lambda: eks.create_pod_identity_association(
        clusterName=name, namespace="kube-system", serviceAccount="s3-csi-driver-sa", roleArn=r2)) == (
        "ResourceInUseException", 409)
    settle_addon(eks, name, S3)

    # list replaces
    eks.update_addon(clusterName=name, addonName=S3,
                     podIdentityAssociations=[{"serviceAccount": "s3-csi-driver-sa", "roleArn": r2}])
    a2 = settle_addon(eks, name, S3)
    [summary2] = eks.list_pod_identity_associations(clusterName=name)["associations"]
    assert a2["podIdentityAssociations"] == [summary2["associationArn"]]
    assert eks.describe_pod_identity_association(
        clusterName=name, associationId=summary2["associationId"])["association"]["roleArn"] == r2
    # omitted leaves them
    eks.update_addon(clusterName=name, addonName=S3, addonVersion="v2.2.0-eksbuild.1")
    assert settle_addon(eks, name, S3)["podIdentityAssociations"] == a2["podIdentityAssociations"]
    # [] removes them
    eks.update_addon(clusterName=name, addonName=S3, podIdentityAssociations=[])
    assert settle_addon(eks, name, S3).get("podIdentityAssociations", []) == []
    assert eks.list_pod_identity_associations(clusterName=name)["associations"] == []
    # DeleteAddon removes them
    eks.update_addon(clusterName=name, addonName=S3,
                     podIdentityAssociations=[{"serviceAccount": "s3-csi-driver-sa", "roleArn": r1}])
    settle_addon(eks, name, S3)
    assert len(eks.list_pod_identity_associations(clusterName=name)["associations"]) == 1
    eks.delete_addon(clusterName=name, addonName=S3)
    assert eks.list_pod_identity_associations(clusterName=name)["associations"] == []

    # a standalone association on the add-on's service account blocks the add-on's own
    standalone = eks.create_pod_identity_association(
        clusterName=name, namespace="kube-system", serviceAccount="aws-node", roleArn=r1)["association"]
    assert code(lambda: eks.create_addon(
        clusterName=name, addonName="vpc-cni",
        podIdentityAssociations=[{"serviceAccount": "aws-node", "roleArn": r2}],
    )) == ("ResourceInUseException", 409)
    eks.delete_pod_identity_association(clusterName=name, associationId=standalone["associationId"])


def test_pod_identity_associations(eks, iam, emu):
    name = new_cluster(eks, emu)
    r1 = role(iam, service="pods.eks.amazonaws.com")
    r2 = role(iam, service="pods.eks.amazonaws.com")
    a = eks.create_pod_identity_association(
        clusterName=name, namespace="comfy", serviceAccount="comfyui", roleArn=r1, tags={"owner": "comfyplat"},
    )["association"]
    assert re.fullmatch(r"a-[a-z0-9]{17}", a["associationId"])
    assert a["associationArn"] == f"arn:aws:eks:{REGION}:{ACCOUNT}:podidentityassociation/{name}/{a['associationId']}"
    assert a["clusterName"] == name and a["namespace"] == "comfy" and a["serviceAccount"] == "comfyui"
    assert a["roleArn"] == r1 and a["tags"] == {"owner": "comfyplat"} and "ownerArn" not in a
    assert a["createdAt"] and a["modifiedAt"]
    assert eks.describe_pod_identity_association(clusterName=name, associationId=a["associationId"])["association"] == a
    assert code(lambda: eks.create_pod_identity_association(
        clusterName=name, namespace="comfy", serviceAccount="comfyui", roleArn=r2)) == ("ResourceInUseException", 409)
    b = eks.create_pod_identity_association(clusterName=name, namespace="comfy", serviceAccount="worker", roleArn=r1)["association"]
    c = eks.create_pod_identity_association(clusterName=name, namespace="other", serviceAccount="comfyui", roleArn=r1)["association"]

    listed = eks.list_pod_identity_associations(clusterName=name)["associations"]
    assert [x["associationId"] for x in listed] == [a["associationId"], b["associationId"], c["associationId"]]
    assert set(listed[0]) == {"clusterName", "namespace", "serviceAccount", "associationArn", "associationId"}
    assert [x["serviceAccount"] for x in eks.list_pod_identity_associations(
        clusterName=name, namespace="comfy")["associations"]] == ["comfyui", "worker"]
    assert [x["namespace"] for x in eks.list_pod_identity_associations(
        clusterName=name, serviceAccount="comfyui")["associations"]] == ["comfy", "other"]
    page = eks.list_pod_identity_associations(clusterName=name, maxResults=2)
    assert len(page["associations"]) == 2
    assert len(eks.list_pod_identity_associations(clusterName=name, nextToken=page["nextToken"])["associations"]) == 1

    up = eks.update_pod_identity_association(clusterName=name, associationId=a["associationId"], roleArn=r2)["association"]
    assert up["roleArn"] == r2 and up["createdAt"] == a["createdAt"]
    assert code(lambda: eks.update_pod_identity_association(clusterName=name, associationId=a["associationId"])) == (
        "InvalidParameterException", 400)
    assert code(lambda: eks.update_pod_identity_association(
        clusterName=name, associationId=a["associationId"], roleArn="arn:aws:iam::123456789012:user/x")) == (
        "InvalidParameterException", 400)
    t = eks.update_pod_identity_association(
        clusterName=name, associationId=b["associationId"], targetRoleArn=r2)["association"]
    assert t["targetRoleArn"] == r2 and t["externalId"]
    assert code(lambda: eks.update_pod_identity_association(
        clusterName=name, associationId=b["associationId"], policy='{"Version": "2012-10-17", "Statement": []}')) == (
        "InvalidParameterException", 400)
    p = eks.update_pod_identity_association(
        clusterName=name, associationId=b["associationId"], disableSessionTags=True,
        policy='{"Version": "2012-10-17", "Statement": []}')["association"]
    assert p["disableSessionTags"] is True and p["policy"]

    for kw in (
        dict(namespace="comfy", serviceAccount="x", roleArn="arn:aws:iam::123456789012:policy/x"),
        dict(namespace="Bad_NS", serviceAccount="x", roleArn=r1),
        dict(namespace="comfy", serviceAccount="", roleArn=r1),
    ):
        assert code(lambda: eks.create_pod_identity_association(clusterName=name, **kw)) == (
            "InvalidParameterException", 400), kw

    eks.tag_resource(resourceArn=a["associationArn"], tags={"x": "y"})
    assert eks.list_tags_for_resource(resourceArn=a["associationArn"])["tags"] == {"owner": "comfyplat", "x": "y"}

    d = eks.delete_pod_identity_association(clusterName=name, associationId=c["associationId"])["association"]
    assert d["associationId"] == c["associationId"] and d["roleArn"] == r1
    for fn in (
        lambda: eks.describe_pod_identity_association(clusterName=name, associationId=c["associationId"]),
        lambda: eks.delete_pod_identity_association(clusterName=name, associationId=c["associationId"]),
        lambda: eks.update_pod_identity_association(clusterName=name, associationId=c["associationId"], roleArn=r1),
    ):
        assert code(fn) == ("ResourceNotFoundException", 404)


def test_unknown_cluster_everywhere(eks):
    n = "eksx-no-such-cluster"
    role_arn = f"arn:aws:iam::{ACCOUNT}:role/x"
    calls = [
        lambda: eks.update_cluster_config(name=n, accessConfig={"authenticationMode": "API"}),
        lambda: eks.describe_update(name=n, updateId="u"),
        lambda: eks.list_updates(name=n),
        lambda: eks.create_access_entry(clusterName=n, principalArn=role_arn),
        lambda: eks.describe_access_entry(clusterName=n, principalArn=role_arn),
        lambda: eks.list_access_entries(clusterName=n),
        lambda: eks.update_access_entry(clusterName=n, principalArn=role_arn, username="u"),
        lambda: eks.delete_access_entry(clusterName=n, principalArn=role_arn),
        lambda: eks.associate_access_policy(clusterName=n, principalArn=role_arn, policyArn=VIEW,
                                            accessScope={"type": "cluster"}),
        lambda: eks.disassociate_access_policy(clusterName=n, principalArn=role_arn, policyArn=VIEW),
        lambda: eks.list_associated_access_policies(clusterName=n, principalArn=role_arn),
        lambda: eks.create_addon(clusterName=n, addonName=PIA),
        lambda: eks.describe_addon(clusterName=n, addonName=PIA),
        lambda: eks.list_addons(clusterName=n),
        lambda: eks.update_addon(clusterName=n, addonName=PIA),
        lambda: eks.delete_addon(clusterName=n, addonName=PIA),
        lambda: eks.create_pod_identity_association(clusterName=n, namespace="a", serviceAccount="b", roleArn=role_arn),
        lambda: eks.describe_pod_identity_association(clusterName=n, associationId="a-x"),
        lambda: eks.list_pod_identity_associations(clusterName=n),
        lambda: eks.update_pod_identity_association(clusterName=n, associationId="a-x", roleArn=role_arn),
        lambda: eks.delete_pod_identity_association(clusterName=n, associationId="a-x"),
    ]
    for fn in calls:
        assert error(fn) == ("ResourceNotFoundException", 404, f"No cluster found for name: {n}.")


def test_error_wire_shape(emu):
    """AWS's restJson1 error: x-amzn-ErrorType header, JSON body with `message`."""
    req = urllib.request.Request(
        emu["endpoint"] + "/clusters/eksx-nope/addons/coredns",
        headers={"Authorization": "AWS4-HMAC-SHA256 Credential=testing/20260101/us-west-2/eks/aws4_request, "
                                  "SignedHeaders=host, Signature=0"},
    )
    with pytest.raises(urllib.error.HTTPError) as exc:
        urllib.request.urlopen(req, timeout=10)
    assert exc.value.code == 404
    assert exc.value.headers["x-amzn-ErrorType"] == "ResourceNotFoundException"
    body = json.loads(exc.value.read())
    assert body["message"] == "No cluster found for name: eksx-nope."


# --------------------------------------------------------------------------
# the aws CLI as an independent client
# --------------------------------------------------------------------------


def test_aws_cli(eks, iam, emu):
    """The CLI (its own botocore) parses what the extension serves. Set-up goes through boto3;
    the CLI reads run concurrently to keep the test quick."""
    # The pinned CLI of the emulator's virtualenv (requirements.txt), never a skip.
    aws = os.path.join(os.path.dirname(sys.executable), "aws")
    assert os.access(aws, os.X_OK), f"the aws CLI is missing from the virtualenv: {aws}"
    env = {
        **CLEAN_ENV,
        "AWS_ENDPOINT_URL": emu["endpoint"],
        "AWS_DEFAULT_REGION": REGION,
        "AWS_CONFIG_FILE": os.devnull,
        "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
        "AWS_MAX_ATTEMPTS": "1",
        "AWS_PAGER": "",
    }

    def run_all(*commands):
        procs = [
            subprocess.Popen([aws, "eks", *args, "--output", "json"], env=env, text=True,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE)
            for args in commands
        ]
        out = []
        for p in procs:
            stdout, stderr = p.communicate(timeout=60)
            out.append((p.returncode, json.loads(stdout) if p.returncode == 0 and stdout.strip() else stderr))
        return out

    config_map = new_cluster(eks, emu)
    name = new_cluster(eks, emu, mode="API_AND_CONFIG_MAP")
    admin = role(iam)
    node = emu["seed"]["node_role_arn"]
    eks.create_access_entry(clusterName=name, principalArn=admin)
    eks.create_access_entry(clusterName=name, principalArn=node, type="EC2_LINUX")
    eks.associate_access_policy(clusterName=name, principalArn=admin, policyArn=ADMIN,
                                accessScope={"type": "namespace", "namespaces": ["comfy"]})
    r = role(iam, service="pods.eks.amazonaws.com")
    eks.create_addon(clusterName=name, addonName=S3,
                     podIdentityAssociations=[{"serviceAccount": "s3-csi-driver-sa", "roleArn": r}])
    addon = settle_addon(eks, name, S3)

    (
        cluster, cm_cluster, entries, policies, entry, described, assocs, cm_entries, missing_addon,
    ) = run_all(
        ["describe-cluster", "--name", name],
        ["describe-cluster", "--name", config_map],
        ["list-access-entries", "--cluster-name", name],
        ["list-associated-access-policies", "--cluster-name", name, "--principal-arn", admin],
        ["describe-access-entry", "--cluster-name", name, "--principal-arn", node],
        ["describe-addon", "--cluster-name", name, "--addon-name", S3],
        ["list-pod-identity-associations", "--cluster-name", name],
        ["list-access-entries", "--cluster-name", config_map],
        ["describe-addon", "--cluster-name", name, "--addon-name", "coredns"],
    )
    for rc, out in (cluster, cm_cluster, entries, policies, entry, described, assocs):
        assert rc == 0, out
    assert cluster[1]["cluster"]["accessConfig"] == {
        "authenticationMode": "API_AND_CONFIG_MAP", "bootstrapClusterCreatorAdminPermissions": True}
    assert cm_cluster[1]["cluster"]["accessConfig"]["authenticationMode"] == "CONFIG_MAP"
    assert entries[1]["accessEntries"] == sorted([admin, node])
    assert policies[1]["principalArn"] == admin
    assert [(p["policyArn"], p["accessScope"]) for p in policies[1]["associatedAccessPolicies"]] == [
        (ADMIN, {"type": "namespace", "namespaces": ["comfy"]})]
    assert entry[1]["accessEntry"]["type"] == "EC2_LINUX"
    assert entry[1]["accessEntry"]["username"] == "system:node:{{EC2PrivateDNSName}}"
    a = described[1]["addon"]
    assert a["status"] == "ACTIVE" and a["addonVersion"] == "v2.1.0-eksbuild.1"
    assert a["addonArn"] == addon["addonArn"]
    assert [(x["namespace"], x["serviceAccount"], x["ownerArn"]) for x in assocs[1]["associations"]] == [
        ("kube-system", "s3-csi-driver-sa", a["addonArn"])]
    assert a["podIdentityAssociations"] == [assocs[1]["associations"][0]["associationArn"]]
    assert cm_entries[0] != 0 and "InvalidRequestException" in cm_entries[1]
    assert missing_addon[0] != 0 and "ResourceNotFoundException" in missing_addon[1]


# --------------------------------------------------------------------------
# moto reset
# --------------------------------------------------------------------------


def test_moto_reset_clears_extension_state(eks, iam, emu):
    """moto's reset drops the extension's state with the backends. The sandbox world is seeded
    again afterwards (and emu["seed"] updated), so test order does not matter."""
    from seed import seed_sandbox

    name = new_cluster(eks, emu, mode="API")
    eks.create_addon(clusterName=name, addonName="coredns")
    eks.create_access_entry(clusterName=name, principalArn=role(iam))
    req = urllib.request.Request(emu["endpoint"] + "/moto-api/reset", method="POST")
    urllib.request.urlopen(req, timeout=10).read()
    try:
        assert eks.list_clusters()["clusters"] == []
        eks.create_cluster(name=name, version="1.33", roleArn=emu["seed"]["cluster_role_arn"],
                           resourcesVpcConfig={"subnetIds": []})
        assert eks.list_addons(clusterName=name)["addons"] == []
        assert eks.describe_cluster(name=name)["cluster"]["accessConfig"]["authenticationMode"] == "CONFIG_MAP"
        eks.delete_cluster(name=name)
    finally:
        emu["seed"].update(seed_sandbox(emu["endpoint"], REGION))
    assert eks.describe_cluster(name=SEED_CLUSTER)["cluster"]["accessConfig"]["authenticationMode"] == "CONFIG_MAP"
