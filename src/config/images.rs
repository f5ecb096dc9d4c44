//! Checks and defaults of `image_repository` (the platform's ECR repository for the ComfyUI
//! image) and of `comfyui.image`, which may refer to it as `{repository}:TAG` or
//! `{repository}@sha256:...`.
//!
//! The rules are ECR's own: repository names of 2 to 256 characters, lowercase
//! `[a-z0-9]` separated by one `.`, `_` or `-` (or `/` between path parts); a lifecycle rule
//! keeps at least one image; a KMS key in the repository's region.

use serde_saphyr::Spanned;

use super::schema::ImageRepositoryFile;
use super::validate::check_kms_key_arn;
use super::workloads::{Problems, number};
use super::{ImageReference, ImageRepositorySettings};

/// How `comfyui.image` names the platform's repository.
pub const REPOSITORY_PLACEHOLDER: &str = "{repository}";

pub fn image_repository(
    file: Option<&ImageRepositoryFile>,
    platform: &str,
    region: Option<&str>,
    problems: &mut Problems,
) -> Option<ImageRepositorySettings> {
    let file = file?;
    let name = match &file.name {
        None => format!("comfyui-{platform}"),
        Some(name) => {
            if !is_repository_name(&name.value) {
                problems.at(
                    name,
                    format!("`{}` is not a valid ECR repository name", name.value),
                    "use 2 to 256 lowercase letters and digits, separated by single `.`, `_`, `-` or `/`, e.g. `comfyui-studio`",
                );
            }
            name.value.clone()
        }
    };
    if let Some(key) = &file.kms_key_arn
        && let Some(region) = region
        && let Err(why) = check_kms_key_arn(&key.value, region)
    {
        problems.at(
            key,
            format!("invalid `image_repository.kms_key_arn`: {why}"),
            "give the full ARN of a KMS key in the platform's region, or leave it out for AES256",
        );
    }
    let keep_images = number(
        &file.keep_images,
        20,
        1..=10_000,
        "image_repository.keep_images",
        problems,
    );
    Some(ImageRepositorySettings {
        name,
        immutable_tags: file.immutable_tags.as_ref().is_none_or(|flag| flag.value),
        kms_key_arn: file.kms_key_arn.as_ref().map(|k| k.value.clone()),
        keep_images,
    })
}

/// `comfyui.image`: an image anywhere, or the platform's repository with a tag or digest.
pub fn image_reference(
    image: &Spanned<String>,
    repository: Option<&ImageRepositorySettings>,
    problems: &mut Problems,
    notes: &mut Vec<String>,
) -> ImageReference {
    let text = image.value.as_str();
    if let Some(rest) = text.strip_prefix(REPOSITORY_PLACEHOLDER) {
        if repository.is_none() {
            problems.at(
                image,
                "`comfyui.image` refers to `{repository}`, but there is no `image_repository`"
                    .to_string(),
                "add `image_repository: {}` (comfyplat creates the ECR repository), or give the image's full reference",
            );
        }
        if let Some(tag) = rest.strip_prefix(':')
            && is_tag(tag)
        {
            return ImageReference::RepositoryTag(tag.to_string());
        }
        if let Some(digest) = rest.strip_prefix('@')
            && is_digest(digest)
        {
            return ImageReference::RepositoryDigest(digest.to_string());
        }
        problems.at(
            image,
            format!("`{text}` needs a tag or a digest after `{{repository}}`"),
            "write `{repository}:v1` (comfyplat pins it to the digest the tag points at) or `{repository}@sha256:<64 hex digits>`",
        );
        return ImageReference::RepositoryTag(String::new());
    }
    if text.is_empty() || text.chars().any(char::is_whitespace) {
        problems.at(
            image,
            format!("`{text}` is not a container image reference"),
            "e.g. `123456789012.dkr.ecr.us-west-2.amazonaws.com/comfyui:v0.3.40`, or `{repository}:v1` with `image_repository`",
        );
    } else if let Err(why) = check_reference(text) {
        problems.at(
            image,
            format!("`{}` is not a container image reference: {why}", shorten(text)),
            "an image reference is `registry/repository:tag` or `registry/repository@sha256:<digest>`, e.g. `123456789012.dkr.ecr.us-west-2.amazonaws.com/comfyui:v0.3.40`",
        );
    } else {
        let last = text.rsplit('/').next().unwrap_or_default();
        if !text.contains('@') && (!last.contains(':') || last.ends_with(":latest")) {
            notes.push(format!(
                "comfyui.image `{text}` has no fixed tag: pods started later may run other code; pin a tag or digest"
            ));
        }
    }
    ImageReference::External(text.to_string())
}

/// `comfyui.model_agent.image`: a full reference to an AWS CLI v2 image (the agent's script
/// needs `aws s3api`); default [`super::MODEL_AGENT_IMAGE`].
pub fn agent_image(image: Option<&Spanned<String>>, problems: &mut Problems) -> String {
    let Some(image) = image else {
        return super::MODEL_AGENT_IMAGE.to_string();
    };
    let text = image.value.as_str();
    let problem = if text.is_empty() || text.chars().any(char::is_whitespace) {
        Some("it is empty or has spaces".to_string())
    } else {
        check_reference(text).err()
    };
    if let Some(why) = problem {
        problems.at(
            image,
            format!(
                "`{}` is not a container image reference for `comfyui.model_agent.image`: {why}",
                shorten(text)
            ),
            &format!(
                "give an AWS CLI v2 image, e.g. `{}` (the default)",
                super::MODEL_AGENT_IMAGE
            ),
        );
    }
    text.to_string()
}

