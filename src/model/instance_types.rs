//! Whether the node pool's instance types can run ComfyUI in the platform's region, from
//! what EC2 says about them there (`DescribeInstanceTypes`, `DescribeInstanceTypeOfferings`
//! by availability zone, read by the session's first round).
//!
//! Refused, before any write: a type the region does not know, one without an NVIDIA GPU,
//! one offered in none of the region's zones, and a list on which no type fits one ComfyUI
//! pod (its GPUs, CPU and memory). Told as plan notes: each type's GPUs, memory, instance
//! store (or that the model cache lives on the root volume without one) and zones, and the
//! types one pod does not fit on.

use std::collections::BTreeSet;

use crate::config::Platform;

use super::ModelError;
use super::quantity;

/// One instance type as EC2 describes it in the region.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InstanceTypeFacts {
    pub name: String,
    /// Whole NVIDIA GPUs (what Karpenter offers as `nvidia.com/gpu`).
    pub nvidia_gpus: u32,
    /// e.g. `NVIDIA L4`.
    pub gpu_name: Option<String>,
    pub vcpus: u32,
    pub memory_mib: u64,
    /// Instance-store NVMe in GB; 0: none.
    pub instance_store_gb: u64,
}

/// Where EC2 offers one instance type: `(type, availability zone)`.
pub type Offering = (String, String);

/// The notes to show with the plan, or the problems that stop it.
pub fn check(
    platform: &Platform,
    facts: &[InstanceTypeFacts],
    offerings: &[Offering],
) -> Result<Vec<String>, ModelError> {
    let region = &platform.region;
    let mut problems = Vec::new();
    let mut notes = Vec::new();
    let mut usable = Vec::new();
    for name in &platform.node_pool.instance_types {
        let Some(info) = facts.iter().find(|f| &f.name == name) else {
            problems.push(format!(
                "`{name}` is not available in {region}: EC2 does not describe it there"
            ));
            continue;
        };
        let zones: BTreeSet<&str> = offerings
            .iter()
            .filter(|(offered, _)| offered == name)
            .map(|(_, zone)| zone.as_str())
            .collect();
        if info.nvidia_gpus == 0 {
            problems.push(format!(
                "`{name}` has no whole NVIDIA GPU in {region} ({})",
                info.gpu_name
                    .as_deref()
                    .unwrap_or("EC2 lists no GPU for it")
            ));
            continue;
        }
        if zones.is_empty() {
            problems.push(format!(
                "`{name}` is not offered in any availability zone of {region}"
            ));
            continue;
        }
        let store = if info.instance_store_gb > 0 {
            format!(
                "{} GB instance store for the model cache",
                info.instance_store_gb
            )
        } else {
            format!(
                "no instance store: the model cache lives on the root volume ({} GiB, `karpenter.root_volume_gib`) with the container images, and must hold the mirrored models",
                platform.node_pool.root_volume_gib
            )
        };
        notes.push(format!(
            "instance type {name}: {} × {}, {} vCPUs, {} GiB memory, {store}; offered in {}",
            info.nvidia_gpus,
            info.gpu_name.as_deref().unwrap_or("NVIDIA GPU"),
            info.vcpus,
            info.memory_mib / 1024,
            zones.into_iter().collect::<Vec<_>>().join(", ")
        ));
        usable.push(info);
    }
    if let Some(comfyui) = &platform.comfyui
        && !usable.is_empty()
    {
        let too_small: Vec<(&str, String)> = usable
            .iter()
            .filter_map(|info| {
                let why = too_small(
                    info,
                    comfyui.gpus,
                    comfyui.cpu.as_deref(),
                    comfyui.memory.as_deref(),
                )?;
                Some((info.name.as_str(), why))
            })
            .collect();
        let listed = |list: &[(&str, String)]| {
            list.iter()
                .map(|(name, why)| format!("{name} ({why})"))
                .collect::<Vec<_>>()
                .join(", ")
        };
        if too_small.len() == usable.len() {
            problems.push(format!(
                "one ComfyUI pod fits on none of the instance types: {}",
                listed(&too_small)
            ));
        } else if !too_small.is_empty() {
            notes.push(format!(
                "one ComfyUI pod does not fit on {}; Karpenter launches the other types",
                listed(&too_small)
            ));
        }
    }
    if problems.is_empty() {
        Ok(notes)
    } else {
        Err(ModelError::InstanceTypes {
            region: region.clone(),
            problems,
        })
    }
}

