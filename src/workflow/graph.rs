//! A workflow in ComfyUI's API format: `{node_id: {"class_type", "inputs", "_meta"?}}`, the
//! graph `POST /prompt` takes. Nodes are kept as the file has them (order, `_meta`, unknown
//! keys), so what is sent is the file plus the edits asked for.

use serde_json::{Map, Value};

/// Why a workflow file or an edit of it cannot be used. Everything here is found before any
/// network call.
#[derive(Debug, thiserror::Error)]
pub enum WorkflowError {
    #[error("{file}: not JSON: {message}")]
    NotJson { file: String, message: String },
    #[error(
        "{file} is a workflow in ComfyUI's UI format (it has `nodes` and `links`), not the API format `comfyplat run` sends"
    )]
    UiFormat { file: String },
    #[error("{file}: {why}")]
    NotApiFormat { file: String, why: String },
    #[error("{file} has no nodes")]
    Empty { file: String },
    #[error("{option} {spec}: {why}")]
    BadEdit {
        option: &'static str,
        spec: String,
        why: String,
    },
}

impl WorkflowError {
    pub fn hint(&self) -> Option<String> {
        match self {
            WorkflowError::UiFormat { .. } | WorkflowError::NotApiFormat { .. } => Some(
                "export the API format from ComfyUI: Workflow → Export (API) in the menu (older \
                 frontends: turn on the dev mode options in the settings, then Save (API Format)), \
                 and run that file"
                    .to_string(),
            ),
            WorkflowError::BadEdit { option: "--set", .. } => Some(
                "write `--set NODE.INPUT=VALUE`, e.g. `--set 6.text=\"a red fox\"` or `--set 3.steps=30`; \
                 NODE is the node id (the key in the API-format file)"
                    .to_string(),
            ),
            WorkflowError::BadEdit { option: "--input", .. } => Some(
                "write `--input NODE=FILE` (the node's upload input, e.g. a LoadImage node) or \
                 `--input NODE.INPUT=FILE`"
                    .to_string(),
            ),
            _ => None,
        }
    }
}

/// An input's value as ComfyUI reads it: a link `[node_id, output_index]` or a literal.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum InputValue<'a> {
    Link { node: &'a str, output: u64 },
    Literal(&'a Value),
}

impl<'a> InputValue<'a> {
    pub fn of(value: &'a Value) -> InputValue<'a> {
        if let Some([Value::String(node), output]) = value.as_array().map(Vec::as_slice)
            && let Some(output) = output.as_u64()
        {
            return InputValue::Link { node, output };
        }
        InputValue::Literal(value)
    }
}

/// The workflow: its nodes in file order.
#[derive(Debug, Clone, PartialEq)]
pub struct Workflow {
    nodes: Map<String, Value>,
}

/// `--set NODE.INPUT=VALUE`, parsed (the value's type is settled against the server's node
/// definitions: `6.text=123` is the text "123" for a STRING input).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SetInput {
    pub node: String,
    pub input: String,
    pub raw: String,
}

/// `--input NODE[.INPUT]=FILE`, parsed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileInput {
    pub node: String,
    pub input: Option<String>,
    pub file: String,
}

impl Workflow {
    /// Parses an API-format file. Also takes the body of a `POST /prompt` (`{"prompt": {...},
    /// ...}`), which some tools save.
    pub fn parse(text: &str, file: &str) -> Result<Workflow, WorkflowError> {
        let root: Value = serde_json::from_str(text).map_err(|e| WorkflowError::NotJson {
            file: file.to_string(),
            message: e.to_string(),
        })?;
        let Value::Object(mut root) = root else {
            return Err(WorkflowError::NotApiFormat {
                file: file.to_string(),
                why: "expected a JSON object of nodes keyed by node id".to_string(),
            });
        };
        if root.get("nodes").is_some_and(Value::is_array) && root.contains_key("links") {
            return Err(WorkflowError::UiFormat {
                file: file.to_string(),
            });
        }
        if let Some(Value::Object(prompt)) = root.get("prompt")
            && prompt.values().all(Value::is_object)
        {
            let prompt = prompt.clone();
            root = prompt;
        }
        if root.is_empty() {
            return Err(WorkflowError::Empty {
                file: file.to_string(),
            });
        }
        for (id, node) in &root {
            let why = match node {
                Value::Object(node) => match node.get("class_type") {
                    Some(Value::String(class)) if !class.is_empty() => match node.get("inputs") {
                        None | Some(Value::Object(_)) => continue,
                        Some(_) => format!("node `{id}`: `inputs` is not an object"),
                    },
                    _ => format!("node `{id}` has no `class_type`"),
                },
                _ => format!("`{id}` is not a node (an object with `class_type` and `inputs`)"),
            };
            return Err(WorkflowError::NotApiFormat {
                file: file.to_string(),
                why,
            });
        }
        Ok(Workflow { nodes: root })
    }

