//! The cluster's IAM OIDC provider, needed only when the CSI driver's role is trusted
//! through IRSA. One that exists already (made by eksctl, Terraform, ...) is used as it is
//! and never changed or deleted.
//!
//! Fields: `client_ids` (sorted), `tags.*`.

use std::fmt;

use serde::{Deserialize, Serialize};
use serde_json::json;

use super::iam_role::csi_irsa_issuer;
use crate::model::{
    Address, Context, Desired, Fields, ModelError, Resource, ResourceKind, insert_tags,
};

/// `url` is the issuer without `https://`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Id {
    pub arn: String,
    pub url: String,
}

impl fmt::Display for Id {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "https://{}", self.url)
    }
}

pub const ADDRESS: &str = "iam.oidc_provider.cluster";

impl ResourceKind for Id {
    const NOUN: &'static str = "IAM OIDC provider";

    fn desired(context: &Context, desired: &mut Desired) -> Result<(), ModelError> {
        let environment = context.environment;
        let Some(issuer) = csi_irsa_issuer(environment) else {
            return Ok(());
        };
        let url = issuer.trim_start_matches("https://").to_string();
        let mut fields = Fields::from([("client_ids".to_string(), json!(["sts.amazonaws.com"]))]);
        insert_tags(&mut fields, &context.environment.resource_tags(context.platform));
        let id = Id {
            arn: format!(
                "arn:{}:iam::{}:oidc-provider/{url}",
                environment.partition, environment.account
            ),
            url,
        };
        let mut resource = Resource::new(Address::new(ADDRESS), id, fields);
        resource.yield_to_existing = true;
        desired.resources.push(resource);
        Ok(())
    }
}
