//! The planner on constructed inputs: no server, exact expectations.

use std::collections::BTreeMap;
use std::path::Path;

use serde_json::json;

use super::*;
use crate::config;
use crate::model::kinds::{cloudfront_distribution, s3_bucket};
use crate::model::{
    self, AddonFacts, AdoptedState, ClusterFacts, Fields, Live, Observation, Observed, Owner,
};
use crate::state::State;
use crate::templates::Sources;

const YAML: &str = "version: 1
name: studio
region: us-west-2
cluster:
  name: comfyui
karpenter:
  node_role: NodeRole
tags:
  team: art
storage:
  outputs:
    expire_after_days: 30
  inputs: {}
";

fn environment() -> Environment {
    Environment {
        account: "111122223333".to_string(),
        partition: "aws".to_string(),
        region: "us-west-2".to_string(),
        cluster: ClusterFacts {
            name: "comfyui".to_string(),
            version: "1.33".to_string(),
            status: "ACTIVE".to_string(),
            oidc_issuer: Some("https://oidc.eks.us-west-2.amazonaws.com/id/ABC".to_string()),
            authentication_mode: "CONFIG_MAP".to_string(),
            ..ClusterFacts::default()
        },
        addons: vec![
            AddonFacts {
                name: "eks-pod-identity-agent".to_string(),
                version: "v1.3.4-eksbuild.1".to_string(),
                pod_identity: true,
            },
            AddonFacts {
                name: "aws-mountpoint-s3-csi-driver".to_string(),
                version: "v2.1.0-eksbuild.1".to_string(),
                pod_identity: true,
            },
        ],
        distribution_reference: "comfyplat-studio-test".to_string(),
        state_lineage: "lineage-test".to_string(),
        notes: Vec::new(),
    }
}

/// The desired resources of a platform file in an environment.
fn desired_in(yaml: &str, environment: &Environment) -> Desired {
    let platform =
        config::from_bytes(Path::new("platform.yaml"), yaml.as_bytes()).expect("valid platform");
    model::desired(&model::Context {
        platform: &platform,
        environment,
        templates: &Sources::embedded(),
    })
    .expect("templates render")
}

/// Every adopted thing exists (and may do what it must).
fn adopted_fine(desired: &Desired) -> Vec<(model::Adopted, AdoptedState)> {
    desired
        .adopted
        .iter()
        .map(|a| {
            (
                a.clone(),
                AdoptedState {
                    exists: true,
                    missing: Vec::new(),
                },
            )
        })
        .collect()
}

fn desired_from(yaml: &str) -> Desired {
    desired_in(yaml, &environment())
}

fn desired() -> Desired {
    desired_from(YAML)
}

fn absent_world(desired: &Desired) -> Observed {
    Observed {
        resources: desired
            .resources
            .iter()
            .map(|r| (r.identity.clone(), Observation::Absent))
            .collect(),
        adopted: adopted_fine(desired),
        labelled: Vec::new(),
        discovered: Vec::new(),
    }
}

/// The world and state right after a successful apply of `desired`.
fn applied(desired: &Desired) -> (State, Observed) {
    let mut state = State::new("studio", "us-west-2");
    state.serial = 3;
    let mut observed = absent_world(desired);
    for resource in &desired.resources {
        state.record_applied(resource);
        let owner = match resource.identity {
            Identity::IamRolePolicy(_) | Identity::EksAccessConfig(_) => Owner::Name,
            _ => Owner::Tag(Some("studio".to_string())),
        };
        observed.resources.insert(
            resource.identity.clone(),
            Observation::Present(Live {
                fields: resource.fields.clone(),
                owner,
                holds_objects: resource.identity.holds_data().then_some(false),
                status: None,
                attributes: Fields::new(),
            }),
        );
    }
    (state, observed)
}

fn live_mut<'a>(observed: &'a mut Observed, desired: &Desired, address: &str) -> &'a mut Live {
    let identity = &desired
        .get(&Address::new(address))
        .expect("resource")
        .identity;
    match observed.resources.get_mut(identity) {
        Some(Observation::Present(live)) => live,
        _ => panic!("{address} is not present"),
    }
}

