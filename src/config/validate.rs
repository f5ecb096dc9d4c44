//! Semantic checks of a parsed platform file and the defaults it gets.
//!
//! Every check that fails adds a [`Diagnostic`] at the value's own location; all of them are
//! reported together. The rules follow the AWS limits (S3 bucket naming, IAM names, tag
//! limits) so that a file that validates is never refused by an API for its shape.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use serde_saphyr::Spanned;

use super::arn::{Arn, check_partition, iam_name_problem, is_account_id};
use super::diagnostic::{ConfigError, Diagnostic};
use super::schema::{BucketFile, PlatformFile};
use super::workloads::{self, Problems};
use super::{
    AccessGrant, AccessPolicy, AddonSettings, BucketPurpose, BucketSettings, OWNER_TAG,
    POD_IDENTITY_AGENT, PathKind, Platform, ReferencedPath, S3_CSI_DRIVER, SCHEMA_VERSION,
    expand_name,
};

/// Most tags an S3 bucket or IAM role can carry, less the ownership tag.
const MAX_USER_TAGS: usize = 49;
/// A placeholder account of the right length, to check name lengths before the account is known.
const SAMPLE_ACCOUNT: &str = "000000000000";

pub fn validate(path: &Path, text: &str, file: PlatformFile) -> Result<Platform, ConfigError> {
    let mut problems = Vec::new();
    let mut report = |spanned_line: usize, column: usize, message: String, hint: &str| {
        let mut diagnostic = Diagnostic::new(spanned_line, column, message);
        if !hint.is_empty() {
            diagnostic = diagnostic.with_hint(hint);
        }
        problems.push(diagnostic);
    };
    let at = |spanned: &Spanned<String>| {
        (
            spanned.referenced.line() as usize,
            spanned.referenced.column() as usize,
        )
    };

    if file.version.value != SCHEMA_VERSION {
        report(
            file.version.referenced.line() as usize,
            file.version.referenced.column() as usize,
            format!("unsupported schema version `{}`", file.version.value),
            "this comfyplat reads `version: 1`",
        );
    }

    let name = &file.name;
    if let Err(why) = check_platform_name(&name.value) {
        let (line, column) = at(name);
        report(
            line,
            column,
            format!("invalid platform name `{}`: {why}", name.value),
            "use 2 to 32 lowercase letters, digits and hyphens, starting with a letter, e.g. `studio-a`",
        );
    }
    // The region first: bucket names, key and certificate regions and ARN partitions depend
    // on it, and are not checked against a region that is wrong.
    let region = &file.region;
    let known_region = match super::regions::check(&region.value) {
        Ok(()) => Some(region.value.as_str()),
        Err((message, hint)) => {
            let (line, column) = at(region);
            report(line, column, message, &hint);
            None
        }
    };
    if let Some(account) = &file.account
        && !is_account_id(&account.value)
    {
        let (line, column) = at(account);
        report(
            line,
            column,
            format!("`{}` is not an AWS account id", account.value),
            "an account id is 12 digits; quote it to keep leading zeros, e.g. `account: \"012345678901\"`",
        );
    }
    let cluster = &file.cluster.name;
    if !is_cluster_name(&cluster.value) {
        let (line, column) = at(cluster);
        report(
            line,
            column,
            format!("`{}` is not a valid EKS cluster name", cluster.value),
            "EKS cluster names have 1 to 100 letters, digits, hyphens and underscores and start with a letter or digit",
        );
    }
    let node_role = &file.karpenter.node_role;
    if node_role.value.starts_with("arn:") {
        let (line, column) = at(node_role);
        let role_name = node_role.value.rsplit('/').next().unwrap_or_default();
        report(
            line,
            column,
            "`karpenter.node_role` takes the role name, not its ARN".to_string(),
            &format!("write `node_role: {role_name}`"),
        );
    } else if let Some(why) = iam_name_problem(&node_role.value, 64) {
        let (line, column) = at(node_role);
        report(
            line,
            column,
            format!("`{}` is not a valid IAM role name: {why}", node_role.value),
            "IAM role names have 1 to 64 ASCII letters, digits and `+=,.@_-`; retype the name, or copy it from `aws iam list-roles`",
        );
    }

    let mut tags = BTreeMap::new();
    if file.tags.len() > MAX_USER_TAGS
        && let Some((key, _)) = file.tags.iter().nth(MAX_USER_TAGS)
    {
        let (line, column) = at(&key.0);
        report(
            line,
            column,
            format!(
                "{} tags given; at most {MAX_USER_TAGS} are allowed",
                file.tags.len()
            ),
            "S3 buckets and IAM roles take 50 tags, one of which is comfyplat's ownership tag",
        );
    }
    for (key, value) in &file.tags {
        let (line, column) = at(&key.0);
        let key_text = &key.0.value;
        if key_text.starts_with("aws:") || key_text.starts_with("comfyplat:") {
            report(
                line,
                column,
                format!("tag key `{key_text}` uses a reserved prefix"),
                &format!(
                    "`aws:` is reserved by AWS and `comfyplat:` by comfyplat (it sets `{OWNER_TAG}` itself)"
                ),
            );
        } else if key_text.is_empty() || key_text.chars().count() > 128 || !is_tag_text(key_text) {
            report(
                line,
                column,
                format!("invalid tag key `{key_text}`"),
                "tag keys have 1 to 128 letters, digits, spaces and `_.:/=+-@`",
            );
        }
        if value.value.chars().count() > 256 || !is_tag_text(&value.value) {
            let (line, column) = at(value);
            report(
                line,
                column,
                format!("invalid value for tag `{key_text}`"),
                "tag values have up to 256 letters, digits, spaces and `_.:/=+-@`",
            );
        }
        tags.insert(key_text.clone(), value.value.clone());
    }

    let storage = &file.storage;
    let mut buckets = Vec::new();
    let mut add_bucket =
        |id: &str,
         purpose: BucketPurpose,
         bucket: &BucketFile,
         report: &mut dyn FnMut(usize, usize, String, &str)| {
            let default_template = format!("comfyui-{id}-{{account}}-{{region}}");
            let template = bucket
                .name
                .as_ref()
                .map(|spanned| spanned.value.clone())
                .unwrap_or(default_template);
            let sample = expand_name(
                &template,
                SAMPLE_ACCOUNT,
                &file.region.value,
                &file.name.value,
            );
            let location = bucket.name.as_ref().map(at);
            // A name made from a region that is wrong says nothing: the region's own
            // problem is reported.
            let checked = known_region.is_some() || !template.contains("{region}");
            if let Err(why) = check_placeholders(&template).and_then(|()| {
                if checked {
                    check_bucket_name(&sample)
                } else {
                    Ok(())
                }
            }) {
                let (line, column) = location.unwrap_or_else(|| (file.storage_line(), 1));
                let hint = if location.is_some() {
                    "S3 bucket names have 3 to 63 lowercase letters, digits, hyphens and dots, and start and end with a letter or digit; `{account}` counts as 12 characters"
                } else {
                    "the default name is too long for this platform or region; set `name:` for this bucket"
                };
                report(
                    line,
                    column,
                    format!("invalid bucket name `{template}` for `storage.{id}`: {why}"),
                    hint,
                );
            }
            if id != "models"
                && let Some(sync) = &bucket.sync
            {
                report(
                    sync.referenced.line() as usize,
                    sync.referenced.column() as usize,
                    format!("`sync` is a setting of `storage.models`, not of `storage.{id}`"),
                    "the GPU nodes mirror the models bucket only; move `sync` under `storage.models`",
                );
            }
            let mut expire_after_days = None;
            if let Some(days) = &bucket.expire_after_days {
                if (1..=36_500).contains(&days.value) {
                    expire_after_days = u32::try_from(days.value).ok();
                } else {
                    report(
                        days.referenced.line() as usize,
                        days.referenced.column() as usize,
                        format!(
                            "`expire_after_days` must be between 1 and 36500, not {}",
                            days.value
                        ),
                        "leave it out to keep objects forever",
                    );
                }
            }
            buckets.push((
                BucketSettings {
                    id: id.to_string(),
                    purpose,
                    name_template: template,
                    versioning: bucket.versioning.unwrap_or(false),
                    expire_after_days,
                },
                location,
            ));
        };
    add_bucket(
        "models",
        BucketPurpose::Models,
        &storage.models,
        &mut report,
    );
    add_bucket(
        "outputs",
        BucketPurpose::Outputs,
        &storage.outputs,
        &mut report,
    );
    if let Some(inputs) = &storage.inputs {
        add_bucket("inputs", BucketPurpose::Inputs, inputs, &mut report);
    }
    for (key, bucket) in &storage.extra {
        let id = &key.0.value;
        if ["models", "outputs", "inputs"].contains(&id.as_str()) || !is_bucket_id(id) {
            let (line, column) = at(&key.0);
            report(
                line,
                column,
                format!("invalid extra bucket id `{id}`"),
                "ids have 1 to 20 lowercase letters, digits and hyphens and differ from `models`, `outputs` and `inputs`",
            );
        }
        add_bucket(id, BucketPurpose::Extra, bucket, &mut report);
    }
    let mut seen = BTreeSet::new();
    for (bucket, location) in &buckets {
        if !seen.insert(bucket.name_template.clone()) {
            let (line, column) = location.unwrap_or((file.storage_line(), 1));
            report(
                line,
                column,
                format!("bucket name `{}` is used twice", bucket.name_template),
                "every bucket needs its own name",
            );
        }
    }

    if let Some(key) = &storage.kms_key_arn
        && let Some(region) = known_region
        && let Err(why) = check_kms_key_arn(&key.value, region)
    {
        let (line, column) = at(key);
        report(
            line,
            column,
            format!("invalid `kms_key_arn`: {why}"),
            "give the full key ARN, e.g. `arn:aws:kms:us-west-2:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab` (aliases cannot be scoped in IAM policies)",
        );
    }

    let mut notes = Vec::new();
    let mut access = Vec::new();
    let mut principals = BTreeSet::new();
    for grant in &file.access {
        let (line, column) = at(&grant.principal);
        let principal = match principal_arn(&grant.principal.value, known_region) {
            Ok((arn, rewritten)) => {
                if rewritten {
                    notes.push(format!(
                        "access: `{}` is an assumed-role session; using its role `{arn}` (a role with a path needs its full ARN)",
                        grant.principal.value
                    ));
                }
                arn
            }
            Err(why) => {
                let partition = known_region
                    .and_then(super::regions::partition)
                    .unwrap_or("aws");
                let hint = if why.contains("partition") {
                    format!(
                        "principals of a platform in `{}` are `arn:{partition}:iam::<account>:role/<name>` or `...:user/<name>`",
                        file.region.value
                    )
                } else if why.contains("wildcards") {
                    "give each role or user its own entry, e.g. `arn:aws:iam::123456789012:role/Artists`".to_string()
                } else {
                    "give an IAM role or user ARN, e.g. `arn:aws:iam::123456789012:role/Artists`"
                        .to_string()
                };
                report(
                    line,
                    column,
                    format!("invalid `principal` `{}`: {why}", grant.principal.value),
                    &hint,
                );
                continue;
            }
        };
        if !principals.insert(principal.clone()) {
            report(
                line,
                column,
                format!("principal `{principal}` is listed twice"),
                "list each principal once",
            );
        }
        let policy = match access_policy(&grant.policy.value) {
            Some(policy) => {
                if let (AccessPolicy::Arn(text), Some(region)) = (&policy, known_region)
                    && let Some(arn) = Arn::parse(text)
                    && let Err(why) = check_partition(&arn, region)
                {
                    let (line, column) = at(&grant.policy);
                    report(
                        line,
                        column,
                        format!("invalid access policy `{text}`: {why}"),
                        "use a short name (`cluster-admin`, `admin`, `edit`, `view`), which takes the partition of the account",
                    );
                }
                policy
            }
            None => {
                let (line, column) = at(&grant.policy);
                let suggestion = super::did_you_mean(
                    &grant.policy.value,
                    POLICY_NAMES.iter().map(|(short, _)| *short),
                )
                .map(|near| format!("did you mean `{near}`? "))
                .unwrap_or_default();
                report(
                    line,
                    column,
                    format!("unknown access policy `{}`", grant.policy.value),
                    &format!(
                        "{suggestion}use `cluster-admin`, `admin`, `edit`, `view`, or a full ARN `arn:aws:eks::aws:cluster-access-policy/...`"
                    ),
                );
                continue;
            }
        };
        let namespaces = match &grant.namespaces {
            Some(list) => {
                let (line, column) = (
                    list.referenced.line() as usize,
                    list.referenced.column() as usize,
                );
                if list.value.is_empty() {
                    report(
                        line,
                        column,
                        "`namespaces` is empty".to_string(),
                        "list at least one namespace, or leave `namespaces` out for the whole cluster",
                    );
                }
                if let Some(bad) = list.value.iter().find(|n| !is_namespace_pattern(n)) {
                    report(
                        line,
                        column,
                        format!("`{bad}` is not a Kubernetes namespace name"),
                        "namespaces have 1 to 63 lowercase letters, digits and hyphens (a trailing `*` matches a prefix)",
                    );
                }
                let mut sorted = list.value.clone();
                sorted.sort();
                sorted.dedup();
                Some(sorted)
            }
            None => None,
        };
        let groups = match &grant.groups {
            Some(list) => {
                let (line, column) = (
                    list.referenced.line() as usize,
                    list.referenced.column() as usize,
                );
                if let Some(bad) = list
                    .value
                    .iter()
                    .find(|g| g.is_empty() || g.starts_with("system:"))
                {
                    report(
                        line,
                        column,
                        format!("invalid Kubernetes group `{bad}`"),
                        "EKS refuses empty groups and groups starting with `system:`; use an access policy for built-in permissions",
                    );
                }
                let mut sorted = list.value.clone();
                sorted.sort();
                sorted.dedup();
                sorted
            }
            None => Vec::new(),
        };
        access.push(AccessGrant {
            principal,
            policy,
            namespaces,
            groups,
        });
    }

    let mut addons = Vec::new();
    for (name, addon) in [
        (POD_IDENTITY_AGENT, &file.addons.pod_identity_agent),
        (S3_CSI_DRIVER, &file.addons.s3_csi_driver),
    ] {
        if let Some(version) = &addon.version
            && !is_addon_version(&version.value)
        {
            let (line, column) = at(version);
            report(
                line,
                column,
                format!("`{}` is not an EKS add-on version", version.value),
                "add-on versions look like `v2.1.0-eksbuild.1`; leave `version` out for the cluster's default",
            );
        }
        let configuration_values = match &addon.configuration_values {
            None => None,
            Some(spanned) => {
                let (line, column) = (
                    spanned.referenced.line() as usize,
                    spanned.referenced.column() as usize,
                );
                match configuration_object(&spanned.value) {
                    Ok(value) => Some(value),
                    Err(why) => {
                        report(
                            line,
                            column,
                            format!("invalid `configuration_values` for `{name}`: {why}"),
                            "give a mapping, or a string holding a JSON or YAML object",
                        );
                        None
                    }
                }
            }
        };
        let resolve_conflicts = match &addon.resolve_conflicts {
            None => "PRESERVE".to_string(),
            Some(spanned) => match spanned.value.to_ascii_lowercase().as_str() {
                "preserve" => "PRESERVE".to_string(),
                "overwrite" => "OVERWRITE".to_string(),
                "none" => "NONE".to_string(),
                _ => {
                    let (line, column) = at(spanned);
                    report(
                        line,
                        column,
                        format!("unknown `resolve_conflicts` value `{}`", spanned.value),
                        "use `preserve` (keep changes made outside EKS), `overwrite` or `none`",
                    );
                    "PRESERVE".to_string()
                }
            },
        };
        addons.push(AddonSettings {
            name: name.to_string(),
            version: addon.version.as_ref().map(|v| v.value.clone()),
            configuration_values,
            resolve_conflicts,
        });
    }

    let base = path.parent().unwrap_or(Path::new("."));
    let mut problems_out = Problems(&mut problems);
    let kubernetes = workloads::kubernetes(base, &file.kubernetes, &mut problems_out);
    let node_pool = workloads::node_pool(&file.karpenter, &mut problems_out, &mut notes);
    let has_inputs = file.storage.inputs.is_some();
    let models_sync =
        workloads::model_prefixes(file.storage.models.sync.as_ref(), &mut problems_out);
    let image_repository = super::images::image_repository(
        file.image_repository.as_ref(),
        &file.name.value,
        known_region,
        &mut problems_out,
    );
    let comfyui = file.comfyui.as_ref().map(|comfyui| {
        workloads::comfyui(
            comfyui,
            has_inputs,
            node_pool.max_gpus,
            &node_pool.instance_types,
            image_repository.as_ref(),
            &mut problems_out,
            &mut notes,
        )
    });
    let cdn = super::edge::cdn(
        file.cdn.as_ref(),
        comfyui.as_ref(),
        file.comfyui
            .as_ref()
            .and_then(|c| c.ingress.scheme.as_ref()),
        known_region,
        super::edge::key_position(text, "cdn"),
        &mut problems_out,
    );
    let templates_dir = file
        .templates_dir
        .as_ref()
        .map(|dir| workloads::resolve(base, &dir.value));
    let mut referenced_paths = Vec::new();
    for (key, value, path, expected) in [
        (
            "kubernetes.kubeconfig",
            file.kubernetes.kubeconfig.as_ref(),
            kubernetes.kubeconfig.as_ref(),
            PathKind::File,
        ),
        (
            "templates_dir",
            file.templates_dir.as_ref(),
            templates_dir.as_ref(),
            PathKind::Directory,
        ),
    ] {
        if let (Some(value), Some(path)) = (value, path) {
            let (line, column) = at(value);
            referenced_paths.push(ReferencedPath {
                key,
                path: path.clone(),
                expected,
                line,
                column,
            });
        }
    }

    if !problems.is_empty() {
        problems.sort_by_key(|d| (d.line, d.column));
        return Err(ConfigError::invalid(path, text, problems));
    }
    Ok(Platform {
        path: path.to_path_buf(),
        name: file.name.value,
        region: file.region.value,
        account: file.account.map(|a| a.value),
        cluster_name: file.cluster.name.value,
        node_role: file.karpenter.node_role.value,
        tags,
        buckets: buckets.into_iter().map(|(bucket, _)| bucket).collect(),
        kms_key_arn: file.storage.kms_key_arn.map(|k| k.value),
        models_sync,
        access,
        addons,
        kubernetes,
        node_pool,
        image_repository,
        comfyui,
        cdn,
        templates_dir,
        referenced_paths,
        notes,
    })
}

