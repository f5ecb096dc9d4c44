//! `comfyplat validate`: checks platform.yaml without any network call.

use super::{Exit, Session};
use crate::cli::Global;
use crate::model::{self, Environment, Kind};

pub fn run(global: &Global) -> anyhow::Result<Exit> {
    let session = Session::open(global)?;
    let platform = &session.platform;
    // Names are shown with the account as a placeholder; plan resolves it.
    let environment = Environment {
        account: platform
            .account
            .clone()
            .unwrap_or_else(|| "{account}".to_string()),
        partition: "aws".to_string(),
        region: platform.region.clone(),
    };
    let desired = model::desired(platform, &environment);
    println!(
        "{} is valid: platform `{}` in {}, cluster `{}`.",
        platform.path.display(),
        platform.name,
        platform.region,
        platform.cluster_name
    );
    for kind in [Kind::S3Bucket, Kind::IamRole, Kind::IamRolePolicy] {
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