const APPLY: Options = Options {
    mode: Mode::Apply,
    delete_data: false,
    adopt: false,
};
const DESTROY: Options = Options {
    mode: Mode::Destroy,
    delete_data: false,
    adopt: false,
};

fn actions(plan: &Plan) -> Vec<(String, Action)> {
    plan.changes
        .iter()
        .map(|c| (c.address.to_string(), c.action))
        .collect()
}

#[test]
fn an_empty_world_is_created_in_dependency_order() {
    let desired = desired();
    let plan = plan(
        &desired,
        &State::new("studio", "us-west-2"),
        &absent_world(&desired),
        APPLY,
        &environment(),
    );
    assert_eq!(
        plan.summary(),
        Summary {
            add: 9,
            ..Summary::default()
        }
    );
    assert!(plan.blockers.is_empty() && plan.drift.is_empty());
    let position = |address: &str| {
        plan.changes
            .iter()
            .position(|c| c.address.0 == address)
            .expect("change")
    };
    for (before, after) in [
        ("s3.bucket.outputs", "iam.role_policy.s3_csi_driver"),
        ("s3.bucket.inputs", "iam.role_policy.s3_csi_driver"),
        ("iam.role.s3_csi_driver", "iam.role_policy.s3_csi_driver"),
    ] {
        assert!(
            position(before) < position(after),
            "{before} must come before {after}"
        );
    }
    let csi = &plan.changes[position("iam.role_policy.s3_csi_driver")];
    assert_eq!(
        csi.after,
        vec![
            Address::new("iam.role.s3_csi_driver"),
            Address::new("s3.bucket.inputs"),
            Address::new("s3.bucket.outputs")
        ]
    );
    assert!(
        plan.changes
            .iter()
            .all(|c| c.reasons == vec![Reason::NotInState])
    );
}

#[test]
fn nothing_to_do_after_an_apply_and_the_plan_is_deterministic() {
    let desired = desired();
    let (state, observed) = applied(&desired);
    let first = plan(&desired, &state, &observed, APPLY, &environment());
    assert!(!first.has_changes(), "{:?}", actions(&first));
    assert!(first.changes.is_empty() && first.drift.is_empty() && first.blockers.is_empty());
    assert_eq!(
        first,
        plan(&desired, &state, &observed, APPLY, &environment())
    );
}

#[test]
fn a_changed_setting_is_one_update_of_one_field() {
    let (state, observed) = applied(&desired());
    let desired = desired_from(&YAML.replace("expire_after_days: 30", "expire_after_days: 7"));
    let plan = plan(&desired, &state, &observed, APPLY, &environment());
    assert_eq!(
        actions(&plan),
        vec![("s3.bucket.outputs".to_string(), Action::Update)]
    );
    assert_eq!(plan.changes[0].reasons, vec![Reason::ConfigChanged]);
    assert_eq!(
        plan.changes[0].fields,
        vec![FieldChange::new(
            "lifecycle.expiration_days",
            Some(json!(30)),
            Some(json!(7))
        )]
    );
    assert!(plan.drift.is_empty());
}

#[test]
fn drift_is_reported_apart_from_the_repair() {
    let desired = desired();
    let (state, mut observed) = applied(&desired);
    let live = live_mut(&mut observed, &desired, "s3.bucket.models");
    live.fields.remove("policy");
    live.fields.insert("tags.intruder".to_string(), json!("x"));
    let plan = plan(&desired, &state, &observed, APPLY, &environment());
    assert_eq!(
        actions(&plan),
        vec![("s3.bucket.models".to_string(), Action::Update)]
    );
    assert_eq!(plan.changes[0].reasons, vec![Reason::Drifted]);
    assert_eq!(plan.drift.len(), 1);
    let paths: Vec<&str> = plan.drift[0]
        .fields
        .iter()
        .map(|f| f.path.as_str())
        .collect();
    assert_eq!(paths, vec!["policy", "tags.intruder"]);
    // Drift runs from last applied to live; the change from live to desired.
    assert!(plan.drift[0].fields[0].after.is_none());
    assert!(
        plan.changes[0].fields[0].before.is_none() && plan.changes[0].fields[0].after.is_some()
    );
    assert!(plan.changes[0].fields[1].after.is_none());
}