/// Short names of the EKS access policies and the policy they stand for.
const POLICY_NAMES: &[(&str, &str)] = &[
    ("cluster-admin", "AmazonEKSClusterAdminPolicy"),
    ("admin", "AmazonEKSAdminPolicy"),
    ("edit", "AmazonEKSEditPolicy"),
    ("view", "AmazonEKSViewPolicy"),
];

fn access_policy(text: &str) -> Option<AccessPolicy> {
    if let Some((_, name)) = POLICY_NAMES.iter().find(|(short, _)| *short == text) {
        return Some(AccessPolicy::Managed(name.to_string()));
    }
    Arn::parse(text)
        .filter(|arn| {
            arn.service == "eks"
                && arn
                    .resource
                    .strip_prefix("cluster-access-policy/")
                    .is_some_and(|name| !name.is_empty())
        })
        .map(|_| AccessPolicy::Arn(text.to_string()))
}

/// A principal's IAM ARN, and whether it was rewritten from an assumed-role session ARN.
/// With the region known, the ARN must be of its partition.
fn principal_arn(text: &str, region: Option<&str>) -> Result<(String, bool), String> {
    let Some(parsed) = Arn::parse(text) else {
        return Err("it is not an ARN".to_string());
    };
    let Arn {
        partition,
        service,
        account,
        resource,
        ..
    } = parsed;
    if text.contains(['*', '?']) {
        return Err(
            "wildcards are not allowed: an access entry is for one IAM role or user".to_string(),
        );
    }
    if let Some(region) = region {
        check_partition(&parsed, region)?;
    }
    if !is_account_id(account) {
        return Err(format!("`{account}` is not an account id"));
    }
    match service {
        "iam" => {
            let Some((kind, path_and_name)) = resource
                .split_once('/')
                .filter(|(kind, _)| *kind == "role" || *kind == "user")
            else {
                return Err("only IAM roles and users can have access entries".to_string());
            };
            let (path, name) = path_and_name
                .rsplit_once('/')
                .unwrap_or(("", path_and_name));
            if let Some(why) = iam_name_problem(name, 64) {
                return Err(format!("the {kind} name `{name}` is not valid: {why}"));
            }
            if let Some(bad) = path.chars().find(|c| !c.is_ascii_graphic()) {
                return Err(format!(
                    "the path `/{path}/` has `{bad}` (U+{:04X}); IAM paths have only printable ASCII characters",
                    u32::from(bad)
                ));
            }
            Ok((text.to_string(), false))
        }
        "sts" => match resource
            .strip_prefix("assumed-role/")
            .and_then(|rest| rest.split_once('/'))
        {
            Some((role, _session)) if !role.is_empty() => {
                if let Some(why) = iam_name_problem(role, 64) {
                    return Err(format!("the role name `{role}` is not valid: {why}"));
                }
                Ok((format!("arn:{partition}:iam::{account}:role/{role}"), true))
            }
            _ => Err("only assumed-role session ARNs can stand for a role".to_string()),
        },
        _ => Err("only IAM roles and users can have access entries".to_string()),
    }
}