    /// Node ids in file order.
    pub fn ids(&self) -> impl Iterator<Item = &str> {
        self.nodes.keys().map(String::as_str)
    }

    pub fn contains(&self, node: &str) -> bool {
        self.nodes.contains_key(node)
    }

    pub fn class_type(&self, node: &str) -> Option<&str> {
        self.nodes.get(node)?.get("class_type")?.as_str()
    }

    /// The node's title (`_meta.title`) when the file has one.
    pub fn title(&self, node: &str) -> Option<&str> {
        self.nodes.get(node)?.get("_meta")?.get("title")?.as_str()
    }

    /// The node's inputs (empty when it has none).
    pub fn inputs(&self, node: &str) -> impl Iterator<Item = (&str, &Value)> {
        self.nodes
            .get(node)
            .and_then(|n| n.get("inputs"))
            .and_then(Value::as_object)
            .into_iter()
            .flat_map(|inputs| inputs.iter().map(|(k, v)| (k.as_str(), v)))
    }

    pub fn input(&self, node: &str, input: &str) -> Option<&Value> {
        self.nodes.get(node)?.get("inputs")?.get(input)
    }

    /// Sets one input of an existing node.
    pub fn set_input(&mut self, node: &str, input: &str, value: Value) {
        if let Some(Value::Object(node)) = self.nodes.get_mut(node) {
            let inputs = node
                .entry("inputs")
                .or_insert_with(|| Value::Object(Map::new()));
            if let Value::Object(inputs) = inputs {
                inputs.insert(input.to_string(), value);
            }
        }
    }

    /// Every literal integer seed (`seed`, `noise_seed`), for `--seed random|N`.
    pub fn seed_inputs(&self) -> Vec<(String, String)> {
        let mut seeds = Vec::new();
        for id in self.ids() {
            for (name, value) in self.inputs(id) {
                if matches!(name, "seed" | "noise_seed") && value.is_u64() {
                    seeds.push((id.to_string(), name.to_string()));
                }
            }
        }
        seeds
    }

    /// The graph `POST /prompt` takes.
    pub fn to_prompt(&self) -> Value {
        Value::Object(self.nodes.clone())
    }

    /// Parses `--set NODE.INPUT=VALUE` and checks that the node exists.
    pub fn parse_set(&self, spec: &str) -> Result<SetInput, WorkflowError> {
        let bad = |why: String| WorkflowError::BadEdit {
            option: "--set",
            spec: spec.to_string(),
            why,
        };
        let (target, raw) = spec
            .split_once('=')
            .ok_or_else(|| bad("no `=VALUE`".to_string()))?;
        let (node, input) = target
            .split_once('.')
            .filter(|(node, input)| !node.is_empty() && !input.is_empty())
            .ok_or_else(|| bad("expected NODE.INPUT before `=`".to_string()))?;
        self.known_node(node).map_err(bad)?;
        Ok(SetInput {
            node: node.to_string(),
            input: input.to_string(),
            raw: raw.to_string(),
        })
    }

    /// Parses `--input NODE[.INPUT]=FILE` and checks that the node exists (the file is read
    /// by the command).
    pub fn parse_file_input(&self, spec: &str) -> Result<FileInput, WorkflowError> {
        let bad = |why: String| WorkflowError::BadEdit {
            option: "--input",
            spec: spec.to_string(),
            why,
        };
        let (target, file) = spec
            .split_once('=')
            .filter(|(_, file)| !file.is_empty())
            .ok_or_else(|| bad("no `=FILE`".to_string()))?;
        let (node, input) = match target.split_once('.') {
            Some((node, input)) if !input.is_empty() => (node, Some(input.to_string())),
            Some(_) => return Err(bad("expected NODE or NODE.INPUT before `=`".to_string())),
            None => (target, None),
        };
        self.known_node(node).map_err(bad)?;
        Ok(FileInput {
            node: node.to_string(),
            input,
            file: file.to_string(),
        })
    }

