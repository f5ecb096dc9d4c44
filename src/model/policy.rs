//! IAM and bucket policy documents: the ones comfyplat writes, and a normal form so that a
//! document AWS hands back (reordered, single values unwrapped) compares equal to the one
//! that was written.

use serde_json::{Value, json};

/// ARN of an S3 bucket.
pub fn bucket_arn(partition: &str, bucket: &str) -> String {
    format!("arn:{partition}:s3:::{bucket}")
}

/// Bucket policy that denies every request not made over TLS.
pub fn tls_only_bucket_policy(partition: &str, bucket: &str) -> Value {
    let arn = bucket_arn(partition, bucket);
    normalize(&json!({
        "Version": "2012-10-17",
        "Statement": [{
            "Sid": "DenyInsecureTransport",
            "Effect": "Deny",
            "Principal": "*",
            "Action": "s3:*",
            "Resource": [arn.clone(), format!("{arn}/*")],
            "Condition": {"Bool": {"aws:SecureTransport": "false"}}
        }]
    }))
}

/// Trust policy for a role assumed through EKS Pod Identity, limited to this account.
pub fn pod_identity_trust_policy(account: &str) -> Value {
    pod_identity_trust(json!({"aws:SourceAccount": account}))
}

fn pod_identity_trust(conditions: Value) -> Value {
    normalize(&json!({
        "Version": "2012-10-17",
        "Statement": [{
            "Sid": "EksPodIdentity",
            "Effect": "Allow",
            "Principal": {"Service": "pods.eks.amazonaws.com"},
            "Action": ["sts:AssumeRole", "sts:TagSession"],
            "Condition": {"StringEquals": conditions}
        }]
    }))
}

/// Trust policy for a role assumed through EKS Pod Identity by exactly one service account
/// of one cluster: the session tags EKS Pod Identity sets (`eks-cluster-name`,
/// `kubernetes-namespace`, `kubernetes-service-account`) must match, and the account.
pub fn scoped_pod_identity_trust_policy(
    account: &str,
    cluster: &str,
    namespace: &str,
    service_account: &str,
) -> Value {
    pod_identity_trust(json!({
        "aws:SourceAccount": account,
        "aws:RequestTag/eks-cluster-name": cluster,
        "aws:RequestTag/kubernetes-namespace": namespace,
        "aws:RequestTag/kubernetes-service-account": service_account
    }))
}

/// Trust policy for a role assumed through IAM Roles for Service Accounts: the cluster's OIDC
/// provider, for exactly one service account.
pub fn irsa_trust_policy(
    partition: &str,
    account: &str,
    issuer: &str,
    namespace: &str,
    service_account: &str,
) -> Value {
    let host_path = issuer.trim_start_matches("https://");
    normalize(&json!({
        "Version": "2012-10-17",
        "Statement": [{
            "Sid": "EksServiceAccount",
            "Effect": "Allow",
            "Principal": {"Federated": format!("arn:{partition}:iam::{account}:oidc-provider/{host_path}")},
            "Action": ["sts:AssumeRoleWithWebIdentity"],
            "Condition": {"StringEquals": {
                format!("{host_path}:sub"): format!("system:serviceaccount:{namespace}:{service_account}"),
                format!("{host_path}:aud"): "sts.amazonaws.com"
            }}
        }]
    }))
}

