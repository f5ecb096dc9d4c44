//! `comfyplat output [--json]`: the platform's URLs and bucket names, from state and live
//! reads (also printed after every apply); and the report that ends a destroy.

use std::collections::BTreeSet;

use futures::stream::{self, StreamExt, TryStreamExt};

use super::session::KubeOptions;
use super::{Exit, Session};
use crate::adapters::{ApiError, Apis, leftovers};
use crate::cli::{Global, OutputArgs};
use crate::model::kubernetes::INGRESS_HOSTNAME;
use crate::model::report::{
    DestroyReport, DistributionOutput, Finding, LoadBalancerOutput, Outputs,
};
use crate::model::{Identity, Observation};
use crate::observe::OBSERVE_CONCURRENCY;
use crate::planner::{Action, Change, Mode, Plan};
use crate::state::State;
use crate::ui::{Style, render_outputs};

pub async fn run(global: &Global, args: &OutputArgs, style: Style) -> anyhow::Result<Exit> {
    let session = Session::open(global)?;
    let state = session.load_state()?;
    // Read-only, and it must work while the cluster is being rebuilt: connect as destroy
    // does (no add-on resolution, no preflight, Kubernetes only if state has objects there).
    let connected = session
        .connect(&state, Mode::Destroy, KubeOptions::default())
        .await?;
    let outputs = gather(&connected.apis, &state).await?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&outputs)?);
    } else if outputs == Outputs::default() {
        eprintln!(
            "Platform `{}` has no outputs: nothing is applied yet (`comfyplat apply`).",
            session.platform.name
        );
    } else {
        print!(
            "{}",
            render_outputs(&outputs, super::plan::stdout_style(style))
        );
    }
    Ok(0)
}

/// The outputs of what state records, with the live facts (domain names, status).
pub async fn gather(apis: &Apis, state: &State) -> Result<Outputs, ApiError> {
    let mut outputs = Outputs::default();
    for (address, entry) in &state.resources {
        match &entry.identity {
            Identity::S3Bucket { name, .. } => {
                let id = address.0.strip_prefix("s3.bucket.").unwrap_or(&address.0);
                outputs.buckets.insert(id.to_string(), name.clone());
            }
            Identity::CloudFrontDistribution { .. } => {
                if let Observation::Present(live) = apis.observe(&entry.identity).await? {
                    let text = |key: &str| {
                        live.attributes
                            .get(key)
                            .and_then(|v| v.as_str())
                            .unwrap_or_default()
                            .to_string()
                    };
                    let aliases: Vec<String> = live
                        .fields
                        .get("aliases")
                        .and_then(|v| v.as_array())
                        .map(|a| {
                            a.iter()
                                .filter_map(|v| v.as_str().map(str::to_string))
                                .collect()
                        })
                        .unwrap_or_default();
                    let domain_name = text("domain_name");
                    outputs.cloudfront = Some(DistributionOutput {
                        id: text("id"),
                        url: format!("https://{domain_name}"),
                        domain_name,
                        status: live.status.clone().unwrap_or_default(),
                        aliases,
                    });
                }
            }
            Identity::K8sObject { kind, .. } if kind == "Ingress" => {
                if let Observation::Present(live) = apis.observe(&entry.identity).await?
                    && let Some(hostname) = live
                        .attributes
                        .get(INGRESS_HOSTNAME)
                        .and_then(|v| v.as_str())
                {
                    let cloudfront_only = live.fields.keys().any(|k| {
                        k.starts_with("metadata.annotations.alb.ingress.kubernetes.io/conditions.")
                    });
                    outputs.load_balancer = Some(LoadBalancerOutput {
                        hostname: hostname.to_string(),
                        url: format!("http://{hostname}"),
                        cloudfront_only,
                    });
                }
            }
            _ => {}
        }
    }
    outputs.url = match (&outputs.cloudfront, &outputs.load_balancer) {
        (Some(cdn), _) => Some(match cdn.aliases.first() {
            Some(alias) => format!("https://{alias}"),
            None => cdn.url.clone(),
        }),
        (None, Some(lb)) => Some(lb.url.clone()),
        (None, None) => None,
    };
    Ok(outputs)
}

/// After a destroy: what comfyplat owned that is still there (each resource of the plan,
/// read again, and everything tagged or labelled for the platform), the buckets kept for
/// their data, and what the controllers made for the platform and left.
pub async fn destroy_report(
    apis: &Apis,
    session: &Session,
    plan: &Plan,
) -> Result<DestroyReport, ApiError> {
    let platform = &session.platform;
    let mut report = DestroyReport::default();
    let mut seen = BTreeSet::new();
    let mut ingress_stacks = Vec::new();
    let mut node_pools = Vec::new();
    for change in &plan.changes {
        if let Identity::K8sObject {
            kind,
            namespace,
            name,
            ..
        } = &change.identity
        {
            match kind.as_str() {
                "Ingress" => ingress_stacks.push(format!("{namespace}/{name}")),
                "NodePool" => node_pools.push(name.clone()),
                _ => {}
            }
        }
    }
    // Everything the plan touched, read again (concurrently, as a plan observes).
    let present: Vec<&Change> = stream::iter(
        plan.changes
            .iter()
            .filter(|c| !c.identity.kind().is_setting()),
    )
    .map(|change| async move {
        let observation = apis.observe(&change.identity).await?;
        Ok::<_, ApiError>(matches!(observation, Observation::Present(_)).then_some(change))
    })
    .buffered(OBSERVE_CONCURRENCY)
    .try_filter_map(|found| async move { Ok(found) })
    .try_collect()
    .await?;
    for change in present {
        let finding = |advice: &str| Finding {
            what: change.identity.kind().noun().to_string(),
            id: change.identity.to_string(),
            advice: advice.to_string(),
        };
        seen.insert(match &change.identity {
            Identity::S3Bucket { name, .. } => name.clone(),
            other => other.to_string(),
        });
        if change.action == Action::Keep {
            report.kept.push(finding(
                "kept because it holds objects; `comfyplat destroy --delete-data` deletes it with them",
            ));
        } else {
            report.still_owned.push(finding(
                "comfyplat could not delete it (see the errors above); run `comfyplat destroy` again",
            ));
        }
    }
    // The scans below are best-effort: the destroy itself is done; what could not be
    // checked is said, not turned into a failure.
    if let Some(kube) = &apis.kube {
        match kube.list_owned(&platform.name).await {
            Ok(identities) => {
                for identity in identities {
                    if seen.insert(identity.to_string()) {
                        report.still_owned.push(Finding {
                            what: "Kubernetes object".to_string(),
                            id: identity.to_string(),
                            advice: "it carries the platform's label; run `comfyplat destroy` again, or delete it with kubectl".to_string(),
                        });
                    }
                }
            }
            Err(error) => report.unchecked.push(crate::ui::error_chain(&error)),
        }
    }
    // Found by tag: what the plan did not know (state lost), unless listed already.
    match leftovers::owned(&apis.aws, &platform.name).await {
        Ok(found) => report.still_owned.extend(
            found
                .into_iter()
                .filter(|f| !seen.iter().any(|name| f.id.ends_with(name.as_str()))),
        ),
        Err(error) => report.unchecked.push(crate::ui::error_chain(&error)),
    }
    let scope = leftovers::Scope {
        cluster: &platform.cluster_name,
        ingress_stacks: &ingress_stacks,
        node_pools: &node_pools,
    };
    match leftovers::controllers(&apis.aws, &scope).await {
        Ok(found) => report.left_by_controllers = found,
        Err(error) => report.unchecked.push(crate::ui::error_chain(&error)),
    }
    Ok(report)
}
