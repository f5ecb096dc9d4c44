"""Seed a moto server with the world a real comfyplat user already has.

Usage (as a library):

    from seed import seed_sandbox
    facts = seed_sandbox("http://127.0.0.1:5000", "us-west-2")

Everything created here is *unowned* by comfyplat: the tests check that
comfyplat reads some of it (cluster, node role, subnets) and never modifies
the rest (the node role's inline policy, the platform-team bucket).
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
