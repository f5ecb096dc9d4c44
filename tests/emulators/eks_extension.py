"""EKS operations moto 5.2.5 lacks, added to moto's EKS backend inside the emulator process.

`install()` (called by aws_emulator.py right after moto_patches.apply(), before the
ThreadedMotoServer starts) adds methods to `moto.eks.responses.EKSResponse` and paths to
`moto.eks.urls.url_paths`. moto routes a request to the method named after the operation
(botocore's model, eks/2017-11-01), so paths, field names (camelCase), enums, error types
(`x-amzn-ErrorType` header + JSON `{"message": ...}` body) and HTTP codes are AWS's.
State lives in a per-account/region store on moto's EKSBackend instance (attribute
`_comfyplat_eks`), so moto's reset (`POST /moto-api/reset`) clears it too.

Emulated
--------
Cluster access config
  * DescribeCluster/CreateCluster/DeleteCluster return `accessConfig {authenticationMode,
    bootstrapClusterCreatorAdminPermissions}`; CreateCluster honours `accessConfig`
    (default CONFIG_MAP / true, as for API- and CFN-created clusters).
  * Every cluster gets an OIDC issuer `https://oidc.eks.REGION.amazonaws.com/id/<32 HEX>`
    (moto's own is 10 chars and shared by all clusters).
  * UpdateClusterConfig: exactly one kind of update per call ("Only one type of update can be
    allowed."); ResourceInUseException while another cluster update is InProgress;
    accessConfig.authenticationMode moves only CONFIG_MAP -> API_AND_CONFIG_MAP -> API
    (anything else: InvalidParameterException "Unsupported authentication mode update from X
    to Y"). Returns `update {id, status: InProgress, type: AccessConfigUpdate, params:
    [{type: AuthenticationMode, value}], createdAt, errors: []}`; the cluster is UPDATING.
    Other kinds (logging, resourcesVpcConfig, ...) get the same update lifecycle (type
    LoggingUpdate / EndpointAccessUpdate / VpcConfigUpdate / ...); moto-known fields are
    applied when the update succeeds (resourcesVpcConfig is merged, not replaced).
  * DescribeUpdate / ListUpdates (cluster, `addonName=` and `nodegroupName=` scopes; an add-on
    or node group update id is only found with its addonName/nodegroupName, as in AWS).
    UpdateNodegroupConfig (moto's, already Successful) is recorded so DescribeUpdate finds it.
Access entries (cluster must be API or API_AND_CONFIG_MAP, else InvalidRequestException)
  * Create/Describe/List (associatedPolicyArn filter, maxResults/nextToken)/Update/Delete,
    Associate/DisassociateAccessPolicy, ListAssociatedAccessPolicies, ListAccessPolicies.
  * principalArn: IAM role or user ARN (STS assumed-role/federated ARNs refused); a principal
    in the cluster's account must exist in moto IAM (InvalidParameterException otherwise).
    One entry per principal (ResourceInUseException). Types STANDARD (default), EC2_LINUX,
    EC2_WINDOWS, FARGATE_LINUX, EC2, HYBRID_LINUX, HYPERPOD_LINUX; node types need a role, may
    not have kubernetesGroups or access policies (except EC2 + AmazonEKSAutoNodePolicy) and get
    AWS's default username (`system:node:{{EC2PrivateDNSName}}`, Fargate/hybrid
    `system:node:{{SessionName}}`) and groups (`system:nodes`, + `eks:kube-proxy-windows` for
    Windows, + `system:node-proxier` for Fargate). STANDARD default username: the user ARN, or
    `arn:aws:sts::ACCOUNT:assumed-role/ROLE/{{SessionName}}` for a role. Usernames may not
    start with system:, eks:, aws:, amazon:, iam:.
  * accessScope `{type: cluster}` (namespaces forbidden) or `{type: namespace, namespaces:
    [...]}` (required); re-associating a policy replaces its scope (associatedAt kept).
    Malformed policy ARN: InvalidParameterException; unknown one: ResourceNotFoundException.
  * Switching a cluster to API_AND_CONFIG_MAP creates no entries, and no cluster-creator
    entry is bootstrapped at CreateCluster (simplification).
Add-ons
  * Create/Describe/List/Update/Delete (`preserve` accepted), DescribeAddonVersions
    (addonName, kubernetesVersion, types, publishers, owners filters; paginated),
    DescribeAddonConfiguration (JSON-schema string + podIdentityConfiguration).
  * Catalogue (Kubernetes 1.29-1.34): eks-pod-identity-agent v1.3.4-eksbuild.1 (default
    1.29-1.33, not 1.34), v1.3.5-eksbuild.2, v1.3.7-eksbuild.2 (1.30+, default 1.34);
    aws-mountpoint-s3-csi-driver v1.15.0-eksbuild.1 (up to 1.33, NO Pod Identity support),
    v2.1.0-eksbuild.1 (default everywhere; Pod Identity SA s3-csi-driver-sa),
    v2.2.0-eksbuild.1 (1.30+); vpc-cni, coredns, kube-proxy (see CATALOGUE).
    Unknown add-on/version, or a version incompatible with the cluster: InvalidParameterException.
  * resolveConflicts in OVERWRITE|NONE|PRESERVE (PRESERVE is allowed on create: the model
    documents it there as "similar to NONE"); configurationValues must be a JSON/YAML object
    valid against the version's schema ("" clears it on update); serviceAccountRoleArn kept.
  * podIdentityAssociations [{serviceAccount, roleArn}] only when the version's
    podIdentityConfiguration is non-empty and for its service accounts; they become Pod
    Identity associations in kube-system with ownerArn = addonArn, listed by DescribeAddon as
    association ARNs. UpdateAddon: omitted = unchanged, [] = removed, list = replaced.
    DeleteAddon removes them (with or without preserve).
  * UpdateAddon applies the new values at once (also when the update then fails) and records
    an AddonUpdate (params AddonVersion, ServiceAccountRoleArn, ResolveConflicts,
    ConfigurationValues, PodIdentityAssociations as given) visible via DescribeUpdate/ListUpdates
    with addonName. UpdateAddon on a CREATING/UPDATING/DELETING add-on: ResourceInUseException.
Pod Identity associations
  * Create/Describe/List (namespace, serviceAccount filters; paginated)/Update/Delete. One per
    (namespace, serviceAccount): ResourceInUseException. Add-on-owned ones cannot be updated
    or deleted directly: InvalidRequestException. roleArn/targetRoleArn: syntax-checked IAM
    role ARNs (existence not checked); targetRoleArn gets an externalId; `policy` requires
    disableSessionTags=true.
The cluster's Kubernetes API (attach_kubernetes(); eks_kube.py attaches the seeded cluster)
  * DescribeCluster of an attached cluster returns `endpoint` = the https URL of the
    Kubernetes API server running in the emulator process and `certificateAuthority.data` = its
    CA (base64 PEM). Other clusters keep moto's fake endpoint and CA (nothing listens there).
  * Add-ons of an attached cluster put their Kubernetes objects into that server (server-side
    apply, field manager "eks") at the poll that ends a create or update with any outcome but
    CREATE_FAILED (ACTIVE, DEGRADED, UPDATE_FAILED), and delete them at the poll that ends a
    deletion (the one answering ResourceNotFoundException), unless DeleteAddon had
    preserve=true (EKS then leaves them on the cluster). Only aws-mountpoint-s3-csi-driver has
    objects: the CSIDriver s3.csi.aws.com (eks_kube.ADDON_OBJECTS). ListAddons, and the
    transitional polls, touch nothing.
Also: TagResource/UntagResource/ListTagsForResource work on add-on, access-entry and
pod-identity-association ARNs; clientRequestToken makes Create*/UpdateAddon/
UpdateClusterConfig retries idempotent; ResourceNotFoundException "No cluster found for name:
X." everywhere.

Timings (polls) -- what a client must do to see an operation finish
---------------------------------------------------------------------
POLLS = 2. Nothing happens with time; only reads advance state:
  * Cluster update: the first 2 DescribeUpdate calls for that update id return InProgress; the
    3rd returns Successful, the change takes effect then (e.g. the new authenticationMode) and
    the cluster goes back from UPDATING to ACTIVE. DescribeCluster does not advance it.
  * Add-on create/update/delete: the first 2 polls show CREATING/UPDATING/DELETING, the 3rd
    shows the outcome (ACTIVE, or the injected failure below; a deleted add-on is then gone:
    ResourceNotFoundException). A poll = DescribeAddon of the add-on, or DescribeUpdate of its
    pending AddonUpdate (InProgress -> Successful, or Failed for UPDATE_FAILED). ListAddons
    does not poll.

Test-only controls
------------------
Cluster tag `emulator.comfyplat.io/addon-<addonName>` (TagResource on the cluster ARN) with
value CREATE_FAILED, UPDATE_FAILED or DEGRADED, read at CreateAddon/UpdateAddon time:
  * CREATE_FAILED: a create ends CREATE_FAILED (health issue ConfigurationConflict);
  * UPDATE_FAILED: an update ends UPDATE_FAILED (ConfigurationConflict; AddonUpdate Failed);
  * DEGRADED: a create or update ends DEGRADED (InsufficientNumberOfReplicas; update
    Successful).
A value that does not apply to the operation is ignored; any other value is refused with
InvalidParameterException. Remove the tag (UntagResource) and later creates/updates succeed.
A CREATE_FAILED/UPDATE_FAILED/DEGRADED add-on can be updated or deleted as usual.
"""

from __future__ import annotations

import base64
import functools
import json
import re
import string
import threading
import uuid
from typing import Any, Callable

POLLS = 2
FAILURE_TAG_PREFIX = "emulator.comfyplat.io/addon-"

LOCK = threading.RLock()

AUTH_MODES = ("API", "API_AND_CONFIG_MAP", "CONFIG_MAP")
AUTH_TRANSITIONS = {("CONFIG_MAP", "API_AND_CONFIG_MAP"), ("API_AND_CONFIG_MAP", "API")}
MODE_REQUIRED_MSG = (
    "The cluster's authentication mode must be set to one of [API, API_AND_CONFIG_MAP] "
    "to perform this operation."
)

