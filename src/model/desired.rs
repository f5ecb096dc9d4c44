//! From a validated [`Platform`] and the account it runs in to the [`Desired`] resources.

use serde_json::{Value, json};

use super::policy;
use super::{Address, Adopted, Desired, Fields, Identity, Resource, insert_flat, insert_tags};
use crate::config::{BucketPurpose, Platform, S3_CSI_DRIVER};

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
    /// The CloudFront CallerReference state holds; `None`: a new one.
    pub distribution_reference: Option<String>,
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

impl Environment {
    fn addon(&self, name: &str) -> Option<&AddonFacts> {
        self.addons.iter().find(|a| a.name == name)
    }
}

pub const ACCESS_CONFIG: &str = "eks.access_config";
pub const OIDC_PROVIDER: &str = "iam.oidc_provider.cluster";
pub const NODE_ACCESS_ENTRY: &str = "eks.access_entry.karpenter_node";
/// The service account the Mountpoint S3 CSI driver runs as.
pub const CSI_SERVICE_ACCOUNT: &str = "s3-csi-driver-sa";

/// Address of an add-on.
pub fn addon_address(name: &str) -> Address {
    Address::new(format!("eks.addon.{name}"))
}

/// Address of a principal's access entry: `eks.access_entry.role/Artists`.
pub fn access_entry_address(principal: &str) -> Address {
    let name = principal
        .split_once(":role/")
        .map(|(_, n)| format!("role/{n}"));
    let name = name.or_else(|| {
        principal
            .split_once(":user/")
            .map(|(_, n)| format!("user/{n}"))
    });
    Address::new(format!(
        "eks.access_entry.{}",
        name.unwrap_or_else(|| principal.to_string())
    ))
}

/// Address of the bucket with the given id.
pub fn bucket_address(id: &str) -> Address {
    Address::new(format!("s3.bucket.{id}"))
}

pub const CSI_ROLE: &str = "iam.role.s3_csi_driver";
pub const CSI_POLICY: &str = "iam.role_policy.s3_csi_driver";
pub const NODE_POLICY: &str = "iam.role_policy.node_models_read";

/// Name of the IAM role the Mountpoint S3 CSI driver runs as.
pub fn csi_role_name(platform: &Platform) -> String {
    format!("comfyplat-{}-s3-csi", platform.name)
}

