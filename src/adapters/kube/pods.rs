//! Reads of pods, their logs and nodes: what `comfyplat models status` shows about the model
//! agents (nothing here writes).

use k8s_openapi::api::core::v1::{Node, Pod};
use kube::api::{Api, ListParams, LogParams};

use super::Kube;
use crate::adapters::ApiError;

/// One pod as `models status` needs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PodView {
    pub name: String,
    /// The node it runs on; empty while unscheduled.
    pub node: String,
    /// `Running`, `Pending`, ...
    pub phase: String,
    /// Its Ready condition.
    pub ready: bool,
    /// Restarts of its containers, summed.
    pub restarts: i32,
}

impl Kube {
    /// The pods of `namespace` matching the label `selector`.
    pub async fn pods(&self, namespace: &str, selector: &str) -> Result<Vec<PodView>, ApiError> {
        let operation = format!("failed to list the pods {selector} in namespace `{namespace}`");
        let list = self
            .call(&operation, |client| async move {
                let api: Api<Pod> = Api::namespaced(client, namespace);
                api.list(&ListParams::default().labels(selector)).await
            })
            .await?;
        Ok(list
            .items
            .into_iter()
            .map(|pod| {
                let status = pod.status.unwrap_or_default();
                PodView {
                    name: pod.metadata.name.unwrap_or_default(),
                    node: pod.spec.and_then(|spec| spec.node_name).unwrap_or_default(),
                    phase: status.phase.unwrap_or_default(),
                    ready: status
                        .conditions
                        .unwrap_or_default()
                        .iter()
                        .any(|c| c.type_ == "Ready" && c.status == "True"),
                    restarts: status
                        .container_statuses
                        .unwrap_or_default()
                        .iter()
                        .map(|c| c.restart_count)
                        .sum(),
                }
            })
            .collect())
    }

    /// The last `lines` lines of a pod's container log.
    pub async fn pod_log(
        &self,
        namespace: &str,
        pod: &str,
        container: &str,
        lines: i64,
    ) -> Result<String, ApiError> {
        let operation = format!("failed to read the log of pod `{namespace}/{pod}`");
        self.call(&operation, |client| async move {
            let api: Api<Pod> = Api::namespaced(client, namespace);
            let params = LogParams {
                container: Some(container.to_string()),
                tail_lines: Some(lines),
                // A status line is under 1 KiB; this bounds a log gone wild.
                limit_bytes: Some(lines * 4096),
                ..LogParams::default()
            };
            api.logs(pod, &params).await
        })
        .await
    }

    /// The names of the nodes matching the label `selector`, sorted.
    pub async fn node_names(&self, selector: &str) -> Result<Vec<String>, ApiError> {
        let operation = format!("failed to list the nodes {selector}");
        let list = self
            .call(&operation, |client| async move {
                let api: Api<Node> = Api::all(client);
                api.list(&ListParams::default().labels(selector)).await
            })
            .await?;
        let mut names: Vec<String> = list
            .items
            .into_iter()
            .filter_map(|node| node.metadata.name)
            .collect();
        names.sort();
        Ok(names)
    }
}
