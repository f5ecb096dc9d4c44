//! The EC2 instance types the GPU node pool may launch, checked offline.
//!
//! The node pool runs ComfyUI on whole NVIDIA GPUs (`nvidia.com/gpu`), on amd64 nodes (the
//! NodePool requires `kubernetes.io/arch: amd64`), with the EKS-optimized AL2023 NVIDIA AMI.
//! So a type is accepted when its family has NVIDIA GPUs, runs on x86_64, and that AMI
//! supports it; the sizes are those the EC2 API knows (botocore 1.43's `InstanceType`
//! enum), with their GPU counts (EC2 `DescribeInstanceTypes`). Families, GPUs and AMI
//! support follow the EC2 accelerated computing instance specifications and the EKS
//! accelerated AMI documentation. `plan` checks each listed type again with
//! `DescribeInstanceTypes` in the platform's region (see `model::instance_types`).

/// An NVIDIA GPU family and what comfyplat can do with it.
struct Family {
    name: &'static str,
    gpu: &'static str,
    /// Each size with its GPU count.
    sizes: &'static [(&'static str, u32)],
    support: Support,
}

enum Support {
    /// Launched by the node pool with the pinned AMI.
    Yes,
    /// Needs an AL2023 AMI release from this date (`YYYYMMDD`) on.
    FromAmi(&'static str),
    /// Never launched by the node pool, for this reason.
    No(&'static str),
}

const WHOLE: Support = Support::Yes;

const FAMILIES: &[Family] = &[
    Family {
        name: "g4dn",
        gpu: "NVIDIA T4",
        sizes: &[
            ("xlarge", 1),
            ("2xlarge", 1),
            ("4xlarge", 1),
            ("8xlarge", 1),
            ("12xlarge", 4),
            ("16xlarge", 1),
            ("metal", 8),
        ],
        support: WHOLE,
    },
    Family {
        name: "g5",
        gpu: "NVIDIA A10G",
        sizes: &[
            ("xlarge", 1),
            ("2xlarge", 1),
            ("4xlarge", 1),
            ("8xlarge", 1),
            ("12xlarge", 4),
            ("16xlarge", 1),
            ("24xlarge", 4),
            ("48xlarge", 8),
        ],
        support: WHOLE,
    },
    Family {
        name: "g6",
        gpu: "NVIDIA L4",
        sizes: &[
            ("xlarge", 1),
            ("2xlarge", 1),
            ("4xlarge", 1),
            ("8xlarge", 1),
            ("12xlarge", 4),
            ("16xlarge", 1),
            ("24xlarge", 4),
            ("48xlarge", 8),
        ],
        support: WHOLE,
    },
    Family {
        name: "g6e",
        gpu: "NVIDIA L40S",
        sizes: &[
            ("xlarge", 1),
            ("2xlarge", 1),
            ("4xlarge", 1),
            ("8xlarge", 1),
            ("12xlarge", 4),
            ("16xlarge", 1),
            ("24xlarge", 4),
            ("48xlarge", 8),
        ],
        support: WHOLE,
    },
    Family {
        name: "gr6",
        gpu: "NVIDIA L4",
        sizes: &[("4xlarge", 1), ("8xlarge", 1)],
        support: WHOLE,
    },
    Family {
        name: "g7e",
        gpu: "NVIDIA RTX PRO 6000 Blackwell",
        sizes: &[
            ("2xlarge", 1),
            ("4xlarge", 1),
            ("8xlarge", 1),
            ("12xlarge", 2),
            ("24xlarge", 4),
            ("48xlarge", 8),
        ],
        // NVIDIA driver 595, in the EKS AL2023 NVIDIA AMIs from release v20260917 on.
        support: Support::FromAmi("20260917"),
    },
    Family {
        name: "p3",
        gpu: "NVIDIA V100",
        sizes: &[("2xlarge", 1), ("8xlarge", 4), ("16xlarge", 8)],
        support: WHOLE,
    },
    Family {
        name: "p3dn",
        gpu: "NVIDIA V100",
        sizes: &[("24xlarge", 8)],
        support: WHOLE,
    },
    Family {
        name: "p4d",
        gpu: "NVIDIA A100",
        sizes: &[("24xlarge", 8)],
        support: WHOLE,
    },
    Family {
        name: "p4de",
        gpu: "NVIDIA A100 80GB",
        sizes: &[("24xlarge", 8)],
        support: WHOLE,
    },
    Family {
        name: "p5",
        gpu: "NVIDIA H100",
        sizes: &[("4xlarge", 1), ("48xlarge", 8)],
        support: WHOLE,
    },
    Family {
        name: "p5e",
        gpu: "NVIDIA H200",
        sizes: &[("48xlarge", 8)],
        support: WHOLE,
    },
    Family {
        name: "p5en",
        gpu: "NVIDIA H200",
        sizes: &[("48xlarge", 8)],
        support: WHOLE,
    },
    Family {
        name: "p6-b200",
        gpu: "NVIDIA B200",
        sizes: &[("48xlarge", 8)],
        support: WHOLE,
    },
    Family {
        name: "p6-b300",
        gpu: "NVIDIA B300",
        sizes: &[("48xlarge", 8)],
        support: WHOLE,
    },
    Family {
        name: "g5g",
        gpu: "NVIDIA T4G",
        sizes: &[
            ("xlarge", 1),
            ("2xlarge", 1),
            ("4xlarge", 1),
            ("8xlarge", 1),
            ("16xlarge", 2),
            ("metal", 2),
        ],
        support: Support::No(
            "is arm64 (Graviton); the node pool launches amd64 nodes for the amd64 ComfyUI image",
        ),
    },
    Family {
        name: "g6f",
        gpu: "a fraction of an NVIDIA L4",
        sizes: &[("large", 0), ("xlarge", 0), ("2xlarge", 0), ("4xlarge", 0)],
        support: Support::No(
            "has a fraction of a GPU; ComfyUI pods ask for whole GPUs (`nvidia.com/gpu`), which Karpenter never finds on it",
        ),
    },
    Family {
        name: "gr6f",
        gpu: "a fraction of an NVIDIA L4",
        sizes: &[("4xlarge", 0)],
        support: Support::No(
            "has a fraction of a GPU; ComfyUI pods ask for whole GPUs (`nvidia.com/gpu`), which Karpenter never finds on it",
        ),
    },
    Family {
        name: "p6e-gb200",
        gpu: "NVIDIA GB200",
        sizes: &[("36xlarge", 4)],
        support: Support::No(
            "is sold only as part of UltraServers (EC2 Capacity Blocks) and runs arm64 (Grace)",
        ),
    },
    Family {
        name: "g2",
        gpu: "NVIDIA GRID K520",
        sizes: &[("2xlarge", 1), ("8xlarge", 4)],
        support: Support::No(
            "is a previous generation whose GPU the EKS AL2023 NVIDIA AMI does not support",
        ),
    },
    Family {
        name: "g3",
        gpu: "NVIDIA Tesla M60",
        sizes: &[("4xlarge", 1), ("8xlarge", 2), ("16xlarge", 4)],
        support: Support::No(
            "is a previous generation whose GPU the EKS AL2023 NVIDIA AMI does not support",
        ),
    },
    Family {
        name: "g3s",
        gpu: "NVIDIA Tesla M60",
        sizes: &[("xlarge", 1)],
        support: Support::No(
            "is a previous generation whose GPU the EKS AL2023 NVIDIA AMI does not support",
        ),
    },
    Family {
        name: "p2",
        gpu: "NVIDIA K80",
        sizes: &[("xlarge", 1), ("8xlarge", 8), ("16xlarge", 16)],
        support: Support::No(
            "is a previous generation whose GPU the EKS AL2023 NVIDIA AMI does not support",
        ),
    },
];

/// Accelerated families without NVIDIA GPUs, and what they have instead.
const OTHER_ACCELERATORS: &[(&str, &str)] = &[
    ("inf1", "AWS Inferentia chips"),
    ("inf2", "AWS Inferentia2 chips"),
    ("trn1", "AWS Trainium chips"),
    ("trn1n", "AWS Trainium chips"),
    ("trn2", "AWS Trainium2 chips"),
    ("g4ad", "AMD Radeon Pro V520 GPUs"),
    ("dl1", "Habana Gaudi accelerators"),
    ("dl2q", "Qualcomm AI 100 accelerators"),
    ("f1", "FPGAs"),
    ("f2", "FPGAs"),
    ("vt1", "Xilinx video transcoding accelerators"),
];

/// The families the node pool can launch, for hints.
pub fn supported_families() -> Vec<&'static str> {
    FAMILIES
        .iter()
        .filter(|f| !matches!(f.support, Support::No(_)))
        .map(|f| f.name)
        .collect()
}

/// The GPUs of a type the node pool can launch, or the message and hint that refuse it.
/// `ami` is `karpenter.ami` (e.g. `al2023@v20260828`).
pub fn check(name: &str, ami: &str) -> Result<u32, (String, String)> {
    let (family_name, size) = name.split_once('.').unwrap_or((name, ""));
    let Some(family) = FAMILIES.iter().find(|f| f.name == family_name) else {
        return Err(not_a_gpu_family(name, family_name, size));
    };
    let Some(&(_, gpus)) = family.sizes.iter().find(|(s, _)| *s == size) else {
        let sizes: Vec<&str> = family.sizes.iter().map(|(s, _)| *s).collect();
        let hint = match super::did_you_mean(size, sizes.iter().copied()) {
            Some(near) => format!("did you mean `{}.{near}`?", family.name),
            None => format!("{} comes in {}", family.name, sizes.join(", ")),
        };
        return Err((format!("`{name}` is not a {} size", family.name), hint));
    };
    match family.support {
        Support::Yes => Ok(gpus),
        Support::FromAmi(release) => {
            let pinned = ami.strip_prefix("al2023@v").filter(|d| d.len() == 8);
            match pinned {
                Some(date) if date < release => Err((
                    format!(
                        "`{name}` ({}) needs an AL2023 AMI from release v{release} on; `karpenter.ami` is `{ami}`",
                        family.gpu
                    ),
                    format!(
                        "pin `karpenter.ami: al2023@v{release}` or later (its NVIDIA driver supports {}), or choose another type",
                        family.gpu
                    ),
                )),
                _ => Ok(gpus),
            }
        }
        Support::No(why) => Err((
            format!("`{name}` ({}) {why}", family.gpu),
            format!("choose a type of {}", families_hint()),
        )),
    }
}

fn not_a_gpu_family(name: &str, family: &str, size: &str) -> (String, String) {
    if let Some((_, what)) = OTHER_ACCELERATORS.iter().find(|(f, _)| *f == family) {
        return (
            format!("`{name}` has {what}, not NVIDIA GPUs"),
            format!(
                "ComfyUI needs NVIDIA GPUs (CUDA); choose a type of {}",
                families_hint()
            ),
        );
    }
    let near = super::did_you_mean(family, FAMILIES.iter().map(|f| f.name))
        .and_then(|near| FAMILIES.iter().find(|f| f.name == near))
        .filter(|f| f.sizes.iter().any(|(s, _)| *s == size));
    let hint = match near {
        Some(f) => format!("did you mean `{}.{size}`?", f.name),
        None => format!(
            "the node pool needs NVIDIA GPU instances; choose a type of {}",
            families_hint()
        ),
    };
    (format!("`{name}` is not an NVIDIA GPU instance type"), hint)
}

fn families_hint() -> String {
    format!("{}, e.g. `g6.2xlarge`", supported_families().join(", "))
}

/// The GPUs of a known type (refused ones included), for the fit of `comfyui.gpus`.
pub fn gpus(name: &str) -> Option<u32> {
    let (family, size) = name.split_once('.')?;
    FAMILIES
        .iter()
        .find(|f| f.name == family)?
        .sizes
        .iter()
        .find(|(s, _)| *s == size)
        .map(|(_, gpus)| *gpus)
}

#[cfg(test)]
mod tests {
    use super::*;