/// Why one pod asking for `gpus`, `cpu` and `memory` never fits on the type, if it does not.
fn too_small(
    info: &InstanceTypeFacts,
    gpus: u32,
    cpu: Option<&str>,
    memory: Option<&str>,
) -> Option<String> {
    if info.nvidia_gpus < gpus {
        return Some(format!(
            "{} GPUs, the pod asks for {gpus}",
            info.nvidia_gpus
        ));
    }
    let nanos = |text: Option<&str>| text.and_then(|t| quantity::nanos(t).ok());
    let cores = i128::from(info.vcpus) * 1_000_000_000;
    if let Some(asked) = nanos(cpu)
        && asked > cores
    {
        return Some(format!(
            "{} vCPUs, the pod asks for {}",
            info.vcpus,
            cpu.unwrap_or_default()
        ));
    }
    let bytes = i128::from(info.memory_mib) * 1024 * 1024 * 1_000_000_000;
    if let Some(asked) = nanos(memory)
        && asked > bytes
    {
        return Some(format!(
            "{} GiB memory, the pod asks for {}",
            info.memory_mib / 1024,
            memory.unwrap_or_default()
        ));
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn platform(types: &[&str], extra: &str) -> Platform {
        let text = format!(
            "version: 1\nname: studio\nregion: us-west-2\ncluster:\n  name: comfyui\nkarpenter:\n  node_role: r\n  instance_types: [{}]\ncomfyui:\n  image: r/comfyui:v1\n{extra}",
            types.join(", ")
        );
        crate::config::from_bytes(std::path::Path::new("platform.yaml"), text.as_bytes())
            .expect("a valid platform")
    }

    fn facts(name: &str, gpus: u32, memory_gib: u64, store_gb: u64) -> InstanceTypeFacts {
        InstanceTypeFacts {
            name: name.to_string(),
            nvidia_gpus: gpus,
            gpu_name: Some("NVIDIA L4".to_string()),
            vcpus: 8,
            memory_mib: memory_gib * 1024,
            instance_store_gb: store_gb,
        }
    }

    fn offered(name: &str, zones: &[&str]) -> Vec<Offering> {
        zones
            .iter()
            .map(|zone| (name.to_string(), zone.to_string()))
            .collect()
    }

    fn problems(result: Result<Vec<String>, ModelError>) -> Vec<String> {
        match result {
            Err(ModelError::InstanceTypes { problems, .. }) => problems,
            other => panic!("expected a refusal, got {other:?}"),
        }
    }

    #[test]
    fn gpu_memory_store_and_zones_are_noted() {
        let platform = platform(&["g6.2xlarge"], "");
        let notes = check(
            &platform,
            &[facts("g6.2xlarge", 1, 32, 450)],
            &offered("g6.2xlarge", &["us-west-2b", "us-west-2a"]),
        )
        .expect("usable");
        assert_eq!(
            notes,
            vec![
                "instance type g6.2xlarge: 1 × NVIDIA L4, 8 vCPUs, 32 GiB memory, 450 GB instance store for the model cache; offered in us-west-2a, us-west-2b"
            ]
        );
    }

    #[test]
    fn a_type_without_instance_store_keeps_the_cache_on_the_root_volume() {
        let platform = platform(&["g6.2xlarge", "p3.2xlarge"], "");
        let notes = check(
            &platform,
            &[
                facts("g6.2xlarge", 1, 32, 450),
                facts("p3.2xlarge", 1, 61, 0),
            ],
            &[
                offered("g6.2xlarge", &["us-west-2a"]),
                offered("p3.2xlarge", &["us-west-2a"]),
            ]
            .concat(),
        )
        .expect("usable");
        assert!(
            notes[1].contains("p3.2xlarge")
                && notes[1].contains(
                    "no instance store: the model cache lives on the root volume (100 GiB"
                ),
            "{notes:?}"
        );
        assert!(!notes[0].contains("no instance store"), "{notes:?}");
    }

    #[test]
    fn a_type_offered_in_no_zone_is_refused() {
        let platform = platform(&["g6.2xlarge", "g5.2xlarge"], "");
        let problems = problems(check(
            &platform,
            &[
                facts("g6.2xlarge", 1, 32, 450),
                facts("g5.2xlarge", 1, 32, 450),
            ],
            &offered("g6.2xlarge", &["us-west-2a"]),
        ));
        assert_eq!(
            problems,
            vec!["`g5.2xlarge` is not offered in any availability zone of us-west-2"]
        );
    }

    #[test]
    fn a_type_the_region_does_not_know_or_without_a_gpu_is_refused() {
        let platform = platform(&["g6.2xlarge", "g5.2xlarge"], "");
        let problems = problems(check(
            &platform,
            &[InstanceTypeFacts {
                gpu_name: None,
                ..facts("g5.2xlarge", 0, 32, 450)
            }],
            &offered("g5.2xlarge", &["us-west-2a"]),
        ));
        assert_eq!(problems.len(), 2, "{problems:?}");
        assert!(problems[0].contains("`g6.2xlarge` is not available in us-west-2"));
        assert!(problems[1].contains("`g5.2xlarge` has no whole NVIDIA GPU"));
    }

    #[test]
    fn a_pod_that_fits_nowhere_is_refused_and_partly_fitting_is_noted() {
        let platform_big = platform(&["g6.2xlarge"], "  memory: 64Gi\n");
        let problems = problems(check(
            &platform_big,
            &[facts("g6.2xlarge", 1, 32, 450)],
            &offered("g6.2xlarge", &["us-west-2a"]),
        ));
        assert!(problems[0].contains("fits on none"), "{problems:?}");
        assert!(
            problems[0].contains("32 GiB memory, the pod asks for 64Gi"),
            "{problems:?}"
        );

        let platform = platform(
            &["g6.2xlarge", "g6.12xlarge"],
            "  gpus: 4\n  memory: 64Gi\n",
        );
        let notes = check(
            &platform,
            &[
                facts("g6.2xlarge", 1, 32, 450),
                facts("g6.12xlarge", 4, 192, 3760),
            ],
            &[
                offered("g6.2xlarge", &["us-west-2a"]),
                offered("g6.12xlarge", &["us-west-2a"]),
            ]
            .concat(),
        )
        .expect("one type fits");
        assert!(
            notes[2].contains("does not fit on g6.2xlarge (1 GPUs, the pod asks for 4)"),
            "{notes:?}"
        );
    }
}
