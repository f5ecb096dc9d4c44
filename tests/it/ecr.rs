//! The ComfyUI image repository (`image_repository:`), the first kind added as one model
//! file, one adapter file and one registration: its settings read back with the aws CLI;
//! `{repository}:TAG` pinned to the tag's digest in the Deployment (kubectl), a moved tag
//! as one precise change, a missing tag refused before any write; the node role's pull
//! permission checked; `validate`, outputs and the destroy report listing it; a changed
//! encryption replacing it; images kept by destroy unless `--delete-data`.

use serde_json::{Value, json};

use crate::support::*;

const REPOSITORY: &str = "comfyui-sandbox";
const ADDRESS: &str = "ecr.repository.comfyui";
const DEPLOYMENT: &str = "k8s.apps/v1.Deployment.comfyui/comfyui";
const EXTERNAL_IMAGE: &str = "123456789012.dkr.ecr.us-west-2.amazonaws.com/comfyui:v0.3.40";

fn uri() -> String {
    format!("{ACCOUNT}.dkr.ecr.{REGION}.amazonaws.com/{REPOSITORY}")
}

/// The whole sandbox with an image repository, and `image` as `comfyui.image`.
fn with_repository(image: &str, repository: &str) -> String {
    full_sandbox_yaml()
        .replace(
            "\n# The ComfyUI workload",
            &format!("\nimage_repository: {repository}\n# The ComfyUI workload"),
        )
        .replace(EXTERNAL_IMAGE, image)
}