#[test]
fn a_resource_deleted_outside_is_recreated_and_reported_as_gone() {
    let desired = desired();
    let (state, mut observed) = applied(&desired);
    let identity = desired
        .get(&Address::new("iam.role.s3_csi_driver"))
        .expect("role")
        .identity
        .clone();
    observed.resources.insert(identity, Observation::Absent);
    let plan = plan(&desired, &state, &observed, APPLY, &environment());
    assert_eq!(
        actions(&plan),
        vec![("iam.role.s3_csi_driver".to_string(), Action::Create)]
    );
    assert_eq!(plan.changes[0].reasons, vec![Reason::DeletedOutside]);
    assert!(plan.drift[0].gone);
}

#[test]
fn owned_resources_missing_from_state_are_adopted_and_foreign_ones_block() {
    let desired = desired();
    let (_, mut observed) = applied(&desired);
    live_mut(&mut observed, &desired, "s3.bucket.inputs").owner = Owner::Tag(None);
    live_mut(&mut observed, &desired, "s3.bucket.models").owner =
        Owner::Tag(Some("other".to_string()));
    let adopt = Options {
        adopt: true,
        ..APPLY
    };
    let plan = plan(
        &desired,
        &State::new("studio", "us-west-2"),
        &observed,
        adopt,
        &environment(),
    );
    let adopted: Vec<String> = plan
        .changes
        .iter()
        .filter(|c| c.action == Action::Adopt)
        .map(|c| c.address.to_string())
        .collect();
    assert_eq!(adopted.len(), 7, "{adopted:?}");
    assert_eq!(plan.blockers.len(), 2);
    assert!(
        plan.blockers[0]
            .message
            .contains("not owned by platform `studio`")
    );
    assert!(
        plan.blockers
            .iter()
            .any(|b| b.message.contains("belongs to comfyplat platform `other`"))
    );
}

#[test]
fn resources_of_another_state_lineage_block_unless_adopted() {
    let desired = desired();
    let (state, observed) = applied(&desired);
    // A new state on a platform that exists (the command plans with the lineage found).
    let fresh = State::new("studio", "us-west-2");
    let blocked = plan(&desired, &fresh, &observed, APPLY, &environment());
    assert_eq!(blocked.blockers.len(), 1, "{:?}", blocked.blockers);
    assert!(blocked.blockers[0].message.contains("this state is new"));
    assert!(blocked.blockers[0].hint.contains("--adopt"));
    // A state that has applied, facing resources another state dir re-tagged.
    let mut elsewhere = environment();
    elsewhere.state_lineage = "another-lineage".to_string();
    let theirs = plan(&desired, &state, &observed, APPLY, &elsewhere);
    assert!(
        theirs.blockers.iter().any(|b| b.message.contains(
            "applied from another state (lineage lineage-test), not this one (another-lineage)"
        )),
        "{:?}",
        theirs.blockers
    );
    let adopt = Options {
        adopt: true,
        ..APPLY
    };
    assert!(
        plan(&desired, &fresh, &observed, adopt, &environment())
            .blockers
            .is_empty()
    );
    assert!(
        plan(&desired, &state, &observed, APPLY, &environment())
            .blockers
            .is_empty()
    );
}

#[test]
fn an_interrupted_create_is_finished() {
    let desired = desired();
    let (mut state, mut observed) = applied(&desired);
    state.mark_creating(
        desired
            .get(&Address::new("s3.bucket.outputs"))
            .expect("outputs"),
    );
    // Created, but killed before any setting was written: no tags, nothing.
    let live = live_mut(&mut observed, &desired, "s3.bucket.outputs");
    live.fields.clear();
    live.owner = Owner::Tag(None);
    let plan = plan(&desired, &state, &observed, APPLY, &environment());
    assert_eq!(
        actions(&plan),
        vec![("s3.bucket.outputs".to_string(), Action::Update)]
    );
    assert_eq!(plan.changes[0].reasons, vec![Reason::IncompleteCreate]);
    assert!(plan.blockers.is_empty());
}

