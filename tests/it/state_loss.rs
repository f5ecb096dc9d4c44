//! Tags and labels are the truth, state is a cache: a lost or second state dir finds what
//! is the platform's instead of making twins, and destroy without state leaves nothing.

use serde_json::Value;

use crate::support::*;

fn applied() -> (Emulator, Workspace) {
    let emulator = Emulator::start();
    let workspace = Workspace::new(&full_sandbox_yaml());
    workspace
        .run(&emulator.endpoint, &["apply", "--yes", "--quiet"])
        .expect(0);
    (emulator, workspace)
}

fn distribution_ids(endpoint: &str) -> Vec<String> {
    distributions(endpoint)
        .iter()
        .map(|d| d["Id"].as_str().unwrap_or_default().to_string())
        .collect()
}

fn origin_secret(workspace: &Workspace) -> Option<String> {
    workspace.state()["secrets"]["origin-secret"]
        .as_str()
        .map(str::to_string)
}

/// The actions of a `plan --json`, by address.
fn actions(plan: &Value) -> Vec<(String, String)> {
    plan["resource_changes"]
        .as_array()
        .map(|changes| {
            changes
                .iter()
                .map(|c| {
                    (
                        c["address"].as_str().unwrap_or_default().to_string(),
                        c["actions"].to_string(),
                    )
                })
                .collect()
        })
        .unwrap_or_default()
}

#[test]
fn a_lost_state_makes_no_second_distribution_and_is_taken_over_with_adopt() {
    let (emulator, workspace) = applied();
    let endpoint = &emulator.endpoint;
    let before = distribution_ids(endpoint);
    assert_eq!(before.len(), 1, "{before:?}");
    let secret = origin_secret(&workspace).expect("the origin secret is in state");
    let resources = workspace.state()["resources"]
        .as_object()
        .map(|r| r.len())
        .unwrap_or_default();
    std::fs::remove_file(workspace.state_file()).expect("lose the state");

    // The plan finds every resource (`=`), creates nothing, and refuses without --adopt.
    let plan = workspace.run(endpoint, &["plan", "--json"]).expect(1);
    let planned: Value = serde_json::from_str(&plan.stdout).expect("plan JSON");
    let actions = actions(&planned);
    assert_eq!(actions.len(), resources, "{actions:?}");
    assert!(
        actions.iter().all(|(_, action)| action == r#"["adopt"]"#),
        "every resource is taken over as it is: {actions:?}"
    );
    assert!(
        plan.stderr.contains("this state is new") && plan.stderr.contains("--adopt"),
        "{}",
        plan.stderr
    );
    let refused = workspace.run(endpoint, &["apply", "--yes"]).expect(1);
    assert!(refused.stderr.contains("--adopt"), "{}", refused.stderr);
    assert!(!workspace.state_file().exists() || workspace.state()["resources"] == Value::Null);

    // --adopt takes them over: the same distribution, the same secret, nothing created.
    let adopted = workspace
        .run(endpoint, &["apply", "--yes", "--adopt"])
        .expect(0);
    assert!(
        !adopted.stdout.contains("will be created"),
        "{}",
        adopted.stdout
    );
    assert_eq!(distribution_ids(endpoint), before);
    assert_eq!(origin_secret(&workspace).as_deref(), Some(secret.as_str()));
    workspace
        .run(endpoint, &["plan", "--detailed-exitcode"])
        .expect(0);
}

#[test]
fn two_distributions_claiming_the_platform_are_an_error_naming_both() {
    let (emulator, workspace) = applied();
    let endpoint = &emulator.endpoint;
    let config = serde_json::json!({
        "DistributionConfig": {
            "CallerReference": "made-by-hand",
            "Comment": "comfyplat platform sandbox",
            "Enabled": false,
            "Origins": {"Quantity": 1, "Items": [{
                "Id": "o", "DomainName": "origin.example.com",
                "CustomOriginConfig": {"HTTPPort": 80, "HTTPSPort": 443, "OriginProtocolPolicy": "http-only"}
            }]},
            "DefaultCacheBehavior": {
                "TargetOriginId": "o", "ViewerProtocolPolicy": "allow-all",
                "CachePolicyId": "4135ea2d-6df8-44a3-9df3-4b5a84be39ad"
            }
        },
        "Tags": {"Items": [{"Key": "comfyplat:platform", "Value": "sandbox"}]}
    });
    let file = write_file(
        workspace.dir.path(),
        "twin.json",
        config.to_string().as_bytes(),
    );
    aws_cli(
        endpoint,
        &[
            "cloudfront",
            "create-distribution-with-tags",
            "--distribution-config-with-tags",
            &format!("file://{}", file.display()),
        ],
    );
    let ids = distribution_ids(endpoint);
    assert_eq!(ids.len(), 2, "{ids:?}");
    std::fs::remove_file(workspace.state_file()).expect("lose the state");
    let run = workspace.run(endpoint, &["plan"]).expect(1);
    assert!(
        run.stderr
            .contains("2 CloudFront distributions claim platform `sandbox`"),
        "{}",
        run.stderr
    );
    for id in &ids {
        assert!(run.stderr.contains(id.as_str()), "{id}: {}", run.stderr);
    }
}

#[test]
fn destroy_without_state_leaves_nothing_tagged_or_labelled() {
    let (emulator, workspace) = applied();
    let endpoint = &emulator.endpoint;
    std::fs::remove_file(workspace.state_file()).expect("lose the state");
    let run = workspace.run(endpoint, &["destroy", "--yes"]).expect(0);
    assert!(
        run.stderr
            .contains("owned by comfyplat and still there: none"),
        "{}",
        run.stderr
    );
    // Read back with clients comfyplat does not use itself: the aws CLI and kubectl.
    let tagged = aws_cli(
        endpoint,
        &[
            "resourcegroupstaggingapi",
            "get-resources",
            "--tag-filters",
            "Key=comfyplat:platform,Values=sandbox",
        ],
    );
    assert_eq!(
        tagged["ResourceTagMappingList"].as_array().map(Vec::len),
        Some(0),
        "{tagged}"
    );
    assert_eq!(distribution_ids(endpoint), Vec::<String>::new());
    let addons = aws_cli(endpoint, &["eks", "list-addons", "--cluster-name", CLUSTER]);
    assert_eq!(addons["addons"], serde_json::json!([]), "{addons}");
    let associations = aws_cli(
        endpoint,
        &[
            "eks",
            "list-pod-identity-associations",
            "--cluster-name",
            CLUSTER,
        ],
    );
    assert_eq!(
        associations["associations"],
        serde_json::json!([]),
        "{associations}"
    );
    let roles = aws_cli(endpoint, &["iam", "list-roles"]);
    let ours: Vec<&Value> = roles["Roles"]
        .as_array()
        .map(|r| {
            r.iter()
                .filter(|r| {
                    r["RoleName"]
                        .as_str()
                        .is_some_and(|n| n.starts_with("comfyplat-"))
                })
                .collect()
        })
        .unwrap_or_default();
    assert!(ours.is_empty(), "{ours:?}");
    let labelled = emulator.labelled_objects();
    assert!(labelled.is_empty(), "labelled objects left: {labelled:?}");
}