ACCESS_ENTRY_TYPES = (
    "STANDARD", "EC2_LINUX", "EC2_WINDOWS", "FARGATE_LINUX", "EC2", "HYBRID_LINUX", "HYPERPOD_LINUX",
)
NODE_USERNAMES = {
    "EC2_LINUX": "system:node:{{EC2PrivateDNSName}}",
    "EC2_WINDOWS": "system:node:{{EC2PrivateDNSName}}",
    "EC2": "system:node:{{EC2PrivateDNSName}}",
    "FARGATE_LINUX": "system:node:{{SessionName}}",
    "HYBRID_LINUX": "system:node:{{SessionName}}",
    "HYPERPOD_LINUX": "system:node:hyperpod-{{SessionName}}",
}
NODE_GROUPS = {
    "EC2_LINUX": ["system:nodes"],
    "EC2_WINDOWS": ["system:nodes", "eks:kube-proxy-windows"],
    "EC2": ["system:nodes"],
    "FARGATE_LINUX": ["system:nodes", "system:node-proxier"],
    "HYBRID_LINUX": ["system:nodes"],
    "HYPERPOD_LINUX": ["system:nodes"],
}
RESERVED_USERNAME_PREFIXES = ("system:", "eks:", "aws:", "amazon:", "iam:")

ACCESS_POLICY_PREFIX = "arn:aws:eks::aws:cluster-access-policy/"
ACCESS_POLICY_NAMES = [
    "AmazonEKSAdminPolicy",
    "AmazonEKSAdminViewPolicy",
    "AmazonEKSAutoNodePolicy",
    "AmazonEKSBlockStoragePolicy",
    "AmazonEKSClusterAdminPolicy",
    "AmazonEKSComputePolicy",
    "AmazonEKSEditPolicy",
    "AmazonEKSHybridPolicy",
    "AmazonEKSLoadBalancingPolicy",
    "AmazonEKSNetworkingPolicy",
    "AmazonEKSViewPolicy",
]
ACCESS_POLICY_ARNS = [ACCESS_POLICY_PREFIX + n for n in ACCESS_POLICY_NAMES]

ROLE_ARN_RE = re.compile(
    r"^arn:(aws|aws-cn|aws-us-gov):iam::(\d{12}):role/((?:[\w+=,.@-]+/)*)([\w+=,.@-]{1,64})$"
)
USER_ARN_RE = re.compile(
    r"^arn:(aws|aws-cn|aws-us-gov):iam::(\d{12}):user/((?:[\w+=,.@-]+/)*)([\w+=,.@-]{1,64})$"
)
STS_ARN_RE = re.compile(r"^arn:[\w-]+:sts::")
POLICY_ARN_RE = re.compile(r"^arn:aws:eks::aws:cluster-access-policy/[A-Za-z0-9]+$")
# a namespace name, or a prefix with a trailing `*` wildcard (e.g. `dev-*`)
NAMESPACE_RE = re.compile(r"^(?:[a-z0-9](?:[-a-z0-9]*[a-z0-9])?|[a-z0-9][-a-z0-9]*\*|\*)$")
K8S_NAME_RE = re.compile(r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$")

# ---------------------------------------------------------------------------
# add-on catalogue
# ---------------------------------------------------------------------------

K8S_VERSIONS = ["1.29", "1.30", "1.31", "1.32", "1.33", "1.34"]


def _kv(v: str) -> tuple[int, ...]:
    return tuple(int(x) for x in v.split("."))


def _range(lo: str, hi: str) -> list[str]:
    return [v for v in K8S_VERSIONS if _kv(lo) <= _kv(v) <= _kv(hi)]


def _semver_key(v: str) -> tuple:
    m = re.match(r"^v(\d+)\.(\d+)\.(\d+)-eksbuild\.(\d+)$", v)
    return tuple(int(x) for x in m.groups()) if m else (0, 0, 0, 0)


def _schema(properties: dict[str, Any]) -> str:
    return json.dumps(
        {
            "$schema": "http://json-schema.org/draft-07/schema#",
            "type": "object",
            "additionalProperties": False,
            "properties": properties,
        },
        sort_keys=True,
    )


_COMMON_PROPS = {
    "affinity": {"type": ["object", "null"]},
    "nodeSelector": {"type": "object", "additionalProperties": {"type": "string"}},
    "podAnnotations": {"type": "object"},
    "podLabels": {"type": "object"},
    "priorityClassName": {"type": "string"},
    "resources": {"type": "object"},
    "tolerations": {"type": "array", "items": {"type": "object"}},
}
POD_IDENTITY_AGENT_SCHEMA = _schema(
    {**_COMMON_PROPS, "agent": {"type": "object"}, "updateStrategy": {"type": "object"}}
)
MOUNTPOINT_V1_SCHEMA = _schema(
    {
        "node": {
            "type": "object",
            "properties": {
                "tolerateAllTaints": {"type": "boolean"},
                "defaultTolerations": {"type": "boolean"},
                "tolerations": {"type": "array"},
            },
        },
        "sidecars": {"type": "object"},
    }
)
MOUNTPOINT_V2_SCHEMA = _schema(
    {
        "node": {
            "type": "object",
            "properties": {
                "tolerateAllTaints": {"type": "boolean"},
                "defaultTolerations": {"type": "boolean"},
                "tolerations": {"type": "array"},
                "nodeSelector": {"type": "object"},
                "resources": {"type": "object"},
            },
        },
        "controller": {"type": "object"},
        "mountpointPod": {"type": "object"},
        "experimental": {
            "type": "object",
            "properties": {"reserveHeadroomForMountpointPods": {"type": "boolean"}},
        },
        "podInfoOnMountCompat": {"type": "object"},
    }
)
VPC_CNI_SCHEMA = _schema(
    {
        **_COMMON_PROPS,
        "env": {"type": "object", "additionalProperties": {"type": "string"}},
        "init": {"type": "object"},
        "nodeAgent": {"type": "object"},
        "enableNetworkPolicy": {"type": "string", "enum": ["true", "false"]},
        "eniConfig": {"type": "object"},
    }
)
COREDNS_SCHEMA = _schema(
    {
        **_COMMON_PROPS,
        "replicaCount": {"type": "integer", "minimum": 1},
        "corefile": {"type": "string"},
        "autoScaling": {"type": "object"},
        "podDisruptionBudget": {"type": "object"},
    }
)
KUBE_PROXY_SCHEMA = _schema(
    {
        **_COMMON_PROPS,
        "mode": {"type": "string", "enum": ["iptables", "ipvs", "nftables"]},
        "ipvs": {"type": "object"},
        "iptables": {"type": "object"},
    }
)

S3_POD_IDENTITY = [
    {
        "serviceAccount": "s3-csi-driver-sa",
        "recommendedManagedPolicies": ["arn:aws:iam::aws:policy/AmazonS3FullAccess"],
    }
]
VPC_CNI_POD_IDENTITY = [
    {
        "serviceAccount": "aws-node",
        "recommendedManagedPolicies": ["arn:aws:iam::aws:policy/AmazonEKS_CNI_Policy"],
    }
]


def _version(compat: list[str], default: list[str], schema: str, pod_identity: list | None = None) -> dict:
    return {"compat": compat, "default": default, "schema": schema, "pod_identity": pod_identity or []}


# name -> {type, requiresIamPermissions, workload, versions: {version: {...}}}
CATALOGUE: dict[str, dict[str, Any]] = {
    "eks-pod-identity-agent": {
        "type": "security",
        "requiresIamPermissions": False,
        "workload": "DaemonSet kube-system/eks-pod-identity-agent",
        "versions": {
            "v1.3.4-eksbuild.1": _version(_range("1.29", "1.33"), _range("1.29", "1.33"), POD_IDENTITY_AGENT_SCHEMA),
            "v1.3.5-eksbuild.2": _version(_range("1.29", "1.34"), [], POD_IDENTITY_AGENT_SCHEMA),
            "v1.3.7-eksbuild.2": _version(_range("1.30", "1.34"), ["1.34"], POD_IDENTITY_AGENT_SCHEMA),
        },
    },
    "aws-mountpoint-s3-csi-driver": {
        "type": "storage",
        "requiresIamPermissions": True,
        "workload": "DaemonSet kube-system/s3-csi-node",
        "versions": {
            "v1.15.0-eksbuild.1": _version(_range("1.29", "1.33"), [], MOUNTPOINT_V1_SCHEMA),
            "v2.1.0-eksbuild.1": _version(_range("1.29", "1.34"), _range("1.29", "1.34"), MOUNTPOINT_V2_SCHEMA, S3_POD_IDENTITY),
            "v2.2.0-eksbuild.1": _version(_range("1.30", "1.34"), [], MOUNTPOINT_V2_SCHEMA, S3_POD_IDENTITY),
        },
    },
    "vpc-cni": {
        "type": "networking",
        "requiresIamPermissions": True,
        "workload": "DaemonSet kube-system/aws-node",
        "versions": {
            "v1.19.2-eksbuild.1": _version(_range("1.29", "1.33"), _range("1.29", "1.33"), VPC_CNI_SCHEMA, VPC_CNI_POD_IDENTITY),
            "v1.20.0-eksbuild.1": _version(_range("1.30", "1.34"), ["1.34"], VPC_CNI_SCHEMA, VPC_CNI_POD_IDENTITY),
        },
    },
    "coredns": {
        "type": "networking",
        "requiresIamPermissions": False,
        "workload": "Deployment kube-system/coredns",
        "versions": {
            "v1.11.4-eksbuild.2": _version(_range("1.29", "1.33"), _range("1.29", "1.32"), COREDNS_SCHEMA),
            "v1.12.1-eksbuild.2": _version(_range("1.33", "1.34"), ["1.33", "1.34"], COREDNS_SCHEMA),
        },
    },
    "kube-proxy": {
        "type": "networking",
        "requiresIamPermissions": False,
        "workload": "DaemonSet kube-system/kube-proxy",
        "versions": {
            f"v{k}.{p}-eksbuild.{b}": _version([k], [k], KUBE_PROXY_SCHEMA)
            for k, p, b in [("1.29", 15, 2), ("1.30", 11, 2), ("1.31", 7, 2), ("1.32", 3, 2), ("1.33", 0, 4), ("1.34", 0, 1)]
        },
    },
}

RESOLVE_CONFLICTS = ("OVERWRITE", "NONE", "PRESERVE")
TRANSITIONAL_ADDON_STATES = ("CREATING", "UPDATING", "DELETING")
CONFLICT_MSG = (
    "Conflicts found when trying to apply. Will not continue due to resolve conflicts mode. "
    "Conflicts:\n{workload} - .spec.template.spec.containers[name=\"{name}\"].image"
)
REPLICAS_MSG = "The add-on is unhealthy because it doesn't have the desired number of replicas."

# UpdateClusterConfig request members that are each one kind of update
CLUSTER_UPDATE_KINDS = {
    "resourcesVpcConfig": None,  # EndpointAccessUpdate or VpcConfigUpdate, see _vpc_update_type
    "logging": ("LoggingUpdate", "ClusterLogging"),
    "accessConfig": ("AccessConfigUpdate", "AuthenticationMode"),
    "upgradePolicy": ("UpgradePolicyUpdate", "UpgradePolicy"),
    "zonalShiftConfig": ("ZonalShiftConfigUpdate", "ZonalShiftConfig"),
    "computeConfig": ("AutoModeUpdate", "ComputeConfig"),
    "kubernetesNetworkConfig": ("AutoModeUpdate", "KubernetesNetworkConfig"),
    "storageConfig": ("AutoModeUpdate", "StorageConfig"),
    "remoteNetworkConfig": ("RemoteNetworkConfigUpdate", "RemoteNetworkConfig"),
    "deletionProtection": ("DeletionProtectionUpdate", "DeletionProtection"),
    "controlPlaneScalingConfig": ("ControlPlaneScalingConfigUpdate", "UpdatedTier"),
    "kubeApiServerConfig": ("ControlPlaneComponentConfigUpdate", "KubeApiServerConfig"),
    "kubeSchedulerConfig": ("ControlPlaneComponentConfigUpdate", "KubeSchedulerConfig"),
    "kubeControllerManagerConfig": ("ControlPlaneComponentConfigUpdate", "KubeControllerManagerConfig"),
}

# ---------------------------------------------------------------------------
# errors (moto's EKS exceptions: x-amzn-ErrorType header + JSON body with `message`)
# ---------------------------------------------------------------------------

from moto.eks.exceptions import (  # noqa: E402
    EKSError,
    InvalidParameterException,
    InvalidRequestException,
    ResourceInUseException,
    ResourceNotFoundException,
)


def _err(cls: type, message: str, **fields: Any) -> EKSError:
    return cls(**{k: v for k, v in fields.items() if v is not None}, message=message)


def _invalid(message: str, **fields: Any) -> EKSError:
    return _err(InvalidParameterException, message, **fields)


def _utcnow():
    from moto.core.utils import utcnow

    return utcnow()


def _random_id(n: int) -> str:
    import secrets

    alphabet = string.ascii_lowercase + string.digits
    return "".join(secrets.choice(alphabet) for _ in range(n))


# ---------------------------------------------------------------------------
# state
# ---------------------------------------------------------------------------


class UpdateRecord:
    def __init__(self, type_: str, params: list[dict[str, str]], on_success: Callable[[], None] | None = None):
        self.id = str(uuid.uuid4())
        self.type = type_
        self.params = params
        self.created_at = _utcnow()
        self.status = "InProgress"
        self.errors: list[dict[str, Any]] = []
        self.polls = 0
        self.on_success = on_success

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "status": self.status,
            "type": self.type,
            "params": self.params,
            "createdAt": self.created_at,
            "errors": self.errors,
        }


