//! The check of a workflow against the server's node definitions (`GET /object_info`), made
//! before anything is queued, so every problem is reported at once and per node instead of
//! the server's first refusal. It follows the server's own validation: unknown node types,
//! missing required inputs, values not in a node's list (most often a model that is not on
//! the node), numbers out of range, values of the wrong type, links to missing nodes or of
//! the wrong type, and a workflow without an output node.

use std::collections::BTreeMap;

use serde_json::Value;

use super::graph::{InputValue, SetInput, Workflow};

/// The file extensions ComfyUI lists as models (`folder_paths.supported_pt_extensions`).
pub const MODEL_EXTENSIONS: &[&str] = &[
    ".ckpt",
    ".pt",
    ".pt2",
    ".bin",
    ".pth",
    ".safetensors",
    ".pkl",
    ".sft",
    ".gguf",
];

/// What the server says an input takes.
#[derive(Debug, Clone, PartialEq)]
pub enum InputType {
    /// A list of choices (old-style `[[...], {...}]` or new-style `["COMBO", {"options"}]`).
    Combo(Vec<Value>),
    /// `INT`, `FLOAT`, `STRING`, `BOOLEAN`, `IMAGE`, `*`, ...
    Named(String),
}

#[derive(Debug, Clone, PartialEq)]
pub struct InputSpec {
    pub name: String,
    pub ty: InputType,
    pub required: bool,
    pub options: serde_json::Map<String, Value>,
}