#[test]
fn removing_a_bucket_with_data_blocks_apply_and_is_kept_by_destroy() {
    let full = desired();
    let (state, mut observed) = applied(&full);
    live_mut(&mut observed, &full, "s3.bucket.inputs").holds_objects = Some(true);
    let without_inputs = desired_from(&YAML.replace("  inputs: {}\n", ""));

    let blocked = plan(&without_inputs, &state, &observed, APPLY, &environment());
    assert!(actions(&blocked).contains(&("s3.bucket.inputs".to_string(), Action::Delete)));
    assert_eq!(blocked.blockers.len(), 1);
    assert!(blocked.blockers[0].hint.contains("--delete-data"));
    let delete = blocked
        .changes
        .iter()
        .find(|c| c.address.0 == "s3.bucket.inputs")
        .expect("delete");
    assert_eq!(
        delete.after,
        vec![Address::new("iam.role_policy.s3_csi_driver")],
        "the policy stops naming it first"
    );

    let allowed = plan(
        &without_inputs,
        &state,
        &observed,
        Options {
            mode: Mode::Apply,
            delete_data: true,
            adopt: false,
        },
        &environment(),
    );
    assert!(allowed.blockers.is_empty());

    let destroy = plan(&full, &state, &observed, DESTROY, &environment());
    assert!(destroy.blockers.is_empty());
    let inputs = destroy
        .changes
        .iter()
        .find(|c| c.address.0 == "s3.bucket.inputs")
        .expect("inputs");
    assert_eq!(inputs.action, Action::Keep);
    assert_eq!(
        destroy.summary(),
        Summary {
            destroy: 7,
            forget: 1,
            keep: 1,
            ..Summary::default()
        }
    );
    let config = destroy
        .changes
        .iter()
        .find(|c| c.address.0 == "eks.access_config")
        .expect("access config");
    assert_eq!(
        (config.action, config.reasons.clone()),
        (Action::Forget, vec![Reason::Destroying, Reason::LeftAsIs])
    );
}

#[test]
fn destroy_deletes_dependents_first() {
    let desired = desired();
    let (state, observed) = applied(&desired);
    let plan = plan(&desired, &state, &observed, DESTROY, &environment());
    let order: Vec<String> = plan.changes.iter().map(|c| c.address.to_string()).collect();
    let position = |address: &str| order.iter().position(|a| a == address).expect("address");
    assert!(position("iam.role_policy.s3_csi_driver") < position("iam.role.s3_csi_driver"));
    assert!(position("iam.role_policy.s3_csi_driver") < position("s3.bucket.outputs"));
    let role = &plan.changes[position("iam.role.s3_csi_driver")];
    assert_eq!(
        role.after,
        vec![
            Address::new("eks.addon.aws-mountpoint-s3-csi-driver"),
            Address::new("iam.role_policy.s3_csi_driver")
        ]
    );
}

#[test]
fn a_renamed_bucket_is_replaced() {
    let (state, observed) = applied(&desired());
    let renamed = desired_from(&YAML.replace(
        "  inputs: {}\n",
        "  inputs:\n    name: studio-inputs-{account}\n",
    ));
    let plan = plan(&renamed, &state, &observed, APPLY, &environment());
    let replace = plan
        .changes
        .iter()
        .find(|c| c.address.0 == "s3.bucket.inputs")
        .expect("inputs");
    assert_eq!(replace.action, Action::Replace);
    assert_eq!(
        replace.previous,
        Some(Identity::S3Bucket(s3_bucket::Id {
            name: "comfyui-inputs-111122223333-us-west-2".to_string(),
            region: "us-west-2".to_string()
        }))
    );
    assert!(
        actions(&plan).contains(&("iam.role_policy.s3_csi_driver".to_string(), Action::Update))
    );
}