class AccessEntry:
    def __init__(self, ext: "ClusterExt", principal_arn: str, type_: str, groups: list[str] | None,
                 username: str | None, tags: dict[str, str] | None):
        self.cluster_name = ext.name
        self.principal_arn = principal_arn
        self.type = type_
        self.user_groups = list(groups or [])
        self.custom_username = username or None
        self.tags = dict(tags or {})
        self.created_at = self.modified_at = _utcnow()
        m = ROLE_ARN_RE.match(principal_arn) or USER_ARN_RE.match(principal_arn)
        kind = "role" if ROLE_ARN_RE.match(principal_arn) else "user"
        self.arn = (
            f"arn:{ext.partition}:eks:{ext.region}:{ext.account_id}:access-entry/{ext.name}/"
            f"{kind}/{m.group(2)}/{m.group(4)}/{uuid.uuid4()}"
        )
        self.policies: dict[str, dict[str, Any]] = {}

    @property
    def username(self) -> str:
        if self.custom_username:
            return self.custom_username
        if self.type in NODE_USERNAMES:
            return NODE_USERNAMES[self.type]
        m = ROLE_ARN_RE.match(self.principal_arn)
        if m:
            return f"arn:{m.group(1)}:sts::{m.group(2)}:assumed-role/{m.group(4)}/{{{{SessionName}}}}"
        return self.principal_arn

    @property
    def groups(self) -> list[str]:
        return list(NODE_GROUPS.get(self.type, self.user_groups))

    def to_dict(self) -> dict[str, Any]:
        return {
            "clusterName": self.cluster_name,
            "principalArn": self.principal_arn,
            "kubernetesGroups": self.groups,
            "accessEntryArn": self.arn,
            "createdAt": self.created_at,
            "modifiedAt": self.modified_at,
            "tags": self.tags,
            "username": self.username,
            "type": self.type,
        }


class PodIdentityAssociation:
    def __init__(self, ext: "ClusterExt", namespace: str, service_account: str, role_arn: str,
                 tags: dict[str, str] | None = None, owner_arn: str | None = None,
                 disable_session_tags: bool | None = None, target_role_arn: str | None = None,
                 policy: str | None = None):
        self.id = "a-" + _random_id(17)
        self.cluster_name = ext.name
        self.arn = (
            f"arn:{ext.partition}:eks:{ext.region}:{ext.account_id}:podidentityassociation/"
            f"{ext.name}/{self.id}"
        )
        self.namespace = namespace
        self.service_account = service_account
        self.role_arn = role_arn
        self.tags = dict(tags or {})
        self.owner_arn = owner_arn
        self.disable_session_tags = bool(disable_session_tags)
        self.target_role_arn = target_role_arn or None
        self.external_id = str(uuid.uuid4()) if self.target_role_arn else None
        self.policy = policy or None
        self.created_at = self.modified_at = _utcnow()

    def summary(self) -> dict[str, Any]:
        d = {
            "clusterName": self.cluster_name,
            "namespace": self.namespace,
            "serviceAccount": self.service_account,
            "associationArn": self.arn,
            "associationId": self.id,
        }
        if self.owner_arn:
            d["ownerArn"] = self.owner_arn
        return d

    def to_dict(self) -> dict[str, Any]:
        d = {
            **self.summary(),
            "roleArn": self.role_arn,
            "tags": self.tags,
            "createdAt": self.created_at,
            "modifiedAt": self.modified_at,
            "disableSessionTags": self.disable_session_tags,
        }
        if self.target_role_arn:
            d["targetRoleArn"] = self.target_role_arn
            d["externalId"] = self.external_id
        if self.policy:
            d["policy"] = self.policy
        return d


class Pending:
    def __init__(self, kind: str, final_status: str | None, update: UpdateRecord | None = None):
        self.kind = kind  # create | update | delete
        self.final_status = final_status
        self.update = update
        self.polls = 0


class Addon:
    def __init__(self, ext: "ClusterExt", name: str, version: str):
        self.name = name
        self.cluster_name = ext.name
        self.version = version
        self.arn = f"arn:{ext.partition}:eks:{ext.region}:{ext.account_id}:addon/{ext.name}/{name}/{uuid.uuid4()}"
        self.status = "CREATING"
        self.issues: list[dict[str, Any]] = []
        self.created_at = self.modified_at = _utcnow()
        self.service_account_role_arn: str | None = None
        self.configuration_values: str | None = None
        self.namespace_config: dict[str, str] | None = None
        self.tags: dict[str, str] = {}
        self.association_ids: list[str] = []
        self.updates: dict[str, UpdateRecord] = {}
        self.pending: Pending | None = None
        self.preserve = False

    def to_dict(self, ext: "ClusterExt") -> dict[str, Any]:
        d = {
            "addonName": self.name,
            "clusterName": self.cluster_name,
            "status": self.status,
            "addonVersion": self.version,
            "health": {"issues": self.issues},
            "addonArn": self.arn,
            "createdAt": self.created_at,
            "modifiedAt": self.modified_at,
            "tags": self.tags,
            "publisher": "eks",
            "owner": "aws",
            "podIdentityAssociations": [
                ext.associations[i].arn for i in self.association_ids if i in ext.associations
            ],
        }
        if self.service_account_role_arn:
            d["serviceAccountRoleArn"] = self.service_account_role_arn
        if self.configuration_values:
            d["configurationValues"] = self.configuration_values
        if self.namespace_config:
            d["namespaceConfig"] = self.namespace_config
        return d