/// Everything the platform wants. Fails only when a template does not render.
pub fn desired(
    platform: &Platform,
    environment: &Environment,
) -> Result<Desired, crate::templates::TemplateError> {
    let tags = platform.resource_tags();
    let mut resources = Vec::new();

    let mut names_by_purpose: Vec<(BucketPurpose, Address, String)> = Vec::new();
    for bucket in &platform.buckets {
        let name = platform.bucket_name(bucket, &environment.account);
        let address = bucket_address(&bucket.id);
        let mut fields = Fields::new();
        insert_flat(
            &mut fields,
            "public_access_block",
            &json!({
                "block_public_acls": true,
                "ignore_public_acls": true,
                "block_public_policy": true,
                "restrict_public_buckets": true,
            }),
        );
        let encryption = match &platform.kms_key_arn {
            Some(key) => {
                json!({"sse_algorithm": "aws:kms", "kms_master_key_id": key, "bucket_key_enabled": true})
            }
            None => json!({"sse_algorithm": "AES256"}),
        };
        insert_flat(&mut fields, "encryption", &encryption);
        fields.insert(
            "policy".to_string(),
            policy::tls_only_bucket_policy(&environment.partition, &name),
        );
        fields.insert(
            "versioning".to_string(),
            Value::String(
                if bucket.versioning {
                    "Enabled"
                } else {
                    "Disabled"
                }
                .to_string(),
            ),
        );
        if let Some(days) = bucket.expire_after_days {
            fields.insert("lifecycle.expiration_days".to_string(), json!(days));
        }
        insert_tags(&mut fields, &tags);
        names_by_purpose.push((bucket.purpose, address.clone(), name.clone()));
        resources.push(Resource {
            address,
            identity: Identity::S3Bucket {
                name,
                region: environment.region.clone(),
            },
            fields,
            depends_on: Vec::new(),
            parameters: Fields::new(),
            yield_to_existing: false,
        });
    }

    let select = |purposes: &[BucketPurpose]| -> (Vec<Address>, Vec<String>) {
        names_by_purpose
            .iter()
            .filter(|(purpose, _, _)| purposes.contains(purpose))
            .map(|(_, address, name)| (address.clone(), name.clone()))
            .unzip()
    };

    // The Mountpoint S3 CSI driver: its own role, reading and writing outputs and inputs.
    let role_name = csi_role_name(platform);
    let pod_identity = environment
        .addon(S3_CSI_DRIVER)
        .is_none_or(|addon| addon.pod_identity);
    let mut notes = platform.notes.clone();
    let trust = match (&environment.cluster.oidc_issuer, pod_identity) {
        (Some(issuer), false) => {
            let version = environment
                .addon(S3_CSI_DRIVER)
                .map(|a| a.version.as_str())
                .unwrap_or_default();
            notes.push(format!(
                "{S3_CSI_DRIVER} {version} does not support EKS Pod Identity: the driver's role trusts the cluster's OIDC provider (IRSA) instead"
            ));
            policy::irsa_trust_policy(
                &environment.partition,
                &environment.account,
                issuer,
                "kube-system",
                CSI_SERVICE_ACCOUNT,
            )
        }
        _ => policy::pod_identity_trust_policy(&environment.account),
    };
    let mut role_depends_on = Vec::new();
    if let (Some(issuer), false) = (&environment.cluster.oidc_issuer, pod_identity) {
        // IRSA needs the cluster's OIDC provider in IAM; an existing one is used as it is.
        let url = issuer.trim_start_matches("https://").to_string();
        let mut fields = Fields::from([("client_ids".to_string(), json!(["sts.amazonaws.com"]))]);
        insert_tags(&mut fields, &tags);
        resources.push(Resource {
            address: Address::new(OIDC_PROVIDER),
            identity: Identity::IamOidcProvider {
                arn: format!(
                    "arn:{}:iam::{}:oidc-provider/{url}",
                    environment.partition, environment.account
                ),
                url,
            },
            fields,
            depends_on: Vec::new(),
            parameters: Fields::new(),
            yield_to_existing: true,
        });
        role_depends_on.push(Address::new(OIDC_PROVIDER));
    }
    let mut role_fields = Fields::new();
    role_fields.insert("trust_policy".to_string(), trust);
    role_fields.insert(
        "description".to_string(),
        Value::String(format!(
            "Mountpoint for Amazon S3 CSI driver of ComfyUI platform {} (managed by comfyplat)",
            platform.name
        )),
    );
    insert_tags(&mut role_fields, &tags);
    resources.push(Resource {
        address: Address::new(CSI_ROLE),
        identity: Identity::IamRole {
            name: role_name.clone(),
        },
        fields: role_fields,
        depends_on: role_depends_on,
        parameters: Fields::new(),
        yield_to_existing: false,
    });
    let (mounted_addresses, mounted_names) =
        select(&[BucketPurpose::Outputs, BucketPurpose::Inputs]);
    let mut depends_on = vec![Address::new(CSI_ROLE)];
    depends_on.extend(mounted_addresses);
    resources.push(Resource {
        address: Address::new(CSI_POLICY),
        identity: Identity::IamRolePolicy {
            role: role_name.clone(),
            policy: "comfyplat-s3-access".to_string(),
        },
        fields: Fields::from([(
            "document".to_string(),
            policy::bucket_access_policy(
                &environment.partition,
                &mounted_names,
                policy::Access::ReadWrite,
                platform.kms_key_arn.as_deref(),
            ),
        )]),
        depends_on,
        parameters: Fields::new(),
        yield_to_existing: false,
    });

    // The GPU nodes: read the models bucket to fill the local model cache.
    let (model_addresses, model_names) = select(&[BucketPurpose::Models]);
    resources.push(Resource {
        address: Address::new(NODE_POLICY),
        identity: Identity::IamRolePolicy {
            role: platform.node_role.clone(),
            policy: format!("comfyplat-{}-models-read", platform.name),
        },
        fields: Fields::from([(
            "document".to_string(),
            policy::bucket_access_policy(
                &environment.partition,
                &model_names,
                policy::Access::Read,
                platform.kms_key_arn.as_deref(),
            ),
        )]),
        depends_on: model_addresses,
        parameters: Fields::new(),
        yield_to_existing: false,
    });

    resources.extend(eks_resources(
        platform,
        environment,
        &role_name,
        pod_identity,
        &tags,
    ));

    let aws_addresses = resources.iter().map(|r| r.address.clone()).collect();
    let objects = super::kubernetes::resources(platform, environment, &aws_addresses)?;
    let ingress = objects
        .iter()
        .find(|r| matches!(&r.identity, Identity::K8sObject { kind, .. } if kind == "Ingress"));
    let distribution = super::edge::distribution(platform, environment, ingress);
    resources.extend(objects);
    resources.extend(distribution);

    Ok(Desired {
        platform: platform.name.clone(),
        resources,
        adopted: vec![Adopted::IamRole {
            name: platform.node_role.clone(),
            setting: "karpenter.node_role".to_string(),
        }],
        notes,
    })
}

