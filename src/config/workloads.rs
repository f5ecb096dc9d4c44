//! Checks and defaults of the Kubernetes side of platform.yaml: how to reach the cluster
//! (`kubernetes`), the GPU node pool (`karpenter`) and the ComfyUI workload (`comfyui`).
//!
//! The rules follow what the API servers would refuse (DNS labels, Karpenter's duration and
//! budget patterns, CIDR syntax), so that a file that validates renders objects the cluster
//! accepts.

use std::path::{Path, PathBuf};

use serde_saphyr::Spanned;

use super::diagnostic::Diagnostic;
use super::schema::{ComfyuiFile, KarpenterFile, KubernetesFile};
use super::{
    Capacity, ComfyuiSettings, ImageRepositorySettings, IngressSettings, KubernetesAccess,
    ModelAgentSettings, NodePoolSettings,
};

/// Where the GPU nodes keep the model cache unless `comfyui.models_path` says otherwise: a
/// directory on the instance-store array Karpenter's `instanceStorePolicy: RAID0` mounts at
/// `/mnt/k8s-disks/0` (on a type without instance store, the same path on the root volume).
pub const DEFAULT_MODELS_PATH: &str = "/mnt/k8s-disks/0/comfyplat";

/// `storage.models.sync`: key prefixes, each a folder (`checkpoints/`; the `/` is added).
pub fn model_prefixes(
    sync: Option<&Spanned<Vec<Spanned<String>>>>,
    problems: &mut Problems,
) -> Vec<String> {
    let Some(list) = sync else {
        return Vec::new();
    };
    if list.value.is_empty() {
        problems.at(
            list,
            "`storage.models.sync` is empty: the nodes would get no models".to_string(),
            "list the folders to mirror, e.g. `sync: [checkpoints/, loras/]`, or leave `sync` out to mirror the whole bucket",
        );
    }
    let mut prefixes: Vec<String> = Vec::new();
    for item in &list.value {
        let text = item.value.trim_end_matches('/');
        let bad = text.is_empty()
            || text.starts_with('/')
            || text
                .split('/')
                .any(|part| part.is_empty() || part == "." || part == "..")
            || text.starts_with(".comfyplat")
            || text
                .chars()
                .any(|c| c.is_control() || c == '*' || c == '?' || c.is_whitespace());
        if bad {
            problems.at(
                item,
                format!("`{}` is not a folder of the models bucket", item.value),
                "give folders relative to the bucket's top, e.g. `checkpoints/` or `loras/sdxl/`, without `..`, wildcards, spaces or `.comfyplat/`",
            );
            continue;
        }
        let prefix = format!("{text}/");
        if prefixes
            .iter()
            .any(|p| prefix.starts_with(p.as_str()) || p.starts_with(prefix.as_str()))
        {
            problems.at(
                item,
                format!(
                    "`{}` overlaps another folder of `storage.models.sync`",
                    item.value
                ),
                "list each folder once; a folder includes everything under it",
            );
            continue;
        }
        prefixes.push(prefix);
    }
    prefixes.sort();
    prefixes
}

/// The AL2023 EKS AMI release the node class is pinned to unless `karpenter.ami` says
/// otherwise. Pinned, not `@latest`: a new AMI release would otherwise replace every GPU node
/// (Karpenter drifts them) at a moment nobody chose.
pub const DEFAULT_AMI: &str = "al2023@v20260828";
pub const DEFAULT_INSTANCE_TYPES: &[&str] = &["g6.2xlarge", "g5.2xlarge"];

/// Collects problems at the location of the value they are about.
pub struct Problems<'a>(pub &'a mut Vec<Diagnostic>);

impl Problems<'_> {
    pub fn at<T>(&mut self, spanned: &Spanned<T>, message: String, hint: &str) {
        self.at_position(
            spanned.referenced.line() as usize,
            spanned.referenced.column() as usize,
            message,
            hint,
        );
    }

    pub fn at_position(&mut self, line: usize, column: usize, message: String, hint: &str) {
        let mut diagnostic = Diagnostic::new(line, column, message);
        if !hint.is_empty() {
            diagnostic = diagnostic.with_hint(hint);
        }
        self.0.push(diagnostic);
    }
}

