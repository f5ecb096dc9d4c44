//! A job's history entry (`GET /history/{id}`): how it ended, when, and its outputs, each
//! with the place it lands under `--out`. Every output a node reports is kept: files of any
//! kind (`images`, `gifs`, `audio`, `video`, `3d`, a custom node's own key) by their
//! `filename`, and text (`{"text": [...]}`) as `.txt` files.

use std::collections::BTreeSet;
use std::path::PathBuf;

use serde_json::Value;

use super::events::{ExecutionError, Interrupted};

#[derive(Debug, Clone, PartialEq)]
pub enum Ended {
    Success,
    Error(ExecutionError),
    Interrupted(Interrupted),
    /// Written, but with a status this client does not know.
    Other(String),
}

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum OutputContent {
    /// A file on the server, read with `GET /view?filename&subfolder&type`.
    File {
        filename: String,
        subfolder: String,
        kind: String,
    },
    Text(String),
}

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Output {
    pub node: String,
    /// The key the node reported it under (`images`, `audio`, `text`, ...).
    pub key: String,
    pub content: OutputContent,
    /// Where it lands, relative to `--out`.
    pub path: PathBuf,
}

#[derive(Debug, Clone, PartialEq)]
pub struct HistoryEntry {
    pub ended: Ended,
    pub outputs: Vec<Output>,
    /// Server timestamps (ms since the epoch) of `execution_start` and of the end.
    pub started_ms: Option<u64>,
    pub ended_ms: Option<u64>,
}

/// A path component the server named, made safe to join: no separators, no `.`/`..`, no
/// control characters.
fn safe_component(name: &str) -> Option<String> {
    let cleaned: String = name
        .chars()
        .map(|c| {
            if c == '/' || c == '\\' || c.is_control() {
                '_'
            } else {
                c
            }
        })
        .collect();
    (!cleaned.is_empty() && cleaned != "." && cleaned != "..").then_some(cleaned)
}

fn file_path(filename: &str, subfolder: &str, kind: &str) -> Option<PathBuf> {
    let mut path = PathBuf::new();
    // Outputs keep their subfolder; previews and inputs go under their type.
    if kind != "output" {
        path.push(safe_component(kind)?);
    }
    for part in subfolder.split(['/', '\\']).filter(|p| !p.is_empty()) {
        path.push(safe_component(part)?);
    }
    path.push(safe_component(filename)?);
    Some(path)
}

impl HistoryEntry {
    /// Parses one entry (the value under the prompt id). `None` when it is not one.
    pub fn parse(entry: &Value) -> Option<HistoryEntry> {
        let status = entry.get("status")?;
        let messages: Vec<(&str, &Value)> = status
            .get("messages")
            .and_then(Value::as_array)
            .map(|m| {
                m.iter()
                    .filter_map(|pair| Some((pair.get(0)?.as_str()?, pair.get(1)?)))
                    .collect()
            })
            .unwrap_or_default();
        let message = |name: &str| messages.iter().find(|(n, _)| *n == name).map(|(_, d)| *d);
        let timestamp = |name: &str| message(name)?.get("timestamp")?.as_u64();
        let status_str = status
            .get("status_str")
            .and_then(Value::as_str)
            .unwrap_or_default();
        let ended = if let Some(data) = message("execution_error") {
            Ended::Error(serde_json::from_value(data.clone()).ok()?)
        } else if let Some(data) = message("execution_interrupted") {
            Ended::Interrupted(serde_json::from_value(data.clone()).ok()?)
        } else if status_str == "success" {
            Ended::Success
        } else {
            Ended::Other(status_str.to_string())
        };
        let ended_ms = [
            "execution_success",
            "execution_error",
            "execution_interrupted",
        ]
        .iter()
        .find_map(|m| timestamp(m));
        Some(HistoryEntry {
            ended,
            outputs: outputs_of(entry.get("outputs")),
            started_ms: timestamp("execution_start"),
            ended_ms,
        })
    }
}

