//! EKS add-ons: `eks-pod-identity-agent` and `aws-mountpoint-s3-csi-driver`, the driver
//! with its Pod Identity association (service account `kube-system/s3-csi-driver-sa` runs
//! as the driver's role), or with the role as its IRSA service account role when its
//! version has no Pod Identity support.
//!
//! Fields: `version`, `configuration_values`, `service_account_role_arn`,
//! `pod_identity_associations.<service account>` = role ARN, `tags.*`. Parameter:
//! `resolve_conflicts` for updates.
//!
//! Which version: [`choose_version`] decides, from what the cluster has.

use std::fmt;

use serde::{Deserialize, Serialize};
use serde_json::json;

use super::{eks_access_config, iam_role, iam_role_policy};
use crate::config::{AddonSettings, S3_CSI_DRIVER};
use crate::model::{
    Address, Context, Desired, Fields, ModelError, Resource, ResourceKind, insert_tags,
};

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Id {
    pub cluster: String,
    pub name: String,
}

impl fmt::Display for Id {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} on cluster {}", self.name, self.cluster)
    }
}

/// Address of an add-on.
pub fn address(name: &str) -> Address {
    Address::new(format!("eks.addon.{name}"))
}

/// Whether [`choose_version`] needs the versions the cluster's Kubernetes version offers
/// (`DescribeAddonVersions`): not when the pinned version, or an unpinned add-on's installed
/// one, is what stays.
pub fn needs_versions(settings: &AddonSettings, installed: Option<&str>) -> bool {
    match (&settings.version, installed) {
        (Some(pinned), installed) => installed != Some(pinned.as_str()),
        (None, installed) => installed.is_none(),
    }
}

/// The version of an add-on: pinned (and available for the cluster's Kubernetes version),
/// else the installed one (comfyplat never upgrades on its own), else the default for the
/// cluster's Kubernetes version. `available` is `(version, is default)` for that Kubernetes
/// version; it is needed only when [`needs_versions`] says so.
pub fn choose_version(
    settings: &AddonSettings,
    installed: Option<&str>,
    available: &[(String, bool)],
    kubernetes: &str,
) -> Result<String, ModelError> {
    let unavailable = |version: &str| ModelError::AddonVersionUnavailable {
        addon: settings.name.clone(),
        version: version.to_string(),
        kubernetes: kubernetes.to_string(),
        available: available.iter().map(|(v, _)| v.clone()).collect(),
    };
    match (&settings.version, installed) {
        (Some(pinned), Some(installed)) if installed == pinned => Ok(pinned.clone()),
        (Some(pinned), _) => {
            if available.iter().any(|(v, _)| v == pinned) {
                Ok(pinned.clone())
            } else {
                Err(unavailable(pinned))
            }
        }
        (None, Some(installed)) => Ok(installed.to_string()),
        (None, None) => available
            .iter()
            .find(|(_, default)| *default)
            .or(available.first())
            .map(|(version, _)| version.clone())
            .ok_or_else(|| unavailable("(default)")),
    }
}

impl ResourceKind for Id {
    const NOUN: &'static str = "EKS add-on";

    fn desired(context: &Context, desired: &mut Desired) -> Result<(), ModelError> {
        let (platform, environment) = (context.platform, context.environment);
        let tags = context.environment.resource_tags(platform);
        let role_arn = environment.role_arn(&iam_role::csi_role_name(platform));
        let irsa = iam_role::csi_irsa_issuer(environment).is_some();
        let mut previous: Vec<Address> = Vec::new();
        for settings in &platform.addons {
            let Some(facts) = environment.addon(&settings.name) else {
                continue;
            };
            let mut fields = Fields::from([("version".to_string(), json!(facts.version))]);
            if let Some(values) = &settings.configuration_values {
                fields.insert("configuration_values".to_string(), values.clone());
            }
            // EKS runs one cluster update at a time: add-ons wait for the authentication
            // mode, and for each other.
            let mut depends_on = previous.clone();
            depends_on.push(Address::new(eks_access_config::ADDRESS));
            if settings.name == S3_CSI_DRIVER {
                if irsa {
                    fields.insert("service_account_role_arn".to_string(), json!(role_arn));
                } else {
                    fields.insert(
                        format!(
                            "pod_identity_associations.{}",
                            iam_role::CSI_SERVICE_ACCOUNT
                        ),
                        json!(role_arn),
                    );
                }
                depends_on.extend([
                    Address::new(iam_role::CSI_ROLE),
                    Address::new(iam_role_policy::CSI_POLICY),
                ]);
            }
            insert_tags(&mut fields, &tags);
            let id = Id {
                cluster: platform.cluster_name.clone(),
                name: settings.name.clone(),
            };
            let mut addon =
                Resource::new(address(&settings.name), id, fields).depending_on(depends_on);
            addon.parameters.insert(
                "resolve_conflicts".to_string(),
                json!(settings.resolve_conflicts),
            );
            previous.push(addon.address.clone());
            desired.resources.push(addon);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(version: Option<&str>) -> AddonSettings {
        AddonSettings {
            name: S3_CSI_DRIVER.to_string(),
            version: version.map(str::to_string),
            configuration_values: None,
            resolve_conflicts: "PRESERVE".to_string(),
        }
    }

    fn offered() -> Vec<(String, bool)> {
        vec![
            ("v2.2.0-eksbuild.1".to_string(), false),
            ("v2.1.0-eksbuild.1".to_string(), true),
        ]
    }

    #[test]
    fn a_pinned_version_must_be_offered_unless_it_is_installed() {
        let pinned = settings(Some("v2.2.0-eksbuild.1"));
        assert!(!needs_versions(&pinned, Some("v2.2.0-eksbuild.1")));
        assert_eq!(
            choose_version(&pinned, Some("v2.2.0-eksbuild.1"), &[], "1.33").unwrap(),
            "v2.2.0-eksbuild.1"
        );
        assert!(needs_versions(&pinned, Some("v2.1.0-eksbuild.1")));
        assert_eq!(
            choose_version(&pinned, None, &offered(), "1.33").unwrap(),
            "v2.2.0-eksbuild.1"
        );
        let missing = settings(Some("v9.9.9-eksbuild.1"));
        match choose_version(&missing, None, &offered(), "1.33") {
            Err(ModelError::AddonVersionUnavailable { available, .. }) => {
                assert_eq!(available.len(), 2)
            }
            other => panic!("expected the version to be refused, got {other:?}"),
        }
    }

    #[test]
    fn unpinned_add_ons_keep_what_is_installed_or_take_the_default() {
        let unpinned = settings(None);
        assert!(!needs_versions(&unpinned, Some("v2.0.0-eksbuild.1")));
        assert_eq!(
            choose_version(&unpinned, Some("v2.0.0-eksbuild.1"), &[], "1.33").unwrap(),
            "v2.0.0-eksbuild.1"
        );
        assert!(needs_versions(&unpinned, None));
        assert_eq!(
            choose_version(&unpinned, None, &offered(), "1.33").unwrap(),
            "v2.1.0-eksbuild.1"
        );
        assert!(choose_version(&unpinned, None, &[], "1.33").is_err());
    }
}