/// The cluster's access configuration, access entries and add-ons.
fn eks_resources(
    platform: &Platform,
    environment: &Environment,
    csi_role: &str,
    pod_identity: bool,
    tags: &std::collections::BTreeMap<String, String>,
) -> Vec<Resource> {
    let cluster = &platform.cluster_name;
    let resource =
        |address: Address, identity: Identity, fields: Fields, depends_on: Vec<Address>| Resource {
            address,
            identity,
            fields,
            depends_on,
            parameters: Fields::new(),
            yield_to_existing: false,
        };
    let mut resources = Vec::new();

    // Access entries need the API: step CONFIG_MAP up to API_AND_CONFIG_MAP, never down.
    let mode = if environment.cluster.authentication_mode == "API" {
        "API"
    } else {
        "API_AND_CONFIG_MAP"
    };
    resources.push(resource(
        Address::new(ACCESS_CONFIG),
        Identity::EksAccessConfig {
            cluster: cluster.clone(),
        },
        Fields::from([("authentication_mode".to_string(), json!(mode))]),
        Vec::new(),
    ));

    for grant in &platform.access {
        let mut fields = Fields::from([("type".to_string(), json!("STANDARD"))]);
        if !grant.groups.is_empty() {
            fields.insert("kubernetes_groups".to_string(), json!(grant.groups));
        }
        let scope = match &grant.namespaces {
            Some(namespaces) => json!({"type": "namespace", "namespaces": namespaces}),
            None => json!({"type": "cluster"}),
        };
        fields.insert(
            format!(
                "access_policies.{}",
                grant.policy.arn(&environment.partition)
            ),
            scope,
        );
        insert_tags(&mut fields, tags);
        resources.push(resource(
            access_entry_address(&grant.principal),
            Identity::EksAccessEntry {
                cluster: cluster.clone(),
                principal: grant.principal.clone(),
            },
            fields,
            vec![Address::new(ACCESS_CONFIG)],
        ));
    }

    // The Karpenter nodes join through an EC2_LINUX entry, unless one exists already.
    let mut node_fields = Fields::from([("type".to_string(), json!("EC2_LINUX"))]);
    insert_tags(&mut node_fields, tags);
    let mut node_entry = resource(
        Address::new(NODE_ACCESS_ENTRY),
        Identity::EksAccessEntry {
            cluster: cluster.clone(),
            principal: format!(
                "arn:{}:iam::{}:role/{}",
                environment.partition, environment.account, platform.node_role
            ),
        },
        node_fields,
        vec![Address::new(ACCESS_CONFIG)],
    );
    node_entry.yield_to_existing = true;
    resources.push(node_entry);

    let role_arn = format!(
        "arn:{}:iam::{}:role/{csi_role}",
        environment.partition, environment.account
    );
    let mut previous: Vec<Address> = Vec::new();
    for settings in &platform.addons {
        let Some(facts) = environment.addon(&settings.name) else {
            continue;
        };
        let mut fields = Fields::from([("version".to_string(), json!(facts.version))]);
        if let Some(values) = &settings.configuration_values {
            fields.insert("configuration_values".to_string(), values.clone());
        }
        // EKS runs one cluster update at a time: add-ons wait for the authentication mode.
        let mut depends_on = previous.clone();
        depends_on.push(Address::new(ACCESS_CONFIG));
        if settings.name == S3_CSI_DRIVER {
            if pod_identity {
                fields.insert(
                    format!("pod_identity_associations.{CSI_SERVICE_ACCOUNT}"),
                    json!(role_arn),
                );
            } else {
                fields.insert("service_account_role_arn".to_string(), json!(role_arn));
            }
            depends_on.extend([Address::new(CSI_ROLE), Address::new(CSI_POLICY)]);
        }
        insert_tags(&mut fields, tags);
        let address = addon_address(&settings.name);
        let mut addon = resource(
            address.clone(),
            Identity::EksAddon {
                cluster: cluster.clone(),
                name: settings.name.clone(),
            },
            fields,
            depends_on,
        );
        addon.parameters.insert(
            "resolve_conflicts".to_string(),
            json!(settings.resolve_conflicts),
        );
        resources.push(addon);
        previous.push(address);
    }
    resources
}
