//! One job's progress as the server's events (and queue reads) arrive: the state the display
//! draws from, and the updates it draws. Events of other prompts are ignored (a reconnected
//! socket may see a neighbour's broadcasts).

use serde_json::Value;

use super::events::{Event, ExecutionError, Interrupted};

#[derive(Debug, Clone, PartialEq)]
pub enum Phase {
    /// Sent; the server has not said where it is yet.
    Submitted,
    /// Waiting behind `ahead` prompts (running ones included).
    Queued {
        ahead: u64,
    },
    Running,
    Succeeded,
    Failed(ExecutionError),
    Interrupted(Interrupted),
}

/// What changed, for the display.
#[derive(Debug, Clone, PartialEq)]
pub enum Update {
    Queued { ahead: u64 },
    Started,
    Cached(Vec<String>),
    NodeStarted(String),
    NodeProgress { node: String, value: u64, max: u64 },
    NodeFinished(String),
    Finished,
}

#[derive(Debug, Clone)]
pub struct Job {
    pub prompt_id: String,
    pub phase: Phase,
    /// The node running now.
    pub current: Option<String>,
    /// Its last step count, when it reports steps.
    pub steps: Option<(u64, u64)>,
    pub cached: Vec<String>,
    pub finished: Vec<String>,
}

/// Where a prompt is in `GET /queue`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum QueueSpot {
    Running,
    Pending {
        ahead: u64,
    },
    /// Not in the queue: finished (look in the history) or never queued.
    Absent,
}

/// Reads `{"queue_running": [item], "queue_pending": [item]}`, item = `[number, prompt_id, ...]`.
/// Pending prompts run in `number` order, after the running ones.
pub fn queue_spot(queue: &Value, prompt_id: &str) -> QueueSpot {
    let items = |key: &str| -> Vec<(f64, String)> {
        queue
            .get(key)
            .and_then(Value::as_array)
            .map(|items| {
                items
                    .iter()
                    .filter_map(|item| {
                        Some((item.get(0)?.as_f64()?, item.get(1)?.as_str()?.to_string()))
                    })
                    .collect()
            })
            .unwrap_or_default()
    };
    let running = items("queue_running");
    if running.iter().any(|(_, id)| id == prompt_id) {
        return QueueSpot::Running;
    }
    let mut pending = items("queue_pending");
    pending.sort_by(|a, b| a.0.total_cmp(&b.0));
    match pending.iter().position(|(_, id)| id == prompt_id) {
        Some(index) => QueueSpot::Pending {
            ahead: (running.len() + index) as u64,
        },
        None => QueueSpot::Absent,
    }
}

impl Job {
    pub fn new(prompt_id: &str) -> Job {
        Job {
            prompt_id: prompt_id.to_string(),
            phase: Phase::Submitted,
            current: None,
            steps: None,
            cached: Vec::new(),
            finished: Vec::new(),
        }
    }

    pub fn is_over(&self) -> bool {
        matches!(
            self.phase,
            Phase::Succeeded | Phase::Failed(_) | Phase::Interrupted(_)
        )
    }

    fn start(&mut self, updates: &mut Vec<Update>) {
        if matches!(self.phase, Phase::Submitted | Phase::Queued { .. }) {
            self.phase = Phase::Running;
            updates.push(Update::Started);
        }
    }

    fn finish_current(&mut self, updates: &mut Vec<Update>) {
        if let Some(node) = self.current.take() {
            self.steps = None;
            if !self.finished.contains(&node) {
                self.finished.push(node.clone());
            }
            updates.push(Update::NodeFinished(node));
        }
    }

    /// Takes one event; returns what changed.
    pub fn on_event(&mut self, event: &Event) -> Vec<Update> {
        let mut updates = Vec::new();
        if self.is_over() || event.prompt_id().is_some_and(|id| id != self.prompt_id) {
            return updates;
        }
        match event {
            Event::ExecutionStart { .. } => self.start(&mut updates),
            Event::ExecutionCached { nodes, .. } => {
                self.start(&mut updates);
                let new: Vec<String> = nodes
                    .iter()
                    .filter(|n| !self.cached.contains(n))
                    .cloned()
                    .collect();
                if !new.is_empty() {
                    self.cached.extend(new.iter().cloned());
                    updates.push(Update::Cached(new));
                }
            }
            Event::Executing {
                node: Some(node), ..
            } => {
                self.start(&mut updates);
                if self.current.as_ref() != Some(node) {
                    self.finish_current(&mut updates);
                    self.current = Some(node.clone());
                    updates.push(Update::NodeStarted(node.clone()));
                }
            }
            Event::Progress {
                node, value, max, ..
            } => {
                self.start(&mut updates);
                let node = node.clone().or_else(|| self.current.clone());
                if let Some(node) = node {
                    if self.current.as_ref() != Some(&node) {
                        self.finish_current(&mut updates);
                        self.current = Some(node.clone());
                        updates.push(Update::NodeStarted(node.clone()));
                    }
                    self.steps = Some((*value, *max));
                    updates.push(Update::NodeProgress {
                        node,
                        value: *value,
                        max: *max,
                    });
                }
            }
            Event::Executed { node, .. } => {
                if self.current.as_ref() == Some(node) {
                    self.finish_current(&mut updates);
                }
            }
            Event::ExecutionSuccess { .. } | Event::Executing { node: None, .. } => {
                self.finish_current(&mut updates);
                self.phase = Phase::Succeeded;
                updates.push(Update::Finished);
            }
            Event::ExecutionError(error) => {
                self.phase = Phase::Failed(error.clone());
                updates.push(Update::Finished);
            }
            Event::ExecutionInterrupted(interrupted) => {
                self.phase = Phase::Interrupted(interrupted.clone());
                updates.push(Update::Finished);
            }
            Event::Status { .. } | Event::Other { .. } => {}
        }
        updates
    }

