//! Where a platform runs: the facts read before planning (the account, the adopted
//! cluster, the add-on versions chosen) and the context the desired resources are built in.

use crate::config::Platform;
use crate::templates::Sources;

/// Where the platform runs: the account (from STS) and what the adopted cluster is like.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Environment {
    pub account: String,
    /// `aws`, `aws-cn` or `aws-us-gov`, from the caller's ARN.
    pub partition: String,
    pub region: String,
    pub cluster: ClusterFacts,
    /// The resolved version of each add-on platform.yaml asks for.
    pub addons: Vec<AddonFacts>,
    /// The CloudFront CallerReference to use: the one state holds, else a new one the
    /// command generated.
    pub distribution_reference: String,
    /// The lineage of the state this platform is applied from: every resource records it
    /// (tag `comfyplat:state`, label `comfyplat.io/state`), so that a second state dir is
    /// told apart from the one that made them.
    pub state_lineage: String,
    /// What reading the facts found worth telling with the plan (the node pool's instance
    /// types: GPUs, instance store, zones).
    pub notes: Vec<String>,
}

impl Environment {
    /// The tags every owned AWS resource carries: the user's, the ownership tag and the
    /// state lineage.
    pub fn resource_tags(&self, platform: &Platform) -> std::collections::BTreeMap<String, String> {
        let mut tags = platform.resource_tags();
        tags.insert(
            crate::config::STATE_TAG.to_string(),
            self.state_lineage.clone(),
        );
        tags
    }

    pub fn addon(&self, name: &str) -> Option<&AddonFacts> {
        self.addons.iter().find(|a| a.name == name)
    }

    /// The ARN of an IAM role of this account.
    pub fn role_arn(&self, name: &str) -> String {
        format!("arn:{}:iam::{}:role/{name}", self.partition, self.account)
    }
}

/// What DescribeCluster says about the adopted cluster.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ClusterFacts {
    pub name: String,
    pub arn: String,
    /// Kubernetes version, e.g. `1.33`.
    pub version: String,
    pub status: String,
    pub endpoint: Option<String>,
    /// Base64 PEM of the cluster CA.
    pub certificate_authority: Option<String>,
    /// `https://oidc.eks.<region>.amazonaws.com/id/<id>`.
    pub oidc_issuer: Option<String>,
    pub vpc_id: Option<String>,
    pub subnet_ids: Vec<String>,
    pub security_group_id: Option<String>,
    /// `CONFIG_MAP`, `API_AND_CONFIG_MAP` or `API`.
    pub authentication_mode: String,
}

/// An add-on version chosen for this platform.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AddonFacts {
    pub name: String,
    pub version: String,
    /// Whether this version can bind its service account through EKS Pod Identity.
    pub pod_identity: bool,
}

/// What the desired resources are built from.
#[derive(Debug, Clone, Copy)]
pub struct Context<'a> {
    pub platform: &'a Platform,
    pub environment: &'a Environment,
    /// The Kubernetes templates: the embedded ones with platform.yaml's overrides, read by
    /// the command.
    pub templates: &'a Sources,
}
