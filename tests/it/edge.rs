//! The edge: the CloudFront distribution in front of the Ingress's load balancer, its secret
//! origin header, updates with the ETag, a create interrupted after the call, `--no-wait`,
//! outputs, and the full destroy with its report, against the sandbox emulator, read back
//! with the aws CLI and kubectl as independent clients.

use crate::support::*;
use serde_json::Value;

const NS: &str = "comfyui";
const DISTRIBUTION: &str = "cloudfront.distribution.comfyui";
const CREATE_CALL: &str = "POST /2020-05-31/distribution";

fn full() -> Workspace {
    Workspace::new(&full_sandbox_yaml())
}

fn the_distribution(endpoint: &str) -> (String, Value) {
    let all = distributions(endpoint);
    assert_eq!(all.len(), 1, "exactly one distribution: {all:?}");
    let id = all[0]["Id"].as_str().expect("Id").to_string();
    let config = aws_cli(
        endpoint,
        &["cloudfront", "get-distribution-config", "--id", &id],
    );
    (id, config["DistributionConfig"].clone())
}

/// A sandbox with the full example applied, and its distribution's id.
fn applied() -> (Emulator, Workspace, String) {
    let emulator = Emulator::start();
    let workspace = full();
    workspace
        .run(&emulator.endpoint, &["apply", "--yes"])
        .expect(0);
    let (id, _) = the_distribution(&emulator.endpoint);
    (emulator, workspace, id)
}

fn origin_secret(workspace: &Workspace) -> String {
    workspace.state()["secrets"]["origin-secret"]
        .as_str()
        .expect("the origin secret is kept in state")
        .to_string()
}

fn ingress_hostname(emulator: &Emulator) -> String {
    let ingress = emulator.kubectl_json(&["-n", NS, "get", "ingress", "comfyui"]);
    ingress["status"]["loadBalancer"]["ingress"][0]["hostname"]
        .as_str()
        .expect("the Ingress has a hostname")
        .to_string()
}