fn is_namespace_pattern(name: &str) -> bool {
    let base = name.strip_suffix('*').unwrap_or(name);
    (1..=63).contains(&name.len())
        && (base.is_empty() && name == "*" || !base.is_empty())
        && base
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !base.starts_with('-')
}

fn is_addon_version(version: &str) -> bool {
    let Some(rest) = version.strip_prefix('v') else {
        return false;
    };
    let Some((semver, build)) = rest.split_once("-eksbuild.") else {
        return false;
    };
    semver.split('.').count() == 3
        && semver
            .split('.')
            .all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()))
        && !build.is_empty()
        && build.bytes().all(|b| b.is_ascii_digit())
}

/// Add-on configuration as a JSON object: a mapping as is, a string parsed as JSON or YAML.
fn configuration_object(value: &serde_json::Value) -> Result<serde_json::Value, String> {
    let parsed = match value {
        serde_json::Value::String(text) => serde_json::from_str(text)
            .or_else(|_| serde_saphyr::from_str::<serde_json::Value>(text))
            .map_err(|_| "the string is neither JSON nor YAML".to_string())?,
        other => other.clone(),
    };
    if parsed.is_object() {
        Ok(parsed)
    } else {
        Err("it must be an object (key: value pairs)".to_string())
    }
}

impl PlatformFile {
    /// Where problems with defaulted bucket names are reported: the `name` line, since the
    /// default names are derived from it.
    fn storage_line(&self) -> usize {
        self.name.referenced.line() as usize
    }
}