#[test]
fn a_missing_adopted_role_blocks_apply_but_not_destroy() {
    let desired = desired();
    let mut observed = absent_world(&desired);
    observed.adopted = adopted_fine(&desired)
        .into_iter()
        .map(|(a, mut found)| {
            found.exists = false;
            (a, found)
        })
        .collect();
    let state = State::new("studio", "us-west-2");
    let blocked = plan(&desired, &state, &observed, APPLY, &environment());
    assert_eq!(blocked.blockers.len(), 1);
    assert!(
        blocked.blockers[0]
            .message
            .contains("IAM role `NodeRole` named by `karpenter.node_role` does not exist")
    );
    assert!(
        plan(&desired, &state, &observed, DESTROY, &environment())
            .blockers
            .is_empty()
    );
}

#[test]
fn a_state_entry_already_gone_is_forgotten() {
    let desired = desired();
    let (state, mut observed) = applied(&desired);
    let without_inputs = desired_from(&YAML.replace("  inputs: {}\n", ""));
    let identity = desired
        .get(&Address::new("s3.bucket.inputs"))
        .expect("inputs")
        .identity
        .clone();
    observed.resources.insert(identity, Observation::Absent);
    let plan = plan(&without_inputs, &state, &observed, APPLY, &environment());
    let forget = plan
        .changes
        .iter()
        .find(|c| c.address.0 == "s3.bucket.inputs")
        .expect("inputs");
    assert_eq!(
        (forget.action, forget.reasons.clone()),
        (Action::Forget, vec![Reason::AlreadyGone])
    );
}

#[test]
fn the_rendered_plan_reads_like_terraform() {
    let full = desired();
    let (state, mut observed) = applied(&full);
    live_mut(&mut observed, &full, "s3.bucket.inputs").holds_objects = Some(false);
    let csi_role = live_mut(&mut observed, &full, "iam.role.s3_csi_driver");
    csi_role.fields.insert(
        "trust_policy".to_string(),
        model::policy::normalize(&json!({"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Principal": {"AWS": "*"}, "Action": "sts:AssumeRole"}]})),
    );
    let changed = desired_from(
        &YAML
            .replace("expire_after_days: 30", "expire_after_days: 7")
            .replace("  inputs: {}\n", "")
            .replace("team: art", "team: art\n  owner: render"),
    );
    let plan = plan(&changed, &state, &observed, APPLY, &environment());
    let text = crate::ui::render_plan(&plan, crate::ui::Style::PLAIN);
    insta::assert_snapshot!(text);
    let mut counts = BTreeMap::new();
    for change in &plan.changes {
        *counts.entry(change.action).or_insert(0) += 1;
    }
    assert_eq!(counts.get(&Action::Delete), Some(&1));
}

const WITH_COMFYUI: &str = "comfyui:
  image: r/comfyui:v1
cdn:
  price_class: PriceClass_100
";

/// The test environment with what rendering the node class needs.
fn cluster_environment() -> Environment {
    let mut environment = environment();
    environment.cluster.subnet_ids = vec!["subnet-1".to_string()];
    environment.cluster.security_group_id = Some("sg-1".to_string());
    environment
}

fn edge_desired() -> Desired {
    desired_in(&format!("{YAML}{WITH_COMFYUI}"), &cluster_environment())
}

const DISTRIBUTION: &str = cloudfront_distribution::DISTRIBUTION;
const INGRESS: &str = "k8s.networking.k8s.io/v1.Ingress.comfyui/comfyui";

fn change<'a>(plan: &'a Plan, address: &str) -> &'a Change {
    plan.changes
        .iter()
        .find(|c| c.address.0 == address)
        .unwrap_or_else(|| panic!("no change for {address}"))
}

