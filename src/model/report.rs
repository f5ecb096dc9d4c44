//! What comfyplat tells the user after the work: the platform's outputs (its URLs and
//! names, each contributed by the kind of a resource in state) and, after a destroy, what is
//! still there.

use serde::Serialize;
use serde_json::{Map, Value};

/// One output of a resource: `buckets.models = comfyui-models-…`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Output {
    /// Dotted name; `output --json` nests on the dots (`cloudfront.id`).
    pub name: String,
    pub value: Value,
    /// Where people open ComfyUI, when this output is a candidate for `url`: the lowest
    /// rank wins (a CloudFront alias, then the CloudFront domain, then the load balancer).
    #[serde(skip)]
    pub url_rank: Option<u8>,
}

impl Output {
    pub fn new(name: impl Into<String>, value: impl Into<Value>) -> Self {
        Output {
            name: name.into(),
            value: value.into(),
            url_rank: None,
        }
    }

    pub fn url(mut self, rank: u8) -> Self {
        self.url_rank = Some(rank);
        self
    }
}

/// The platform's outputs, from state and live reads.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Outputs {
    /// Where people open ComfyUI.
    pub url: Option<String>,
    /// Every output, in the table's kind order, then by address.
    pub values: Vec<Output>,
}

impl Outputs {
    pub fn new(values: Vec<Output>) -> Outputs {
        let url = values
            .iter()
            .filter_map(|o| Some((o.url_rank?, o.value.as_str()?)))
            .min_by_key(|(rank, _)| *rank)
            .map(|(_, url)| url.to_string());
        Outputs { url, values }
    }

    pub fn is_empty(&self) -> bool {
        self.values.is_empty()
    }

    /// `{"url": ..., "cloudfront": {"id": ...}, "buckets": {"models": ...}}`.
    pub fn to_json(&self) -> Value {
        let mut root = Map::new();
        if let Some(url) = &self.url {
            root.insert("url".to_string(), Value::String(url.clone()));
        }
        for output in &self.values {
            let mut node = &mut root;
            let mut parts = output.name.split('.').peekable();
            while let Some(part) = parts.next() {
                if parts.peek().is_none() {
                    node.insert(part.to_string(), output.value.clone());
                    break;
                }
                let entry = node
                    .entry(part.to_string())
                    .or_insert_with(|| Value::Object(Map::new()));
                if !entry.is_object() {
                    *entry = Value::Object(Map::new());
                }
                let Value::Object(inner) = entry else { break };
                node = inner;
            }
        }
        Value::Object(root)
    }
}

/// One thing found after a destroy, with what to do about it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Finding {
    /// What it is: `load balancer`, `EC2 instance`, `S3 bucket`, ...
    pub what: String,
    /// Its ARN, id or name.
    pub id: String,
    pub advice: String,
}

/// What a destroy left, by cause.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct DestroyReport {
    /// Owned by comfyplat and still there (goal: none).
    pub still_owned: Vec<Finding>,
    /// Kept on purpose because they hold data.
    pub kept: Vec<Finding>,
    /// Billable things the cluster's controllers made for the platform and left.
    pub left_by_controllers: Vec<Finding>,
    /// Scans that could not be made (e.g. no `tag:GetResources` permission): what was not
    /// checked.
    pub unchecked: Vec<String>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn outputs_nest_on_dots_and_the_best_url_wins() {
        let outputs = Outputs::new(vec![
            Output::new("buckets.models", "m"),
            Output::new("load_balancer.url", "http://lb").url(2),
            Output::new("cloudfront.url", "https://d1.cloudfront.net").url(1),
            Output::new("cloudfront.id", "E1"),
        ]);
        assert_eq!(outputs.url.as_deref(), Some("https://d1.cloudfront.net"));
        assert_eq!(
            outputs.to_json(),
            json!({
                "url": "https://d1.cloudfront.net",
                "buckets": {"models": "m"},
                "load_balancer": {"url": "http://lb"},
                "cloudfront": {"url": "https://d1.cloudfront.net", "id": "E1"},
            })
        );
    }
}