/// Least-privilege read-write access to exactly `buckets` (the Mountpoint S3 CSI driver):
/// `s3:ListBucket` on the buckets, object actions on their objects, and the KMS actions the
/// objects' encryption needs.
pub fn bucket_access_policy(
    partition: &str,
    buckets: &[String],
    kms_key_arn: Option<&str>,
) -> Value {
    let mut statements = vec![
        json!({
            "Sid": "ListBuckets",
            "Effect": "Allow",
            "Action": ["s3:ListBucket"],
            "Resource": buckets.iter().map(|b| bucket_arn(partition, b)).collect::<Vec<_>>()
        }),
        json!({
            "Sid": "ReadWriteObjects",
            "Effect": "Allow",
            "Action": [
                "s3:AbortMultipartUpload",
                "s3:DeleteObject",
                "s3:GetObject",
                "s3:PutObject",
            ],
            "Resource": buckets.iter().map(|b| format!("{}/*", bucket_arn(partition, b))).collect::<Vec<_>>()
        }),
    ];
    if let Some(key) = kms_key_arn {
        statements.push(json!({
            "Sid": "EncryptObjects",
            "Effect": "Allow",
            "Action": ["kms:Decrypt", "kms:GenerateDataKey"],
            "Resource": [key]
        }));
    }
    normalize(&json!({"Version": "2012-10-17", "Statement": statements}))
}

/// The generation marker's key in the models bucket: `comfyplat models` rewrites it after
/// every change, and the model agents poll it.
pub const GENERATION_KEY: &str = ".comfyplat/generation";

/// Read access to the models bucket for the model agent: the listed key `prefixes` only
/// (all of it when empty) plus the generation marker; nothing can be written or deleted.
pub fn models_read_policy(
    partition: &str,
    bucket: &str,
    prefixes: &[String],
    kms_key_arn: Option<&str>,
) -> Value {
    let arn = bucket_arn(partition, bucket);
    let mut list = json!({
        "Sid": "ListModels",
        "Effect": "Allow",
        "Action": ["s3:ListBucket"],
        "Resource": [arn.clone()]
    });
    let objects: Vec<String> = if prefixes.is_empty() {
        vec![format!("{arn}/*")]
    } else {
        list["Condition"] = json!({"StringLike": {
            "s3:prefix": prefixes.iter().map(|p| format!("{p}*")).collect::<Vec<_>>()
        }});
        prefixes
            .iter()
            .map(|p| format!("{arn}/{p}*"))
            .chain([format!("{arn}/{GENERATION_KEY}")])
            .collect()
    };
    let mut statements = vec![
        list,
        json!({"Sid": "ReadModels", "Effect": "Allow", "Action": ["s3:GetObject"], "Resource": objects}),
    ];
    if let Some(key) = kms_key_arn {
        statements.push(json!({
            "Sid": "DecryptModels",
            "Effect": "Allow",
            "Action": ["kms:Decrypt"],
            "Resource": [key]
        }));
    }
    normalize(&json!({"Version": "2012-10-17", "Statement": statements}))
}

/// The normal form of a policy document: list-valued elements are always sorted lists,
/// single statements are a list, keys are ordered.
pub fn normalize(document: &Value) -> Value {
    let mut document = document.clone();
    if let Some(statement) = document
        .as_object_mut()
        .and_then(|object| object.get_mut("Statement"))
    {
        if statement.is_object() {
            *statement = Value::Array(vec![statement.take()]);
        }
        if let Some(statements) = statement.as_array_mut() {
            for statement in statements.iter_mut() {
                normalize_statement(statement);
            }
        }
    }
    sort_keys(document)
}

fn normalize_statement(statement: &mut Value) {
    let Some(object) = statement.as_object_mut() else {
        return;
    };
    for key in ["Action", "NotAction", "Resource", "NotResource"] {
        if let Some(value) = object.get_mut(key) {
            *value = sorted_list(value.take());
        }
    }
    for key in ["Principal", "NotPrincipal"] {
        if let Some(Value::Object(principals)) = object.get_mut(key) {
            for value in principals.values_mut() {
                *value = sorted_list(value.take());
            }
        }
    }
    if let Some(Value::Object(conditions)) = object.get_mut("Condition") {
        for operator in conditions.values_mut() {
            if let Value::Object(keys) = operator {
                for value in keys.values_mut() {
                    *value = sorted_list(value.take());
                }
            }
        }
    }
}