pub fn kubernetes(base: &Path, file: &KubernetesFile, problems: &mut Problems) -> KubernetesAccess {
    if let (None, Some(context)) = (&file.kubeconfig, &file.context) {
        problems.at(
            context,
            "`kubernetes.context` needs `kubernetes.kubeconfig`".to_string(),
            "name the kubeconfig file too, or leave both out to let comfyplat connect on its own",
        );
    }
    KubernetesAccess {
        kubeconfig: file
            .kubeconfig
            .as_ref()
            .map(|path| resolve(base, &path.value)),
        context: file.context.as_ref().map(|c| c.value.clone()),
        allow_other_endpoint: file.allow_other_endpoint.unwrap_or(false),
    }
}

/// A path from platform.yaml: `~/` is the home directory, relative paths start at
/// platform.yaml's folder.
pub fn resolve(base: &Path, text: &str) -> PathBuf {
    if let Some(rest) = text.strip_prefix("~/")
        && let Some(home) = std::env::var_os("HOME")
    {
        return PathBuf::from(home).join(rest);
    }
    let path = PathBuf::from(text);
    if path.is_absolute() {
        path
    } else {
        base.join(path)
    }
}

pub fn node_pool(
    file: &KarpenterFile,
    problems: &mut Problems,
    notes: &mut Vec<String>,
) -> NodePoolSettings {
    let ami_text = file
        .ami
        .as_ref()
        .map_or(DEFAULT_AMI, |ami| ami.value.as_str());
    let instance_types = match &file.instance_types {
        None => DEFAULT_INSTANCE_TYPES
            .iter()
            .map(|t| t.to_string())
            .collect(),
        Some(types) => {
            if types.value.is_empty() {
                problems.at(
                    types,
                    "`karpenter.instance_types` is empty".to_string(),
                    "list at least one GPU instance type, e.g. `[g6.2xlarge, g5.2xlarge]`",
                );
            }
            let mut seen = std::collections::BTreeSet::new();
            for name in &types.value {
                if !is_instance_type(&name.value) {
                    problems.at(
                        name,
                        format!("`{}` is not an EC2 instance type", name.value),
                        "instance types look like `g6.2xlarge`",
                    );
                } else if !seen.insert(name.value.as_str()) {
                    problems.at(
                        name,
                        format!("`{}` is listed twice", name.value),
                        "list each instance type once",
                    );
                } else if let Err((message, hint)) =
                    super::instance_types::check(&name.value, ami_text)
                {
                    problems.at(name, message, &hint);
                }
            }
            types.value.iter().map(|t| t.value.clone()).collect()
        }
    };
    let capacity = match &file.capacity {
        None => Capacity::SpotPreferred,
        Some(text) => match text.value.as_str() {
            "spot-preferred" => Capacity::SpotPreferred,
            "spot" => Capacity::Spot,
            "on-demand" => Capacity::OnDemand,
            other => {
                problems.at(
                    text,
                    format!("unknown `karpenter.capacity` `{other}`"),
                    "use `spot-preferred` (spot when available, else on-demand), `spot` or `on-demand`",
                );
                Capacity::SpotPreferred
            }
        },
    };
    let max_gpus = number(
        &file.max_gpus,
        8,
        1..=10_000,
        "karpenter.max_gpus",
        problems,
    );
    let ami = match &file.ami {
        None => DEFAULT_AMI.to_string(),
        Some(ami) => {
            if ami.value == "al2023@latest" {
                notes.push("karpenter.ami is `al2023@latest`: every new AMI release replaces all GPU nodes; pin a version for production".to_string());
            } else if !is_pinned_alias(&ami.value) {
                problems.at(
                    ami,
                    format!("`{}` is not an AL2023 AMI alias", ami.value),
                    "use `al2023@vYYYYMMDD` (a release of the EKS-optimized AMI), or `al2023@latest` to follow every release",
                );
            }
            ami.value.clone()
        }
    };
    let root_volume_gib = number(
        &file.root_volume_gib,
        100,
        20..=16_384,
        "karpenter.root_volume_gib",
        problems,
    );
    let consolidation_policy = match &file.consolidation {
        None => "WhenEmpty",
        Some(text) => match text.value.as_str() {
            "when-empty" => "WhenEmpty",
            "when-empty-or-underutilized" => "WhenEmptyOrUnderutilized",
            other => {
                problems.at(
                    text,
                    format!("unknown `karpenter.consolidation` `{other}`"),
                    "use `when-empty` (nodes go only when no ComfyUI pod runs on them) or `when-empty-or-underutilized`",
                );
                "WhenEmpty"
            }
        },
    };
    let consolidate_after = duration(&file.consolidate_after, "30m", false, problems);
    let expire_after = duration(&file.expire_after, "720h", true, problems);
    let disruption_budget = match &file.disruption_budget {
        None => "1".to_string(),
        Some(text) => {
            if !is_budget(&text.value) {
                problems.at(
                    text,
                    format!("`{}` is not a disruption budget", text.value),
                    "give a node count such as `\"1\"` or a percentage such as `\"10%\"`",
                );
            }
            text.value.clone()
        }
    };
    NodePoolSettings {
        instance_types,
        capacity,
        max_gpus,
        ami,
        root_volume_gib,
        consolidation_policy: consolidation_policy.to_string(),
        consolidate_after,
        expire_after,
        disruption_budget,
    }
}