class ClusterExt:
    """What the extension keeps per cluster; bound to one moto Cluster object."""

    def __init__(self, backend: Any, cluster: Any):
        self.cluster = cluster
        self.name = cluster.name
        self.account_id = backend.account_id
        self.region = backend.region_name
        self.partition = backend.partition
        self.authentication_mode = "CONFIG_MAP"
        self.bootstrap_admin = True
        self.updates: dict[str, UpdateRecord] = {}
        self.nodegroup_updates: dict[tuple[str, str], UpdateRecord] = {}
        self.access_entries: dict[str, AccessEntry] = {}
        self.addons: dict[str, Addon] = {}
        self.associations: dict[str, PodIdentityAssociation] = {}
        self.tokens: dict[tuple[str, str], Any] = {}

    def in_progress_update(self) -> UpdateRecord | None:
        for u in self.updates.values():
            if u.status == "InProgress":
                return u
        return None

    def poll_cluster_update(self, rec: UpdateRecord) -> None:
        if rec.status != "InProgress":
            return
        rec.polls += 1
        if rec.polls > POLLS:
            rec.status = "Successful"
            if rec.on_success:
                rec.on_success()
            self.cluster.status = "ACTIVE"

    def poll_addon(self, addon: Addon) -> bool:
        """Advance a pending add-on operation by one poll. False when the add-on is gone."""
        p = addon.pending
        if p is None:
            return True
        p.polls += 1
        if p.polls <= POLLS:
            return True
        addon.pending = None
        if p.kind == "delete":
            self.addons.pop(addon.name, None)
            if not addon.preserve:  # preserve=true leaves the add-on's objects on the cluster
                self.kube_hook("addon_removed", addon)
            return False
        if p.final_status != "CREATE_FAILED":
            self.kube_hook("addon_installed", addon)
        addon.status = p.final_status
        addon.issues = _issues(addon, p.final_status)
        addon.modified_at = _utcnow()
        if p.update is not None:
            if p.final_status == "UPDATE_FAILED":
                p.update.status = "Failed"
                p.update.errors = [
                    {"errorCode": i["code"], "errorMessage": i["message"], "resourceIds": i["resourceIds"]}
                    for i in addon.issues
                ]
            else:
                p.update.status = "Successful"
        return True

    def kube_hook(self, method: str, addon: Addon) -> None:
        """Tell the cluster's Kubernetes API (attach_kubernetes) that an add-on's objects were
        installed or removed. A failure there never fails the EKS call."""
        hook = self.cluster.__dict__.get("_comfyplat_kube")
        if hook is None:
            return
        try:
            getattr(hook, method)(addon.name, addon.version)
        except Exception as e:  # pragma: no cover - a bug in the hook
            import sys

            sys.stderr.write(f"eks_extension: {method} {addon.name} on {self.name}: {e!r}\n")

    def remove_owned_associations(self, addon: Addon) -> None:
        for i in addon.association_ids:
            self.associations.pop(i, None)
        addon.association_ids = []


class Store:
    def __init__(self) -> None:
        self.clusters: dict[str, ClusterExt] = {}


def _store(backend: Any) -> Store:
    st = backend.__dict__.get("_comfyplat_eks")
    if st is None:
        st = Store()
        backend.__dict__["_comfyplat_eks"] = st
    return st


def _ext_for_cluster(backend: Any, cluster: Any) -> ClusterExt:
    st = _store(backend)
    ext = st.clusters.get(cluster.name)
    if ext is None or ext.cluster is not cluster:
        ext = ClusterExt(backend, cluster)
        st.clusters[cluster.name] = ext
    return ext


def _cluster_not_found(name: str) -> EKSError:
    return _err(ResourceNotFoundException, f"No cluster found for name: {name}.", clusterName=name)


def _ext(backend: Any, name: str | None) -> ClusterExt:
    cluster = backend.clusters.get(name) if name else None
    if cluster is None:
        raise _cluster_not_found(name or "")
    return _ext_for_cluster(backend, cluster)


def _backend_for_cluster_arn(arn: str) -> Any:
    from moto.eks.models import eks_backends

    parts = arn.split(":")
    return eks_backends[parts[4]][parts[3]]


# ---------------------------------------------------------------------------
# validation helpers
# ---------------------------------------------------------------------------


def _issues(addon: Addon, status: str) -> list[dict[str, Any]]:
    workload = CATALOGUE.get(addon.name, {}).get("workload", f"Deployment kube-system/{addon.name}")
    if status in ("CREATE_FAILED", "UPDATE_FAILED"):
        return [
            {
                "code": "ConfigurationConflict",
                "message": CONFLICT_MSG.format(workload=workload, name=addon.name),
                "resourceIds": [],
            }
        ]
    if status == "DEGRADED":
        return [
            {
                "code": "InsufficientNumberOfReplicas",
                "message": REPLICAS_MSG,
                "resourceIds": [workload.split(" ", 1)[1]],
            }
        ]
    return []


def _failure_injection(ext: ClusterExt, addon_name: str, operation: str) -> str:
    value = (ext.cluster.tags or {}).get(FAILURE_TAG_PREFIX + addon_name)
    if value is None:
        return "ACTIVE"
    if value not in ("CREATE_FAILED", "UPDATE_FAILED", "DEGRADED"):
        raise _invalid(
            f"emulator: cluster tag {FAILURE_TAG_PREFIX}{addon_name} must be CREATE_FAILED, "
            f"UPDATE_FAILED or DEGRADED, not {value!r}",
            clusterName=ext.name,
            addonName=addon_name,
        )
    if value == "DEGRADED":
        return value
    if operation == "create" and value == "CREATE_FAILED":
        return value
    if operation == "update" and value == "UPDATE_FAILED":
        return value
    return "ACTIVE"


def _check_role_arn(value: Any, field: str) -> str:
    if not isinstance(value, str) or not ROLE_ARN_RE.match(value):
        raise _invalid(f"The {field} {value!r} is not a valid IAM role ARN.")
    return value


def _check_tags(tags: Any) -> dict[str, str]:
    if tags is None:
        return {}
    if not isinstance(tags, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in tags.items()):
        raise _invalid("tags must be a map of strings to strings.")
    if len(tags) > 50:
        raise _invalid("Too many tags: a resource can have at most 50 tags.")
    return dict(tags)


def _check_max_results(value: Any) -> int:
    if value is None:
        return 100
    try:
        n = int(value)
    except (TypeError, ValueError):
        raise _invalid("maxResults must be an integer between 1 and 100.")
    if not 1 <= n <= 100:
        raise _invalid("maxResults must be between 1 and 100.")
    return n


def _paginate(items: list[Any], max_results: Any, next_token: Any) -> tuple[list[Any], str | None]:
    n = _check_max_results(max_results)
    start = 0
    if next_token:
        try:
            start = int(json.loads(base64.urlsafe_b64decode(next_token.encode()).decode())["offset"])
            if start < 0:
                raise ValueError
        except Exception:
            raise _invalid("The nextToken is invalid.")
    end = start + n
    token = None
    if end < len(items):
        token = base64.urlsafe_b64encode(json.dumps({"offset": end}).encode()).decode()
    return items[start:end], token


def _check_principal(backend: Any, ext: ClusterExt, principal_arn: Any, type_: str) -> str:
    if not isinstance(principal_arn, str) or not principal_arn:
        raise _invalid("principalArn is required.", clusterName=ext.name)
    if STS_ARN_RE.match(principal_arn):
        raise _invalid(
            "The specified principalArn is invalid: STS session principals (assumed-role or "
            "federated-user ARNs) cannot be used with access entries.",
            clusterName=ext.name,
        )
    role = ROLE_ARN_RE.match(principal_arn)
    user = USER_ARN_RE.match(principal_arn)
    if not (role or user):
        raise _invalid("The specified principalArn is invalid: invalid principal.", clusterName=ext.name)
    if type_ != "STANDARD" and not role:
        raise _invalid(
            f"The specified principalArn is invalid: access entries of type {type_} require an IAM role.",
            clusterName=ext.name,
        )
    m = role or user
    if m.group(2) == backend.account_id:
        from moto.iam.models import iam_backends

        iam = iam_backends[backend.account_id][backend.partition]
        exists = False
        if role:
            exists = any(r.arn == principal_arn for r in iam.roles.values())
        else:
            exists = any(u.arn == principal_arn for u in iam.users.values())
        if not exists:
            raise _invalid(
                "The specified principalArn is invalid: invalid principal (no such IAM "
                f"{'role' if role else 'user'}).",
                clusterName=ext.name,
            )
    return principal_arn


def _check_username(username: Any) -> str | None:
    if username is None:
        return None
    if not isinstance(username, str):
        raise _invalid("username must be a string.")
    if username.startswith(RESERVED_USERNAME_PREFIXES):
        raise _invalid(
            "The username can't start with system:, eks:, aws:, amazon:, or iam:."
        )
    return username or None


def _check_groups(groups: Any, type_: str) -> list[str] | None:
    if groups is None:
        return None
    if not isinstance(groups, list) or not all(isinstance(g, str) and g for g in groups):
        raise _invalid("kubernetesGroups must be a list of non-empty strings.")
    if groups and type_ != "STANDARD":
        raise _invalid(f"kubernetesGroups cannot be specified for access entries of type {type_}.")
    return groups


def _check_scope(scope: Any) -> dict[str, Any]:
    if not isinstance(scope, dict):
        raise _invalid("accessScope is required.")
    t = scope.get("type")
    namespaces = scope.get("namespaces") or []
    if t not in ("cluster", "namespace"):
        raise _invalid(f"accessScope.type must be one of [cluster, namespace], not {t!r}.")
    if not isinstance(namespaces, list) or not all(isinstance(n, str) for n in namespaces):
        raise _invalid("accessScope.namespaces must be a list of strings.")
    if t == "cluster" and namespaces:
        raise _invalid("Namespaces cannot be specified for an access scope of type cluster.")
    if t == "namespace":
        if not namespaces:
            raise _invalid("At least one namespace must be specified for an access scope of type namespace.")
        for n in namespaces:
            if len(n) > 63 or not NAMESPACE_RE.match(n):
                raise _invalid(f"Invalid namespace {n!r} in accessScope.namespaces.")
    return {"type": t, "namespaces": list(dict.fromkeys(namespaces))}


def _parse_configuration_values(value: Any, schema: str, addon_name: str) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str):
        raise _invalid("configurationValues must be a string.", addonName=addon_name)
    if value.strip() == "":
        return ""
    try:
        parsed = json.loads(value)
    except ValueError:
        try:
            import yaml

            parsed = yaml.safe_load(value)
        except Exception:
            parsed = None
    if not isinstance(parsed, dict):
        raise _invalid(
            "ConfigurationValue provided in request is not supported: unable to parse "
            "configuration values as a JSON or YAML object.",
            addonName=addon_name,
        )
    schema_obj = json.loads(schema)
    errors: list[str] = []
    try:
        import jsonschema

        validator = jsonschema.Draft7Validator(schema_obj)
        errors = [f"{e.json_path}: {e.message}" for e in validator.iter_errors(parsed)]
    except ImportError:  # pragma: no cover - jsonschema comes with moto[server]
        allowed = set(schema_obj.get("properties", {}))
        errors = [f"$.{k}: is not defined in the schema" for k in parsed if k not in allowed]
    if errors:
        raise _invalid(
            "ConfigurationValue provided in request is not supported: Json schema validation "
            f"failed with error: [{'; '.join(sorted(errors))}]",
            addonName=addon_name,
        )
    return value