fn sorted_list(value: Value) -> Value {
    let mut items = match value {
        Value::Array(items) => items,
        other => vec![other],
    };
    items.sort_by_key(|item| item.to_string());
    items.dedup();
    Value::Array(items)
}

fn sort_keys(value: Value) -> Value {
    match value {
        Value::Object(map) => {
            let mut entries: Vec<(String, Value)> = map.into_iter().collect();
            entries.sort_by(|a, b| a.0.cmp(&b.0));
            Value::Object(
                entries
                    .into_iter()
                    .map(|(k, v)| (k, sort_keys(v)))
                    .collect(),
            )
        }
        Value::Array(items) => Value::Array(items.into_iter().map(sort_keys).collect()),
        other => other,
    }
}

/// Every `Action` of a document, for least-privilege checks.
pub fn actions(document: &Value) -> Vec<String> {
    statements(document)
        .filter_map(|s| s.get("Action").and_then(Value::as_array))
        .flatten()
        .filter_map(|a| a.as_str().map(str::to_string))
        .collect()
}

/// Every `Resource` of a document, for least-privilege checks.
pub fn resources(document: &Value) -> Vec<String> {
    statements(document)
        .filter_map(|s| s.get("Resource").and_then(Value::as_array))
        .flatten()
        .filter_map(|a| a.as_str().map(str::to_string))
        .collect()
}

/// Whether normalised policy documents allow `action` on some resource: an `Allow`
/// statement names it (IAM wildcards `*` and `?` count; so does a `NotAction` that leaves it
/// out) and no `Deny` statement on every resource (`*`) names it. Conditions are not
/// evaluated: this answers "may the role do this at all", which is what a preflight can
/// know without simulating every request.
pub fn allows(documents: &[Value], action: &str) -> bool {
    let named = |statement: &Value| {
        let matches = |key: &str| {
            statement
                .get(key)
                .and_then(Value::as_array)
                .is_some_and(|patterns| {
                    patterns
                        .iter()
                        .filter_map(Value::as_str)
                        .any(|pattern| wildcard_match(pattern, action))
                })
        };
        if statement.get("NotAction").is_some() {
            !matches("NotAction")
        } else {
            matches("Action")
        }
    };
    let effect = |statement: &Value, wanted: &str| {
        statement.get("Effect").and_then(Value::as_str) == Some(wanted)
    };
    let everywhere = |statement: &Value| {
        statement
            .get("Resource")
            .and_then(Value::as_array)
            .is_some_and(|r| r.iter().any(|r| r == "*"))
    };
    let all = || documents.iter().flat_map(statements);
    all().any(|s| effect(s, "Allow") && named(s))
        && !all().any(|s| effect(s, "Deny") && named(s) && everywhere(s))
}

/// IAM's case-insensitive match of an action pattern with `*` and `?`.
fn wildcard_match(pattern: &str, text: &str) -> bool {
    let pattern: Vec<char> = pattern.to_ascii_lowercase().chars().collect();
    let text: Vec<char> = text.to_ascii_lowercase().chars().collect();
    let (mut p, mut t) = (0, 0);
    let (mut star, mut mark) = (None, 0);
    while t < text.len() {
        if p < pattern.len() && (pattern[p] == '?' || pattern[p] == text[t]) {
            p += 1;
            t += 1;
        } else if p < pattern.len() && pattern[p] == '*' {
            star = Some(p);
            mark = t;
            p += 1;
        } else if let Some(position) = star {
            p = position + 1;
            mark += 1;
            t = mark;
        } else {
            return false;
        }
    }
    pattern[p..].iter().all(|c| *c == '*')
}