    /// Takes where `GET /queue` says the prompt is.
    pub fn on_queue(&mut self, spot: QueueSpot) -> Vec<Update> {
        let mut updates = Vec::new();
        match spot {
            QueueSpot::Pending { ahead } => {
                if matches!(self.phase, Phase::Submitted | Phase::Queued { .. })
                    && self.phase != (Phase::Queued { ahead })
                {
                    self.phase = Phase::Queued { ahead };
                    updates.push(Update::Queued { ahead });
                }
            }
            QueueSpot::Running => self.start(&mut updates),
            QueueSpot::Absent => {}
        }
        updates
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn events(frames: &[Value]) -> Vec<Event> {
        frames
            .iter()
            .map(|f| Event::parse(&f.to_string()).expect("an event"))
            .collect()
    }

    #[test]
    fn the_observed_order_gives_cached_started_steps_and_finished_nodes() {
        let mut job = Job::new("p");
        let mut updates = Vec::new();
        for event in events(&[
            json!({"type": "status", "data": {"status": {"exec_info": {"queue_remaining": 1}}}}),
            json!({"type": "execution_start", "data": {"prompt_id": "p"}}),
            json!({"type": "execution_cached", "data": {"prompt_id": "p", "nodes": ["4"]}}),
            json!({"type": "executing", "data": {"prompt_id": "other", "node": "9"}}),
            json!({"type": "executing", "data": {"prompt_id": "p", "node": "3"}}),
            json!({"type": "progress", "data": {"prompt_id": "p", "node": "3", "value": 1, "max": 2}}),
            json!({"type": "progress", "data": {"prompt_id": "p", "node": "3", "value": 2, "max": 2}}),
            json!({"type": "executing", "data": {"prompt_id": "p", "node": "9"}}),
            json!({"type": "executed", "data": {"prompt_id": "p", "node": "9", "output": {}}}),
            json!({"type": "execution_success", "data": {"prompt_id": "p"}}),
            json!({"type": "executing", "data": {"prompt_id": "p", "node": null}}),
        ]) {
            updates.extend(job.on_event(&event));
        }
        let node = |n: &str| n.to_string();
        assert_eq!(
            updates,
            [
                Update::Started,
                Update::Cached(vec![node("4")]),
                Update::NodeStarted(node("3")),
                Update::NodeProgress {
                    node: node("3"),
                    value: 1,
                    max: 2
                },
                Update::NodeProgress {
                    node: node("3"),
                    value: 2,
                    max: 2
                },
                Update::NodeFinished(node("3")),
                Update::NodeStarted(node("9")),
                Update::NodeFinished(node("9")),
                Update::Finished,
            ]
        );
        assert_eq!(job.phase, Phase::Succeeded);
        assert_eq!(job.finished, [node("3"), node("9")]);
    }

    #[test]
    fn the_queue_position_counts_running_and_earlier_pending_prompts() {
        let queue = json!({
            "queue_running": [[5, "a", {}, {}, []]],
            "queue_pending": [[8, "p", {}, {}, []], [7, "b", {}, {}, []], [-1, "c", {}, {}, []]]
        });
        assert_eq!(queue_spot(&queue, "p"), QueueSpot::Pending { ahead: 3 });
        assert_eq!(queue_spot(&queue, "a"), QueueSpot::Running);
        assert_eq!(queue_spot(&queue, "z"), QueueSpot::Absent);
        let mut job = Job::new("p");
        assert_eq!(
            job.on_queue(QueueSpot::Pending { ahead: 3 }),
            [Update::Queued { ahead: 3 }]
        );
        assert_eq!(job.on_queue(QueueSpot::Pending { ahead: 3 }), []);
        assert_eq!(job.on_queue(QueueSpot::Running), [Update::Started]);
        assert_eq!(job.on_queue(QueueSpot::Pending { ahead: 1 }), []);
    }
}