#[test]
fn the_origin_is_known_after_apply_until_the_ingress_has_a_hostname() {
    let desired = edge_desired();
    let state = State::new("studio", "us-west-2");
    let mut observed = absent_world(&desired);
    let plan_now = plan(&desired, &state, &observed, APPLY, &cluster_environment());
    let create = change(&plan_now, DISTRIBUTION);
    assert!(create.after.contains(&Address::new(INGRESS)));
    let origin = create.resource.as_ref().expect("resource").fields["origin.domain_name"].clone();
    assert_eq!(
        model::deferred::placeholder(&origin),
        Some(model::deferred::Placeholder::IngressHostname {
            namespace: "comfyui".to_string(),
            name: "comfyui".to_string()
        })
    );
    // Once the Ingress exists with its load balancer, the plan uses the hostname.
    let ingress = desired.get(&Address::new(INGRESS)).expect("ingress");
    let mut live = Live::tagged(ingress.fields.clone(), Vec::new(), None);
    live.attributes.insert(
        model::kubernetes::INGRESS_HOSTNAME.to_string(),
        json!("lb-1.elb.amazonaws.com"),
    );
    observed
        .resources
        .insert(ingress.identity.clone(), Observation::Present(live));
    let plan_later = plan(&desired, &state, &observed, APPLY, &cluster_environment());
    let create = change(&plan_later, DISTRIBUTION);
    assert_eq!(
        create.resource.as_ref().expect("resource").fields["origin.domain_name"],
        json!("lb-1.elb.amazonaws.com")
    );
    assert_eq!(
        create.resource.as_ref().expect("resource").depends_on,
        vec![Address::new(INGRESS)]
    );
}

#[test]
fn live_secrets_are_masked_so_they_never_differ_or_show() {
    let desired = edge_desired();
    let (mut state, mut observed) = applied(&desired);
    state
        .secrets
        .insert("origin-secret".to_string(), "s3cr3t".to_string());
    let header = "origin.headers.X-Origin-Verify";
    live_mut(&mut observed, &desired, DISTRIBUTION)
        .fields
        .insert(header.to_string(), json!("s3cr3t"));
    let annotation = "metadata.annotations.alb.ingress.kubernetes.io/conditions.comfyui";
    let live_ingress = live_mut(&mut observed, &desired, INGRESS);
    let masked = live_ingress.fields[annotation].clone();
    live_ingress.fields.insert(
        annotation.to_string(),
        json!(
            masked
                .as_str()
                .expect("text")
                .replace("((secret:origin-secret))", "s3cr3t")
        ),
    );
    let quiet = plan(&desired, &state, &observed, APPLY, &cluster_environment());
    assert!(!quiet.has_changes(), "{:?}", actions(&quiet));

    // A header value that is not the current secret is a change, shown as `(sensitive)`.
    live_mut(&mut observed, &desired, DISTRIBUTION)
        .fields
        .insert(header.to_string(), json!("old-value"));
    let plan = plan(&desired, &state, &observed, APPLY, &cluster_environment());
    let update = change(&plan, DISTRIBUTION);
    assert_eq!(update.action, Action::Update);
    let field = update
        .fields
        .iter()
        .find(|f| f.path == header)
        .expect("the header changes");
    assert_eq!(field.before, Some(json!("((secret:unknown))")));
    let text = serde_json::to_string(&plan).expect("plan JSON");
    assert!(
        !text.contains("s3cr3t") && !text.contains("old-value"),
        "{text}"
    );
}

#[test]
fn a_deployment_left_running_is_in_progress_until_cloudfront_says_deployed() {
    let desired = edge_desired();
    let (mut state, mut observed) = applied(&desired);
    state.set_pending(
        &Address::new(DISTRIBUTION),
        Some(Pending::ready().with_operation("E1")),
    );
    live_mut(&mut observed, &desired, DISTRIBUTION).status = Some("InProgress".to_string());
    let running = plan(&desired, &state, &observed, APPLY, &cluster_environment());
    assert_eq!(
        change(&running, DISTRIBUTION).reasons,
        vec![Reason::InProgress]
    );
    live_mut(&mut observed, &desired, DISTRIBUTION).status = Some("Deployed".to_string());
    let done = plan(&desired, &state, &observed, APPLY, &cluster_environment());
    assert!(!done.has_changes(), "{:?}", actions(&done));
}