pub fn comfyui(
    file: &ComfyuiFile,
    has_inputs_bucket: bool,
    max_gpus: u32,
    instance_types: &[String],
    repository: Option<&ImageRepositorySettings>,
    problems: &mut Problems,
    notes: &mut Vec<String>,
) -> ComfyuiSettings {
    let image = super::images::image_reference(&file.image, repository, problems, notes);
    let namespace = match &file.namespace {
        None => "comfyui".to_string(),
        Some(ns) => {
            if !is_dns_label(&ns.value) {
                problems.at(
                    ns,
                    format!("`{}` is not a valid namespace name", ns.value),
                    "namespaces have 1 to 63 lowercase letters, digits and hyphens, starting and ending with a letter or digit",
                );
            }
            ns.value.clone()
        }
    };
    let replicas = number(&file.replicas, 1, 0..=1000, "comfyui.replicas", problems);
    let gpus = number(&file.gpus, 1, 1..=16, "comfyui.gpus", problems);
    if let Some(spanned) = file.replicas.as_ref().or(file.gpus.as_ref())
        && replicas.saturating_mul(gpus) > max_gpus
    {
        problems.at(
            spanned,
            format!(
                "{replicas} replicas × {gpus} GPUs need {} GPUs, more than `karpenter.max_gpus` ({max_gpus})",
                replicas.saturating_mul(gpus)
            ),
            "raise `karpenter.max_gpus`, or ask for fewer replicas",
        );
    }
    if let Some(spanned) = &file.gpus {
        let fitting: Vec<(&str, u32)> = instance_types
            .iter()
            .filter_map(|t| Some((t.as_str(), super::instance_types::gpus(t)?)))
            .collect();
        if !fitting.is_empty() && fitting.iter().all(|(_, most)| *most < gpus) {
            problems.at(
                spanned,
                format!(
                    "a pod asks for {gpus} GPUs, but no type in `karpenter.instance_types` has that many ({})",
                    fitting
                        .iter()
                        .map(|(name, most)| format!("{name}: {most}"))
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
                "ask for fewer `gpus`, or list a larger type, e.g. `g6.12xlarge` (4 GPUs) or `g6.48xlarge` (8)",
            );
        } else {
            let small: Vec<&str> = fitting
                .iter()
                .filter(|(_, most)| *most < gpus)
                .map(|(name, _)| *name)
                .collect();
            if !small.is_empty() {
                notes.push(format!(
                    "karpenter.instance_types: {} cannot hold a pod that asks for {gpus} GPUs; Karpenter launches the others",
                    small.join(", ")
                ));
            }
        }
    }
    for (value, what) in [(&file.cpu, "comfyui.cpu"), (&file.memory, "comfyui.memory")] {
        if let Some(value) = value {
            if !is_quantity(&value.value) {
                problems.at(
                    value,
                    format!(
                        "`{}` is not a Kubernetes quantity for `{what}`",
                        value.value
                    ),
                    "e.g. `cpu: \"4\"`, `cpu: 3500m`, `memory: 16Gi`",
                );
            } else if crate::model::quantity::exceeds_int64(&value.value) {
                problems.at(
                    value,
                    format!(
                        "`{}` is more than Kubernetes can hold for `{what}`",
                        value.value
                    ),
                    "Kubernetes caps quantities at 2^63-1 (about `8Ei` of memory), far beyond any node; give what one pod needs, e.g. `memory: 16Gi`",
                );
            }
        }
    }
    let port = number(&file.port, 8848, 1..=65_535, "comfyui.port", problems);
    let run_as_user = number(
        &file.run_as_user,
        1000,
        1..=2_147_483_647,
        "comfyui.run_as_user",
        problems,
    );
    let models_path = path_setting(&file.models_path, DEFAULT_MODELS_PATH, problems);
    let model_agent = ModelAgentSettings {
        image: super::images::agent_image(file.model_agent.image.as_ref(), problems),
        disk_reserve_gib: number(
            &file.model_agent.disk_reserve_gib,
            20,
            0..=65_536,
            "comfyui.model_agent.disk_reserve_gib",
            problems,
        ),
    };
    let health_path = path_setting(&file.health_path, "/system_stats", problems);
    let mount_inputs = match &file.mount_inputs {
        None => has_inputs_bucket,
        Some(flag) => {
            if flag.value && !has_inputs_bucket {
                problems.at(
                    flag,
                    "`comfyui.mount_inputs` is on, but there is no inputs bucket".to_string(),
                    "add `storage.inputs: {}` or set `mount_inputs: false`",
                );
            }
            flag.value
        }
    };
    let ingress = &file.ingress;
    let scheme = match &ingress.scheme {
        None => "internet-facing".to_string(),
        Some(text) if text.value == "internet-facing" || text.value == "internal" => {
            text.value.clone()
        }
        Some(text) => {
            problems.at(
                text,
                format!("unknown ingress scheme `{}`", text.value),
                "use `internet-facing` (CloudFront and browsers can reach it) or `internal`",
            );
            "internet-facing".to_string()
        }
    };
    let inbound_cidrs = cidrs(
        &ingress.inbound_cidrs,
        vec!["0.0.0.0/0".to_string()],
        problems,
    );
    let stickiness_seconds = number(
        &ingress.stickiness_seconds,
        300,
        1..=604_800,
        "comfyui.ingress.stickiness_seconds",
        problems,
    );
    let idle_timeout_seconds = number(
        &ingress.idle_timeout_seconds,
        4000,
        1..=4000,
        "comfyui.ingress.idle_timeout_seconds",
        problems,
    );
    let network_policy = file
        .network_policy
        .as_ref()
        .map(|policy| cidrs(&Some(policy.allow_from.clone()), Vec::new(), problems));
    ComfyuiSettings {
        image,
        namespace,
        replicas,
        gpus,
        cpu: file.cpu.as_ref().map(|c| c.value.clone()),
        memory: file.memory.as_ref().map(|m| m.value.clone()),
        port: u16::try_from(port).unwrap_or(8848),
        run_as_user,
        models_path,
        model_agent,
        mount_inputs,
        health_path,
        ingress: IngressSettings {
            scheme,
            inbound_cidrs,
            stickiness_seconds,
            idle_timeout_seconds,
        },
        network_policy,
    }
}

pub fn number(
    value: &Option<Spanned<i64>>,
    default: u32,
    range: std::ops::RangeInclusive<u32>,
    what: &str,
    problems: &mut Problems,
) -> u32 {
    let Some(value) = value else {
        return default;
    };
    match u32::try_from(value.value) {
        Ok(n) if range.contains(&n) => n,
        _ => {
            problems.at(
                value,
                format!("`{what}` is {}", value.value),
                &format!(
                    "give a whole number from {} to {}",
                    range.start(),
                    range.end()
                ),
            );
            default
        }
    }
}

fn duration(
    value: &Option<Spanned<String>>,
    default: &str,
    never_allowed: bool,
    problems: &mut Problems,
) -> String {
    let Some(value) = value else {
        return default.to_string();
    };
    let ok = (never_allowed && value.value == "Never") || is_duration(&value.value);
    if !ok {
        problems.at(
            value,
            format!("`{}` is not a duration", value.value),
            if never_allowed {
                "use hours, minutes and seconds such as `720h` or `1h30m`, or `Never`"
            } else {
                "use hours, minutes and seconds such as `30m` or `1h30m`"
            },
        );
    }
    value.value.clone()
}

fn path_setting(value: &Option<Spanned<String>>, default: &str, problems: &mut Problems) -> String {
    let Some(value) = value else {
        return default.to_string();
    };
    if !value.value.starts_with('/')
        || value.value.contains("..")
        || value
            .value
            .chars()
            .any(|c| c.is_whitespace() || c == '\'' || c == '"')
    {
        problems.at(
            value,
            format!("`{}` is not an absolute path", value.value),
            "give an absolute path without spaces, quotes or `..`, e.g. `/comfyui-models`",
        );
    }
    value.value.clone()
}

fn cidrs(
    value: &Option<Spanned<Vec<String>>>,
    default: Vec<String>,
    problems: &mut Problems,
) -> Vec<String> {
    let Some(value) = value else {
        return default;
    };
    if value.value.is_empty() {
        problems.at(
            value,
            "the CIDR list is empty".to_string(),
            "list at least one CIDR, e.g. `[10.0.0.0/16]`",
        );
    }
    for cidr in &value.value {
        match network_of(cidr) {
            None => problems.at(
                value,
                format!("`{cidr}` is not a CIDR"),
                "write networks as address/prefix, e.g. `10.0.0.0/16` or `2001:db8::/32`",
            ),
            Some((network, true)) => problems.at(
                value,
                format!("`{cidr}` has host bits set: the address is not the start of its network"),
                &format!(
                    "write the network `{network}` (security groups and network policies refuse the other form)"
                ),
            ),
            Some(_) => {}
        }
    }
    value.value.clone()
}

pub fn is_dns_label(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 63
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !name.starts_with('-')
        && !name.ends_with('-')
}

fn is_instance_type(name: &str) -> bool {
    let Some((family, size)) = name.split_once('.') else {
        return false;
    };
    let part = |s: &str| {
        !s.is_empty()
            && s.bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
    };
    part(family) && part(size)
}

fn is_pinned_alias(alias: &str) -> bool {
    alias
        .strip_prefix("al2023@v")
        .is_some_and(|date| date.len() == 8 && date.bytes().all(|b| b.is_ascii_digit()))
}

/// Karpenter's duration pattern: `^([0-9]+(s|m|h))+$`.
fn is_duration(text: &str) -> bool {
    let mut digits = 0;
    let mut units = 0;
    for c in text.chars() {
        match c {
            '0'..='9' => digits += 1,
            's' | 'm' | 'h' if digits > 0 => {
                digits = 0;
                units += 1;
            }
            _ => return false,
        }
    }
    digits == 0 && units > 0
}

/// Karpenter's budget pattern: a count or a percentage up to 100%.
fn is_budget(text: &str) -> bool {
    match text.strip_suffix('%') {
        Some(percent) => percent.parse::<u32>().is_ok_and(|p| p <= 100),
        None => !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit()),
    }
}