def _default_version(addon_name: str, k8s: str) -> str | None:
    for v, info in CATALOGUE[addon_name]["versions"].items():
        if k8s in info["default"]:
            return v
    return None


def _resolve_version(ext: ClusterExt, addon_name: str, version: Any) -> str:
    k8s = ext.cluster.version
    if addon_name not in CATALOGUE:
        raise _invalid(
            f"Addon {addon_name} specified is not supported in {k8s} kubernetes version",
            clusterName=ext.name,
            addonName=addon_name,
        )
    if version is None:
        v = _default_version(addon_name, k8s)
        if v is None:
            raise _invalid(
                f"Addon {addon_name} specified is not supported in {k8s} kubernetes version",
                clusterName=ext.name,
                addonName=addon_name,
            )
        return v
    info = CATALOGUE[addon_name]["versions"].get(version)
    if info is None or k8s not in info["compat"]:
        raise _invalid(
            f"Addon version specified is not supported: {addon_name} {version} is not "
            f"compatible with Kubernetes {k8s}",
            clusterName=ext.name,
            addonName=addon_name,
        )
    return version


def _check_pod_identity_list(ext: ClusterExt, addon: Addon | None, addon_name: str, version: str,
                             value: Any) -> list[tuple[str, str]] | None:
    if value is None:
        return None
    if not isinstance(value, list):
        raise _invalid("podIdentityAssociations must be a list.", addonName=addon_name)
    config = CATALOGUE[addon_name]["versions"][version]["pod_identity"]
    if value and not config:
        raise _invalid(
            f"Addon {addon_name} version {version} does not support Pod Identity associations. "
            "Use serviceAccountRoleArn (IAM roles for service accounts) instead.",
            clusterName=ext.name,
            addonName=addon_name,
        )
    allowed = {c["serviceAccount"] for c in config}
    out: list[tuple[str, str]] = []
    seen: set[str] = set()
    for item in value:
        if not isinstance(item, dict):
            raise _invalid("Each podIdentityAssociations item needs serviceAccount and roleArn.", addonName=addon_name)
        sa = item.get("serviceAccount")
        role = _check_role_arn(item.get("roleArn"), "roleArn")
        if sa not in allowed:
            raise _invalid(
                f"Service account {sa!r} is not used by add-on {addon_name}; expected one of "
                f"{sorted(allowed)}.",
                addonName=addon_name,
            )
        if sa in seen:
            raise _invalid(f"Duplicate service account {sa!r} in podIdentityAssociations.", addonName=addon_name)
        seen.add(sa)
        owned = set(addon.association_ids) if addon else set()
        for a in ext.associations.values():
            if a.namespace == "kube-system" and a.service_account == sa and a.id not in owned:
                raise _err(
                    ResourceInUseException,
                    f"A Pod Identity association already exists for service account "
                    f"kube-system/{sa}: {a.id}",
                    clusterName=ext.name,
                    addonName=addon_name,
                )
        out.append((sa, role))
    return out


# ---------------------------------------------------------------------------
# request helpers
# ---------------------------------------------------------------------------


def _json_body(resp: Any) -> dict[str, Any]:
    body = resp.body
    if isinstance(body, bytes):
        body = body.decode("utf-8")
    if not body:
        return {}
    try:
        data = json.loads(body)
    except ValueError:
        raise _invalid("The request body is not valid JSON.")
    return data if isinstance(data, dict) else {}


def _path(resp: Any, key: str) -> str | None:
    return (resp.uri_match or {}).get(key)


def _query(resp: Any, key: str) -> str | None:
    v = resp.querystring.get(key)
    if isinstance(v, list):
        return v[0] if v else None
    return v


def _query_list(resp: Any, key: str) -> list[str]:
    v = resp.querystring.get(key)
    if v is None:
        return []
    return list(v) if isinstance(v, list) else [v]


def _locked(fn: Callable) -> Callable:
    @functools.wraps(fn)
    def wrapper(self: Any, *args: Any, **kwargs: Any) -> Any:
        with LOCK:
            return fn(self, *args, **kwargs)

    return wrapper


def _result(data: dict[str, Any]) -> Any:
    from moto.core.responses import ActionResult

    return ActionResult(data)


def _token(resp: Any, body: dict[str, Any]) -> str | None:
    t = body.get("clientRequestToken")
    return t if isinstance(t, str) and t else None


# ---------------------------------------------------------------------------
# operations (installed as EKSResponse methods)
# ---------------------------------------------------------------------------


def _access_config(cluster: Any) -> dict[str, Any]:
    snapshot = cluster.__dict__.get("_comfyplat_deleted_access_config")
    if snapshot is not None:  # DeleteCluster's response, after the state is dropped
        return snapshot
    with LOCK:
        ext = _ext_for_cluster(_backend_for_cluster_arn(cluster.arn), cluster)
        return {
            "bootstrapClusterCreatorAdminPermissions": ext.bootstrap_admin,
            "authenticationMode": ext.authentication_mode,
        }


def _wrap_create_cluster(original: Callable) -> Callable:
    @_locked
    def create_cluster(self: Any) -> Any:
        body = _json_body(self)
        access = body.get("accessConfig") or {}
        if not isinstance(access, dict):
            raise _invalid("accessConfig must be an object.")
        mode = access.get("authenticationMode", "CONFIG_MAP")
        if mode not in AUTH_MODES:
            raise _invalid(f"Unsupported authentication mode: {mode}")
        bootstrap = access.get("bootstrapClusterCreatorAdminPermissions", True)
        result = original(self)
        cluster = self.eks_backend.clusters[body.get("name")]
        ext = _ext_for_cluster(self.eks_backend, cluster)
        ext.authentication_mode = mode
        ext.bootstrap_admin = bool(bootstrap)
        return result

    return create_cluster


def _wrap_backend_create_cluster(original: Callable) -> Callable:
    def create_cluster(self: Any, *args: Any, **kwargs: Any) -> Any:
        cluster = original(self, *args, **kwargs)
        cluster.identity = {
            "oidc": {
                "issuer": f"https://oidc.eks.{self.region_name}.amazonaws.com/id/{uuid.uuid4().hex.upper()}"
            }
        }
        return cluster

    return create_cluster


def _wrap_delete_cluster(original: Callable) -> Callable:
    @_locked
    def delete_cluster(self: Any) -> Any:
        name = _path(self, "name")
        cluster = self.eks_backend.clusters.get(name)
        snapshot = _access_config(cluster) if cluster is not None else None
        result = original(self)
        if cluster is not None:
            cluster.__dict__["_comfyplat_deleted_access_config"] = snapshot
        _store(self.eks_backend).clusters.pop(name, None)
        return result

    return delete_cluster


def _wrap_update_nodegroup_config(original: Callable) -> Callable:
    @_locked
    def update_nodegroup_config(self: Any) -> Any:
        result = original(self)
        name, ng = _path(self, "name"), _path(self, "nodegroupName")
        update = (getattr(result, "result", None) or {}).get("update")
        if isinstance(update, dict) and name in self.eks_backend.clusters:
            ext = _ext(self.eks_backend, name)
            rec = UpdateRecord(update.get("type", "ConfigUpdate"), update.get("params", []))
            rec.id = update["id"]
            rec.created_at = update.get("createdAt", rec.created_at)
            rec.status = update.get("status", "Successful")
            ext.nodegroup_updates[(ng, rec.id)] = rec
        return result

    return update_nodegroup_config


def _vpc_update_type(cfg: dict[str, Any]) -> tuple[str, list[dict[str, str]]]:
    endpoint_keys = {
        "endpointPublicAccess": "EndpointPublicAccess",
        "endpointPrivateAccess": "EndpointPrivateAccess",
        "publicAccessCidrs": "PublicAccessCidrs",
    }
    vpc_keys = {"subnetIds": "Subnets", "securityGroupIds": "SecurityGroups"}
    params = []
    if any(k in cfg for k in vpc_keys):
        for k, p in vpc_keys.items():
            if k in cfg:
                params.append({"type": p, "value": json.dumps(cfg[k])})
        return "VpcConfigUpdate", params
    for k, p in endpoint_keys.items():
        if k in cfg:
            v = cfg[k]
            params.append({"type": p, "value": json.dumps(v) if isinstance(v, list) else str(v).lower()})
    return "EndpointAccessUpdate", params


@_locked
def update_cluster_config(self: Any) -> Any:
    body = _json_body(self)
    backend = self.eks_backend
    ext = _ext(backend, _path(self, "name"))
    token = _token(self, body)
    if token and ("UpdateClusterConfig", token) in ext.tokens:
        return _result({"update": ext.tokens[("UpdateClusterConfig", token)].to_dict()})
    kinds = [k for k in CLUSTER_UPDATE_KINDS if body.get(k) is not None]
    if len(kinds) > 1:
        raise _invalid("Only one type of update can be allowed.", clusterName=ext.name)
    if not kinds:
        raise _invalid("No changes needed: specify one type of update.", clusterName=ext.name)
    kind = kinds[0]
    value = body[kind]
    running = ext.in_progress_update()
    if running is not None:
        label = _vpc_update_type(value)[0] if kind == "resourcesVpcConfig" else CLUSTER_UPDATE_KINDS[kind][0]
        raise _err(
            ResourceInUseException,
            f"Cannot {label} because cluster {ext.name} currently has update {running.id} in progress",
            clusterName=ext.name,
        )
    cluster = ext.cluster
    on_success: Callable[[], None] | None = None
    if kind == "accessConfig":
        if not isinstance(value, dict) or "authenticationMode" not in value:
            raise _invalid("accessConfig.authenticationMode is required.", clusterName=ext.name)
        mode = value["authenticationMode"]
        if mode not in AUTH_MODES:
            raise _invalid(f"Unsupported authentication mode: {mode}", clusterName=ext.name)
        current = ext.authentication_mode
        if (current, mode) not in AUTH_TRANSITIONS:
            raise _invalid(f"Unsupported authentication mode update from {current} to {mode}", clusterName=ext.name)
        type_, params = "AccessConfigUpdate", [{"type": "AuthenticationMode", "value": mode}]

        def on_success(mode: str = mode) -> None:
            ext.authentication_mode = mode

    elif kind == "resourcesVpcConfig":
        if not isinstance(value, dict) or not value:
            raise _invalid("resourcesVpcConfig must not be empty.", clusterName=ext.name)
        type_, params = _vpc_update_type(value)

        def on_success(value: dict = value) -> None:
            merged = dict(cluster.resources_vpc_config or {})
            merged.update(value)
            cluster.resources_vpc_config = merged

    else:
        type_, param = CLUSTER_UPDATE_KINDS[kind]
        params = [{"type": param, "value": json.dumps(value) if not isinstance(value, str) else value}]
        attr = {
            "logging": "logging",
            "kubernetesNetworkConfig": "kubernetes_network_config",
            "remoteNetworkConfig": "remote_network_config",
        }.get(kind)
        if attr:

            def on_success(attr: str = attr, value: Any = value) -> None:
                setattr(cluster, attr, value)

    rec = UpdateRecord(type_, params, on_success)
    ext.updates[rec.id] = rec
    cluster.status = "UPDATING"
    if token:
        ext.tokens[("UpdateClusterConfig", token)] = rec
    return _result({"update": rec.to_dict()})