const PV: &str = "k8s.v1.PersistentVolume.studio-comfyui-outputs";
const PVC: &str = "k8s.v1.PersistentVolumeClaim.comfyui/comfyui-outputs";
const DEPLOYMENT: &str = "k8s.apps/v1.Deployment.comfyui/comfyui";

#[test]
fn a_field_the_api_cannot_change_replaces_and_what_stays_bound_to_it_goes_with_it() {
    let desired = edge_desired();
    let (state, mut observed) = applied(&desired);
    // The volume's bucket differs live: a volume's source cannot be changed in place.
    let path = "spec.csi.volumeAttributes.bucketName";
    live_mut(&mut observed, &desired, PV)
        .fields
        .insert(path.to_string(), json!("elsewhere"));
    let plan = plan(&desired, &state, &observed, APPLY, &cluster_environment());
    let pv = change(&plan, PV);
    assert_eq!(pv.action, Action::Replace);
    assert_eq!(
        pv.reasons,
        vec![Reason::CannotChangeInPlace {
            paths: vec![path.to_string()]
        }]
    );
    assert_eq!(pv.replace_paths(), vec![path.to_string()]);
    assert_eq!(pv.previous.as_ref(), Some(&pv.identity));
    // The claim bound to it, and the workload whose pods mount the claim, are replaced too.
    let pvc = change(&plan, PVC);
    assert_eq!(pvc.action, Action::Replace);
    assert_eq!(
        pvc.reasons,
        vec![Reason::ReplacedWith {
            address: Address::new(PV)
        }]
    );
    assert!(pvc.fields.is_empty());
    assert_eq!(change(&plan, DEPLOYMENT).action, Action::Replace);
    assert_eq!(plan.summary().add, 3);
    assert_eq!(plan.summary().destroy, 3);
    // Deletes run dependents first; creates dependencies first.
    assert_eq!(pv.destroy_after, vec![Address::new(PVC)]);
    assert_eq!(pvc.destroy_after, vec![Address::new(DEPLOYMENT)]);
    assert!(change(&plan, DEPLOYMENT).destroy_after.is_empty());
    assert!(change(&plan, DEPLOYMENT).after.contains(&Address::new(PVC)));
    assert!(pvc.after.contains(&Address::new(PV)));
    let text = crate::ui::render_plan(&plan, crate::ui::Style::PLAIN);
    assert!(
        text.contains(&format!(
            "      ~ {path}: \"elsewhere\" -> \"comfyui-outputs-111122223333-us-west-2\" # forces replacement"
        )),
        "{text}"
    );
}

#[test]
fn the_steps_of_replacements_are_ordered_delete_first_for_dependents_and_create_first_for_dependencies()
 {
    let desired = edge_desired();
    let (state, mut observed) = applied(&desired);
    live_mut(&mut observed, &desired, PV).fields.insert(
        "spec.csi.volumeAttributes.bucketName".to_string(),
        json!("x"),
    );
    let plan = plan(&desired, &state, &observed, APPLY, &cluster_environment());
    let index = |address: &str| {
        plan.changes
            .iter()
            .position(|c| c.address.0 == address)
            .expect("change")
    };
    let step = |address: &str, step: order::Step| (index(address), step);
    let waits = |address: &str, s: order::Step| order::waits(&plan.changes, index(address), s);
    use order::Step::{Destroy, Upsert};
    assert!(waits(PV, Destroy).contains(&step(PVC, Destroy)));
    assert!(waits(PVC, Destroy).contains(&step(DEPLOYMENT, Destroy)));
    assert!(waits(PV, Upsert).contains(&step(PV, Destroy)));
    assert!(waits(PVC, Upsert).contains(&step(PV, Upsert)));
    assert!(waits(DEPLOYMENT, Upsert).contains(&step(PVC, Upsert)));
    assert!(plan.blockers.is_empty(), "{:?}", plan.blockers);
}