/// A positive Kubernetes quantity, as the API server parses it.
fn is_quantity(text: &str) -> bool {
    crate::model::quantity::canonical(text)
        .is_ok_and(|canonical| canonical != "0" && !canonical.starts_with('-'))
}

/// The network of a CIDR (`10.0.0.1/8` is in `10.0.0.0/8`) and whether the text has host
/// bits set, or `None` when the text is not a CIDR.
fn network_of(text: &str) -> Option<(String, bool)> {
    let (address, prefix) = text.split_once('/')?;
    if prefix.is_empty() || !prefix.bytes().all(|b| b.is_ascii_digit()) || prefix.len() > 3 {
        return None;
    }
    let prefix: u32 = prefix.parse().ok()?;
    match address.parse::<std::net::IpAddr>().ok()? {
        std::net::IpAddr::V4(ip) if prefix <= 32 => {
            let mask = u32::MAX.checked_shl(32 - prefix).unwrap_or(0);
            let network = std::net::Ipv4Addr::from(u32::from(ip) & mask);
            Some((format!("{network}/{prefix}"), network != ip))
        }
        std::net::IpAddr::V6(ip) if prefix <= 128 => {
            let mask = u128::MAX.checked_shl(128 - prefix).unwrap_or(0);
            let network = std::net::Ipv6Addr::from(u128::from(ip) & mask);
            Some((format!("{network}/{prefix}"), network != ip))
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn karpenter_patterns() {
        assert!(is_duration("30m") && is_duration("1h30m") && is_duration("720h"));
        assert!(!is_duration("30") && !is_duration("m") && !is_duration("1d"));
        assert!(is_budget("1") && is_budget("10%") && is_budget("100%"));
        assert!(!is_budget("101%") && !is_budget("one") && !is_budget(""));
        assert!(is_pinned_alias("al2023@v20260828"));
        assert!(!is_pinned_alias("al2023@latest") && !is_pinned_alias("al2@v20260828"));
        assert!(is_instance_type("g6.2xlarge") && !is_instance_type("g6"));
    }

    #[test]
    fn cidr_with_host_bits_set_is_refused_with_its_network() {
        let host_bits = |text: &str| network_of(text).filter(|(_, set)| *set).map(|(n, _)| n);
        assert_eq!(host_bits("10.0.0.1/8").as_deref(), Some("10.0.0.0/8"));
        assert_eq!(
            host_bits("192.168.1.77/24").as_deref(),
            Some("192.168.1.0/24")
        );
        assert_eq!(
            host_bits("2001:db8::1/32").as_deref(),
            Some("2001:db8::/32")
        );
        assert_eq!(host_bits("10.0.0.1/32"), None);
    }

    #[test]
    fn quantities_cidrs_and_labels() {
        assert!(is_quantity("4") && is_quantity("3500m") && is_quantity("16Gi"));
        assert!(!is_quantity("16 GB") && !is_quantity("Gi") && !is_quantity("-1"));
        let network = network_of;
        assert_eq!(
            network("10.0.0.0/16"),
            Some(("10.0.0.0/16".to_string(), false))
        );
        assert_eq!(
            network("2001:DB8::/32"),
            Some(("2001:db8::/32".to_string(), false))
        );
        assert_eq!(network("0.0.0.0/0"), Some(("0.0.0.0/0".to_string(), false)));
        assert!(network_of("10.0.0.0/33").is_none() && network_of("10.0.0.0").is_none());
        assert!(network_of("ten/8").is_none() && network_of("10.0.0.0/+8").is_none());
        assert!(is_dns_label("comfyui") && !is_dns_label("ComfyUI") && !is_dns_label("-a"));
    }
}