    fn known_node(&self, node: &str) -> Result<(), String> {
        if self.contains(node) {
            return Ok(());
        }
        let near = crate::config::did_you_mean(node, self.ids())
            .map(|n| format!(" (did you mean `{n}`?)"))
            .unwrap_or_default();
        let ids: Vec<&str> = self.ids().collect();
        Err(format!(
            "the workflow has no node `{node}`{near}; its nodes are {}",
            ids.join(", ")
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TXT2IMG: &str = r#"{
        "4": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": "sd15.safetensors"}},
        "6": {"class_type": "CLIPTextEncode", "inputs": {"text": "a fox", "clip": ["4", 1]},
              "_meta": {"title": "Positive"}},
        "3": {"class_type": "KSampler", "inputs": {"seed": 42, "steps": 20, "model": ["4", 0]}},
        "9": {"class_type": "SaveImage", "inputs": {"images": ["3", 0]}}
    }"#;

    #[test]
    fn an_api_format_file_keeps_its_order_and_meta() {
        let workflow = Workflow::parse(TXT2IMG, "w.json").expect("parses");
        assert_eq!(workflow.ids().collect::<Vec<_>>(), ["4", "6", "3", "9"]);
        assert_eq!(workflow.title("6"), Some("Positive"));
        assert_eq!(
            InputValue::of(workflow.input("6", "clip").expect("clip")),
            InputValue::Link {
                node: "4",
                output: 1
            }
        );
        assert_eq!(
            workflow.seed_inputs(),
            [("3".to_string(), "seed".to_string())]
        );
        assert_eq!(workflow.to_prompt()["6"]["_meta"]["title"], "Positive");
    }

    #[test]
    fn the_ui_format_is_refused_with_how_to_export() {
        let ui = r#"{"last_node_id": 9, "nodes": [{"id": 3, "type": "KSampler"}], "links": [[1, 4, 0, 3, 0, "MODEL"]]}"#;
        let error = Workflow::parse(ui, "ui.json").expect_err("refused");
        assert!(matches!(error, WorkflowError::UiFormat { .. }), "{error}");
        assert!(
            error.hint().unwrap_or_default().contains("Export (API)"),
            "{:?}",
            error.hint()
        );
    }

    #[test]
    fn a_saved_prompt_body_is_taken_and_broken_files_are_named() {
        let body = format!(r#"{{"prompt": {TXT2IMG}, "client_id": "x"}}"#);
        assert_eq!(
            Workflow::parse(&body, "b.json")
                .expect("parses")
                .ids()
                .count(),
            4
        );
        for (text, needle) in [
            ("[1, 2]", "expected a JSON object"),
            (r#"{"1": {"inputs": {}}}"#, "node `1` has no `class_type`"),
            (r#"{"1": 5}"#, "`1` is not a node"),
            ("{}", "has no nodes"),
            ("{", "not JSON"),
        ] {
            let error = Workflow::parse(text, "f.json").expect_err(text);
            assert!(error.to_string().contains(needle), "{text}: {error}");
        }
    }

    #[test]
    fn edits_name_the_node_they_miss() {
        let workflow = Workflow::parse(TXT2IMG, "w.json").expect("parses");
        let set = workflow.parse_set("6.text=a red fox").expect("parses");
        assert_eq!(
            (set.node.as_str(), set.input.as_str(), set.raw.as_str()),
            ("6", "text", "a red fox")
        );
        assert_eq!(workflow.parse_set("3.steps=").expect("empty value").raw, "");
        let error = workflow.parse_set("7.text=x").expect_err("no node 7");
        assert!(
            error.to_string().contains("no node `7`") && error.to_string().contains("4, 6, 3, 9"),
            "{error}"
        );
        assert!(workflow.parse_set("6text=x").is_err());
        assert!(workflow.parse_set("6.text").is_err());
        let input = workflow.parse_file_input("4=cat.png").expect("parses");
        assert_eq!((input.node.as_str(), input.input), ("4", None));
        let input = workflow
            .parse_file_input("4.image=a=b.png")
            .expect("parses");
        assert_eq!(
            (input.input.as_deref(), input.file.as_str()),
            (Some("image"), "a=b.png")
        );
        assert!(workflow.parse_file_input("4=").is_err());
    }
}
