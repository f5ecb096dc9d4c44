"""Fidelity fixes to moto, applied in the emulator process before the server starts.

Each patch makes moto answer as AWS does for something comfyplat relies on; each has a test
in test_emulators.py.

1. Bucket policies with `aws:SecureTransport` conditions. moto evaluates bucket-policy Deny
   statements on object operations but ignores their `Condition`, and it treats a condition
   that does not hold as a denial whatever the statement's Effect. So the standard TLS-only
   policy (Deny s3:* when aws:SecureTransport is false) denies every object request. Requests
   reaching the emulator over plain HTTP on loopback stand for the HTTPS requests the real SDK
   makes, so statements that can only match insecure transport are left out of evaluation.
   Any other statement is evaluated by moto as before.

2. GetBucketVersioning. moto answers with a `<GetBucketVersioningResponse>` root element;
   S3 answers `<VersioningConfiguration>`, and strict clients (the AWS SDK for Rust) reject
   any other root element.
"""

from __future__ import annotations

import json
from typing import Any


def _only_matches_insecure_transport(statement: dict[str, Any]) -> bool:
    condition = statement.get("Condition")
    if not isinstance(condition, dict) or list(condition) != ["Bool"]:
        return False
    values = condition["Bool"]
    if not isinstance(values, dict) or list(values) != ["aws:SecureTransport"]:
        return False
    value = values["aws:SecureTransport"]
    if isinstance(value, list):
        return [str(v).lower() for v in value] == ["false"]
    return str(value).lower() == "false"


def apply() -> None:
    from moto.iam.access_control import IAMPolicy, PermissionResult
    from moto.s3.models import FakeBucket

    def get_permission(self: FakeBucket, action: str, resource: str) -> Any:
        if self.policy is None:
            return PermissionResult.NEUTRAL
        document = json.loads(self.policy.decode())
        statements = document.get("Statement", [])
        if isinstance(statements, dict):
            statements = [statements]
        kept = [s for s in statements if not _only_matches_insecure_transport(s)]
        if not kept:
            return PermissionResult.NEUTRAL
        return IAMPolicy(json.dumps({**document, "Statement": kept})).is_action_permitted(action, resource)

    FakeBucket.get_permission = get_permission

    from moto.s3.responses import S3Response

    def get_bucket_versioning(self: S3Response) -> Any:
        status = self.backend.get_bucket_versioning(self.bucket_name)
        inner = f"<Status>{status}</Status>" if status else ""
        body = (
            '<?xml version="1.0" encoding="UTF-8"?>\n'
            f'<VersioningConfiguration xmlns="http://s3.amazonaws.com/doc/2006-03-01/">{inner}</VersioningConfiguration>'
        )
        return 200, {"Content-Type": "application/xml"}, body

    S3Response.get_bucket_versioning = get_bucket_versioning