    const AMI: &str = "al2023@v20260828";

    #[test]
    fn nvidia_gpu_types_are_accepted_with_their_gpus() {
        assert_eq!(check("g6.2xlarge", AMI), Ok(1));
        assert_eq!(check("g5.48xlarge", AMI), Ok(8));
        assert_eq!(check("g4dn.12xlarge", AMI), Ok(4));
        assert_eq!(check("p5.48xlarge", AMI), Ok(8));
        assert_eq!(check("p6-b200.48xlarge", AMI), Ok(8));
        assert_eq!(check("gr6.4xlarge", AMI), Ok(1));
        assert_eq!(gpus("g6e.12xlarge"), Some(4));
    }

    #[test]
    fn types_without_a_gpu_are_refused() {
        for name in ["t3.micro", "m5.large"] {
            let (message, hint) = check(name, AMI).expect_err(name);
            assert_eq!(
                message,
                format!("`{name}` is not an NVIDIA GPU instance type")
            );
            assert!(hint.contains("g6.2xlarge"), "{hint}");
        }
    }

    #[test]
    fn inferentia_is_not_an_nvidia_gpu() {
        let (message, hint) = check("inf2.xlarge", AMI).expect_err("Inferentia");
        assert!(message.contains("AWS Inferentia2"), "{message}");
        assert!(message.contains("not NVIDIA GPUs"), "{message}");
        assert!(hint.contains("CUDA"), "{hint}");
        assert!(check("g4ad.xlarge", AMI).is_err());
    }

