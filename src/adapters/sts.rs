//! STS: who the caller is, which fixes the account and partition everything is named in.

use super::{ApiError, Aws, ErrorClass, aws_error};

/// The caller's identity as STS reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    pub account: String,
    pub arn: String,
    pub partition: String,
}

pub async fn caller(aws: &Aws) -> Result<Caller, ApiError> {
    const OPERATION: &str =
        "failed to find the AWS account of the credentials (STS GetCallerIdentity)";
    let output = aws
        .sts
        .get_caller_identity()
        .send()
        .await
        .map_err(|e| aws_error(OPERATION, e))?;
    let account = output.account().unwrap_or_default().to_string();
    let arn = output.arn().unwrap_or_default().to_string();
    if account.is_empty() || arn.is_empty() {
        return Err(ApiError::new(
            OPERATION,
            ErrorClass::Rejected,
            "the response names no account or ARN",
        ));
    }
    let partition = arn.split(':').nth(1).unwrap_or("aws").to_string();
    Ok(Caller {
        account,
        arn,
        partition,
    })
}
