//! `comfyplat models status`: for every GPU node of the platform's pool, whether its model
//! agent is ready, which generation of the models bucket it has, how far behind the bucket
//! that is, its files, bytes and free space, and its last error. Read through the
//! Kubernetes API (the agents' pods, their readiness and the last status line of their
//! logs) and S3 (the bucket's generation marker); nothing is written.

use serde::Deserialize;
use serde_json::{Value, json};

use super::models::{human_size, models_bucket};
use super::{Exit, Session};
use crate::adapters::s3_transfer::Bucket;
use crate::cli::Global;
use crate::model::kubernetes::MODEL_AGENT;
use crate::model::policy::GENERATION_KEY;

/// One status line of an agent, as its script prints it.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct AgentStatus {
    pub agent: String,
    #[serde(default)]
    pub node: String,
    #[serde(default)]
    pub time: String,
    pub state: String,
    #[serde(default)]
    pub generation: String,
    #[serde(default)]
    pub first_sync_done: bool,
    #[serde(default)]
    pub files: u64,
    #[serde(default)]
    pub bytes: u64,
    #[serde(default)]
    pub free_bytes: u64,
    #[serde(default)]
    pub duration_ms: u64,
    #[serde(default)]
    pub errors: Vec<String>,
}

/// The last status line in an agent's log (other lines, and lines of other programs, are
/// skipped).
pub fn last_status(log: &str) -> Option<AgentStatus> {
    log.lines().rev().find_map(|line| {
        serde_json::from_str::<AgentStatus>(line.trim())
            .ok()
            .filter(|status| status.agent == MODEL_AGENT)
    })
}

/// The Unix time in milliseconds a generation (`<unix-millis>-<hex>`) was made at.
pub fn generation_millis(generation: &str) -> Option<u64> {
    generation.split('-').next()?.parse().ok()
}

/// How far an agent is behind the bucket.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Lag {
    InStep,
    /// The bucket changed this many milliseconds ago and the agent does not have it yet.
    Behind(u64),
    /// The generations cannot be compared (none pushed yet, or no status).
    Unknown,
}

pub fn lag(bucket: Option<&str>, agent: Option<&str>, now_millis: u64) -> Lag {
    match (bucket, agent) {
        (None, Some("none")) => Lag::InStep,
        (Some(bucket), Some(agent)) if bucket == agent => Lag::InStep,
        (Some(bucket), Some(_)) => generation_millis(bucket)
            .map(|changed| Lag::Behind(now_millis.saturating_sub(changed)))
            .unwrap_or(Lag::Unknown),
        _ => Lag::Unknown,
    }
}

/// One row of the table: a GPU node and what its agent says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeRow {
    pub node: String,
    /// The agent's pod, `None` when the node has none (yet).
    pub pod: Option<String>,
    pub ready: bool,
    pub restarts: i32,
    pub status: Option<AgentStatus>,
    pub lag: Lag,
}

impl NodeRow {
    fn agent_word(&self) -> &'static str {
        match (&self.pod, self.ready) {
            (None, _) => "no pod",
            (Some(_), true) => "ready",
            (Some(_), false) => match &self.status {
                None => "starting",
                Some(status) if status.state == "does_not_fit" => "too full",
                Some(_) => "not ready",
            },
        }
    }

    fn to_json(&self) -> Value {
        let status = self.status.as_ref();
        json!({
            "node": self.node,
            "pod": self.pod,
            "ready": self.ready,
            "restarts": self.restarts,
            "state": status.map(|s| s.state.clone()),
            "generation": status.map(|s| s.generation.clone()),
            "in_step": self.lag == Lag::InStep,
            "lag_seconds": match self.lag { Lag::Behind(ms) => Some(ms / 1000), Lag::InStep => Some(0), Lag::Unknown => None },
            "files": status.map(|s| s.files),
            "bytes": status.map(|s| s.bytes),
            "free_bytes": status.map(|s| s.free_bytes),
            "last_sync": status.map(|s| s.time.clone()),
            "errors": status.map(|s| s.errors.clone()).unwrap_or_default(),
        })
    }
}

