//! Kubernetes: connecting with an EKS token, preflight, server-side apply of the rendered
//! Karpenter and ComfyUI objects, precise updates, drift made with kubectl, pruning, and
//! refusals, against the Kubernetes API test server the sandbox emulator starts, read back
//! with kubectl as an independent client.

use crate::support::*;

const NS: &str = "comfyui";

fn full() -> Workspace {
    Workspace::new(&full_sandbox_yaml())
}

/// Writes the test server logged, as `METHOD path`, after `skip` earlier requests.
fn writes_after(emulator: &Emulator, skip: usize) -> Vec<String> {
    emulator.kube_writes().into_iter().skip(skip).collect()
}

#[test]
fn apply_creates_the_objects_and_a_second_apply_writes_nothing() {
    let emulator = Emulator::start();
    let workspace = full();
    let first = workspace
        .run(&emulator.endpoint, &["apply", "--yes"])
        .expect(0);
    assert!(
        first
            .stdout
            .contains("# k8s.apps/v1.Deployment.comfyui/comfyui will be created"),
        "{}",
        first.stdout
    );

    // kubectl sees what was rendered.
    let deployment = emulator.kubectl_json(&[
        "-n",
        NS,
        "get",
        "deployment",
        "comfyui",
        "--show-managed-fields",
    ]);
    let pod = &deployment["spec"]["template"]["spec"];
    assert_eq!(
        pod["containers"][0]["image"],
        "123456789012.dkr.ecr.us-west-2.amazonaws.com/comfyui:v0.3.40"
    );
    assert_eq!(
        pod["containers"][0]["resources"]["limits"]["nvidia.com/gpu"],
        "1"
    );
    assert_eq!(deployment["spec"]["strategy"]["type"], "Recreate");
    assert_eq!(
        deployment["metadata"]["labels"]["app.kubernetes.io/managed-by"],
        "comfyplat"
    );
    let managers = deployment["metadata"]["managedFields"].to_string();
    assert!(
        managers.contains(r#""manager":"comfyplat""#)
            && managers.contains(r#""operation":"Apply""#),
        "{managers}"
    );
    let pool = emulator.kubectl_json(&["get", "nodepools.karpenter.sh", "sandbox-gpu"]);
    let requirements = pool["spec"]["template"]["spec"]["requirements"].to_string();
    assert!(requirements.contains("g6.2xlarge") && requirements.contains("spot"));
    assert_eq!(pool["spec"]["limits"]["nvidia.com/gpu"], "4");
    let class = emulator.kubectl_json(&["get", "ec2nodeclasses.karpenter.k8s.aws", "sandbox-gpu"]);
    assert_eq!(class["spec"]["role"], NODE_ROLE);
    assert_eq!(
        class["spec"]["metadataOptions"]["httpPutResponseHopLimit"],
        2
    );
    let ingress = emulator.kubectl_json(&["-n", NS, "get", "ingress", "comfyui"]);
    assert!(
        ingress["status"]["loadBalancer"]["ingress"][0]["hostname"]
            .as_str()
            .is_some_and(|h| h.ends_with(".elb.amazonaws.com")),
        "{ingress}"
    );
    let pvs = emulator.kubectl_json(&["get", "pv", "-l", "comfyplat.io/platform=sandbox"]);
    assert_eq!(pvs["items"].as_array().map(Vec::len), Some(2));
    let pvcs = emulator.kubectl_json(&["-n", NS, "get", "pvc"]);
    assert_eq!(pvcs["items"].as_array().map(Vec::len), Some(2));

    // Converged: the plan is empty, and the next apply makes no Kubernetes write.
    let before = emulator.kube_writes().len();
    workspace
        .run(&emulator.endpoint, &["plan", "--detailed-exitcode"])
        .expect(0);
    let again = workspace
        .run(&emulator.endpoint, &["apply", "--yes"])
        .expect(0);
    assert!(again.stdout.contains("No changes"), "{}", again.stdout);
    assert_eq!(writes_after(&emulator, before), Vec::<String>::new());
}

#[test]
fn changed_settings_are_one_precise_update_each_applied_with_ssa() {
    let emulator = Emulator::start();
    let workspace = full();
    workspace
        .run(&emulator.endpoint, &["apply", "--yes"])
        .expect(0);

    let changes: [(&str, &str, &str, &str); 3] = [
        (
            "comfyui:v0.3.40",
            "comfyui:v0.3.41",
            "k8s.apps/v1.Deployment.comfyui/comfyui",
            "spec.template.spec.containers[comfyui].image",
        ),
        (
            "  replicas: 1\n",
            "  replicas: 2\n",
            "k8s.apps/v1.Deployment.comfyui/comfyui",
            "spec.replicas",
        ),
        (
            "instance_types: [g6.2xlarge, g5.2xlarge]",
            "instance_types: [g6e.xlarge]",
            "k8s.karpenter.sh/v1.NodePool.sandbox-gpu",
            "values",
        ),
    ];
    let mut yaml = full_sandbox_yaml();
    for (from, to, address, field) in changes {
        yaml = yaml.replace(from, to);
        workspace.write(&yaml);
        let plan = workspace
            .run(&emulator.endpoint, &["plan", "--detailed-exitcode"])
            .expect(2);
        assert!(
            plan.stdout
                .contains("Plan: 0 to add, 1 to change, 0 to destroy."),
            "{}",
            plan.stdout
        );
        assert!(
            plan.stdout
                .contains(&format!("# {address} will be updated in place")),
            "{}",
            plan.stdout
        );
        assert!(plan.stdout.contains(field), "{}", plan.stdout);
        let before = emulator.kube_writes().len();
        workspace
            .run(&emulator.endpoint, &["apply", "--yes"])
            .expect(0);
        let writes = writes_after(&emulator, before);
        assert_eq!(writes.len(), 1, "{writes:?}");
        assert!(writes[0].starts_with("PATCH "), "{writes:?}");
        workspace
            .run(&emulator.endpoint, &["plan", "--detailed-exitcode"])
            .expect(0);
    }
    let deployment = emulator.kubectl_json(&["-n", NS, "get", "deployment", "comfyui"]);
    assert_eq!(deployment["spec"]["replicas"], 2);
    assert!(
        deployment["spec"]["template"]["spec"]["containers"][0]["image"]
            .as_str()
            .is_some_and(|i| i.ends_with(":v0.3.41"))
    );
    let pool = emulator.kubectl_json(&["get", "nodepools.karpenter.sh", "sandbox-gpu"]);
    let requirements = pool["spec"]["template"]["spec"]["requirements"].to_string();
    assert!(requirements.contains("g6e.xlarge") && !requirements.contains("g5.2xlarge"));
}

#[test]
fn kubectl_changes_show_as_drift_and_are_repaired() {
    let emulator = Emulator::start();
    let workspace = full();
    workspace
        .run(&emulator.endpoint, &["apply", "--yes"])
        .expect(0);
    emulator.kubectl_ok(&["-n", NS, "scale", "deployment/comfyui", "--replicas=3"]);
    emulator.kubectl_ok(&[
        "-n",
        NS,
        "set",
        "image",
        "deployment/comfyui",
        "comfyui=evil:latest",
    ]);

    let plan = workspace
        .run(&emulator.endpoint, &["plan", "--detailed-exitcode"])
        .expect(2);
    assert!(
        plan.stdout.contains("changed outside comfyplat"),
        "{}",
        plan.stdout
    );
    assert!(plan.stdout.contains("spec.replicas"), "{}", plan.stdout);
    assert!(plan.stdout.contains("evil:latest"), "{}", plan.stdout);
    assert!(
        plan.stdout
            .contains("Plan: 0 to add, 1 to change, 0 to destroy."),
        "{}",
        plan.stdout
    );

    workspace
        .run(&emulator.endpoint, &["apply", "--yes"])
        .expect(0);
    let deployment = emulator.kubectl_json(&["-n", NS, "get", "deployment", "comfyui"]);
    assert_eq!(deployment["spec"]["replicas"], 1);
    assert!(
        deployment["spec"]["template"]["spec"]["containers"][0]["image"]
            .as_str()
            .is_some_and(|i| i.ends_with(":v0.3.40"))
    );
    workspace
        .run(&emulator.endpoint, &["plan", "--detailed-exitcode"])
        .expect(0);
}

#[test]
fn turning_the_inputs_mount_off_prunes_its_volume_claim_and_mount() {
    let emulator = Emulator::start();
    let workspace = full();
    workspace
        .run(&emulator.endpoint, &["apply", "--yes"])
        .expect(0);
    workspace
        .write(&full_sandbox_yaml().replace("  gpus: 1\n", "  gpus: 1\n  mount_inputs: false\n"));
    let plan = workspace.run(&emulator.endpoint, &["plan"]).expect(0);
    assert!(
        plan.stdout
            .contains("# k8s.v1.PersistentVolume.sandbox-comfyui-inputs will be destroyed"),
        "{}",
        plan.stdout
    );
    assert!(
        plan.stdout
            .contains("# k8s.v1.PersistentVolumeClaim.comfyui/comfyui-inputs will be destroyed"),
        "{}",
        plan.stdout
    );
    assert!(plan.stdout.contains("volumes[inputs]"), "{}", plan.stdout);
    workspace
        .run(&emulator.endpoint, &["apply", "--yes"])
        .expect(0);

    assert!(
        !emulator
            .kubectl(&["get", "pv", "sandbox-comfyui-inputs"])
            .status
            .success()
    );
    assert!(
        !emulator
            .kubectl(&["-n", NS, "get", "pvc", "comfyui-inputs"])
            .status
            .success()
    );
    let deployment = emulator.kubectl_json(&["-n", NS, "get", "deployment", "comfyui"]);
    let text = deployment["spec"]["template"]["spec"].to_string();
    assert!(!text.contains("inputs"), "{text}");
    assert!(text.contains("comfyui-outputs"), "{text}");
    workspace
        .run(&emulator.endpoint, &["plan", "--detailed-exitcode"])
        .expect(0);
}

#[test]
fn missing_karpenter_or_another_cluster_is_refused_with_zero_writes() {
    let emulator = Emulator::start();
    let workspace = full();
    emulator.kubectl_ok(&[
        "delete",
        "crd",
        "nodepools.karpenter.sh",
        "ec2nodeclasses.karpenter.k8s.aws",
    ]);
    let before = emulator.kube_writes().len();
    let refused = workspace
        .run(&emulator.endpoint, &["apply", "--yes"])
        .expect(1);
    assert!(
        refused.stderr.contains("Karpenter is not installed")
            && refused.stderr.contains("karpenter.sh/v1"),
        "{}",
        refused.stderr
    );
    assert_eq!(writes_after(&emulator, before), Vec::<String>::new());
    assert!(
        !workspace.state_file().exists()
            || workspace.state()["resources"]
                .as_object()
                .is_none_or(|r| r.is_empty())
    );

    // A kubeconfig for another cluster (a second API server) is refused before any write.
    let other = Emulator::start();
    let kubeconfig = other.kube["kubeconfig"]
        .as_str()
        .expect("kubeconfig")
        .to_string();
    let fresh = Emulator::start();
    let before = fresh.kube_writes().len();
    let refused = workspace
        .run(&fresh.endpoint, &["plan", "--kubeconfig", &kubeconfig])
        .expect(1);
    assert!(
        refused.stderr.contains("points at")
            && refused.stderr.contains("not at cluster `comfyui-sandbox`"),
        "{}",
        refused.stderr
    );
    assert_eq!(writes_after(&fresh, before), Vec::<String>::new());
    assert_eq!(other.kube_writes(), Vec::<String>::new());

    // The emulator's own kubeconfig names the right cluster and is accepted.
    let own = fresh.kube["kubeconfig"]
        .as_str()
        .expect("kubeconfig")
        .to_string();
    workspace
        .run(&fresh.endpoint, &["plan", "--kubeconfig", &own])
        .expect(0);
}

#[test]
fn destroy_removes_the_objects_ingress_first() {
    let emulator = Emulator::start();
    let workspace = full();
    workspace
        .run(&emulator.endpoint, &["apply", "--yes"])
        .expect(0);
    let before = emulator.kube_writes().len();
    workspace
        .run(&emulator.endpoint, &["destroy", "--yes"])
        .expect(0);
    let deletes: Vec<String> = writes_after(&emulator, before)
        .into_iter()
        .filter(|w| w.starts_with("DELETE "))
        .collect();
    let position = |part: &str| {
        deletes
            .iter()
            .position(|d| d.contains(part))
            .unwrap_or_else(|| panic!("no delete of {part} in {deletes:?}"))
    };
    assert!(position("/ingresses/") < position("/deployments/"));
    assert!(position("/deployments/") < position("/persistentvolumeclaims/"));
    assert!(position("/persistentvolumeclaims/") < position("/persistentvolumes/"));
    assert!(position("/nodepools/") < position("/ec2nodeclasses/"));
    let left = emulator.kubectl_json(&[
        "get",
        "pv,nodepools.karpenter.sh,ec2nodeclasses.karpenter.k8s.aws",
        "-l",
        "comfyplat.io/platform=sandbox",
    ]);
    assert_eq!(left["items"].as_array().map(Vec::len), Some(0), "{left}");
    assert!(!emulator.kubectl(&["get", "namespace", NS]).status.success());
}