fn check_platform_name(name: &str) -> Result<(), &'static str> {
    let len = name.len();
    if !(2..=32).contains(&len) {
        return Err("it must have 2 to 32 characters");
    }
    if !name.starts_with(|c: char| c.is_ascii_lowercase()) {
        return Err("it must start with a lowercase letter");
    }
    if name.ends_with('-') {
        return Err("it must not end with a hyphen");
    }
    if !name
        .bytes()
        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
    {
        return Err("only lowercase letters, digits and hyphens are allowed");
    }
    Ok(())
}

fn is_cluster_name(name: &str) -> bool {
    (1..=100).contains(&name.len())
        && name.starts_with(|c: char| c.is_ascii_alphanumeric())
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

fn is_tag_text(text: &str) -> bool {
    text.chars()
        .all(|c| c.is_alphanumeric() || c == ' ' || "_.:/=+-@".contains(c))
}

fn is_bucket_id(id: &str) -> bool {
    (1..=20).contains(&id.len())
        && id.starts_with(|c: char| c.is_ascii_lowercase())
        && id
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
}

fn check_placeholders(template: &str) -> Result<(), String> {
    let mut rest = template;
    while let Some(start) = rest.find('{') {
        let Some(end) = rest[start..].find('}') else {
            return Err("`{` without a closing `}`".to_string());
        };
        let placeholder = &rest[start..start + end + 1];
        if !["{account}", "{region}", "{name}"].contains(&placeholder) {
            return Err(format!(
                "unknown placeholder `{placeholder}` (use `{{account}}`, `{{region}}` or `{{name}}`)"
            ));
        }
        rest = &rest[start + end + 1..];
    }
    if rest.contains('}') {
        return Err("`}` without an opening `{`".to_string());
    }
    Ok(())
}

/// The S3 general purpose bucket naming rules.
pub fn check_bucket_name(name: &str) -> Result<(), String> {
    let len = name.len();
    if len < 3 {
        return Err("it is shorter than 3 characters".to_string());
    }
    if len > 63 {
        return Err(format!("it is {len} characters long; the limit is 63"));
    }
    if let Some(bad) = name
        .chars()
        .find(|c| !(c.is_ascii_lowercase() || c.is_ascii_digit() || *c == '-' || *c == '.'))
    {
        return Err(format!(
            "`{bad}` is not allowed (only lowercase letters, digits, `-` and `.`)"
        ));
    }
    let first_last_ok =
        |c: Option<char>| c.is_some_and(|c| c.is_ascii_lowercase() || c.is_ascii_digit());
    if !first_last_ok(name.chars().next()) || !first_last_ok(name.chars().last()) {
        return Err("it must start and end with a letter or digit".to_string());
    }
    if name.contains("..") || name.contains(".-") || name.contains("-.") {
        return Err("dots may not be next to each other or to a hyphen".to_string());
    }
    if name.split('.').count() == 4
        && name
            .split('.')
            .all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()))
    {
        return Err("it must not look like an IP address".to_string());
    }
    for prefix in ["xn--", "sthree-", "amzn-s3-demo-"] {
        if name.starts_with(prefix) {
            return Err(format!("the prefix `{prefix}` is reserved"));
        }
    }
    for suffix in ["-s3alias", "--ol-s3", ".mrap", "--x-s3", "--table-s3"] {
        if name.ends_with(suffix) {
            return Err(format!("the suffix `{suffix}` is reserved"));
        }
    }
    Ok(())
}