fn lag_text(lag: &Lag) -> String {
    match lag {
        Lag::InStep => "in step".to_string(),
        Lag::Behind(ms) => format!(
            "{} behind",
            crate::ui::human_duration(std::time::Duration::from_millis(*ms))
        ),
        Lag::Unknown => "-".to_string(),
    }
}

/// The table `models status` prints.
pub fn render(rows: &[NodeRow], bucket: &str, generation: Option<&str>) -> String {
    let mut out = format!(
        "models bucket s3://{bucket}: generation {}\n\n",
        generation.unwrap_or("none (nothing pushed with `comfyplat models` yet)")
    );
    let header = [
        "NODE",
        "AGENT",
        "GENERATION",
        "LAG",
        "FILES",
        "SIZE",
        "FREE",
        "LAST ERROR",
    ];
    let mut table: Vec<[String; 8]> = vec![header.map(str::to_string)];
    for row in rows {
        let status = row.status.as_ref();
        let dash = || "-".to_string();
        table.push([
            row.node.clone(),
            row.agent_word().to_string(),
            status.map_or_else(dash, |s| s.generation.clone()),
            lag_text(&row.lag),
            status.map_or_else(dash, |s| s.files.to_string()),
            status.map_or_else(dash, |s| human_size(s.bytes)),
            status.map_or_else(dash, |s| human_size(s.free_bytes)),
            status
                .and_then(|s| s.errors.last().cloned())
                .unwrap_or_else(dash),
        ]);
    }
    let widths: Vec<usize> = (0..7)
        .map(|column| {
            table
                .iter()
                .map(|r| r[column].chars().count())
                .max()
                .unwrap_or(0)
        })
        .collect();
    for row in &table {
        let mut line = String::new();
        for (column, width) in widths.iter().enumerate() {
            line.push_str(&format!("{:<width$}  ", row[column], width = width));
        }
        line.push_str(&row[7]);
        out.push_str(line.trim_end());
        out.push('\n');
    }
    if rows.is_empty() {
        out.push_str(
            "\nNo GPU nodes are running: Karpenter starts one when a ComfyUI pod needs it.\n",
        );
    } else {
        let in_step = rows.iter().filter(|r| r.lag == Lag::InStep).count();
        out.push_str(&format!(
            "\n{in_step} of {} node(s) in step with the bucket.\n",
            rows.len()
        ));
    }
    out
}

