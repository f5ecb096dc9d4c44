//! EC2 facts read before planning: what the node pool's instance types are in the region
//! (`DescribeInstanceTypes`) and in which availability zones they are offered
//! (`DescribeInstanceTypeOfferings`). What is refused and what is noted is decided in
//! `model::instance_types`.
//!
//! Both calls filter by `instance-type` instead of naming the types: a type the region does
//! not know is then simply missing from the answer (naming it would fail the whole call with
//! `InvalidInstanceType`), and the model says which one it is.

use aws_sdk_ec2::types::{Filter, LocationType};

use super::{ApiError, Aws, aws_error};
use crate::model::instance_types::{InstanceTypeFacts, Offering};

fn instance_type_filter(names: &[String]) -> Filter {
    Filter::builder()
        .name("instance-type")
        .set_values(Some(names.to_vec()))
        .build()
}

/// The listed types EC2 describes in the region (a type it does not know is left out).
pub async fn instance_types(
    aws: &Aws,
    names: &[String],
) -> Result<Vec<InstanceTypeFacts>, ApiError> {
    const OPERATION: &str =
        "failed to describe the node pool's instance types (EC2 DescribeInstanceTypes)";
    let mut facts = Vec::new();
    let mut token = None;
    loop {
        let output = aws
            .ec2
            .describe_instance_types()
            .filters(instance_type_filter(names))
            .set_next_token(token)
            .send()
            .await
            .map_err(|e| aws_error(OPERATION, e))?;
        for info in output.instance_types() {
            let Some(name) = info.instance_type().map(|t| t.as_str().to_string()) else {
                continue;
            };
            let nvidia: Vec<_> = info
                .gpu_info()
                .map(|g| g.gpus())
                .unwrap_or_default()
                .iter()
                .filter(|gpu| gpu.manufacturer() == Some("NVIDIA"))
                .collect();
            let nvidia_gpus = nvidia
                .iter()
                .map(|gpu| u32::try_from(gpu.count().unwrap_or(0)).unwrap_or(0))
                .sum();
            let gpu_name = info.gpu_info().and_then(|g| g.gpus().first()).map(|gpu| {
                format!(
                    "{} {}",
                    gpu.manufacturer().unwrap_or_default(),
                    gpu.name().unwrap_or_default()
                )
                .trim()
                .to_string()
            });
            facts.push(InstanceTypeFacts {
                name,
                nvidia_gpus,
                gpu_name,
                vcpus: info
                    .v_cpu_info()
                    .and_then(|v| v.default_v_cpus())
                    .and_then(|v| u32::try_from(v).ok())
                    .unwrap_or(0),
                memory_mib: info
                    .memory_info()
                    .and_then(|m| m.size_in_mib())
                    .and_then(|m| u64::try_from(m).ok())
                    .unwrap_or(0),
                instance_store_gb: if info.instance_storage_supported() == Some(true) {
                    info.instance_storage_info()
                        .and_then(|s| s.total_size_in_gb())
                        .and_then(|s| u64::try_from(s).ok())
                        .unwrap_or(0)
                } else {
                    0
                },
            });
        }
        token = output.next_token().map(str::to_string);
        if token.is_none() {
            return Ok(facts);
        }
    }
}

/// The availability zones of the region where each listed type is offered.
pub async fn offerings(aws: &Aws, names: &[String]) -> Result<Vec<Offering>, ApiError> {
    const OPERATION: &str = "failed to find where the node pool's instance types are offered (EC2 DescribeInstanceTypeOfferings)";
    let mut offerings = Vec::new();
    let mut token = None;
    loop {
        let output = aws
            .ec2
            .describe_instance_type_offerings()
            .location_type(LocationType::AvailabilityZone)
            .filters(instance_type_filter(names))
            .set_next_token(token)
            .send()
            .await
            .map_err(|e| aws_error(OPERATION, e))?;
        offerings.extend(
            output
                .instance_type_offerings()
                .iter()
                .filter_map(|offering| {
                    Some((
                        offering.instance_type()?.as_str().to_string(),
                        offering.location()?.to_string(),
                    ))
                }),
        );
        token = output.next_token().map(str::to_string);
        if token.is_none() {
            return Ok(offerings);
        }
    }
}