fn statements(document: &Value) -> impl Iterator<Item = &Value> {
    document
        .get("Statement")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normal_form_ignores_order_and_single_values() {
        let written = json!({"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": ["s3:PutObject", "s3:GetObject"], "Resource": "arn:aws:s3:::b/*"}]});
        let returned = json!({"Statement": {"Resource": ["arn:aws:s3:::b/*"], "Action": ["s3:GetObject", "s3:PutObject"], "Effect": "Allow"}, "Version": "2012-10-17"});
        assert_eq!(normalize(&written), normalize(&returned));
    }

    #[test]
    fn allowed_actions_follow_iam_wildcards_and_explicit_denies() {
        let pull = normalize(&json!({"Version": "2012-10-17", "Statement": [
            {"Effect": "Allow", "Action": ["ecr:Get*", "ecr:BatchGetImage"], "Resource": "*"},
        ]}));
        assert!(allows(
            std::slice::from_ref(&pull),
            "ecr:GetAuthorizationToken"
        ));
        assert!(allows(std::slice::from_ref(&pull), "ECR:batchgetimage"));
        assert!(!allows(std::slice::from_ref(&pull), "ecr:PutImage"));
        let everything_but = normalize(
            &json!({"Statement": {"Effect": "Allow", "NotAction": "iam:*", "Resource": "*"}}),
        );
        assert!(allows(
            std::slice::from_ref(&everything_but),
            "ecr:BatchGetImage"
        ));
        assert!(!allows(
            std::slice::from_ref(&everything_but),
            "iam:PassRole"
        ));
        let denied = normalize(
            &json!({"Statement": {"Effect": "Deny", "Action": "ecr:*", "Resource": "*"}}),
        );
        assert!(!allows(&[pull.clone(), denied], "ecr:BatchGetImage"));
        assert!(!allows(&[], "ecr:BatchGetImage"));
        assert!(wildcard_match("ecr:Batch?etImage", "ecr:BatchGetImage"));
        assert!(wildcard_match("*", "s3:GetObject"));
        assert!(!wildcard_match("s3:*Object", "s3:GetObjectAcl"));
    }

    #[test]
    fn the_model_agent_reads_only_its_prefixes_and_the_generation_marker() {
        let prefixes = vec!["checkpoints/".to_string(), "loras/".to_string()];
        let document =
            models_read_policy("aws", "models", &prefixes, Some("arn:aws:kms:r:1:key/k"));
        let sorted = |mut items: Vec<String>| {
            items.sort();
            items
        };
        assert_eq!(
            sorted(resources(&document)),
            vec![
                "arn:aws:kms:r:1:key/k",
                "arn:aws:s3:::models",
                "arn:aws:s3:::models/.comfyplat/generation",
                "arn:aws:s3:::models/checkpoints/*",
                "arn:aws:s3:::models/loras/*",
            ]
        );
        assert_eq!(
            sorted(actions(&document)),
            vec!["kms:Decrypt", "s3:GetObject", "s3:ListBucket"]
        );
        let list = &document["Statement"]
            .as_array()
            .and_then(|s| s.iter().find(|s| s["Sid"] == "ListModels"))
            .cloned()
            .unwrap_or_default();
        assert_eq!(
            list["Condition"]["StringLike"]["s3:prefix"],
            json!(["checkpoints/*", "loras/*"])
        );
        let everything = models_read_policy("aws", "models", &[], None);
        assert!(resources(&everything).contains(&"arn:aws:s3:::models/*".to_string()));
    }

    #[test]
    fn workload_policies_have_no_wildcards() {
        let buckets = vec!["out".to_string(), "in".to_string()];
        for document in [
            bucket_access_policy("aws", &buckets, Some("arn:aws:kms:us-west-2:1:key/k")),
            models_read_policy("aws", "models", &[], None),
            models_read_policy("aws", "models", &["checkpoints/".to_string()], None),
        ] {
            assert!(
                actions(&document).iter().all(|a| !a.contains('*')),
                "{document}"
            );
            assert!(
                resources(&document)
                    .iter()
                    .all(|r| r != "*" && !r.ends_with(":::*")),
                "{document}"
            );
        }
    }
}