pub async fn run(global: &Global, json_output: bool) -> anyhow::Result<Exit> {
    let session = Session::open(global)?;
    let platform = &session.platform;
    let Some(comfyui) = &platform.comfyui else {
        return Err(super::CommandError::BadOption {
            message: "platform.yaml has no `comfyui:` workload, so no model agents run".to_string(),
            hint: "`models status` shows the GPU nodes' model caches; add `comfyui:` and apply, or use `models ls` to see the bucket".to_string(),
        }
        .into());
    };
    let (aws, caller, kube) = session.connect_cluster().await?;
    let bucket = models_bucket(platform, &caller.account)?;
    let namespace = comfyui.namespace.as_str();
    let selector = format!(
        "app.kubernetes.io/name={MODEL_AGENT},app.kubernetes.io/instance={}",
        platform.name
    );
    let pool = format!("karpenter.sh/nodepool={}-gpu", platform.name);
    let marker = Bucket::new(&aws, &bucket, super::session::waiting_notify());
    let marker = marker.get_small(GENERATION_KEY);
    let (generation, pods, nodes) = tokio::join!(
        marker,
        kube.pods(namespace, &selector),
        kube.node_names(&pool)
    );
    let (generation, pods, nodes) = (generation?, pods?, nodes?);
    let logs = futures::future::join_all(
        pods.iter()
            .map(|pod| kube.pod_log(namespace, &pod.name, "agent", 20)),
    )
    .await;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or_default();
    let mut names: Vec<String> = nodes;
    names.extend(
        pods.iter()
            .map(|p| p.node.clone())
            .filter(|n| !n.is_empty()),
    );
    names.sort();
    names.dedup();
    let rows: Vec<NodeRow> = names
        .into_iter()
        .map(|node| {
            let found = pods.iter().zip(&logs).find(|(pod, _)| pod.node == node);
            let status = found.and_then(|(_, log)| log.as_ref().ok().and_then(|l| last_status(l)));
            let lag = lag(
                generation.as_deref(),
                status.as_ref().map(|s| s.generation.as_str()),
                now,
            );
            NodeRow {
                node,
                pod: found.map(|(pod, _)| pod.name.clone()),
                ready: found.is_some_and(|(pod, _)| pod.ready),
                restarts: found.map_or(0, |(pod, _)| pod.restarts),
                status,
                lag,
            }
        })
        .collect();
    if json_output {
        let summary = json!({
            "bucket": bucket,
            "generation": generation,
            "nodes": rows.iter().map(NodeRow::to_json).collect::<Vec<_>>(),
        });
        println!("{}", serde_json::to_string_pretty(&summary)?);
    } else {
        print!("{}", render(&rows, &bucket, generation.as_deref()));
    }
    Ok(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    const LINE: &str = r#"{"agent":"comfyplat-model-agent","node":"ip-10-0-1-1","time":"2026-12-02T15:04:05Z","state":"synced","generation":"1764686400123-9f2c4a1b","first_sync_done":true,"files":12,"bytes":44291850240,"free_bytes":880468295680,"duration_ms":850,"errors":[]}"#;

    #[test]
    fn the_last_status_line_wins_and_other_lines_are_skipped() {
        let log = format!(
            "starting\n{}\nnot json {{\n{LINE}\n{{\"agent\":\"other\",\"state\":\"x\"}}\n",
            LINE.replace("\"files\":12", "\"files\":3")
        );
        let status = last_status(&log).expect("a status");
        assert_eq!(status.files, 12);
        assert_eq!(status.generation, "1764686400123-9f2c4a1b");
        assert!(last_status("nothing here\n").is_none());
    }

    #[test]
    fn lag_compares_generations_and_dates_the_bucket_change() {
        let bucket = "1764686400123-9f2c4a1b";
        assert_eq!(lag(Some(bucket), Some(bucket), 0), Lag::InStep);
        assert_eq!(
            lag(
                Some(bucket),
                Some("1764686000000-00000000"),
                1_764_686_430_123
            ),
            Lag::Behind(30_000)
        );
        assert_eq!(lag(None, Some("none"), 0), Lag::InStep);
        assert_eq!(lag(Some(bucket), None, 0), Lag::Unknown);
        assert_eq!(lag(Some("garbage"), Some("x"), 0), Lag::Unknown);
    }

    #[test]
    fn the_table_has_one_line_per_node_with_the_last_error() {
        let status = last_status(LINE).expect("status");
        let mut failing = status.clone();
        failing.state = "error".to_string();
        failing.errors = vec!["AccessDenied: ListObjectsV2".to_string()];
        let rows = vec![
            NodeRow {
                node: "ip-10-0-1-1".into(),
                pod: Some("a-1".into()),
                ready: true,
                restarts: 0,
                status: Some(status),
                lag: Lag::InStep,
            },
            NodeRow {
                node: "ip-10-0-1-2".into(),
                pod: Some("a-2".into()),
                ready: false,
                restarts: 2,
                status: Some(failing),
                lag: Lag::Behind(95_000),
            },
            NodeRow {
                node: "ip-10-0-1-3".into(),
                pod: None,
                ready: false,
                restarts: 0,
                status: None,
                lag: Lag::Unknown,
            },
        ];
        let text = render(&rows, "models", Some("1764686400123-9f2c4a1b"));
        let lines: Vec<&str> = text.lines().collect();
        assert!(lines[2].starts_with("NODE"), "{text}");
        assert!(
            lines[3].contains("ready")
                && lines[3].contains("in step")
                && lines[3].contains("41.2 GiB"),
            "{text}"
        );
        assert!(
            lines[4].contains("not ready")
                && lines[4].contains("1m35s behind")
                && lines[4].ends_with("AccessDenied: ListObjectsV2"),
            "{text}"
        );
        assert!(lines[5].contains("no pod"), "{text}");
        assert!(text.contains("1 of 3 node(s) in step"), "{text}");
    }
}