    #[test]
    fn a_misspelt_size_gets_the_nearest_one() {
        let (message, hint) = check("g6.2xlarg", AMI).expect_err("typo");
        assert_eq!(message, "`g6.2xlarg` is not a g6 size");
        assert_eq!(hint, "did you mean `g6.2xlarge`?");
        let (_, hint) = check("g6ee.xlarge", AMI).expect_err("family typo");
        assert_eq!(hint, "did you mean `g6e.xlarge`?");
        let (_, hint) = check("p5.huge", AMI).expect_err("no near size");
        assert_eq!(hint, "p5 comes in 4xlarge, 48xlarge");
    }

    #[test]
    fn gpu_types_the_pool_cannot_use_say_why() {
        let (message, _) = check("g5g.xlarge", AMI).expect_err("arm64");
        assert!(message.contains("arm64"), "{message}");
        let (message, _) = check("g6f.large", AMI).expect_err("fractional");
        assert!(message.contains("fraction of a GPU"), "{message}");
        let (message, _) = check("p2.xlarge", AMI).expect_err("old");
        assert!(message.contains("previous generation"), "{message}");
    }

    #[test]
    fn g7e_needs_a_recent_ami() {
        let (message, hint) = check("g7e.2xlarge", AMI).expect_err("old AMI");
        assert!(message.contains("v20260917"), "{message}");
        assert!(hint.contains("al2023@v20260917"), "{hint}");
        assert_eq!(check("g7e.2xlarge", "al2023@v20261001"), Ok(1));
        assert_eq!(check("g7e.48xlarge", "al2023@latest"), Ok(8));
    }
}