/// Most characters of an image's name (registry and repository, without tag or digest).
///
/// Kubernetes itself only refuses a blank image or one with surrounding whitespace; the
/// container runtime (containerd, on EKS nodes) then parses the reference with the grammar
/// of `github.com/distribution/reference`: `NameTotalLengthMax = 255` for the name, a tag
/// of `[\w][\w.-]{0,127}` and a digest of `algorithm:hex` (at least 32 hex digits). A
/// reference outside that grammar is accepted by the API server and fails on every node
/// with `InvalidImageName`, so comfyplat refuses it here.
pub const MAX_IMAGE_NAME: usize = 255;

/// An external image reference: `name[:tag][@digest]` within the limits above.
fn check_reference(text: &str) -> Result<(), String> {
    let (rest, digest) = match text.split_once('@') {
        Some((rest, digest)) => (rest, Some(digest)),
        None => (text, None),
    };
    if let Some(digest) = digest {
        let valid = digest.split_once(':').is_some_and(|(algorithm, hex)| {
            algorithm.starts_with(|c: char| c.is_ascii_alphabetic())
                && algorithm
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'+' | b'.' | b'_' | b'-'))
                && hex.len() >= 32
                && hex.bytes().all(|b| b.is_ascii_hexdigit())
        });
        if !valid {
            return Err("the digest after `@` must be `sha256:<64 hex digits>`".to_string());
        }
    }
    // A `:` after the last `/` starts the tag (one before it is a registry's port).
    let last_slash = rest.rfind('/').map_or(0, |i| i + 1);
    let (name, tag) = match rest[last_slash..].rfind(':') {
        Some(i) => (&rest[..last_slash + i], Some(&rest[last_slash + i + 1..])),
        None => (rest, None),
    };
    let length = name.chars().count();
    if length > MAX_IMAGE_NAME {
        return Err(format!(
            "its name has {length} characters; container runtimes allow at most {MAX_IMAGE_NAME}"
        ));
    }
    if name.is_empty() || name.starts_with('/') || name.ends_with('/') || name.contains("//") {
        return Err("the name before the tag is empty or has an empty part".to_string());
    }
    if let Some(tag) = tag
        && !is_tag(tag)
    {
        return Err(format!(
            "the tag `{}` must be 1 to 128 letters, digits, `_`, `.` and `-`, not starting with `.` or `-`",
            shorten(tag)
        ));
    }
    Ok(())
}

/// A long text cut for a message.
fn shorten(text: &str) -> String {
    if text.chars().count() <= 80 {
        text.to_string()
    } else {
        let head: String = text.chars().take(60).collect();
        format!("{head}... ({} characters)", text.chars().count())
    }
}

/// An ECR repository name: path parts of `[a-z0-9]+` joined by single `.`, `_` or `-`.
pub fn is_repository_name(name: &str) -> bool {
    (2..=256).contains(&name.len())
        && name.split('/').all(|part| {
            !part.is_empty()
                && part.split(['.', '_', '-']).all(|word| {
                    !word.is_empty()
                        && word
                            .bytes()
                            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
                })
        })
}

/// A Docker/OCI tag: 1 to 128 of `[A-Za-z0-9_.-]`, not starting with `.` or `-`.
fn is_tag(tag: &str) -> bool {
    (1..=128).contains(&tag.len())
        && !tag.starts_with(['.', '-'])
        && tag
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'))
}

fn is_digest(digest: &str) -> bool {
    digest.strip_prefix("sha256:").is_some_and(|hex| {
        hex.len() == 64
            && hex
                .bytes()
                .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repository_names_follow_ecr() {
        assert!(is_repository_name("comfyui-studio"));
        assert!(is_repository_name("team/comfyui_v2.1"));
        assert!(!is_repository_name("ComfyUI"));
        assert!(!is_repository_name("a"));
        assert!(!is_repository_name("comfy--ui"));
        assert!(!is_repository_name("/comfyui"));
        assert!(!is_repository_name("comfyui-"));
    }

    #[test]
    fn image_references_follow_the_runtime_grammar() {
        assert!(
            check_reference("123456789012.dkr.ecr.us-west-2.amazonaws.com/comfyui:v0.3.40").is_ok()
        );
        assert!(check_reference("localhost:5000/comfyui").is_ok());
        assert!(check_reference("r/comfyui:v1").is_ok());
        assert!(check_reference(&format!("r/comfyui@sha256:{}", "a".repeat(64))).is_ok());
        let long = format!("registry.example.com/{}", "a".repeat(5000));
        let why = check_reference(&long).expect_err("too long");
        assert!(why.contains("at most 255"), "{why}");
        assert!(check_reference(&format!("{}:v1", "a".repeat(255))).is_ok());
        assert!(check_reference(&format!("{}:v1", "a".repeat(256))).is_err());
        assert!(check_reference(&format!("r/c:{}", "v".repeat(129))).is_err());
        assert!(check_reference("r/c@sha256:abc").is_err());
        assert!(check_reference("r//c:v1").is_err());
        assert!(shorten(&"x".repeat(5000)).contains("(5000 characters)"));
    }

    #[test]
    fn tags_and_digests() {
        assert!(is_tag("v0.3.40"));
        assert!(is_tag("2026_12"));
        assert!(!is_tag("-x"));
        assert!(!is_tag("a:b"));
        assert!(is_digest(&format!("sha256:{}", "a".repeat(64))));
        assert!(!is_digest(&format!("sha256:{}", "A".repeat(64))));
        assert!(!is_digest("sha256:abc"));
    }
}
