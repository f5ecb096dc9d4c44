//! The table of resource kinds: one line per kind comfyplat manages.
//!
//! A kind `Variant: module` is exactly two files plus its line here:
//!
//! - `src/model/kinds/<module>.rs`: the kind's identity (`Id`: what the cloud knows it by),
//!   its desired resources built from platform.yaml (fields, dependencies), the field paths
//!   a change of which forces a replacement and those that change only one way, and its
//!   outputs; it implements [`crate::model::ResourceKind`];
//! - `src/adapters/kinds/<module>.rs`: observe, create, update, delete, wait for and
//!   discover it through its API; it implements [`crate::adapters::kinds::Adapter`].
//!
//! Everything that enumerates kinds is generated from this table (the [`Kind`] and
//! [`Identity`] enums, the module declarations, the adapters' dispatch) or iterates
//! [`Kind::ALL`] (desired resources, `validate`'s listing, the destroy report's scans,
//! outputs). The order is the order desired resources are built in: a kind may refer to
//! the resources of the kinds above it (the Kubernetes objects depend on the AWS side, the
//! CloudFront distribution fronts the Ingress).
//!
//! [`Kind`]: crate::model::Kind
//! [`Identity`]: crate::model::Identity
//! [`Kind::ALL`]: crate::model::Kind::ALL

/// Calls `$callback! { Variant: module, ... }` with the table.
macro_rules! for_each_kind {
    ($callback:ident) => {
        $callback! {
            S3Bucket: s3_bucket,
            EcrRepository: ecr_repository,
            IamOidcProvider: iam_oidc_provider,
            IamRole: iam_role,
            IamRolePolicy: iam_role_policy,
            EksAccessConfig: eks_access_config,
            EksAccessEntry: eks_access_entry,
            EksAddon: eks_addon,
            EksPodIdentityAssociation: eks_pod_identity_association,
            K8sObject: k8s_object,
            CloudfrontDistribution: cloudfront_distribution,
        }
    };
}

pub(crate) use for_each_kind;
