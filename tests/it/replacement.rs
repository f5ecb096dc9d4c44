//! Changes the API refuses to make in place become replacements, and values the API server
//! rewrites into canonical form converge, against the Kubernetes API test server, which
//! refuses immutable updates (422) and stores quantities canonically as kube-apiserver
//! does; read back with kubectl.

use serde_json::{Value, json};

use crate::support::*;

const PV: &str = "k8s.v1.PersistentVolume.sandbox-comfyui-outputs";
const PVC: &str = "k8s.v1.PersistentVolumeClaim.comfyui/comfyui-outputs";
const DEPLOYMENT: &str = "k8s.apps/v1.Deployment.comfyui/comfyui";

fn renamed_outputs() -> String {
    full_sandbox_yaml().replace(
        "  outputs:\n    expire_after_days: 30\n",
        "  outputs:\n    name: studio-outputs-{account}-{region}\n    expire_after_days: 30\n",
    )
}

fn change<'a>(plan: &'a Value, address: &str) -> &'a Value {
    plan["resource_changes"]
        .as_array()
        .and_then(|changes| changes.iter().find(|c| c["address"] == address))
        .unwrap_or_else(|| panic!("no change for {address}: {plan:#}"))
}

#[test]
fn a_renamed_bucket_replaces_its_volume_claim_and_workload_in_an_order_the_api_accepts() {
    let emulator = Emulator::start();
    let workspace = Workspace::new(&full_sandbox_yaml());
    workspace
        .run(&emulator.endpoint, &["apply", "--yes"])
        .expect(0);
    let old_bucket = bucket("outputs");
    let new_bucket = format!("studio-outputs-{ACCOUNT}-{REGION}");

    // The server refuses to change a volume's source in place, as kube-apiserver does.
    let refused = emulator.kubectl(&[
        "patch",
        "pv",
        "sandbox-comfyui-outputs",
        "--type",
        "merge",
        "-p",
        r#"{"spec":{"csi":{"volumeAttributes":{"bucketName":"elsewhere"}}}}"#,
    ]);
    assert!(!refused.status.success());
    assert!(
        String::from_utf8_lossy(&refused.stderr)
            .contains("spec.persistentvolumesource: Forbidden: spec.persistentvolumesource is immutable after creation"),
        "{}",
        String::from_utf8_lossy(&refused.stderr)
    );

    workspace.write(&renamed_outputs());
    let text = workspace
        .run(&emulator.endpoint, &["plan"])
        .expect(0)
        .stdout;
    for expected in [
        format!(
            "  # {PV} must be replaced (`spec.csi.volumeAttributes.bucketName` cannot be changed in place)"
        ),
        format!(
            "      ~ spec.csi.volumeAttributes.bucketName: \"{old_bucket}\" -> \"{new_bucket}\" # forces replacement"
        ),
        format!(
            "  # {PVC} must be replaced (replaced together with {PV}, which it stays bound to)"
        ),
        format!("      ~ bound to {PV}, which is replaced # forces replacement"),
        format!(
            "  # {DEPLOYMENT} must be replaced (replaced together with {PVC}, which it stays bound to)"
        ),
        "-/+ Kubernetes object PersistentVolume sandbox-comfyui-outputs".to_string(),
        "-/+ Kubernetes object PersistentVolumeClaim comfyui/comfyui-outputs".to_string(),
    ] {
        assert!(text.contains(&expected), "missing `{expected}` in:\n{text}");
    }
    let run = workspace
        .run(&emulator.endpoint, &["plan", "--json"])
        .expect(0);
    let plan: Value = serde_json::from_str(&run.stdout).expect("plan JSON");
    for address in [PV, PVC, DEPLOYMENT, "s3.bucket.outputs"] {
        assert_eq!(
            change(&plan, address)["actions"],
            json!(["delete", "create"]),
            "{address}"
        );
    }
    assert_eq!(
        change(&plan, PV)["replace_paths"],
        json!(["spec.csi.volumeAttributes.bucketName"])
    );

    let before = emulator.kube_requests().len();
    workspace
        .run(&emulator.endpoint, &["apply", "--yes"])
        .expect(0);
    // The workload went before its claim, the claim before its volume; then back.
    let writes: Vec<String> = emulator
        .kube_requests()
        .into_iter()
        .skip(before)
        .filter(|r| r["write"] == true && r["dryRun"] != true)
        .map(|r| {
            format!(
                "{} {}",
                r["method"].as_str().unwrap_or(""),
                r["path"].as_str().unwrap_or("")
            )
        })
        .collect();
    let position = |wanted: &str| {
        writes
            .iter()
            .position(|w| w == wanted)
            .unwrap_or_else(|| panic!("no `{wanted}` in {writes:#?}"))
    };
    let deployment = "/apis/apps/v1/namespaces/comfyui/deployments/comfyui";
    let claim = "/api/v1/namespaces/comfyui/persistentvolumeclaims/comfyui-outputs";
    let volume = "/api/v1/persistentvolumes/sandbox-comfyui-outputs";
    assert!(position(&format!("DELETE {deployment}")) < position(&format!("DELETE {claim}")));
    assert!(position(&format!("DELETE {claim}")) < position(&format!("DELETE {volume}")));
    assert!(position(&format!("DELETE {volume}")) < position(&format!("PATCH {volume}")));
    assert!(position(&format!("PATCH {volume}")) < position(&format!("PATCH {claim}")));
    assert!(position(&format!("PATCH {claim}")) < position(&format!("PATCH {deployment}")));

    let pv = emulator.kubectl_json(&["get", "pv", "sandbox-comfyui-outputs"]);
    assert_eq!(
        pv["spec"]["csi"]["volumeAttributes"]["bucketName"],
        new_bucket.as_str()
    );
    let pvc = emulator.kubectl_json(&["-n", "comfyui", "get", "pvc", "comfyui-outputs"]);
    assert_eq!(pvc["status"]["phase"], "Bound", "{pvc:#}");
    emulator.kubectl_ok(&["-n", "comfyui", "get", "deployment", "comfyui"]);
    let reader = Reader::new(&emulator.endpoint);
    assert!(reader.bucket_exists(&new_bucket));
    assert!(!reader.bucket_exists(&old_bucket));

    let quiet = workspace.run(&emulator.endpoint, &["plan", "--detailed-exitcode"]);
    assert_eq!(quiet.code, 0, "{}{}", quiet.stdout, quiet.stderr);
}

#[test]
fn quantities_written_the_way_people_write_them_converge() {
    let emulator = Emulator::start();
    let workspace = Workspace::new(&full_sandbox_yaml().replace(
        "  gpus: 1\n",
        "  gpus: 1\n  cpu: \"0.5\"\n  memory: 1024Mi\n",
    ));
    let apply = workspace
        .run(&emulator.endpoint, &["apply", "--yes"])
        .expect(0);
    assert!(
        apply
            .stdout
            .contains("spec.template.spec.containers[comfyui].resources.requests.cpu = \"500m\""),
        "{}",
        apply.stdout
    );
    let deployment = emulator.kubectl_json(&["-n", "comfyui", "get", "deployment", "comfyui"]);
    assert_eq!(
        deployment["spec"]["template"]["spec"]["containers"][0]["resources"]["requests"],
        json!({"cpu": "500m", "memory": "1Gi", "nvidia.com/gpu": "1"})
    );
    let quiet = workspace.run(&emulator.endpoint, &["plan", "--detailed-exitcode"]);
    assert_eq!(quiet.code, 0, "{}{}", quiet.stdout, quiet.stderr);
}