def _find_update(self: Any, ext: ClusterExt, update_id: str | None, poll: bool) -> UpdateRecord:
    addon_name = _query(self, "addonName")
    nodegroup = _query(self, "nodegroupName")
    rec = None
    if addon_name:
        addon = _get_addon(ext, addon_name)
        rec = addon.updates.get(update_id)
        if rec is not None and poll and addon.pending is not None and addon.pending.update is rec:
            ext.poll_addon(addon)
    elif nodegroup:
        rec = ext.nodegroup_updates.get((nodegroup, update_id))
    else:
        rec = ext.updates.get(update_id)
        if rec is not None and poll:
            ext.poll_cluster_update(rec)
    if rec is None:
        raise _err(ResourceNotFoundException, f"No update found for ID: {update_id}.", clusterName=ext.name,
                   addonName=addon_name, nodegroupName=nodegroup)
    return rec


@_locked
def describe_update(self: Any) -> Any:
    ext = _ext(self.eks_backend, _path(self, "name"))
    rec = _find_update(self, ext, _path(self, "updateId"), poll=True)
    return _result({"update": rec.to_dict()})


@_locked
def list_updates(self: Any) -> Any:
    ext = _ext(self.eks_backend, _path(self, "name"))
    addon_name = _query(self, "addonName")
    nodegroup = _query(self, "nodegroupName")
    if addon_name:
        ids = list(_get_addon(ext, addon_name).updates)
    elif nodegroup:
        if nodegroup not in ext.cluster.nodegroups:
            raise _err(ResourceNotFoundException, f"No node group found for name: {nodegroup}.",
                       clusterName=ext.name, nodegroupName=nodegroup)
        ids = [i for (ng, i) in ext.nodegroup_updates if ng == nodegroup]
    else:
        ids = list(ext.updates)
    page, token = _paginate(ids, _query(self, "maxResults"), _query(self, "nextToken"))
    return _result({"updateIds": page, "nextToken": token})


# --- access entries ----------------------------------------------------------


def _api_ext(self: Any) -> ClusterExt:
    ext = _ext(self.eks_backend, _path(self, "name"))
    if ext.authentication_mode == "CONFIG_MAP":
        raise _err(InvalidRequestException, MODE_REQUIRED_MSG, clusterName=ext.name)
    return ext


def _get_entry(ext: ClusterExt, principal_arn: str | None) -> AccessEntry:
    entry = ext.access_entries.get(principal_arn or "")
    if entry is None:
        raise _err(
            ResourceNotFoundException,
            "The specified principalArn could not be found. You can view your available access "
            "entries with 'list-access-entries'.",
            clusterName=ext.name,
        )
    return entry


@_locked
def create_access_entry(self: Any) -> Any:
    body = _json_body(self)
    ext = _api_ext(self)
    token = _token(self, body)
    principal = body.get("principalArn")
    if token and ("CreateAccessEntry", token) in ext.tokens:
        entry = ext.access_entries.get(ext.tokens[("CreateAccessEntry", token)])
        if entry is not None:
            return _result({"accessEntry": entry.to_dict()})
    type_ = body.get("type") or "STANDARD"
    if type_ not in ACCESS_ENTRY_TYPES:
        raise _invalid(
            f"The access entry type {type_!r} is not valid. Valid types: {', '.join(ACCESS_ENTRY_TYPES)}.",
            clusterName=ext.name,
        )
    _check_principal(self.eks_backend, ext, principal, type_)
    groups = _check_groups(body.get("kubernetesGroups"), type_)
    username = _check_username(body.get("username"))
    tags = _check_tags(body.get("tags"))
    if principal in ext.access_entries:
        raise _err(
            ResourceInUseException,
            "The specified access entry resource is already in use on this cluster.",
            clusterName=ext.name,
        )
    entry = AccessEntry(ext, principal, type_, groups, username, tags)
    ext.access_entries[principal] = entry
    if token:
        ext.tokens[("CreateAccessEntry", token)] = principal
    return _result({"accessEntry": entry.to_dict()})


@_locked
def describe_access_entry(self: Any) -> Any:
    ext = _api_ext(self)
    return _result({"accessEntry": _get_entry(ext, _path(self, "principalArn")).to_dict()})


@_locked
def list_access_entries(self: Any) -> Any:
    ext = _api_ext(self)
    policy = _query(self, "associatedPolicyArn")
    arns = sorted(
        arn for arn, e in ext.access_entries.items() if policy is None or policy in e.policies
    )
    page, token = _paginate(arns, _query(self, "maxResults"), _query(self, "nextToken"))
    return _result({"accessEntries": page, "nextToken": token})


@_locked
def update_access_entry(self: Any) -> Any:
    body = _json_body(self)
    ext = _api_ext(self)
    entry = _get_entry(ext, _path(self, "principalArn"))
    groups = _check_groups(body.get("kubernetesGroups"), entry.type)
    username = body.get("username")
    _check_username(username)
    if groups is not None:
        entry.user_groups = list(groups)
    if username is not None:
        entry.custom_username = username or None
    entry.modified_at = _utcnow()
    return _result({"accessEntry": entry.to_dict()})


@_locked
def delete_access_entry(self: Any) -> Any:
    ext = _api_ext(self)
    entry = _get_entry(ext, _path(self, "principalArn"))
    del ext.access_entries[entry.principal_arn]
    return _result({})


def _check_policy_arn(ext: ClusterExt, policy_arn: Any) -> str:
    if not isinstance(policy_arn, str) or not POLICY_ARN_RE.match(policy_arn):
        raise _invalid(f"The policyArn {policy_arn!r} is not a valid access policy ARN.", clusterName=ext.name)
    if policy_arn not in ACCESS_POLICY_ARNS:
        raise _err(
            ResourceNotFoundException,
            f"The specified policyArn {policy_arn} could not be found. You can view available "
            "access policies with 'list-access-policies'.",
            clusterName=ext.name,
        )
    return policy_arn


@_locked
def associate_access_policy(self: Any) -> Any:
    body = _json_body(self)
    ext = _api_ext(self)
    entry = _get_entry(ext, _path(self, "principalArn"))
    policy_arn = _check_policy_arn(ext, body.get("policyArn"))
    scope = _check_scope(body.get("accessScope"))
    if entry.type != "STANDARD" and not (
        entry.type == "EC2" and policy_arn.endswith("/AmazonEKSAutoNodePolicy")
    ):
        raise _invalid(
            f"Access policies cannot be associated with access entries of type {entry.type}.",
            clusterName=ext.name,
        )
    now = _utcnow()
    existing = entry.policies.get(policy_arn)
    assoc = {
        "policyArn": policy_arn,
        "accessScope": scope,
        "associatedAt": existing["associatedAt"] if existing else now,
        "modifiedAt": now,
    }
    entry.policies[policy_arn] = assoc
    entry.modified_at = now
    return _result(
        {"clusterName": ext.name, "principalArn": entry.principal_arn, "associatedAccessPolicy": assoc}
    )


@_locked
def disassociate_access_policy(self: Any) -> Any:
    ext = _api_ext(self)
    entry = _get_entry(ext, _path(self, "principalArn"))
    policy_arn = _path(self, "policyArn")
    if policy_arn not in entry.policies:
        raise _err(
            ResourceNotFoundException,
            f"The specified policyArn {policy_arn} is not associated with the access entry.",
            clusterName=ext.name,
        )
    del entry.policies[policy_arn]
    entry.modified_at = _utcnow()
    return _result({})


@_locked
def list_associated_access_policies(self: Any) -> Any:
    ext = _api_ext(self)
    entry = _get_entry(ext, _path(self, "principalArn"))
    items = [entry.policies[k] for k in sorted(entry.policies)]
    page, token = _paginate(items, _query(self, "maxResults"), _query(self, "nextToken"))
    return _result(
        {
            "clusterName": ext.name,
            "principalArn": entry.principal_arn,
            "associatedAccessPolicies": page,
            "nextToken": token,
        }
    )


@_locked
def list_access_policies(self: Any) -> Any:
    items = [{"name": n, "arn": ACCESS_POLICY_PREFIX + n} for n in ACCESS_POLICY_NAMES]
    page, token = _paginate(items, _query(self, "maxResults"), _query(self, "nextToken"))
    return _result({"accessPolicies": page, "nextToken": token})


# --- add-ons -----------------------------------------------------------------


def _get_addon(ext: ClusterExt, name: str | None) -> Addon:
    addon = ext.addons.get(name or "")
    if addon is None:
        raise _err(
            ResourceNotFoundException,
            f"No addon: {name} found in cluster: {ext.name}",
            clusterName=ext.name,
            addonName=name,
        )
    return addon


