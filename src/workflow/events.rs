//! The messages of ComfyUI's websocket (`/ws?clientId=ID`): text frames
//! `{"type": T, "data": {...}}`. Binary frames (previews) are not events and are skipped by
//! the caller. Types this client does not use are kept as `Other` so a newer server's
//! additions never break a run.

use serde::Deserialize;
use serde_json::Value;

/// What a failed node reports (`execution_error`, also in the history entry's messages).
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct ExecutionError {
    #[serde(default)]
    pub prompt_id: String,
    #[serde(default)]
    pub node_id: String,
    #[serde(default)]
    pub node_type: String,
    #[serde(default)]
    pub exception_message: String,
    #[serde(default)]
    pub exception_type: String,
    #[serde(default)]
    pub traceback: Vec<String>,
}

impl ExecutionError {
    /// The traceback lines worth showing: the last frames (where it was raised), at most
    /// `max` lines, without blank ones.
    pub fn relevant_traceback(&self, max: usize) -> Vec<String> {
        let lines: Vec<String> = self
            .traceback
            .iter()
            .flat_map(|chunk| chunk.lines().map(str::to_string).collect::<Vec<_>>())
            .filter(|l| !l.trim().is_empty())
            .collect();
        let start = lines.len().saturating_sub(max);
        lines[start..].to_vec()
    }
}

/// `execution_interrupted`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct Interrupted {
    #[serde(default)]
    pub prompt_id: String,
    #[serde(default)]
    pub node_id: String,
    #[serde(default)]
    pub node_type: String,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Event {
    /// Broadcast: how many prompts the server has (running + pending).
    Status {
        queue_remaining: Option<u64>,
    },
    ExecutionStart {
        prompt_id: String,
    },
    ExecutionCached {
        prompt_id: String,
        nodes: Vec<String>,
    },
    /// A node starts; `node: None` is the legacy "done" signal.
    Executing {
        prompt_id: String,
        node: Option<String>,
    },
    Progress {
        prompt_id: String,
        node: Option<String>,
        value: u64,
        max: u64,
    },
    Executed {
        prompt_id: String,
        node: String,
        output: Value,
    },
    ExecutionSuccess {
        prompt_id: String,
    },
    ExecutionError(ExecutionError),
    ExecutionInterrupted(Interrupted),
    Other {
        kind: String,
    },
}

fn text(data: &Value, key: &str) -> String {
    data.get(key)
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string()
}

impl Event {
    /// Parses one text frame; `None` when it is not an event message at all.
    pub fn parse(frame: &str) -> Option<Event> {
        let message: Value = serde_json::from_str(frame).ok()?;
        let kind = message.get("type")?.as_str()?.to_string();
        let data = message.get("data").cloned().unwrap_or(Value::Null);
        let prompt_id = text(&data, "prompt_id");
        Some(match kind.as_str() {
            "status" => Event::Status {
                queue_remaining: data
                    .pointer("/status/exec_info/queue_remaining")
                    .and_then(Value::as_u64),
            },
            "execution_start" => Event::ExecutionStart { prompt_id },
            "execution_cached" => Event::ExecutionCached {
                prompt_id,
                nodes: data
                    .get("nodes")
                    .and_then(Value::as_array)
                    .map(|n| {
                        n.iter()
                            .filter_map(|v| v.as_str().map(str::to_string))
                            .collect()
                    })
                    .unwrap_or_default(),
            },
            "executing" => Event::Executing {
                prompt_id,
                node: data.get("node").and_then(Value::as_str).map(str::to_string),
            },
            "progress" => Event::Progress {
                prompt_id,
                node: data.get("node").and_then(Value::as_str).map(str::to_string),
                value: data.get("value").and_then(Value::as_u64).unwrap_or(0),
                max: data.get("max").and_then(Value::as_u64).unwrap_or(0),
            },
            "executed" => Event::Executed {
                prompt_id,
                node: text(&data, "node"),
                output: data.get("output").cloned().unwrap_or(Value::Null),
            },
            "execution_success" => Event::ExecutionSuccess { prompt_id },
            "execution_error" => Event::ExecutionError(serde_json::from_value(data).ok()?),
            "execution_interrupted" => {
                Event::ExecutionInterrupted(serde_json::from_value(data).ok()?)
            }
            _ => Event::Other { kind },
        })
    }

    /// The prompt the event is about (`None` for broadcasts).
    pub fn prompt_id(&self) -> Option<&str> {
        match self {
            Event::Status { .. } | Event::Other { .. } => None,
            Event::ExecutionStart { prompt_id }
            | Event::ExecutionCached { prompt_id, .. }
            | Event::Executing { prompt_id, .. }
            | Event::Progress { prompt_id, .. }
            | Event::Executed { prompt_id, .. }
            | Event::ExecutionSuccess { prompt_id } => Some(prompt_id),
            Event::ExecutionError(e) => Some(&e.prompt_id),
            Event::ExecutionInterrupted(i) => Some(&i.prompt_id),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_observed_messages_parse() {
        let cases = [
            (
                r#"{"type":"status","data":{"status":{"exec_info":{"queue_remaining":1}},"sid":"c1"}}"#,
                Event::Status {
                    queue_remaining: Some(1),
                },
            ),
            (
                r#"{"type":"execution_cached","data":{"nodes":["1","2"],"prompt_id":"p","timestamp":1}}"#,
                Event::ExecutionCached {
                    prompt_id: "p".to_string(),
                    nodes: vec!["1".to_string(), "2".to_string()],
                },
            ),
            (
                r#"{"type":"executing","data":{"node":null,"prompt_id":"p"}}"#,
                Event::Executing {
                    prompt_id: "p".to_string(),
                    node: None,
                },
            ),
            (
                r#"{"type":"progress","data":{"value":3,"max":20,"prompt_id":"p","node":"3"}}"#,
                Event::Progress {
                    prompt_id: "p".to_string(),
                    node: Some("3".to_string()),
                    value: 3,
                    max: 20,
                },
            ),
            (
                r#"{"type":"progress_state","data":{"prompt_id":"p","nodes":{}}}"#,
                Event::Other {
                    kind: "progress_state".to_string(),
                },
            ),
        ];
        for (frame, expected) in cases {
            assert_eq!(Event::parse(frame), Some(expected), "{frame}");
        }
        assert_eq!(Event::parse("not json"), None);
    }

    #[test]
    fn an_execution_error_keeps_its_last_traceback_lines() {
        let frame = r#"{"type":"execution_error","data":{"prompt_id":"p","node_id":"1","node_type":"RegexReplace",
            "executed":[],"exception_message":"missing ), unterminated subpattern at position 0\n",
            "exception_type":"re.error","traceback":["  File \"execution.py\", line 1, in run\n    x()\n",
            "  File \"re/_parser.py\", line 9, in parse\n    raise source.error(\"missing )\")\n"],
            "current_inputs":{},"current_outputs":[],"timestamp":1}}"#;
        let Some(Event::ExecutionError(error)) = Event::parse(frame) else {
            panic!("not an execution error");
        };
        assert_eq!(
            (
                error.node_id.as_str(),
                error.node_type.as_str(),
                error.exception_type.as_str()
            ),
            ("1", "RegexReplace", "re.error")
        );
        assert_eq!(
            error.relevant_traceback(2),
            [
                "  File \"re/_parser.py\", line 9, in parse",
                "    raise source.error(\"missing )\")"
            ]
        );
    }
}