pub(super) fn check_kms_key_arn(arn: &str, region: &str) -> Result<(), String> {
    let Some(parts) = Arn::parse(arn).filter(|a| a.service == "kms") else {
        return Err(format!("`{arn}` is not a KMS key ARN"));
    };
    check_partition(&parts, region)?;
    if parts.region != region {
        return Err(format!(
            "the key is in `{}` but the buckets are in `{region}`; S3 needs a key in the bucket's region",
            parts.region
        ));
    }
    if !is_account_id(parts.account) {
        return Err(format!("`{}` is not an account id", parts.account));
    }
    match parts.resource.strip_prefix("key/") {
        Some(id) if !id.is_empty() => Ok(()),
        _ => Err("the resource must be `key/<key id>`, not an alias".to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bucket_names_follow_the_s3_rules() {
        assert!(check_bucket_name("comfyui-models-123456789012-us-west-2").is_ok());
        assert!(check_bucket_name("ab").is_err());
        assert!(check_bucket_name(&"a".repeat(64)).is_err());
        assert!(check_bucket_name(&"a".repeat(63)).is_ok());
        assert!(check_bucket_name("Upper").is_err());
        assert!(check_bucket_name("-start").is_err());
        assert!(check_bucket_name("a..b").is_err());
        assert!(check_bucket_name("192.168.5.4").is_err());
        assert!(check_bucket_name("xn--abc").is_err());
        assert!(check_bucket_name("abc-s3alias").is_err());
    }

    #[test]
    fn regions_are_recognised() {
        for ok in [
            "us-west-2",
            "eu-central-1",
            "us-gov-west-1",
            "ap-southeast-4",
        ] {
            assert!(super::super::regions::check(ok).is_ok(), "{ok}");
        }
        for bad in ["uswest2", "us-west", "US-WEST-2", "us--2", "u-west-2"] {
            assert!(super::super::regions::check(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn placeholders_are_checked() {
        assert!(check_placeholders("a-{account}-{region}-{name}").is_ok());
        assert!(check_placeholders("a-{acount}").is_err());
        assert!(check_placeholders("a-{account").is_err());
        assert!(check_placeholders("a-account}").is_err());
    }

    #[test]
    fn principals_are_role_or_user_arns_and_sessions_become_their_role() {
        assert_eq!(
            principal_arn(
                "arn:aws:sts::123456789012:assumed-role/Artists/alice",
                Some("us-west-2")
            ),
            Ok(("arn:aws:iam::123456789012:role/Artists".to_string(), true))
        );
        assert_eq!(
            principal_arn("arn:aws:iam::123456789012:user/bob", Some("us-west-2")),
            Ok(("arn:aws:iam::123456789012:user/bob".to_string(), false))
        );
        assert!(principal_arn("arn:aws:iam::123456789012:group/artists", None).is_err());
        assert!(principal_arn("arn:aws:iam::1234:role/x", None).is_err());
        assert!(principal_arn("Artists", None).is_err());
    }

    #[test]
    fn principals_of_another_partition_are_refused() {
        let china = principal_arn(
            "arn:aws-cn:iam::123456789012:role/Artists",
            Some("us-west-2"),
        )
        .expect_err("another partition");
        assert!(china.contains("partition `aws-cn`"), "{china}");
        let gov = principal_arn(
            "arn:aws-us-gov:iam::123456789012:user/bob",
            Some("eu-west-1"),
        )
        .expect_err("another partition");
        assert!(
            gov.contains("`aws-us-gov`") && gov.contains("`aws`"),
            "{gov}"
        );
        assert!(
            principal_arn(
                "arn:aws-cn:iam::123456789012:role/Artists",
                Some("cn-north-1")
            )
            .is_ok()
        );
        assert!(
            principal_arn(
                "arn:aws-us-gov:iam::123456789012:role/Artists",
                Some("us-gov-west-1")
            )
            .is_ok()
        );
    }

    #[test]
    fn wildcard_principals_are_refused() {
        let why = principal_arn("arn:aws:iam::123456789012:role/*", Some("us-west-2"))
            .expect_err("a wildcard");
        assert!(why.contains("wildcards are not allowed"), "{why}");
        assert!(principal_arn("arn:aws:iam::123456789012:user/a?", None).is_err());
    }

    #[test]
    fn homoglyph_principal_names_are_refused() {
        // `Artists` with a Cyrillic `і` (U+0456) for the `i`.
        let why = principal_arn("arn:aws:iam::123456789012:role/Art\u{0456}sts", None)
            .expect_err("a homoglyph");
        assert!(why.contains("U+0456"), "{why}");
        let why = principal_arn(
            "arn:aws:sts::123456789012:assumed-role/Art\u{0456}sts/alice",
            None,
        )
        .expect_err("a homoglyph in a session's role");
        assert!(why.contains("U+0456"), "{why}");
        assert!(principal_arn("arn:aws:iam::123456789012:role/team/a/Artists", None).is_ok());
        assert!(principal_arn("arn:aws:iam::123456789012:role/Art ists", None).is_err());
    }

    fn problems_of(extra: &str) -> Vec<String> {
        let text = format!(
            "version: 1\nname: studio\nregion: us-west-2\ncluster:\n  name: c\nkarpenter:\n  node_role: r\n{extra}"
        );
        match super::super::from_bytes(Path::new("p.yaml"), text.as_bytes()) {
            Ok(platform) => platform.notes,
            Err(error) => error
                .diagnostics()
                .iter()
                .map(|d| format!("{}:{}: {}", d.line, d.column, d.message))
                .collect(),
        }
    }

    #[test]
    fn a_pod_asking_for_more_gpus_than_any_instance_type_has_is_refused() {
        let problems = problems_of(
            "  instance_types: [g6.2xlarge, g5.4xlarge]\ncomfyui:\n  image: r/c:v1\n  gpus: 4\n  replicas: 1\n  # max_gpus 8 by default\n",
        );
        assert_eq!(
            problems,
            vec![
                "11:9: a pod asks for 4 GPUs, but no type in `karpenter.instance_types` has that many (g6.2xlarge: 1, g5.4xlarge: 1)"
            ]
        );
        let notes = problems_of(
            "  instance_types: [g6.2xlarge, g6.12xlarge]\ncomfyui:\n  image: r/c:v1\n  gpus: 4\n",
        );
        assert!(
            notes
                .iter()
                .any(|n| n.contains("g6.2xlarge cannot hold a pod that asks for 4 GPUs")),
            "{notes:?}"
        );
    }

    #[test]
    fn a_wrong_region_stops_the_checks_that_depend_on_it() {
        let problems =
            problems_of("storage:\n  kms_key_arn: arn:aws:kms:us-west-2:123456789012:key/abcd\n");
        assert!(problems.is_empty(), "{problems:?}");
        let text = "version: 1\nname: studio\nregion: US-WEST-2\ncluster:\n  name: c\nkarpenter:\n  node_role: r\nstorage:\n  kms_key_arn: arn:aws:kms:us-west-2:123456789012:key/abcd\n  models:\n    name: Bad_Name\n";
        let error = super::super::from_bytes(Path::new("p.yaml"), text.as_bytes())
            .expect_err("a wrong region");
        let messages: Vec<&str> = error
            .diagnostics()
            .iter()
            .map(|d| d.message.as_str())
            .collect();
        // The region, and the bucket name that does not depend on it; no bucket name made
        // from the region, no key-region mismatch.
        assert_eq!(messages.len(), 2, "{messages:?}");
        assert!(
            messages[0].contains("region codes are lowercase"),
            "{messages:?}"
        );
        assert!(
            messages[1].contains("invalid bucket name `Bad_Name`"),
            "{messages:?}"
        );
    }

    #[test]
    fn kms_keys_of_another_partition_are_refused() {
        let why = check_kms_key_arn(
            "arn:aws-cn:kms:us-west-2:123456789012:key/1234abcd",
            "us-west-2",
        )
        .expect_err("another partition");
        assert!(why.contains("partition `aws-cn`"), "{why}");
        assert!(
            check_kms_key_arn(
                "arn:aws-cn:kms:cn-north-1:123456789012:key/1234abcd",
                "cn-north-1"
            )
            .is_ok()
        );
    }

    #[test]
    fn access_policies_and_addon_versions_are_recognised() {
        assert_eq!(
            access_policy("view"),
            Some(AccessPolicy::Managed("AmazonEKSViewPolicy".to_string()))
        );
        assert!(
            access_policy("arn:aws:eks::aws:cluster-access-policy/AmazonEKSAdminViewPolicy")
                .is_some()
        );
        assert!(access_policy("viewer").is_none());
        assert!(is_addon_version("v2.1.0-eksbuild.1"));
        assert!(!is_addon_version("2.1.0"));
        assert!(!is_addon_version("v2.1-eksbuild.1"));
        assert!(is_namespace_pattern("comfyui") && is_namespace_pattern("dev-*"));
        assert!(!is_namespace_pattern("Dev") && !is_namespace_pattern(""));
    }

    #[test]
    fn configuration_values_must_be_objects() {
        assert!(configuration_object(&serde_json::json!({"a": 1})).is_ok());
        assert!(configuration_object(&serde_json::json!("{\"a\": 1}")).is_ok());
        assert!(configuration_object(&serde_json::json!("a: 1")).is_ok());
        assert!(configuration_object(&serde_json::json!("- 1")).is_err());
        assert!(configuration_object(&serde_json::json!(3)).is_err());
    }

    #[test]
    fn kms_keys_must_be_key_arns_in_the_region() {
        let key = "arn:aws:kms:us-west-2:123456789012:key/1234abcd";
        assert!(check_kms_key_arn(key, "us-west-2").is_ok());
        assert!(check_kms_key_arn(key, "eu-west-1").is_err());
        assert!(
            check_kms_key_arn("arn:aws:kms:us-west-2:123456789012:alias/x", "us-west-2").is_err()
        );
        assert!(check_kms_key_arn("1234abcd", "us-west-2").is_err());
    }
}