impl InputSpec {
    /// An input the frontend fills by uploading a file (LoadImage's `image`, LoadAudio's
    /// `audio`, ...).
    pub fn is_upload(&self) -> bool {
        self.options
            .iter()
            .any(|(key, value)| key.ends_with("_upload") && value.as_bool() == Some(true))
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct NodeClass {
    pub inputs: Vec<InputSpec>,
    pub outputs: Vec<String>,
    pub output_node: bool,
}

impl NodeClass {
    pub fn input(&self, name: &str) -> Option<&InputSpec> {
        self.inputs.iter().find(|i| i.name == name)
    }
}

/// The server's node definitions.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Catalog {
    pub classes: BTreeMap<String, NodeClass>,
}

impl Catalog {
    /// From `GET /object_info`. Entries that do not parse are left out (their nodes are then
    /// reported as unknown types by the check, which is what the server would say too).
    pub fn from_object_info(info: &Value) -> Catalog {
        let mut classes = BTreeMap::new();
        for (name, class) in info.as_object().into_iter().flatten() {
            let mut inputs = Vec::new();
            for (section, required) in [("required", true), ("optional", false)] {
                let Some(section) = class
                    .get("input")
                    .and_then(|i| i.get(section))
                    .and_then(Value::as_object)
                else {
                    continue;
                };
                for (input, spec) in section {
                    if let Some(spec) = input_spec(input, spec, required) {
                        inputs.push(spec);
                    }
                }
            }
            let outputs = class
                .get("output")
                .and_then(Value::as_array)
                .map(|o| {
                    o.iter()
                        .map(|t| match t {
                            Value::String(t) => t.clone(),
                            // A combo output (a list of choices).
                            _ => "COMBO".to_string(),
                        })
                        .collect()
                })
                .unwrap_or_default();
            let output_node = class.get("output_node").and_then(Value::as_bool) == Some(true);
            classes.insert(
                name.clone(),
                NodeClass {
                    inputs,
                    outputs,
                    output_node,
                },
            );
        }
        Catalog { classes }
    }
}

fn input_spec(name: &str, spec: &Value, required: bool) -> Option<InputSpec> {
    let parts = spec.as_array()?;
    let options = parts
        .get(1)
        .and_then(Value::as_object)
        .cloned()
        .unwrap_or_default();
    let ty = match parts.first()? {
        Value::Array(choices) => InputType::Combo(choices.clone()),
        Value::String(t) if t == "COMBO" => InputType::Combo(
            options
                .get("options")
                .and_then(Value::as_array)
                .cloned()
                .unwrap_or_default(),
        ),
        Value::String(t) => InputType::Named(t.clone()),
        _ => return None,
    };
    Some(InputSpec {
        name: name.to_string(),
        ty,
        required,
        options,
    })
}

/// One problem, on one node (or on the workflow, for `NoOutputNode`).
#[derive(Debug, Clone, PartialEq)]
pub struct Problem {
    pub node: String,
    pub class_type: String,
    pub kind: ProblemKind,
}

#[derive(Debug, Clone, PartialEq)]
pub enum ProblemKind {
    UnknownNodeType {
        near: Option<String>,
    },
    MissingInput {
        input: String,
        ty: String,
    },
    NotInList {
        input: String,
        value: String,
        choices: Vec<String>,
        /// The value names a model file (one of [`MODEL_EXTENSIONS`]).
        model: bool,
    },
    OutOfRange {
        input: String,
        value: f64,
        bound: String,
    },
    WrongType {
        input: String,
        expected: String,
        got: String,
    },
    LinkToMissingNode {
        input: String,
        target: String,
    },
    LinkOutOfRange {
        input: String,
        target: String,
        output: u64,
    },
    LinkTypeMismatch {
        input: String,
        expected: String,
        got: String,
    },
    /// `--set` named an input the node's class does not have.
    UnknownInput {
        input: String,
        near: Option<String>,
    },
    NoOutputNode,
}

impl Problem {
    /// One line: `node 4 (CheckpointLoaderSimple): ckpt_name: ...`.
    pub fn message(&self) -> String {
        let what = match &self.kind {
            ProblemKind::UnknownNodeType { near } => format!(
                "node type `{}` is not on the server (a custom node that is not installed?){}",
                self.class_type,
                near.as_ref()
                    .map(|n| format!("; did you mean `{n}`?"))
                    .unwrap_or_default()
            ),
            ProblemKind::MissingInput { input, ty } => {
                format!("required input `{input}` ({ty}) is missing")
            }
            ProblemKind::NotInList {
                input,
                value,
                choices,
                model,
            } => {
                let listed = if choices.is_empty() {
                    "the server lists none".to_string()
                } else if choices.len() <= 5 {
                    format!("the server has {}", choices.join(", "))
                } else {
                    format!("the server has {} choices", choices.len())
                };
                let what = if *model { "model " } else { "" };
                format!("{input}: {what}`{value}` is not on the server ({listed})")
            }
            ProblemKind::OutOfRange {
                input,
                value,
                bound,
            } => format!("{input}: {value} is out of range ({bound})"),
            ProblemKind::WrongType {
                input,
                expected,
                got,
            } => format!("{input}: expected {expected}, got {got}"),
            ProblemKind::LinkToMissingNode { input, target } => {
                format!("{input}: linked to node `{target}`, which the workflow does not have")
            }
            ProblemKind::LinkOutOfRange {
                input,
                target,
                output,
            } => format!(
                "{input}: linked to output {output} of node `{target}`, which has no such output"
            ),
            ProblemKind::LinkTypeMismatch {
                input,
                expected,
                got,
            } => format!("{input}: takes {expected}, but is linked to a {got} output"),
            ProblemKind::UnknownInput { input, near } => format!(
                "has no input `{input}`{}",
                near.as_ref()
                    .map(|n| format!(" (did you mean `{n}`?)"))
                    .unwrap_or_default()
            ),
            ProblemKind::NoOutputNode => {
                return "the workflow has no output node (SaveImage, PreviewImage, ...): the server would run nothing".to_string();
            }
        };
        format!("node {} ({}): {what}", self.node, self.class_type)
    }
}

/// Applies `--set` edits, typed by the node's definition: a STRING or combo input takes the
/// text as it is (`6.text=123` is the text "123"), INT/FLOAT/BOOLEAN must parse as such,
/// anything else takes JSON (or the text when it is not JSON).
pub fn apply_set(
    workflow: &mut Workflow,
    catalog: &Catalog,
    set: &SetInput,
) -> Result<(), Box<Problem>> {
    let class_type = workflow
        .class_type(&set.node)
        .unwrap_or_default()
        .to_string();
    let problem = |kind| {
        Box::new(Problem {
            node: set.node.clone(),
            class_type: class_type.clone(),
            kind,
        })
    };
    let Some(class) = catalog.classes.get(&class_type) else {
        return Err(problem(ProblemKind::UnknownNodeType { near: None }));
    };
    let Some(spec) = class.input(&set.input) else {
        let near =
            crate::config::did_you_mean(&set.input, class.inputs.iter().map(|i| i.name.as_str()))
                .map(str::to_string);
        return Err(problem(ProblemKind::UnknownInput {
            input: set.input.clone(),
            near,
        }));
    };
    let json = serde_json::from_str::<Value>(&set.raw).ok();
    let wrong = |expected: &str| {
        problem(ProblemKind::WrongType {
            input: set.input.clone(),
            expected: expected.to_string(),
            got: format!("`{}`", set.raw),
        })
    };
    let value = match &spec.ty {
        InputType::Combo(_) => match json {
            Some(Value::String(s)) => Value::String(s),
            Some(Value::Number(n)) if combo_has_number(&spec.ty, &n) => Value::Number(n),
            _ => Value::String(set.raw.clone()),
        },
        InputType::Named(t) if t == "STRING" => match json {
            Some(Value::String(s)) => Value::String(s),
            _ => Value::String(set.raw.clone()),
        },
        InputType::Named(t) if t == "INT" => match json {
            Some(Value::Number(n)) if n.is_i64() || n.is_u64() => Value::Number(n),
            _ => return Err(wrong("an integer")),
        },
        InputType::Named(t) if t == "FLOAT" => match json {
            Some(Value::Number(n)) => Value::Number(n),
            _ => return Err(wrong("a number")),
        },
        InputType::Named(t) if t == "BOOLEAN" => match json {
            Some(Value::Bool(b)) => Value::Bool(b),
            _ => return Err(wrong("true or false")),
        },
        InputType::Named(_) => json.unwrap_or_else(|| Value::String(set.raw.clone())),
    };
    workflow.set_input(&set.node, &set.input, value);
    Ok(())
}

fn combo_has_number(ty: &InputType, n: &serde_json::Number) -> bool {
    matches!(ty, InputType::Combo(choices) if choices.iter().any(|c| c.as_number() == Some(n)))
}

/// Every problem of the workflow, in node order. `uploaded` are `(node, input)` pairs that
/// were just uploaded: the server lists them now, the catalog read before may not.
pub fn check(
    workflow: &Workflow,
    catalog: &Catalog,
    uploaded: &[(String, String)],
) -> Vec<Problem> {
    let mut problems = Vec::new();
    let mut any_output = false;
    for id in workflow.ids() {
        let class_type = workflow.class_type(id).unwrap_or_default();
        let problem = |kind| Problem {
            node: id.to_string(),
            class_type: class_type.to_string(),
            kind,
        };
        let Some(class) = catalog.classes.get(class_type) else {
            let near =
                crate::config::did_you_mean(class_type, catalog.classes.keys().map(String::as_str))
                    .map(str::to_string);
            problems.push(problem(ProblemKind::UnknownNodeType { near }));
            continue;
        };
        any_output |= class.output_node;
        for spec in &class.inputs {
            let Some(value) = workflow.input(id, &spec.name) else {
                if spec.required {
                    problems.push(problem(ProblemKind::MissingInput {
                        input: spec.name.clone(),
                        ty: type_name(&spec.ty),
                    }));
                }
                continue;
            };
            let kind = match InputValue::of(value) {
                InputValue::Link { node, output } => {
                    check_link(workflow, catalog, spec, node, output)
                }
                InputValue::Literal(value) => {
                    let just_uploaded = uploaded.iter().any(|(n, i)| n == id && *i == spec.name);
                    if just_uploaded {
                        None
                    } else {
                        check_literal(spec, value)
                    }
                }
            };
            problems.extend(kind.map(problem));
        }
    }
    if !any_output && problems.is_empty() {
        problems.push(Problem {
            node: String::new(),
            class_type: String::new(),
            kind: ProblemKind::NoOutputNode,
        });
    }
    problems
}

fn type_name(ty: &InputType) -> String {
    match ty {
        InputType::Combo(_) => "a choice".to_string(),
        InputType::Named(t) => t.clone(),
    }
}

fn check_link(
    workflow: &Workflow,
    catalog: &Catalog,
    spec: &InputSpec,
    target: &str,
    output: u64,
) -> Option<ProblemKind> {
    let input = spec.name.clone();
    let Some(target_class) = workflow.class_type(target) else {
        return Some(ProblemKind::LinkToMissingNode {
            input,
            target: target.to_string(),
        });
    };
    // An unknown target class is reported on its own node.
    let class = catalog.classes.get(target_class)?;
    let Some(got) = usize::try_from(output)
        .ok()
        .and_then(|o| class.outputs.get(o))
    else {
        return Some(ProblemKind::LinkOutOfRange {
            input,
            target: target.to_string(),
            output,
        });
    };
    let InputType::Named(expected) = &spec.ty else {
        return None;
    };
    if types_match(expected, got) {
        None
    } else {
        Some(ProblemKind::LinkTypeMismatch {
            input,
            expected: expected.clone(),
            got: got.clone(),
        })
    }
}

/// ComfyUI's rule: `*` matches anything, and either side may list several types with `,`.
fn types_match(expected: &str, got: &str) -> bool {
    if expected == "*" || got == "*" || expected == got {
        return true;
    }
    let expected: Vec<&str> = expected.split(',').map(str::trim).collect();
    got.split(',').map(str::trim).any(|g| expected.contains(&g))
}

fn check_literal(spec: &InputSpec, value: &Value) -> Option<ProblemKind> {
    let input = spec.name.clone();
    match &spec.ty {
        InputType::Combo(choices) => {
            if choices.iter().any(|c| c == value) {
                return None;
            }
            let text = match value {
                Value::String(s) => s.clone(),
                other => other.to_string(),
            };
            let model = MODEL_EXTENSIONS
                .iter()
                .any(|ext| text.to_ascii_lowercase().ends_with(ext));
            Some(ProblemKind::NotInList {
                input,
                value: text,
                choices: choices
                    .iter()
                    .map(|c| c.as_str().map_or_else(|| c.to_string(), str::to_string))
                    .collect(),
                model,
            })
        }
        InputType::Named(t) if t == "INT" || t == "FLOAT" => {
            let number = match value {
                Value::Number(n) => n.as_f64(),
                Value::String(s) => s.trim().parse::<f64>().ok(),
                Value::Bool(b) => Some(f64::from(u8::from(*b))),
                _ => None,
            };
            let Some(number) = number.filter(|n| t == "FLOAT" || n.fract() == 0.0) else {
                return Some(ProblemKind::WrongType {
                    input,
                    expected: if t == "INT" { "an integer" } else { "a number" }.to_string(),
                    got: value.to_string(),
                });
            };
            let bound = |key: &str| spec.options.get(key).and_then(Value::as_f64);
            if let Some(min) = bound("min").filter(|min| number < *min) {
                return Some(ProblemKind::OutOfRange {
                    input,
                    value: number,
                    bound: format!("min {min}"),
                });
            }
            if let Some(max) = bound("max").filter(|max| number > *max) {
                return Some(ProblemKind::OutOfRange {
                    input,
                    value: number,
                    bound: format!("max {max}"),
                });
            }
            None
        }
        InputType::Named(t) if t == "BOOLEAN" => {
            (!value.is_boolean()).then(|| ProblemKind::WrongType {
                input,
                expected: "true or false".to_string(),
                got: value.to_string(),
            })
        }
        InputType::Named(t) if t == "STRING" => match value {
            Value::Array(_) | Value::Object(_) => Some(ProblemKind::WrongType {
                input,
                expected: "a string".to_string(),
                got: value.to_string(),
            }),
            _ => None,
        },
        // A link-only type (IMAGE, MODEL, ...) given a literal: the server takes what it is
        // given for custom types; nothing to check here.
        InputType::Named(_) => None,
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn catalog() -> Catalog {
        Catalog::from_object_info(&json!({
            "CheckpointLoaderSimple": {
                "input": {"required": {"ckpt_name": [["sd15.safetensors", "sub/xl.safetensors"], {}]}},
                "output": ["MODEL", "CLIP", "VAE"], "output_node": false
            },
            "CLIPTextEncode": {
                "input": {"required": {"text": ["STRING", {"multiline": true}], "clip": ["CLIP", {}]}},
                "output": ["CONDITIONING"], "output_node": false
            },
            "KSampler": {
                "input": {"required": {
                    "model": ["MODEL", {}],
                    "seed": ["INT", {"default": 0, "min": 0, "max": 18446744073709551615u64}],
                    "steps": ["INT", {"default": 20, "min": 1, "max": 10000}],
                    "cfg": ["FLOAT", {"default": 8.0, "min": 0.0, "max": 100.0}],
                    "sampler_name": ["COMBO", {"options": ["euler", "dpmpp_2m"]}],
                    "positive": ["CONDITIONING", {}]
                }},
                "output": ["LATENT"], "output_node": false
            },
            "LoadImage": {
                "input": {"required": {"image": [["a.png"], {"image_upload": true}]}},
                "output": ["IMAGE", "MASK"], "output_node": false
            },
            "SaveImage": {
                "input": {"required": {"images": ["IMAGE", {}],
                                        "filename_prefix": ["STRING", {"default": "ComfyUI"}]}},
                "output": [], "output_node": true
            }
        }))
    }

    fn workflow(value: Value) -> Workflow {
        Workflow::parse(&value.to_string(), "w.json").expect("parses")
    }

    fn kinds(problems: &[Problem]) -> Vec<(String, ProblemKind)> {
        problems
            .iter()
            .map(|p| (p.node.clone(), p.kind.clone()))
            .collect()
    }

    #[test]
    fn a_sound_workflow_has_no_problems() {
        let w = workflow(json!({
            "4": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": "sub/xl.safetensors"}},
            "6": {"class_type": "CLIPTextEncode", "inputs": {"text": "a fox", "clip": ["4", 1]}},
            "3": {"class_type": "KSampler", "inputs": {"model": ["4", 0], "seed": 5, "steps": 20,
                   "cfg": 7.5, "sampler_name": "euler", "positive": ["6", 0]}},
            "10": {"class_type": "LoadImage", "inputs": {"image": "a.png"}},
            "9": {"class_type": "SaveImage", "inputs": {"images": ["10", 0], "filename_prefix": "x"}}
        }));
        assert_eq!(check(&w, &catalog(), &[]), []);
    }

    #[test]
    fn every_problem_is_reported_per_node() {
        let w = workflow(json!({
            "1": {"class_type": "CheckpointLoaderSimpel", "inputs": {}},
            "4": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": "missing.safetensors"}},
            "6": {"class_type": "CLIPTextEncode", "inputs": {"clip": ["4", 2]}},
            "3": {"class_type": "KSampler", "inputs": {"model": ["8", 0], "seed": 5, "steps": 0,
                   "cfg": "high", "sampler_name": "nope", "positive": ["4", 7]}},
            "9": {"class_type": "SaveImage", "inputs": {"images": ["3", 0], "filename_prefix": "x"}}
        }));
        let problems = check(&w, &catalog(), &[]);
        assert_eq!(
            kinds(&problems),
            [
                (
                    "1".to_string(),
                    ProblemKind::UnknownNodeType {
                        near: Some("CheckpointLoaderSimple".to_string())
                    }
                ),
                (
                    "4".to_string(),
                    ProblemKind::NotInList {
                        input: "ckpt_name".to_string(),
                        value: "missing.safetensors".to_string(),
                        choices: vec![
                            "sd15.safetensors".to_string(),
                            "sub/xl.safetensors".to_string()
                        ],
                        model: true
                    }
                ),
                (
                    "6".to_string(),
                    ProblemKind::MissingInput {
                        input: "text".to_string(),
                        ty: "STRING".to_string()
                    }
                ),
                (
                    "6".to_string(),
                    ProblemKind::LinkTypeMismatch {
                        input: "clip".to_string(),
                        expected: "CLIP".to_string(),
                        got: "VAE".to_string()
                    }
                ),
                (
                    "3".to_string(),
                    ProblemKind::LinkToMissingNode {
                        input: "model".to_string(),
                        target: "8".to_string()
                    }
                ),
                (
                    "3".to_string(),
                    ProblemKind::OutOfRange {
                        input: "steps".to_string(),
                        value: 0.0,
                        bound: "min 1".to_string()
                    }
                ),
                (
                    "3".to_string(),
                    ProblemKind::WrongType {
                        input: "cfg".to_string(),
                        expected: "a number".to_string(),
                        got: "\"high\"".to_string()
                    }
                ),
                (
                    "3".to_string(),
                    ProblemKind::NotInList {
                        input: "sampler_name".to_string(),
                        value: "nope".to_string(),
                        choices: vec!["euler".to_string(), "dpmpp_2m".to_string()],
                        model: false
                    }
                ),
                (
                    "3".to_string(),
                    ProblemKind::LinkOutOfRange {
                        input: "positive".to_string(),
                        target: "4".to_string(),
                        output: 7
                    }
                ),
                (
                    "9".to_string(),
                    ProblemKind::LinkTypeMismatch {
                        input: "images".to_string(),
                        expected: "IMAGE".to_string(),
                        got: "LATENT".to_string()
                    }
                ),
            ]
        );
        assert_eq!(
            problems[1].message(),
            "node 4 (CheckpointLoaderSimple): ckpt_name: model `missing.safetensors` is not on the server (the server has sd15.safetensors, sub/xl.safetensors)"
        );
    }

    #[test]
    fn a_workflow_without_an_output_node_is_refused_and_uploads_are_trusted() {
        let w =
            workflow(json!({"10": {"class_type": "LoadImage", "inputs": {"image": "new.png"}}}));
        let problems = check(&w, &catalog(), &[("10".to_string(), "image".to_string())]);
        assert_eq!(
            kinds(&problems),
            [(String::new(), ProblemKind::NoOutputNode)]
        );
        assert!(catalog().classes["LoadImage"].inputs[0].is_upload());
    }

    #[test]
    fn set_is_typed_by_the_node_definition() {
        let mut w = workflow(json!({
            "6": {"class_type": "CLIPTextEncode", "inputs": {"text": "a fox", "clip": ["4", 1]}},
            "3": {"class_type": "KSampler", "inputs": {"steps": 20, "cfg": 7}}
        }));
        let c = catalog();
        for spec in [
            "6.text=123",
            "3.steps=30",
            "3.cfg=6.5",
            "3.sampler_name=dpmpp_2m",
        ] {
            let set = w.parse_set(spec).expect("parses");
            apply_set(&mut w, &c, &set).expect(spec);
        }
        assert_eq!(w.input("6", "text"), Some(&json!("123")));
        assert_eq!(w.input("3", "steps"), Some(&json!(30)));
        assert_eq!(w.input("3", "cfg"), Some(&json!(6.5)));
        assert_eq!(w.input("3", "sampler_name"), Some(&json!("dpmpp_2m")));
        let set = w.parse_set("3.steps=many").expect("parses");
        let error = apply_set(&mut w, &c, &set).expect_err("not an integer");
        assert!(
            matches!(error.kind, ProblemKind::WrongType { .. }),
            "{error:?}"
        );
        let set = w.parse_set("3.step=5").expect("parses");
        let error = apply_set(&mut w, &c, &set).expect_err("no such input");
        assert!(
            error.message().contains("did you mean `steps`"),
            "{}",
            error.message()
        );
    }
}