#[test]
fn apply_puts_cloudfront_in_front_of_the_ingress_and_never_shows_the_secret() {
    let emulator = Emulator::start();
    let workspace = full();
    let plan = workspace
        .run(&emulator.endpoint, &["plan", "--no-color"])
        .expect(0);
    assert!(
        plan.stdout
            .contains("# cloudfront.distribution.comfyui will be created"),
        "{}",
        plan.stdout
    );
    assert!(
        plan.stdout
            .contains("origin.domain_name = (known after apply)"),
        "{}",
        plan.stdout
    );
    assert!(
        plan.stdout
            .contains("origin.headers.X-Origin-Verify = (sensitive)"),
        "{}",
        plan.stdout
    );

    let apply = workspace
        .run(&emulator.endpoint, &["apply", "--yes"])
        .expect(0);
    let secret = origin_secret(&workspace);
    assert_eq!(secret.len(), 64);

    // The distribution, read back through the API.
    let (id, config) = the_distribution(&emulator.endpoint);
    let origin = &config["Origins"]["Items"][0];
    assert_eq!(origin["DomainName"], ingress_hostname(&emulator));
    assert_eq!(
        origin["CustomOriginConfig"]["OriginProtocolPolicy"],
        "http-only"
    );
    assert_eq!(origin["CustomOriginConfig"]["OriginReadTimeout"], 60);
    assert_eq!(origin["CustomOriginConfig"]["OriginKeepaliveTimeout"], 5);
    let headers = &origin["CustomHeaders"]["Items"];
    assert_eq!(headers[0]["HeaderName"], "X-Origin-Verify");
    assert_eq!(headers[0]["HeaderValue"], secret.as_str());
    let behavior = &config["DefaultCacheBehavior"];
    assert_eq!(
        behavior["CachePolicyId"], "4135ea2d-6df8-44a3-9df3-4b5a84be39ad",
        "CachingDisabled"
    );
    assert_eq!(
        behavior["OriginRequestPolicyId"], "216adef6-5c7f-47e4-b989-5492eafa07d3",
        "AllViewer"
    );
    assert_eq!(behavior["ViewerProtocolPolicy"], "redirect-to-https");
    assert_eq!(behavior["Compress"], true);
    let mut methods: Vec<&str> = behavior["AllowedMethods"]["Items"]
        .as_array()
        .expect("methods")
        .iter()
        .filter_map(Value::as_str)
        .collect();
    methods.sort_unstable();
    assert_eq!(
        methods,
        ["DELETE", "GET", "HEAD", "OPTIONS", "PATCH", "POST", "PUT"]
    );
    assert_eq!(config["PriceClass"], "PriceClass_100");
    assert_eq!(config["Enabled"], true);
    let arn = format!("arn:aws:cloudfront::123456789012:distribution/{id}");
    let tags = aws_cli(
        &emulator.endpoint,
        &["cloudfront", "list-tags-for-resource", "--resource", &arn],
    );
    assert!(
        tags["Tags"]["Items"]
            .as_array()
            .expect("tags")
            .iter()
            .any(|t| t["Key"] == "comfyplat:platform" && t["Value"] == "sandbox"),
        "{tags}"
    );

    // The load balancer answers only requests with the header: the Ingress carries the
    // controller's condition with the same secret.
    let ingress = emulator.kubectl_json(&["-n", NS, "get", "ingress", "comfyui"]);
    let condition: Value = serde_json::from_str(
        ingress["metadata"]["annotations"]["alb.ingress.kubernetes.io/conditions.comfyui"]
            .as_str()
            .expect("the conditions annotation"),
    )
    .expect("conditions JSON");
    assert_eq!(
        condition[0]["httpHeaderConfig"]["values"][0],
        secret.as_str()
    );

    // Outputs after apply and on demand.
    assert!(apply.stdout.contains("Outputs:"), "{}", apply.stdout);
    let domain = distributions(&emulator.endpoint)[0]["DomainName"]
        .as_str()
        .expect("DomainName")
        .to_string();
    assert!(
        apply.stdout.contains(&format!("https://{domain}")),
        "{}",
        apply.stdout
    );
    let output = workspace
        .run(&emulator.endpoint, &["output", "--json"])
        .expect(0);
    let outputs: Value = serde_json::from_str(&output.stdout).expect("output JSON");
    assert_eq!(outputs["url"], format!("https://{domain}"));
    assert_eq!(outputs["cloudfront"]["id"], id.as_str());
    assert_eq!(
        outputs["load_balancer"]["hostname"],
        ingress_hostname(&emulator)
    );
    assert_eq!(outputs["load_balancer"]["cloudfront_only"], true);
    assert_eq!(outputs["buckets"]["models"], bucket("models"));

    // Nothing more to do, and the secret is in nothing comfyplat prints.
    let again = workspace
        .run(&emulator.endpoint, &["plan", "--detailed-exitcode"])
        .expect(0);
    let json = workspace
        .run(&emulator.endpoint, &["plan", "--json"])
        .expect(0);
    let human_output = workspace.run(&emulator.endpoint, &["output"]).expect(0);
    let shown_state = workspace
        .run(&emulator.endpoint, &["state", "show", DISTRIBUTION])
        .expect(0);
    let shown_ingress = workspace
        .run(
            &emulator.endpoint,
            &[
                "state",
                "show",
                "k8s.networking.k8s.io/v1.Ingress.comfyui/comfyui",
            ],
        )
        .expect(0);
    for run in [
        &plan,
        &apply,
        &again,
        &json,
        &output,
        &human_output,
        &shown_state,
        &shown_ingress,
    ] {
        assert!(
            !run.stdout.contains(&secret) && !run.stderr.contains(&secret),
            "the secret was printed:\n{}\n{}",
            run.stdout,
            run.stderr
        );
    }
    assert!(
        shown_state.stdout.contains("((secret:origin-secret))"),
        "{}",
        shown_state.stdout
    );
}

