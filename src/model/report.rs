//! What comfyplat tells the user after the work: the platform's outputs (its URLs and
//! bucket names) and, after a destroy, what is still there.

use std::collections::BTreeMap;

use serde::Serialize;

/// The platform's endpoints and names, from state and live reads.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Outputs {
    /// Where people open ComfyUI: the first alias, else the CloudFront domain, else the
    /// load balancer.
    pub url: Option<String>,
    pub cloudfront: Option<DistributionOutput>,
    pub load_balancer: Option<LoadBalancerOutput>,
    /// Bucket id (`models`, `outputs`, ...) to bucket name.
    pub buckets: BTreeMap<String, String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DistributionOutput {
    pub id: String,
    pub domain_name: String,
    pub url: String,
    /// `InProgress` or `Deployed`.
    pub status: String,
    pub aliases: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LoadBalancerOutput {
    pub hostname: String,
    pub url: String,
    /// It answers only requests that come through CloudFront.
    pub cloudfront_only: bool,
}

/// One thing found after a destroy, with what to do about it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Finding {
    /// What it is: `load balancer`, `EC2 instance`, `S3 bucket`, ...
    pub what: String,
    /// Its ARN, id or name.
    pub id: String,
    pub advice: String,
}

/// What a destroy left, by cause.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct DestroyReport {
    /// Owned by comfyplat and still there (goal: none).
    pub still_owned: Vec<Finding>,
    /// Buckets kept on purpose because they hold data.
    pub kept: Vec<Finding>,
    /// Billable things the cluster's controllers made for the platform and left.
    pub left_by_controllers: Vec<Finding>,
    /// Scans that could not be made (e.g. no `tag:GetResources` permission): what was not
    /// checked.
    pub unchecked: Vec<String>,
}