fn outputs_of(outputs: Option<&Value>) -> Vec<Output> {
    let mut seen = BTreeSet::new();
    let mut list = Vec::new();
    for (node, by_key) in outputs.and_then(Value::as_object).into_iter().flatten() {
        for (key, items) in by_key.as_object().into_iter().flatten() {
            for (index, item) in items.as_array().into_iter().flatten().enumerate() {
                let output = match item {
                    Value::Object(file) => {
                        let field = |k: &str| {
                            file.get(k)
                                .and_then(Value::as_str)
                                .unwrap_or_default()
                                .to_string()
                        };
                        let (filename, subfolder) = (field("filename"), field("subfolder"));
                        let kind = Some(field("type"))
                            .filter(|k| !k.is_empty())
                            .unwrap_or_else(|| "output".to_string());
                        let Some(path) = file_path(&filename, &subfolder, &kind) else {
                            continue;
                        };
                        Output {
                            node: node.clone(),
                            key: key.clone(),
                            content: OutputContent::File {
                                filename,
                                subfolder,
                                kind,
                            },
                            path,
                        }
                    }
                    Value::String(text) => {
                        let Some(name) = safe_component(&format!("{node}-{key}-{index}.txt"))
                        else {
                            continue;
                        };
                        Output {
                            node: node.clone(),
                            key: key.clone(),
                            content: OutputContent::Text(text.clone()),
                            path: PathBuf::from(name),
                        }
                    }
                    // Flags such as `"animated": [true]` describe the files, they are not outputs.
                    _ => continue,
                };
                // A file listed twice (a cached node's replay, two keys) is fetched once.
                if seen.insert(output.path.clone()) {
                    list.push(output);
                }
            }
        }
    }
    list
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn every_kind_of_output_gets_a_safe_path() {
        let entry = json!({
            "prompt": [3, "p", {}, {}, ["9"]],
            "outputs": {
                "9": {"images": [{"filename": "fox_00001_.png", "subfolder": "demo/day", "type": "output"}]},
                "10": {"images": [{"filename": "ComfyUI_temp_abcde_00001_.png", "subfolder": "", "type": "temp"}]},
                "11": {"images": [{"filename": "anim_00001_.webp", "subfolder": "", "type": "output"}], "animated": [true]},
                "12": {"audio": [{"filename": "a_00001_.flac", "subfolder": "audio", "type": "output"}]},
                "13": {"text": ["hello"]},
                "14": {"3d": [{"filename": "../../etc/passwd", "subfolder": "..", "type": "output"}]},
                "15": {"images": [{"filename": "fox_00001_.png", "subfolder": "demo/day", "type": "output"}]}
            },
            "status": {"status_str": "success", "completed": true, "messages": [
                ["execution_start", {"prompt_id": "p", "timestamp": 1000}],
                ["execution_cached", {"nodes": [], "prompt_id": "p", "timestamp": 1001}],
                ["execution_success", {"prompt_id": "p", "timestamp": 4500}]
            ]},
            "meta": {}
        });
        let parsed = HistoryEntry::parse(&entry).expect("an entry");
        assert_eq!(parsed.ended, Ended::Success);
        assert_eq!(
            (parsed.started_ms, parsed.ended_ms),
            (Some(1000), Some(4500))
        );
        let paths: Vec<String> = parsed
            .outputs
            .iter()
            .map(|o| o.path.display().to_string())
            .collect();
        assert_eq!(
            paths,
            [
                "demo/day/fox_00001_.png",
                "temp/ComfyUI_temp_abcde_00001_.png",
                "anim_00001_.webp",
                "audio/a_00001_.flac",
                "13-text-0.txt",
            ]
        );
        assert_eq!(
            parsed.outputs[4].content,
            OutputContent::Text("hello".to_string())
        );
    }

    #[test]
    fn an_error_entry_carries_the_failed_node() {
        let entry = json!({"outputs": {}, "status": {"status_str": "error", "completed": false, "messages": [
            ["execution_start", {"prompt_id": "p", "timestamp": 1}],
            ["execution_error", {"prompt_id": "p", "node_id": "1", "node_type": "RegexReplace",
                                  "exception_message": "bad", "exception_type": "re.error",
                                  "traceback": [], "timestamp": 2}]
        ]}});
        let parsed = HistoryEntry::parse(&entry).expect("an entry");
        let Ended::Error(error) = parsed.ended else {
            panic!("not an error: {:?}", parsed.ended);
        };
        assert_eq!(
            (error.node_id.as_str(), error.node_type.as_str()),
            ("1", "RegexReplace")
        );
        assert_eq!(parsed.ended_ms, Some(2));
        assert_eq!(HistoryEntry::parse(&json!({})), None);
    }
}