def _check_resolve_conflicts(value: Any, addon_name: str) -> str | None:
    if value is not None and value not in RESOLVE_CONFLICTS:
        raise _invalid(
            f"resolveConflicts must be one of [OVERWRITE, NONE, PRESERVE], not {value!r}.",
            addonName=addon_name,
        )
    return value


def _create_owned_associations(ext: ClusterExt, addon: Addon, pairs: list[tuple[str, str]]) -> None:
    ext.remove_owned_associations(addon)
    for sa, role in pairs:
        a = PodIdentityAssociation(ext, "kube-system", sa, role, owner_arn=addon.arn)
        ext.associations[a.id] = a
        addon.association_ids.append(a.id)


@_locked
def create_addon(self: Any) -> Any:
    body = _json_body(self)
    ext = _ext(self.eks_backend, _path(self, "name"))
    name = body.get("addonName")
    if not isinstance(name, str) or not name:
        raise _invalid("addonName is required.", clusterName=ext.name)
    token = _token(self, body)
    if token and ("CreateAddon", token) in ext.tokens:
        addon = ext.addons.get(name)
        if addon is not None and addon.arn == ext.tokens[("CreateAddon", token)]:
            return _result({"addon": addon.to_dict(ext)})
    if name in ext.addons:
        raise _err(ResourceInUseException, "Addon already exists.", clusterName=ext.name, addonName=name)
    version = _resolve_version(ext, name, body.get("addonVersion"))
    info = CATALOGUE[name]["versions"][version]
    _check_resolve_conflicts(body.get("resolveConflicts"), name)
    config = _parse_configuration_values(body.get("configurationValues"), info["schema"], name)
    sa_role = body.get("serviceAccountRoleArn")
    if sa_role:
        _check_role_arn(sa_role, "serviceAccountRoleArn")
    tags = _check_tags(body.get("tags"))
    pairs = _check_pod_identity_list(ext, None, name, version, body.get("podIdentityAssociations"))
    namespace_config = body.get("namespaceConfig")
    if namespace_config is not None:
        ns = namespace_config.get("namespace") if isinstance(namespace_config, dict) else None
        if not isinstance(ns, str) or not K8S_NAME_RE.match(ns):
            raise _invalid("namespaceConfig.namespace must be a valid Kubernetes namespace name.", addonName=name)
    final = _failure_injection(ext, name, "create")

    addon = Addon(ext, name, version)
    addon.service_account_role_arn = sa_role or None
    addon.configuration_values = config or None
    addon.tags = tags
    addon.namespace_config = {"namespace": namespace_config["namespace"]} if namespace_config else None
    addon.pending = Pending("create", final)
    ext.addons[name] = addon
    if pairs:
        _create_owned_associations(ext, addon, pairs)
    if token:
        ext.tokens[("CreateAddon", token)] = addon.arn
    return _result({"addon": addon.to_dict(ext)})


@_locked
def describe_addon(self: Any) -> Any:
    ext = _ext(self.eks_backend, _path(self, "name"))
    name = _path(self, "addonName")
    addon = _get_addon(ext, name)
    if not ext.poll_addon(addon):
        _get_addon(ext, name)  # raises: the deletion finished
    return _result({"addon": addon.to_dict(ext)})


@_locked
def list_addons(self: Any) -> Any:
    ext = _ext(self.eks_backend, _path(self, "name"))
    page, token = _paginate(sorted(ext.addons), _query(self, "maxResults"), _query(self, "nextToken"))
    return _result({"addons": page, "nextToken": token})


@_locked
def update_addon(self: Any) -> Any:
    body = _json_body(self)
    ext = _ext(self.eks_backend, _path(self, "name"))
    name = _path(self, "addonName")
    addon = _get_addon(ext, name)
    token = _token(self, body)
    if token and ("UpdateAddon", token) in ext.tokens:
        rec = addon.updates.get(ext.tokens[("UpdateAddon", token)])
        if rec is not None:
            return _result({"update": rec.to_dict()})
    if addon.status in TRANSITIONAL_ADDON_STATES:
        raise _err(
            ResourceInUseException,
            f"Addon {name} is currently in {addon.status} state and cannot be updated.",
            clusterName=ext.name,
            addonName=name,
        )
    version_in = body.get("addonVersion")
    version = _resolve_version(ext, name, version_in) if version_in is not None else addon.version
    info = CATALOGUE[name]["versions"][version]
    resolve = _check_resolve_conflicts(body.get("resolveConflicts"), name)
    config_in = body.get("configurationValues")
    config = _parse_configuration_values(config_in, info["schema"], name)
    if config_in is None and addon.configuration_values:
        _parse_configuration_values(addon.configuration_values, info["schema"], name)
    sa_role = body.get("serviceAccountRoleArn")
    if sa_role:
        _check_role_arn(sa_role, "serviceAccountRoleArn")
    pia_in = body.get("podIdentityAssociations")
    pairs = _check_pod_identity_list(ext, addon, name, version, pia_in)
    if pairs is None and addon.association_ids and not info["pod_identity"]:
        raise _invalid(
            f"Addon {name} version {version} does not support Pod Identity associations; remove "
            "them (podIdentityAssociations: []) to use this version.",
            clusterName=ext.name,
            addonName=name,
        )
    final = _failure_injection(ext, name, "update")

    params: list[dict[str, str]] = []
    if version_in is not None:
        params.append({"type": "AddonVersion", "value": version})
    if sa_role is not None:
        params.append({"type": "ServiceAccountRoleArn", "value": sa_role})
    if resolve is not None:
        params.append({"type": "ResolveConflicts", "value": resolve})
    if config_in is not None:
        params.append({"type": "ConfigurationValues", "value": config_in})
    if pia_in is not None:
        params.append({"type": "PodIdentityAssociations", "value": json.dumps(pia_in)})

    addon.version = version
    if sa_role is not None:
        addon.service_account_role_arn = sa_role or None
    if config is not None:
        addon.configuration_values = config or None
    if pairs is not None:
        _create_owned_associations(ext, addon, pairs)
    rec = UpdateRecord("AddonUpdate", params)
    addon.updates[rec.id] = rec
    addon.status = "UPDATING"
    addon.issues = []
    addon.modified_at = _utcnow()
    addon.pending = Pending("update", final, rec)
    if token:
        ext.tokens[("UpdateAddon", token)] = rec.id
    return _result({"update": rec.to_dict()})


@_locked
def delete_addon(self: Any) -> Any:
    ext = _ext(self.eks_backend, _path(self, "name"))
    name = _path(self, "addonName")
    addon = _get_addon(ext, name)
    if addon.status == "DELETING":
        return _result({"addon": addon.to_dict(ext)})
    preserve = str(_query(self, "preserve") or "false").lower() == "true"
    if addon.pending is not None and addon.pending.update is not None:
        addon.pending.update.status = "Cancelled"
    ext.remove_owned_associations(addon)
    addon.preserve = preserve
    addon.status = "DELETING"
    addon.issues = []
    addon.modified_at = _utcnow()
    addon.pending = Pending("delete", None)
    return _result({"addon": addon.to_dict(ext)})


def _addon_info(name: str, k8s: str | None) -> dict[str, Any] | None:
    cat = CATALOGUE[name]
    versions = []
    for v in sorted(cat["versions"], key=_semver_key, reverse=True):
        info = cat["versions"][v]
        compat = [k for k in sorted(info["compat"], key=_kv, reverse=True) if k8s is None or k == k8s]
        if not compat:
            continue
        versions.append(
            {
                "addonVersion": v,
                "architecture": ["amd64", "arm64"],
                "computeTypes": ["ec2", "hybrid"],
                "compatibilities": [
                    {"clusterVersion": k, "platformVersions": ["*"], "defaultVersion": k in info["default"]}
                    for k in compat
                ],
                "requiresConfiguration": False,
                "requiresIamPermissions": cat["requiresIamPermissions"],
            }
        )
    if not versions:
        return None
    return {
        "addonName": name,
        "type": cat["type"],
        "addonVersions": versions,
        "publisher": "eks",
        "owner": "aws",
        "defaultNamespace": "kube-system",
    }


@_locked
def describe_addon_versions(self: Any) -> Any:
    name = _query(self, "addonName")
    k8s = _query(self, "kubernetesVersion")
    types = set(_query_list(self, "types"))
    publishers = set(_query_list(self, "publishers"))
    owners = set(_query_list(self, "owners"))
    items = []
    for n in sorted(CATALOGUE):
        if name and n != name:
            continue
        info = _addon_info(n, k8s)
        if info is None:
            continue
        if types and info["type"] not in types:
            continue
        if publishers and info["publisher"] not in publishers:
            continue
        if owners and info["owner"] not in owners:
            continue
        items.append(info)
    page, token = _paginate(items, _query(self, "maxResults"), _query(self, "nextToken"))
    return _result({"addons": page, "nextToken": token})


@_locked
def describe_addon_configuration(self: Any) -> Any:
    name = _query(self, "addonName")
    version = _query(self, "addonVersion")
    if not name or not version:
        raise _invalid("addonName and addonVersion are required.")
    if name not in CATALOGUE:
        raise _invalid(f"Addon {name} specified is not supported", addonName=name)
    info = CATALOGUE[name]["versions"].get(version)
    if info is None:
        raise _invalid(f"Addon version {version} specified is not supported for {name}", addonName=name)
    return _result(
        {
            "addonName": name,
            "addonVersion": version,
            "configurationSchema": info["schema"],
            "podIdentityConfiguration": info["pod_identity"],
        }
    )


# --- Pod Identity associations -------------------------------------------------


def _get_association(ext: ClusterExt, association_id: str | None) -> PodIdentityAssociation:
    a = ext.associations.get(association_id or "")
    if a is None:
        raise _err(
            ResourceNotFoundException,
            f"No Pod Identity association found for id: {association_id}.",
            clusterName=ext.name,
        )
    return a


def _check_association_options(body: dict[str, Any], current: PodIdentityAssociation | None = None) -> None:
    target = body.get("targetRoleArn")
    if target:
        _check_role_arn(target, "targetRoleArn")
    disable = body.get("disableSessionTags")
    if disable is None and current is not None:
        disable = current.disable_session_tags
    policy = body.get("policy")
    if policy is None and current is not None:
        policy = current.policy
    if policy:
        try:
            json.loads(policy)
        except (TypeError, ValueError):
            raise _invalid("policy must be a JSON IAM policy document.")
        if not disable:
            raise _invalid("disableSessionTags must be true when a policy is specified.")