#[test]
fn a_price_class_change_is_one_precise_update_sent_with_the_etag() {
    let (emulator, workspace, id) = applied();
    workspace.write(
        &full_sandbox_yaml().replace("price_class: PriceClass_100", "price_class: PriceClass_200"),
    );
    let plan = workspace
        .run(
            &emulator.endpoint,
            &["plan", "--no-color", "--detailed-exitcode"],
        )
        .expect(2);
    assert!(
        plan.stdout
            .contains("# cloudfront.distribution.comfyui will be updated in place"),
        "{}",
        plan.stdout
    );
    assert!(
        plan.stdout
            .contains(r#"~ price_class: "PriceClass_100" -> "PriceClass_200""#),
        "{}",
        plan.stdout
    );
    assert!(
        plan.stdout
            .contains("Plan: 0 to add, 1 to change, 0 to destroy."),
        "{}",
        plan.stdout
    );

    let proxy = Proxy::start(&emulator.endpoint, ProxyOptions::default());
    workspace
        .run(&proxy.endpoint, &["apply", "--yes"])
        .expect(0);
    let writes: Vec<String> = proxy
        .writes()
        .into_iter()
        .map(|w| format!("{} {} {}", w.action, w.status, w.service))
        .collect();
    // One UpdateDistribution, accepted: the emulator answers 412 to a stale or missing
    // If-Match, so 200 means it carried the current ETag.
    assert_eq!(
        writes,
        [format!(
            "PUT /2020-05-31/distribution/{id}/config 200 cloudfront"
        )],
        "{writes:?}"
    );
    let (_, config) = the_distribution(&emulator.endpoint);
    assert_eq!(config["PriceClass"], "PriceClass_200");
    workspace
        .run(&emulator.endpoint, &["plan", "--detailed-exitcode"])
        .expect(0);
}

#[test]
fn a_create_interrupted_right_after_the_call_makes_no_second_distribution() {
    let emulator = Emulator::start();
    let workspace = full();
    let hanging = Proxy::start(
        &emulator.endpoint,
        ProxyOptions {
            hang_after: Some(CREATE_CALL.to_string()),
            ..ProxyOptions::default()
        },
    );
    let mut child = workspace.spawn(&hanging.endpoint, &["apply", "--yes"]);
    hanging.kill_once_hung(&mut child, CREATE_CALL);

    // CloudFront made the distribution; state knows it is being created, with its reference.
    let (_, config) = the_distribution(&emulator.endpoint);
    let entry = &workspace.state()["resources"][DISTRIBUTION];
    assert_eq!(entry["status"], "creating", "{entry}");
    assert_eq!(
        entry["identity"]["caller_reference"], config["CallerReference"],
        "{entry}"
    );

    let next = workspace
        .run(&emulator.endpoint, &["apply", "--yes"])
        .expect(0);
    assert_eq!(
        distributions(&emulator.endpoint).len(),
        1,
        "{}",
        next.stderr
    );
    let entry = &workspace.state()["resources"][DISTRIBUTION];
    assert_eq!(entry["status"], "applied", "{entry}");
    assert_eq!(
        entry["identity"]["caller_reference"],
        config["CallerReference"]
    );
    workspace
        .run(&emulator.endpoint, &["plan", "--detailed-exitcode"])
        .expect(0);
}

#[test]
fn no_wait_returns_after_submission_and_the_next_plan_shows_it_in_progress() {
    let emulator = Emulator::start_with(&[("COMFYPLAT_EMULATOR_CLOUDFRONT_DEPLOY_READS", "30")]);
    let workspace = full();
    let apply = workspace
        .run(&emulator.endpoint, &["apply", "--yes", "--no-wait"])
        .expect(0);
    assert!(apply.stderr.contains("--no-wait"), "{}", apply.stderr);
    let (id, _) = the_distribution(&emulator.endpoint);
    let plan = workspace
        .run(
            &emulator.endpoint,
            &["plan", "--no-color", "--detailed-exitcode"],
        )
        .expect(2);
    assert!(
        plan.stdout.contains("cloudfront.distribution.comfyui")
            && plan.stdout.contains("in progress"),
        "{}",
        plan.stdout
    );
    // CloudFront finishes on its own (the emulator deploys after enough reads).
    for _ in 0..30 {
        aws_cli(
            &emulator.endpoint,
            &["cloudfront", "get-distribution", "--id", &id],
        );
    }
    workspace
        .run(&emulator.endpoint, &["plan", "--detailed-exitcode"])
        .expect(0);
}

#[test]
fn destroy_disables_and_deletes_the_distribution_first_and_leaves_nothing_owned() {
    let (emulator, workspace, id) = applied();
    // An instance Karpenter launched for the pool and never terminated.
    let instance = aws_cli(
        &emulator.endpoint,
        &[
            "ec2",
            "run-instances",
            "--image-id",
            "ami-12c6146b",
            "--instance-type",
            "g6.2xlarge",
            "--tag-specifications",
            "ResourceType=instance,Tags=[{Key=karpenter.sh/nodepool,Value=sandbox-gpu}]",
        ],
    );
    let instance_id = instance["Instances"][0]["InstanceId"]
        .as_str()
        .expect("InstanceId")
        .to_string();

    let proxy = Proxy::start(&emulator.endpoint, ProxyOptions::default());
    let destroy = workspace
        .run(&proxy.endpoint, &["destroy", "--yes", "--no-color"])
        .expect(0);
    // Disabled (an update with Enabled false), then deleted.
    let calls: Vec<String> = proxy
        .writes()
        .into_iter()
        .filter(|w| w.service == "cloudfront")
        .map(|w| format!("{} {}", w.action, w.status))
        .collect();
    assert_eq!(
        calls,
        [
            format!("PUT /2020-05-31/distribution/{id}/config 200"),
            format!("DELETE /2020-05-31/distribution/{id} 204"),
        ],
        "{calls:?}"
    );
    // The distribution went before the Ingress (its load balancer), the Ingress before the
    // rest.
    let position = |line: &str| {
        destroy
            .stderr
            .find(line)
            .unwrap_or_else(|| panic!("`{line}` not in:\n{}", destroy.stderr))
    };
    assert!(
        position("ok: cloudfront.distribution.comfyui: destroyed")
            < position("k8s.networking.k8s.io/v1.Ingress.comfyui/comfyui: destroying")
    );
    assert!(
        position("ok: k8s.networking.k8s.io/v1.Ingress.comfyui/comfyui: destroyed")
            < position("k8s.apps/v1.Deployment.comfyui/comfyui: destroying")
    );

    // The report: nothing owned left; the forgotten instance, with what to do.
    assert!(
        destroy
            .stderr
            .contains("owned by comfyplat and still there: none"),
        "{}",
        destroy.stderr
    );
    assert!(
        destroy
            .stderr
            .contains(&format!("EC2 instance {instance_id}"))
            && destroy.stderr.contains(&format!(
                "aws ec2 terminate-instances --instance-ids {instance_id}"
            )),
        "{}",
        destroy.stderr
    );

    // A scan of the sandbox finds nothing comfyplat owned.
    assert!(distributions(&emulator.endpoint).is_empty());
    let tagged = aws_cli(
        &emulator.endpoint,
        &[
            "resourcegroupstaggingapi",
            "get-resources",
            "--tag-filters",
            "Key=comfyplat:platform,Values=sandbox",
        ],
    );
    assert_eq!(
        tagged["ResourceTagMappingList"],
        serde_json::json!([]),
        "{tagged}"
    );
    let buckets = aws_cli(&emulator.endpoint, &["s3api", "list-buckets"]);
    for purpose in ["models", "outputs", "inputs"] {
        assert!(
            !buckets.to_string().contains(&bucket(purpose)),
            "{purpose} bucket left: {buckets}"
        );
    }
    let roles = aws_cli(&emulator.endpoint, &["iam", "list-roles"]);
    assert!(
        !roles.to_string().contains("comfyplat-sandbox"),
        "role left: {roles}"
    );
    let balancers = aws_cli(&emulator.endpoint, &["elbv2", "describe-load-balancers"]);
    assert_eq!(
        balancers["LoadBalancers"],
        serde_json::json!([]),
        "{balancers}"
    );
    for kind in [
        "namespaces",
        "nodepools.karpenter.sh",
        "ec2nodeclasses.karpenter.k8s.aws",
        "persistentvolumes",
        "ingresses",
        "deployments",
        "services",
    ] {
        let listed = emulator.kubectl_json(&[
            "get",
            kind,
            "--all-namespaces",
            "-l",
            "comfyplat.io/platform=sandbox",
        ]);
        assert_eq!(listed["items"], serde_json::json!([]), "{kind}: {listed}");
    }
}

#[test]
fn a_destroy_killed_after_disabling_is_finished_by_the_next() {
    let (emulator, workspace, id) = applied();
    let disable = format!("PUT /2020-05-31/distribution/{id}/config");
    let hanging = Proxy::start(
        &emulator.endpoint,
        ProxyOptions {
            hang_after: Some(disable.clone()),
            ..ProxyOptions::default()
        },
    );
    let mut child = workspace.spawn(&hanging.endpoint, &["destroy", "--yes"]);
    hanging.kill_once_hung(&mut child, &disable);
    // Disabled, still there, still in state.
    let (_, config) = the_distribution(&emulator.endpoint);
    assert_eq!(config["Enabled"], false);
    assert!(workspace.state()["resources"][DISTRIBUTION].is_object());

    let next = workspace
        .run(&emulator.endpoint, &["destroy", "--yes"])
        .expect(0);
    assert!(
        distributions(&emulator.endpoint).is_empty(),
        "{}",
        next.stderr
    );
    assert!(
        next.stderr
            .contains("owned by comfyplat and still there: none"),
        "{}",
        next.stderr
    );
}

#[test]
fn changed_tags_reach_the_distribution_without_touching_its_configuration() {
    let (emulator, workspace, id) = applied();
    workspace.write(
        &full_sandbox_yaml()
            .replace("  team: art\n", "  team: concept-art\n")
            .replace("  cost-center: sd-platform\n", ""),
    );
    let proxy = Proxy::start(&emulator.endpoint, ProxyOptions::default());
    workspace
        .run(&proxy.endpoint, &["apply", "--yes"])
        .expect(0);
    let cloudfront_writes: Vec<String> = proxy
        .writes()
        .into_iter()
        .filter(|w| w.service == "cloudfront")
        .map(|w| format!("{} {}", w.method, w.status))
        .collect();
    // UntagResource and TagResource (both POSTs), no UpdateDistribution.
    assert_eq!(
        cloudfront_writes,
        ["POST 204", "POST 204"],
        "{cloudfront_writes:?}"
    );
    let arn = format!("arn:aws:cloudfront::123456789012:distribution/{id}");
    let tags = aws_cli(
        &emulator.endpoint,
        &["cloudfront", "list-tags-for-resource", "--resource", &arn],
    );
    let items = tags["Tags"]["Items"].as_array().expect("tags");
    assert!(
        items
            .iter()
            .any(|t| t["Key"] == "team" && t["Value"] == "concept-art"),
        "{tags}"
    );
    assert!(!items.iter().any(|t| t["Key"] == "cost-center"), "{tags}");
    workspace
        .run(&emulator.endpoint, &["plan", "--detailed-exitcode"])
        .expect(0);
}
