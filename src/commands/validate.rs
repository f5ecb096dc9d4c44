//! `comfyplat validate`: checks platform.yaml without any network call.

use super::{Exit, Session};
use crate::cli::Global;
use crate::model::{self, AddonFacts, ClusterFacts, Environment, Kind};

pub fn run(global: &Global) -> anyhow::Result<Exit> {
    let session = Session::open(global)?;
    let platform = &session.platform;
    // The account, cluster and add-on versions are placeholders; plan reads them.
    let environment = Environment {
        account: platform
            .account
            .clone()
            .unwrap_or_else(|| "{account}".to_string()),
        partition: "aws".to_string(),
        region: platform.region.clone(),
        cluster: ClusterFacts {
            name: platform.cluster_name.clone(),
            version: "{kubernetes version}".to_string(),
            subnet_ids: vec!["{cluster subnet}".to_string()],
            security_group_id: Some("{cluster security group}".to_string()),
            authentication_mode: "CONFIG_MAP".to_string(),
            ..ClusterFacts::default()
        },
        addons: platform
            .addons
            .iter()
            .map(|addon| AddonFacts {
                name: addon.name.clone(),
                version: addon
                    .version
                    .clone()
                    .unwrap_or_else(|| "(cluster default)".to_string()),
                pod_identity: true,
            })
            .collect(),
        distribution_reference: None,
    };
    let desired = model::desired(platform, &environment)?;
    println!(
        "{} is valid: platform `{}` in {}, cluster `{}`.",
        platform.path.display(),
        platform.name,
        platform.region,
        platform.cluster_name
    );
    for kind in [
        Kind::S3Bucket,
        Kind::IamRole,
        Kind::IamRolePolicy,
        Kind::EksAccessConfig,
        Kind::EksAccessEntry,
        Kind::EksAddon,
        Kind::IamOidcProvider,
        Kind::K8sObject,
        Kind::CloudFrontDistribution,
    ] {
        for resource in desired
            .resources
            .iter()
            .filter(|r| r.identity.kind() == kind)
        {
            println!(
                "  {}  {} {}",
                resource.address,
                kind.noun(),
                resource.identity
            );
        }
    }
    Ok(0)
}