@_locked
def create_pod_identity_association(self: Any) -> Any:
    body = _json_body(self)
    ext = _ext(self.eks_backend, _path(self, "name"))
    token = _token(self, body)
    if token and ("CreatePodIdentityAssociation", token) in ext.tokens:
        a = ext.associations.get(ext.tokens[("CreatePodIdentityAssociation", token)])
        if a is not None:
            return _result({"association": a.to_dict()})
    namespace = body.get("namespace")
    sa = body.get("serviceAccount")
    for field, v in (("namespace", namespace), ("serviceAccount", sa)):
        if not isinstance(v, str) or not K8S_NAME_RE.match(v) or len(v) > 253:
            raise _invalid(f"{field} {v!r} is not a valid Kubernetes name.", clusterName=ext.name)
    role = _check_role_arn(body.get("roleArn"), "roleArn")
    _check_association_options(body)
    tags = _check_tags(body.get("tags"))
    for a in ext.associations.values():
        if a.namespace == namespace and a.service_account == sa:
            raise _err(
                ResourceInUseException,
                f"Association already exists: {a.id} for service account {namespace}/{sa}",
                clusterName=ext.name,
            )
    a = PodIdentityAssociation(
        ext, namespace, sa, role, tags=tags,
        disable_session_tags=body.get("disableSessionTags"),
        target_role_arn=body.get("targetRoleArn"),
        policy=body.get("policy"),
    )
    ext.associations[a.id] = a
    if token:
        ext.tokens[("CreatePodIdentityAssociation", token)] = a.id
    return _result({"association": a.to_dict()})


@_locked
def describe_pod_identity_association(self: Any) -> Any:
    ext = _ext(self.eks_backend, _path(self, "name"))
    return _result({"association": _get_association(ext, _path(self, "associationId")).to_dict()})


@_locked
def list_pod_identity_associations(self: Any) -> Any:
    ext = _ext(self.eks_backend, _path(self, "name"))
    namespace = _query(self, "namespace")
    sa = _query(self, "serviceAccount")
    items = [
        a.summary()
        for a in sorted(ext.associations.values(), key=lambda a: (a.namespace, a.service_account, a.id))
        if (namespace is None or a.namespace == namespace) and (sa is None or a.service_account == sa)
    ]
    page, token = _paginate(items, _query(self, "maxResults"), _query(self, "nextToken"))
    return _result({"associations": page, "nextToken": token})


def _refuse_owned(ext: ClusterExt, a: PodIdentityAssociation, verb: str) -> None:
    if a.owner_arn:
        raise _err(
            InvalidRequestException,
            f"Pod Identity association {a.id} is owned by add-on {a.owner_arn} and cannot be "
            f"{verb} directly; use UpdateAddon (podIdentityAssociations) or DeleteAddon.",
            clusterName=ext.name,
        )


@_locked
def update_pod_identity_association(self: Any) -> Any:
    body = _json_body(self)
    ext = _ext(self.eks_backend, _path(self, "name"))
    a = _get_association(ext, _path(self, "associationId"))
    _refuse_owned(ext, a, "updated")
    role = body.get("roleArn")
    if role is not None:
        _check_role_arn(role, "roleArn")
    if all(body.get(k) is None for k in ("roleArn", "targetRoleArn", "disableSessionTags", "policy")):
        raise _invalid(
            "At least one of roleArn, targetRoleArn, disableSessionTags or policy must be specified.",
            clusterName=ext.name,
        )
    _check_association_options(body, a)
    if role is not None:
        a.role_arn = role
    if body.get("disableSessionTags") is not None:
        a.disable_session_tags = bool(body["disableSessionTags"])
    if body.get("targetRoleArn") is not None:
        new_target = body["targetRoleArn"] or None
        if new_target != a.target_role_arn:
            a.external_id = str(uuid.uuid4()) if new_target else None
        a.target_role_arn = new_target
    if body.get("policy") is not None:
        a.policy = body["policy"] or None
    a.modified_at = _utcnow()
    return _result({"association": a.to_dict()})


@_locked
def delete_pod_identity_association(self: Any) -> Any:
    ext = _ext(self.eks_backend, _path(self, "name"))
    a = _get_association(ext, _path(self, "associationId"))
    _refuse_owned(ext, a, "deleted")
    del ext.associations[a.id]
    return _result({"association": a.to_dict()})


# --- tags on the extension's resources ------------------------------------------


def _find_tagged(backend: Any, arn: str) -> Any:
    for ext in _store(backend).clusters.values():
        if backend.clusters.get(ext.name) is not ext.cluster:
            continue
        for coll in (ext.addons.values(), ext.access_entries.values(), ext.associations.values()):
            for obj in coll:
                if obj.arn == arn:
                    return obj
    return None


def _wrap_tag_resource(original: Callable) -> Callable:
    def tag_resource(self: Any, resource_arn: str, tags: dict[str, str]) -> None:
        with LOCK:
            obj = _find_tagged(self, resource_arn)
            if obj is not None:
                obj.tags.update(_check_tags(tags))
                return None
        return original(self, resource_arn, tags)

    return tag_resource


def _wrap_untag_resource(original: Callable) -> Callable:
    def untag_resource(self: Any, resource_arn: str, tag_keys: list[str]) -> None:
        with LOCK:
            obj = _find_tagged(self, resource_arn)
            if obj is not None:
                for k in tag_keys if isinstance(tag_keys, list) else [tag_keys]:
                    obj.tags.pop(k, None)
                return None
        return original(self, resource_arn, tag_keys)

    return untag_resource


def _wrap_list_tags(original: Callable) -> Callable:
    def list_tags_for_resource(self: Any, resource_arn: str) -> dict[str, str]:
        with LOCK:
            obj = _find_tagged(self, resource_arn)
            if obj is not None:
                return dict(obj.tags)
        return original(self, resource_arn)

    return list_tags_for_resource


# ---------------------------------------------------------------------------
# the cluster's Kubernetes API (eks_kube.py)
# ---------------------------------------------------------------------------


def attach_kubernetes(account_id: str, region: str, cluster_name: str, endpoint: str, ca_data: str,
                      hook: Any) -> None:
    """Give an existing moto cluster a real Kubernetes API: DescribeCluster then returns
    `endpoint` and `certificateAuthority.data` = ca_data, and add-ons that finish creating or
    updating (any outcome but CREATE_FAILED) call hook.addon_installed(name, version), add-ons
    whose deletion finishes without preserve call hook.addon_removed(name, version). Kept on
    the moto Cluster object: a deleted or reset cluster takes it with it."""
    from moto.eks.models import eks_backends

    with LOCK:
        cluster = eks_backends[account_id][region].clusters.get(cluster_name)
        if cluster is None:
            raise KeyError(f"no EKS cluster {cluster_name} in {account_id}/{region}")
        cluster.endpoint = endpoint
        cluster.certificate_authority = {"data": ca_data}
        cluster.__dict__["_comfyplat_kube"] = hook


# ---------------------------------------------------------------------------
# install
# ---------------------------------------------------------------------------

URL_PATHS = [
    "{0}/clusters/(?P<name>[^/]+)/updates$",
    "{0}/clusters/(?P<name>[^/]+)/updates/(?P<updateId>[^/]+)$",
    "{0}/clusters/(?P<name>[^/]+)/access-entries$",
    # principalArn and policyArn contain '/' once the path is decoded
    "{0}/clusters/(?P<name>[^/]+)/access-entries/(?P<principalArn>.+)$",
    "{0}/access-policies$",
    "{0}/clusters/(?P<name>[^/]+)/addons$",
    "{0}/clusters/(?P<name>[^/]+)/addons/(?P<addonName>[^/]+)$",
    "{0}/clusters/(?P<name>[^/]+)/addons/(?P<addonName>[^/]+)/update$",
    "{0}/addons/supported-versions$",
    "{0}/addons/configuration-schemas$",
    "{0}/clusters/(?P<name>[^/]+)/pod-identity-associations$",
    "{0}/clusters/(?P<name>[^/]+)/pod-identity-associations/(?P<associationId>[^/]+)$",
]

OPERATIONS = [
    update_cluster_config,
    describe_update,
    list_updates,
    create_access_entry,
    describe_access_entry,
    list_access_entries,
    update_access_entry,
    delete_access_entry,
    associate_access_policy,
    disassociate_access_policy,
    list_associated_access_policies,
    list_access_policies,
    create_addon,
    describe_addon,
    list_addons,
    update_addon,
    delete_addon,
    describe_addon_versions,
    describe_addon_configuration,
    create_pod_identity_association,
    describe_pod_identity_association,
    list_pod_identity_associations,
    update_pod_identity_association,
    delete_pod_identity_association,
]

_installed = False


def install() -> None:
    """Extend moto's EKS backend. Idempotent; call before ThreadedMotoServer starts."""
    global _installed
    if _installed:
        return
    from moto.eks import urls
    from moto.eks.models import Cluster, EKSBackend
    from moto.eks.responses import EKSResponse

    for fn in OPERATIONS:
        setattr(EKSResponse, fn.__name__, fn)
    EKSResponse.create_cluster = _wrap_create_cluster(EKSResponse.create_cluster)
    EKSResponse.delete_cluster = _wrap_delete_cluster(EKSResponse.delete_cluster)
    EKSResponse.update_nodegroup_config = _wrap_update_nodegroup_config(EKSResponse.update_nodegroup_config)
    EKSBackend.create_cluster = _wrap_backend_create_cluster(EKSBackend.create_cluster)
    EKSBackend.tag_resource = _wrap_tag_resource(EKSBackend.tag_resource)
    EKSBackend.untag_resource = _wrap_untag_resource(EKSBackend.untag_resource)
    EKSBackend.list_tags_for_resource = _wrap_list_tags(EKSBackend.list_tags_for_resource)
    Cluster.access_config = property(_access_config)

    dispatch = urls.response.dispatch
    for path in URL_PATHS:
        urls.url_paths.setdefault(path, dispatch)
    _installed = True