#[test]
fn a_dependency_cycle_is_a_blocker_that_names_it() {
    let mut desired = desired();
    let a = Address::new("s3.bucket.models");
    let b = Address::new("s3.bucket.outputs");
    for resource in desired.resources.iter_mut() {
        if resource.address == a {
            resource.depends_on.push(b.clone());
        } else if resource.address == b {
            resource.depends_on.push(a.clone());
        }
    }
    let plan = plan(
        &desired,
        &State::new("studio", "us-west-2"),
        &absent_world(&desired),
        APPLY,
        &environment(),
    );
    let cycle = plan
        .blockers
        .iter()
        .find(|b| {
            b.message
                .starts_with("the changes depend on each other in a cycle")
        })
        .expect("a cycle blocker");
    assert!(
        cycle.message.contains("s3.bucket.models") && cycle.message.contains("s3.bucket.outputs"),
        "{}",
        cycle.message
    );
}

const WITH_REPOSITORY: &str = "image_repository: {}
comfyui:
  image: \"{repository}:v1\"
cdn:
  price_class: PriceClass_100
";

#[test]
fn an_image_tag_resolves_to_its_digest_and_a_missing_one_blocks() {
    let desired = desired_in(&format!("{YAML}{WITH_REPOSITORY}"), &cluster_environment());
    let (state, mut observed) = applied(&desired);
    let repository = live_mut(&mut observed, &desired, "ecr.repository.comfyui");
    let uri = "111122223333.dkr.ecr.us-west-2.amazonaws.com/comfyui-studio";
    repository.attributes.insert("uri".to_string(), json!(uri));
    let digest = format!("sha256:{}", "a".repeat(64));
    repository
        .attributes
        .insert("digests.v1".to_string(), json!(digest));
    let plan_now = plan(&desired, &state, &observed, APPLY, &cluster_environment());
    let deployment = change(&plan_now, DEPLOYMENT);
    let image = "spec.template.spec.containers[comfyui].image";
    let field = deployment
        .fields
        .iter()
        .find(|f| f.path == image)
        .expect("the image changes from the placeholder state");
    assert_eq!(field.after, Some(json!(format!("{uri}@{digest}"))));
    assert!(
        plan_now
            .notes
            .iter()
            .any(|n| n.contains(&format!("`{{repository}}:v1` is `{digest}`"))),
        "{:?}",
        plan_now.notes
    );
    // The manifest that is applied carries the digest too.
    let manifest = &deployment.resource.as_ref().expect("resource").parameters["manifest"];
    assert!(manifest.to_string().contains(&digest));

    live_mut(&mut observed, &desired, "ecr.repository.comfyui")
        .attributes
        .remove("digests.v1");
    let blocked = plan(&desired, &state, &observed, APPLY, &cluster_environment());
    assert!(
        blocked.blockers.iter().any(|b| b
            .message
            .contains("ECR repository `comfyui-studio` has no image tagged `v1`")),
        "{:?}",
        blocked.blockers
    );
}

#[test]
fn a_node_role_that_may_not_pull_blocks_with_the_policy_to_attach() {
    let desired = desired_in(&format!("{YAML}{WITH_REPOSITORY}"), &cluster_environment());
    let mut observed = absent_world(&desired);
    observed.adopted = adopted_fine(&desired)
        .into_iter()
        .map(|(adopted, mut found)| {
            found.missing = vec![(
                "pull the ComfyUI image from ECR repository `comfyui-studio`".to_string(),
                vec!["ecr:BatchGetImage".to_string()],
            )];
            (adopted, found)
        })
        .collect();
    let plan = plan(
        &desired,
        &State::new("studio", "us-west-2"),
        &observed,
        APPLY,
        &cluster_environment(),
    );
    let blocker = plan
        .blockers
        .iter()
        .find(|b| b.message.contains("may not pull"))
        .expect("a permission blocker");
    assert!(
        blocker.message.contains("ecr:BatchGetImage"),
        "{}",
        blocker.message
    );
    assert!(
        blocker
            .hint
            .contains("arn:aws:iam::aws:policy/AmazonEC2ContainerRegistryPullOnly"),
        "{}",
        blocker.hint
    );
}
