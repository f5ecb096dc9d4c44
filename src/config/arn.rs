//! ARNs as platform.yaml names them: `arn:PARTITION:SERVICE:REGION:ACCOUNT:RESOURCE`.

/// An ARN split into its parts (the resource keeps any further `:` or `/`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Arn<'a> {
    pub partition: &'a str,
    pub service: &'a str,
    pub region: &'a str,
    pub account: &'a str,
    pub resource: &'a str,
}

impl<'a> Arn<'a> {
    /// The parts of `text`, if it is an ARN of an AWS partition.
    pub fn parse(text: &'a str) -> Option<Arn<'a>> {
        let parts: Vec<&str> = text.splitn(6, ':').collect();
        match parts.as_slice() {
            ["arn", partition, service, region, account, resource]
                if partition.starts_with("aws") =>
            {
                Some(Arn {
                    partition,
                    service,
                    region,
                    account,
                    resource,
                })
            }
            _ => None,
        }
    }
}

/// That `arn` belongs to the partition of `region` (a known region): an ARN of another
/// partition names something these credentials can never reach.
pub fn check_partition(arn: &Arn, region: &str) -> Result<(), String> {
    let Some(expected) = super::regions::partition(region) else {
        return Ok(());
    };
    if arn.partition == expected {
        Ok(())
    } else {
        Err(format!(
            "the ARN is in partition `{}`, but region `{region}` is in partition `{expected}`",
            arn.partition
        ))
    }
}

/// What is wrong with an IAM role or user name, if anything: 1 to `max` ASCII letters,
/// digits and `+=,.@_-` (IAM's `[\w+=,.@-]+`). A look-alike letter from another script
/// (a Cyrillic `е` for `e`) is named with its code point.
pub fn iam_name_problem(name: &str, max: usize) -> Option<String> {
    if let Some(bad) = name.chars().find(|c| !c.is_ascii()) {
        return Some(format!(
            "`{bad}` (U+{:04X}) is not an ASCII character; IAM names have only ASCII letters, digits and `+=,.@_-`",
            u32::from(bad)
        ));
    }
    if let Some(bad) = name
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || "+=,.@_-".contains(*c)))
    {
        return Some(format!(
            "`{bad}` is not allowed; IAM names have only letters, digits and `+=,.@_-`"
        ));
    }
    if !(1..=max).contains(&name.len()) {
        return Some(format!(
            "it has {} characters; IAM names have 1 to {max}",
            name.len()
        ));
    }
    None
}

/// A 12-digit AWS account id.
pub fn is_account_id(text: &str) -> bool {
    text.len() == 12 && text.bytes().all(|b| b.is_ascii_digit())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arns_are_split_into_their_parts() {
        let arn = Arn::parse("arn:aws:iam::123456789012:role/path/Name").expect("an ARN");
        assert_eq!(
            (
                arn.partition,
                arn.service,
                arn.region,
                arn.account,
                arn.resource
            ),
            ("aws", "iam", "", "123456789012", "role/path/Name")
        );
        let arn = Arn::parse("arn:aws-cn:kms:cn-north-1:123456789012:key/a:b").expect("an ARN");
        assert_eq!(arn.resource, "key/a:b");
        assert_eq!(Arn::parse("arn:other:iam::1:role/x"), None);
        assert_eq!(Arn::parse("arn:aws:iam"), None);
        assert!(is_account_id("123456789012"));
        let china = Arn::parse("arn:aws-cn:iam::123456789012:role/x").expect("an ARN");
        assert!(check_partition(&china, "cn-north-1").is_ok());
        assert!(check_partition(&china, "us-west-2").is_err());
        assert!(iam_name_problem("KarpenterNodeRole-comfyui", 64).is_none());
        let homoglyph = iam_name_problem("KarpenterNodeRol\u{0435}", 64).expect("refused");
        assert!(homoglyph.contains("U+0435"), "{homoglyph}");
        assert!(iam_name_problem("a*", 64).is_some());
        assert!(iam_name_problem(&"a".repeat(65), 64).is_some());
        assert!(iam_name_problem("", 64).is_some());
        assert!(!is_account_id("12345678901a"));
    }
}
