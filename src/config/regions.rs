//! The AWS regions comfyplat knows, and the partition each belongs to: the one place that
//! lists them.
//!
//! The list is botocore's `partitions.json` (1.43): the commercial partition, China,
//! GovCloud, the European Sovereign Cloud and the isolated partitions. A region that is
//! well-formed but not here (`us-west-22`, `us-wset-2`) is refused before any call: the SDK
//! would otherwise retry a host that does not exist for many seconds and end with a
//! connection error. A region AWS opens later needs a line here.

/// Every region, with its partition.
pub const REGIONS: &[(&str, &str)] = &[
    // aws: the commercial partition.
    ("af-south-1", "aws"),
    ("ap-east-1", "aws"),
    ("ap-east-2", "aws"),
    ("ap-northeast-1", "aws"),
    ("ap-northeast-2", "aws"),
    ("ap-northeast-3", "aws"),
    ("ap-south-1", "aws"),
    ("ap-south-2", "aws"),
    ("ap-southeast-1", "aws"),
    ("ap-southeast-2", "aws"),
    ("ap-southeast-3", "aws"),
    ("ap-southeast-4", "aws"),
    ("ap-southeast-5", "aws"),
    ("ap-southeast-6", "aws"),
    ("ap-southeast-7", "aws"),
    ("ca-central-1", "aws"),
    ("ca-west-1", "aws"),
    ("eu-central-1", "aws"),
    ("eu-central-2", "aws"),
    ("eu-north-1", "aws"),
    ("eu-south-1", "aws"),
    ("eu-south-2", "aws"),
    ("eu-west-1", "aws"),
    ("eu-west-2", "aws"),
    ("eu-west-3", "aws"),
    ("il-central-1", "aws"),
    ("me-central-1", "aws"),
    ("me-south-1", "aws"),
    ("mx-central-1", "aws"),
    ("sa-east-1", "aws"),
    ("us-east-1", "aws"),
    ("us-east-2", "aws"),
    ("us-west-1", "aws"),
    ("us-west-2", "aws"),
    // aws-cn: China.
    ("cn-north-1", "aws-cn"),
    ("cn-northwest-1", "aws-cn"),
    // aws-us-gov: GovCloud (US).
    ("us-gov-east-1", "aws-us-gov"),
    ("us-gov-west-1", "aws-us-gov"),
    // aws-eusc: the European Sovereign Cloud.
    ("eusc-de-east-1", "aws-eusc"),
    // The isolated partitions.
    ("us-iso-east-1", "aws-iso"),
    ("us-iso-west-1", "aws-iso"),
    ("us-isob-east-1", "aws-iso-b"),
    ("us-isob-west-1", "aws-iso-b"),
    ("eu-isoe-west-1", "aws-iso-e"),
    ("us-isof-east-1", "aws-iso-f"),
    ("us-isof-south-1", "aws-iso-f"),
];

/// The partition of a known region.
pub fn partition(region: &str) -> Option<&'static str> {
    REGIONS
        .iter()
        .find(|(name, _)| *name == region)
        .map(|(_, partition)| *partition)
}

/// Why `region` is not a region comfyplat can use, with the hint to show.
pub fn check(region: &str) -> Result<(), (String, String)> {
    if partition(region).is_some() {
        return Ok(());
    }
    let lowercase = region.trim().to_ascii_lowercase();
    if partition(&lowercase).is_some() {
        return Err((
            format!("`{region}` is not an AWS region name: region codes are lowercase"),
            format!("did you mean `{lowercase}`?"),
        ));
    }
    let message = if is_well_formed(region) {
        format!("`{region}` is not an AWS region")
    } else {
        format!("`{region}` is not an AWS region name")
    };
    let hint = match super::did_you_mean(&lowercase, REGIONS.iter().map(|(name, _)| *name)) {
        Some(near) => format!("did you mean `{near}`?"),
        None => "use a region code such as `us-west-2` or `eu-central-1`".to_string(),
    };
    Err((message, hint))
}

/// The shape of a region code: `xx-name-N`, `xx-name-name-N`.
fn is_well_formed(region: &str) -> bool {
    let parts: Vec<&str> = region.split('-').collect();
    parts.len() >= 3
        && parts[0].len() >= 2
        && parts[0].bytes().all(|b| b.is_ascii_lowercase())
        && parts[parts.len() - 1].bytes().all(|b| b.is_ascii_digit())
        && !parts[parts.len() - 1].is_empty()
        && parts[1..parts.len() - 1]
            .iter()
            .all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_lowercase()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_regions_and_their_partitions() {
        assert_eq!(partition("us-west-2"), Some("aws"));
        assert_eq!(partition("cn-north-1"), Some("aws-cn"));
        assert_eq!(partition("us-gov-west-1"), Some("aws-us-gov"));
        assert_eq!(partition("us-iso-east-1"), Some("aws-iso"));
        assert_eq!(partition("us-west-22"), None);
        for (region, _) in REGIONS {
            assert!(is_well_formed(region), "{region}");
            assert!(check(region).is_ok(), "{region}");
        }
    }

    #[test]
    fn uppercase_regions_are_refused_with_the_lowercase_one() {
        let (message, hint) = check("US-WEST-2").expect_err("uppercase");
        assert!(message.contains("lowercase"), "{message}");
        assert_eq!(hint, "did you mean `us-west-2`?");
    }

    #[test]
    fn well_formed_unknown_regions_get_the_nearest_known_one() {
        let (message, hint) = check("us-west-22").expect_err("unknown");
        assert_eq!(message, "`us-west-22` is not an AWS region");
        assert_eq!(hint, "did you mean `us-west-2`?");
        let (_, hint) = check("us-wset-2").expect_err("typo");
        assert_eq!(hint, "did you mean `us-west-2`?");
        let (message, _) = check("uswest2").expect_err("malformed");
        assert_eq!(message, "`uswest2` is not an AWS region name");
        let (_, hint) = check("mars").expect_err("nothing near");
        assert!(hint.contains("us-west-2"), "{hint}");
    }
}
