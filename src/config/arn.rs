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
        assert!(!is_account_id("12345678901a"));
    }
}