/// Pushes an image to the emulator's repository under `tag`; returns its digest.
fn push(emulator: &Emulator, tag: &str, seed: u32) -> String {
    let output = std::process::Command::new(python())
        .arg(repo_root().join("tests/emulators/ecr_push.py"))
        .args(["--endpoint", &emulator.endpoint, "--repository", REPOSITORY])
        .args(["--tag", tag, "--layer-seed", &seed.to_string()])
        .output()
        .expect("run ecr_push.py");
    assert!(
        output.status.success(),
        "push failed: {}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    let pushed: Value = serde_json::from_slice(&output.stdout).expect("push JSON");
    pushed["digest"].as_str().expect("digest").to_string()
}

fn deployment_images(emulator: &Emulator) -> Vec<String> {
    let deployment = emulator.kubectl_json(&["-n", "comfyui", "get", "deployment", "comfyui"]);
    let pod = &deployment["spec"]["template"]["spec"];
    ["containers", "initContainers"]
        .iter()
        .flat_map(|list| pod[list].as_array().cloned().unwrap_or_default())
        .filter_map(|c| c["image"].as_str().map(str::to_string))
        .collect()
}

#[test]
fn the_repository_is_created_as_asked_and_the_deployment_is_pinned_to_the_tags_digest() {
    let emulator = Emulator::start();
    let proxy = Proxy::start(&emulator.endpoint, ProxyOptions::default());
    let workspace = Workspace::new(&with_repository(EXTERNAL_IMAGE, "{}"));

    // `validate` lists the new kind with no edit of its own.
    let listed = workspace
        .run(&proxy.endpoint, &["validate"])
        .expect(0)
        .stdout;
    assert!(
        listed.contains(&format!(
            "{ADDRESS}  ECR repository {REPOSITORY} ({REGION})"
        )),
        "{listed}"
    );

    let apply = workspace
        .run(&proxy.endpoint, &["apply", "--yes"])
        .expect(0);
    assert!(
        apply
            .stdout
            .lines()
            .any(|line| line.starts_with("image_repository.uri ")
                && line.ends_with(&format!(" = {}", uri()))),
        "{}",
        apply.stdout
    );
    let described = aws_cli(
        &emulator.endpoint,
        &[
            "ecr",
            "describe-repositories",
            "--repository-names",
            REPOSITORY,
        ],
    );
    let repository = &described["repositories"][0];
    assert_eq!(repository["imageTagMutability"], "IMMUTABLE");
    assert_eq!(repository["imageScanningConfiguration"]["scanOnPush"], true);
    assert_eq!(
        repository["encryptionConfiguration"]["encryptionType"],
        "AES256"
    );
    assert_eq!(repository["repositoryUri"], uri());
    let policy = aws_cli(
        &emulator.endpoint,
        &[
            "ecr",
            "get-lifecycle-policy",
            "--repository-name",
            REPOSITORY,
        ],
    );
    let rules: Value = serde_json::from_str(policy["lifecyclePolicyText"].as_str().expect("text"))
        .expect("the policy is JSON");
    assert_eq!(
        rules["rules"][0]["selection"],
        json!({"tagStatus": "untagged", "countType": "sinceImagePushed", "countUnit": "days", "countNumber": 7})
    );
    assert_eq!(
        rules["rules"][1]["selection"],
        json!({"tagStatus": "any", "countType": "imageCountMoreThan", "countNumber": 20})
    );
    let tags = aws_cli(
        &emulator.endpoint,
        &[
            "ecr",
            "list-tags-for-resource",
            "--resource-arn",
            repository["repositoryArn"].as_str().expect("arn"),
        ],
    );
    let tags: Vec<(String, String)> = tags["tags"]
        .as_array()
        .expect("tags")
        .iter()
        .map(|t| {
            (
                t["Key"].as_str().unwrap_or_default().to_string(),
                t["Value"].as_str().unwrap_or_default().to_string(),
            )
        })
        .collect();
    assert!(
        tags.contains(&("comfyplat:platform".to_string(), "sandbox".to_string()))
            && tags.contains(&("team".to_string(), "art".to_string())),
        "{tags:?}"
    );
    let quiet = workspace.run(&proxy.endpoint, &["plan", "--detailed-exitcode"]);
    assert_eq!(quiet.code, 0, "{}{}", quiet.stdout, quiet.stderr);

    // The image from the repository: pinned to the digest its tag points at.
    let first = push(&emulator, "v1", 1);
    workspace.write(&with_repository("\"{repository}:v1\"", "{}"));
    let plan = workspace.run(&proxy.endpoint, &["plan"]).expect(0);
    assert!(
        plan.stdout
            .contains(&format!("comfyui.image `{{repository}}:v1` is `{first}`")),
        "{}",
        plan.stdout
    );
    workspace
        .run(&proxy.endpoint, &["apply", "--yes"])
        .expect(0);
    let pinned = format!("{}@{first}", uri());
    assert_eq!(deployment_images(&emulator), vec![pinned.clone(), pinned]);
    let quiet = workspace.run(&proxy.endpoint, &["plan", "--detailed-exitcode"]);
    assert_eq!(quiet.code, 0, "{}{}", quiet.stdout, quiet.stderr);

    // The tag moves (deleted, and pushed again with another image: allowed with immutable
    // tags): the next plan shows the Deployment's image, and nothing else.
    aws_cli(
        &emulator.endpoint,
        &[
            "ecr",
            "batch-delete-image",
            "--repository-name",
            REPOSITORY,
            "--image-ids",
            "imageTag=v1",
        ],
    );
    let second = push(&emulator, "v1", 2);
    assert_ne!(first, second);
    let (code, plan) = {
        let run = workspace.run(&proxy.endpoint, &["plan", "--json", "--detailed-exitcode"]);
        (
            run.code,
            serde_json::from_str::<Value>(&run.stdout).expect("plan JSON"),
        )
    };
    assert_eq!(code, 2);
    let changes = plan["resource_changes"].as_array().expect("changes");
    assert_eq!(changes.len(), 1, "{plan:#}");
    assert_eq!(changes[0]["address"], DEPLOYMENT);
    assert_eq!(changes[0]["actions"], json!(["update"]));
    let moved = format!("{}@{second}", uri());
    let fields = changed_fields(&changes[0]);
    let fields = fields.as_array().expect("fields");
    assert!(!fields.is_empty());
    for field in fields {
        assert!(
            field["path"]
                .as_str()
                .is_some_and(|p| p.ends_with(".image")),
            "{field}"
        );
        assert_eq!(field["after"], moved.as_str());
    }
    proxy.clear();
    workspace
        .run(&proxy.endpoint, &["apply", "--yes"])
        .expect(0);
    assert_eq!(deployment_images(&emulator), vec![moved.clone(), moved]);
    assert!(proxy.writes().is_empty(), "{:?}", proxy.writes());

    // Outputs and the destroy report come from the kind too: the repository holds images,
    // so destroy keeps it, and says so; with --delete-data it goes.
    let outputs: Value = serde_json::from_str(
        &workspace
            .run(&proxy.endpoint, &["output", "--json"])
            .expect(0)
            .stdout,
    )
    .expect("output JSON");
    assert_eq!(outputs["image_repository"]["uri"], uri());
    let destroy = workspace
        .run(&proxy.endpoint, &["destroy", "--yes"])
        .expect(0);
    assert!(
        destroy.stderr.contains(&format!(
            "kept because they hold data: 1\n    - ECR repository {REPOSITORY} ({REGION})"
        )),
        "{}",
        destroy.stderr
    );
    let left = aws_cli(&emulator.endpoint, &["ecr", "describe-repositories"]);
    assert_eq!(left["repositories"].as_array().map(Vec::len), Some(1));
    workspace
        .run(&proxy.endpoint, &["destroy", "--yes", "--delete-data"])
        .expect(0);
    let left = aws_cli(&emulator.endpoint, &["ecr", "describe-repositories"]);
    assert_eq!(left["repositories"], json!([]));
}

#[test]
fn a_missing_tag_and_a_node_role_that_may_not_pull_are_refused_before_any_write() {
    let emulator = Emulator::start();
    let proxy = Proxy::start(&emulator.endpoint, ProxyOptions::default());
    // The repository does not exist yet: no tag can be resolved.
    let workspace = Workspace::new(&with_repository("\"{repository}:v1\"", "{}"));
    let run = workspace
        .run(&proxy.endpoint, &["apply", "--yes"])
        .expect(1);
    assert!(
        run.stderr.contains(
            "comfyui.image `{repository}:v1` cannot be used: ECR repository `comfyui-sandbox` does not exist yet, so it has no tag `v1`"
        ),
        "{}",
        run.stderr
    );
    assert!(proxy.writes().is_empty(), "{:?}", proxy.writes());

    // Created, but the tag is not there.
    workspace.write(&with_repository(EXTERNAL_IMAGE, "{}"));
    workspace
        .run(&proxy.endpoint, &["apply", "--yes"])
        .expect(0);
    push(&emulator, "v1", 1);
    workspace.write(&with_repository("\"{repository}:v2\"", "{}"));
    proxy.clear();
    let run = workspace
        .run(&proxy.endpoint, &["apply", "--yes"])
        .expect(1);
    assert!(
        run.stderr
            .contains("ECR repository `comfyui-sandbox` has no image tagged `v2`"),
        "{}",
        run.stderr
    );
    assert!(proxy.writes().is_empty(), "{:?}", proxy.writes());

    // The node role loses its ECR policy: the plan says what it lacks and how to fix it.
    let node_policy = "arn:aws:iam::aws:policy/AmazonEC2ContainerRegistryReadOnly";
    aws_cli(
        &emulator.endpoint,
        &[
            "iam",
            "detach-role-policy",
            "--role-name",
            NODE_ROLE,
            "--policy-arn",
            node_policy,
        ],
    );
    workspace.write(&with_repository("\"{repository}:v1\"", "{}"));
    proxy.clear();
    let run = workspace.run(&proxy.endpoint, &["plan"]).expect(1);
    assert!(
        run.stderr.contains(&format!(
            "IAM role `{NODE_ROLE}` named by `karpenter.node_role` may not pull the ComfyUI image from ECR repository `comfyui-sandbox`: no policy of it allows ecr:BatchCheckLayerAvailability, ecr:BatchGetImage, ecr:GetAuthorizationToken, ecr:GetDownloadUrlForLayer"
        )),
        "{}",
        run.stderr
    );
    assert!(
        run.stderr
            .contains("attach the AWS managed policy AmazonEC2ContainerRegistryPullOnly"),
        "{}",
        run.stderr
    );
    assert!(proxy.writes().is_empty(), "{:?}", proxy.writes());
}

#[test]
fn a_new_encryption_key_replaces_the_repository() {
    let emulator = Emulator::start();
    let workspace = Workspace::new(&with_repository(EXTERNAL_IMAGE, "{}"));
    workspace
        .run(&emulator.endpoint, &["apply", "--yes"])
        .expect(0);
    let key = format!("arn:aws:kms:{REGION}:{ACCOUNT}:key/1234abcd-12ab-34cd-56ef-1234567890ab");
    workspace.write(&with_repository(
        EXTERNAL_IMAGE,
        &format!("\n  kms_key_arn: {key}"),
    ));
    let plan = workspace.run(&emulator.endpoint, &["plan"]).expect(0);
    assert!(
        plan.stdout
            .contains(&format!("  # {ADDRESS} must be replaced")),
        "{}",
        plan.stdout
    );
    assert!(
        plan.stdout
            .contains("~ encryption.type: \"AES256\" -> \"KMS\" # forces replacement"),
        "{}",
        plan.stdout
    );
    workspace
        .run(&emulator.endpoint, &["apply", "--yes"])
        .expect(0);
    let described = aws_cli(
        &emulator.endpoint,
        &[
            "ecr",
            "describe-repositories",
            "--repository-names",
            REPOSITORY,
        ],
    );
    assert_eq!(
        described["repositories"][0]["encryptionConfiguration"],
        json!({"encryptionType": "KMS", "kmsKey": key})
    );
    let quiet = workspace.run(&emulator.endpoint, &["plan", "--detailed-exitcode"]);
    assert_eq!(quiet.code, 0, "{}{}", quiet.stdout, quiet.stderr);
}
