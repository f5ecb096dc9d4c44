"""Fidelity fixes to moto, applied in the emulator process before the server starts.

Each patch makes moto answer as AWS does for something comfyplat relies on; each has a test
in test_emulators.py (S3) or test_cloudfront.py (CloudFront, Tagging API).

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

3. CloudFront distribution versions. moto keeps a distribution's ETag for its whole life and
   accepts any If-Match. As CloudFront: CreateDistribution(WithTags) and every
   UpdateDistribution give the distribution a new ETag (returned in the `ETag` header of
   Create/Update/GetDistribution/GetDistributionConfig); UpdateDistribution and
   DeleteDistribution without If-Match answer InvalidIfMatchVersion (400), with an If-Match
   other than the current ETag PreconditionFailed (412). Update and delete are atomic (one
   lock), so of two writers holding the same ETag only the first one wins.

4. CloudFront deployment. A distribution is `InProgress` after CreateDistribution(WithTags)
   and again after every UpdateDistribution (moto leaves an updated distribution Deployed and
   never resets its counter). It becomes `Deployed` by being read: each GetDistribution,
   GetDistributionConfig, or ListDistributions (which reads every distribution) counts, and
   the read that brings the count since the last change to N answers Deployed (so N-1 reads
   still answer InProgress). N comes from the environment variable
   COMFYPLAT_EMULATOR_CLOUDFRONT_DEPLOY_READS when the patches are applied (default 2; 0 =
   Deployed at once, even in the Create/Update answer). This is moto's own ManagedState
   ("manual" progression, `times` = N; "immediate" for 0), registered as the model's default
   transition, so moto's state-manager API (/moto-api/state-manager/set-transition for
   `cloudfront::distribution`) still overrides it.

5. CloudFront DeleteDistribution. moto deletes whatever it is asked to. As CloudFront: a
   distribution that is Enabled, or not yet Deployed (e.g. just disabled), answers
   DistributionNotDisabled (409); then the If-Match checks of 3. Order of the checks:
   NoSuchDistribution, DistributionNotDisabled, InvalidIfMatchVersion, PreconditionFailed.
   Deleting also drops the distribution's tags and invalidations, and tagging calls
   (ListTagsForResource, TagResource, UntagResource) on the ARN of a distribution that does
   not exist (any more) answer NoSuchResource (404), where moto answers with no tags / 204.

6. CloudFront CallerReference. CreateDistribution(WithTags) with a CallerReference already in
   use answers DistributionAlreadyExists (409, "... Already exists: <Id>"; moto's own). New:
   UpdateDistribution with a CallerReference other than the distribution's answers
   IllegalUpdate (400, "You cannot update Origin or CallerReference."), checked after
   If-Match; moto silently replaced it.

7. CloudFront DistributionConfig round trip. moto serialises the stored configuration with
   the botocore model (root elements and namespace are right: `<Distribution>`,
   `<DistributionConfig>`, `<DistributionList>`, xmlns
   http://cloudfront.amazonaws.com/doc/2020-05-31/), and UpdateDistribution replaces the
   whole configuration, but it answered some members unlike CloudFront:
   * ViewerCertificate: moto always said CloudFrontDefaultCertificate=true and added empty
     IAMCertificateId/Certificate elements and CertificateSource=cloudfront. Now with an
     ACMCertificateArn: CloudFrontDefaultCertificate=false, ACMCertificateArn, SSLSupportMethod
     (as sent, default sni-only), MinimumProtocolVersion (as sent, default TLSv1),
     Certificate=<the ARN>, CertificateSource=acm (IAMCertificateId likewise, source iam);
     with the default certificate: CloudFrontDefaultCertificate=true, SSLSupportMethod=vip,
     MinimumProtocolVersion (as sent, default TLSv1), CertificateSource=cloudfront.
   * Cache behaviours with a CachePolicyId: moto injected ForwardedValues (QueryString=false,
     Cookies none) and MinTTL/DefaultTTL/MaxTTL=0; CloudFront answers only what was sent
     (the legacy cache settings are not used with a cache policy). Without a CachePolicyId
     moto's defaults stay. An absent Compress is false (moto: true); an empty CachePolicyId
     or RealtimeLogConfigArn is left out instead of answered as an empty element.
   * An origin without custom headers: CustomHeaders is Quantity=0 without an empty Items
     element (moto: `<Items></Items>`, which parses as an empty list, not as no list).
   * Staging (required in DistributionSummary) is answered, false unless sent;
     DistributionSummary carries the distribution's ETag; LastModifiedTime is the time of
     the create/last update (moto: a constant 2021 date).

8. Resource Groups Tagging API GetResources, by region. moto answers in every region with the
   resources of global backends: CloudFront distributions (and functions, key-value stores)
   and the S3 buckets of all regions. As AWS: CloudFront resources are listed in us-east-1
   only, an S3 bucket only in its own region. (GetTagKeys/GetTagValues are left as they are.)
   Not changed: terminated EC2 instances stay listed with their tags for as long as moto keeps
   them (for good), where AWS lists them for a while (about an hour).
"""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Mapping
from datetime import datetime, timezone
from typing import Any

CLOUDFRONT_DEPLOY_READS_ENV = "COMFYPLAT_EMULATOR_CLOUDFRONT_DEPLOY_READS"
CLOUDFRONT_DEPLOY_READS_DEFAULT = 2

PRECONDITION_FAILED = "The precondition given in one or more of the request header fields evaluated to false."
DISTRIBUTION_NOT_DISABLED = "The distribution you are trying to delete has not been disabled."
ILLEGAL_CALLER_REFERENCE_UPDATE = "You cannot update Origin or CallerReference."
NO_SUCH_RESOURCE = "The specified resource does not exist."


def cloudfront_deploy_reads(environ: Mapping[str, str] = os.environ) -> int:
    """N of patch 4: COMFYPLAT_EMULATOR_CLOUDFRONT_DEPLOY_READS, a non-negative integer."""
    raw = environ.get(CLOUDFRONT_DEPLOY_READS_ENV, "").strip()
    if not raw:
        return CLOUDFRONT_DEPLOY_READS_DEFAULT
    try:
        reads = int(raw)
    except ValueError:
        reads = -1
    if reads < 0:
        raise ValueError(f"{CLOUDFRONT_DEPLOY_READS_ENV}={raw!r}: expected a non-negative integer")
    return reads


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
    _apply_s3()
    _apply_cloudfront(cloudfront_deploy_reads())
    _apply_tagging_api()


def _apply_s3() -> None:
    """Patches 1 and 2."""
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


# --------------------------------------------------------------------------
# CloudFront (patches 3-7)
# --------------------------------------------------------------------------

DISTRIBUTION_MODEL = "cloudfront::distribution"  # moto's ManagedState model name


def _apply_cloudfront(deploy_reads: int) -> None:
    from moto.cloudfront import models as cf
    from moto.cloudfront.exceptions import CloudFrontException, InvalidIfMatchVersion, NoSuchDistribution
    from moto.moto_api import state_manager

    def error(code: str, message: str) -> CloudFrontException:
        return CloudFrontException(code, message)

    def now() -> datetime:
        """CloudFront's timestamps have milliseconds."""
        t = datetime.now(timezone.utc)
        return t.replace(microsecond=t.microsecond // 1000 * 1000)

    # 4: Deployed after N reads, with moto's state machine
    state_manager.register_default_transition(
        DISTRIBUTION_MODEL,
        {"progression": "immediate"} if deploy_reads == 0 else {"progression": "manual", "times": deploy_reads},
    )

    def new_version(dist: Any) -> None:
        """A change of the distribution: new ETag, InProgress again, modified now."""
        dist.etag = cf.random_id()
        dist.status = "InProgress"
        dist._tick = 0
        dist._time_progressed = datetime.now()
        dist.last_modified_time = now()

    original_distribution_init = cf.Distribution.__init__

    def distribution_init(self: Any, account_id: str, region_name: str, config: dict[str, Any]) -> None:
        original_distribution_init(self, account_id, region_name, config)
        self.last_modified_time = now()

    cf.Distribution.__init__ = distribution_init
    # DistributionSummary.ETag (the serialiser looks for `e_tag`)
    cf.Distribution.e_tag = property(lambda self: self.etag)
    # DistributionSummary.Staging, looked up on the Distribution like the other config fields
    if "Staging" not in cf.DISTRIBUTION_CONFIG_FIELDS:
        cf.DISTRIBUTION_CONFIG_FIELDS.append("Staging")

    original_config_init = cf.DistributionConfig.__init__

    def distribution_config_init(self: Any, config: dict[str, Any]) -> None:
        config.setdefault("Staging", False)
        original_config_init(self, config)

    cf.DistributionConfig.__init__ = distribution_config_init

    # 7: ViewerCertificate as CloudFront answers it (DistributionConfig looks the class up by name)
    class ViewerCertificate:
        def __init__(self, config: dict[str, Any]) -> None:
            self.iam_certificate_id: str | None = None
            self.acm_certificate_arn: str | None = None
            self.certificate: str | None = None
            self.minimum_protocol_version = config.get("MinimumProtocolVersion") or "TLSv1"
            if config.get("ACMCertificateArn") or config.get("IAMCertificateId"):
                self.cloud_front_default_certificate = False
                self.ssl_support_method = config.get("SSLSupportMethod") or "sni-only"
                if config.get("ACMCertificateArn"):
                    self.acm_certificate_arn = self.certificate = config["ACMCertificateArn"]
                    self.certificate_source = "acm"
                else:
                    self.iam_certificate_id = self.certificate = config["IAMCertificateId"]
                    self.certificate_source = "iam"
            else:
                self.cloud_front_default_certificate = True
                self.ssl_support_method = "vip"
                self.certificate_source = "cloudfront"

    cf.ViewerCertificate = ViewerCertificate

    # 7: cache behaviours (CacheBehaviour calls this __init__ through super())
    original_behaviour_init = cf.DefaultCacheBehaviour.__init__

    def behaviour_init(self: Any, config: dict[str, Any]) -> None:
        original_behaviour_init(self, config)
        self.compress = bool(config.get("Compress", False))
        self.cache_policy_id = config.get("CachePolicyId") or None
        self.realtime_log_config_arn = config.get("RealtimeLogConfigArn") or None
        if self.cache_policy_id:
            if "ForwardedValues" not in config:
                self.forwarded_values = None
            for key, attr in (("MinTTL", "min_ttl"), ("DefaultTTL", "default_ttl"), ("MaxTTL", "max_ttl")):
                if key not in config:
                    setattr(self, attr, None)

    cf.DefaultCacheBehaviour.__init__ = behaviour_init

    # 7: no custom headers are answered as <CustomHeaders><Quantity>0</Quantity></CustomHeaders>
    original_origin_init = cf.Origin.__init__

    def origin_init(self: Any, origin: dict[str, Any]) -> None:
        original_origin_init(self, origin)
        if not self.custom_headers.get("Items"):
            self.custom_headers = {"Quantity": 0}

    cf.Origin.__init__ = origin_init

    lock = threading.RLock()

    def check_if_match(dist: Any, if_match: str | None) -> None:
        if not if_match:
            raise InvalidIfMatchVersion()
        if if_match != dist.etag:
            raise error("PreconditionFailed", PRECONDITION_FAILED)

    # 6: moto's, with the CallerReference check and the insert atomic
    def create_distribution_with_tags(
        self: Any, distribution_config: dict[str, Any], tags: list[dict[str, str]]
    ) -> tuple[Any, str, str]:
        with lock:
            dist = cf.Distribution(self.account_id, self.region_name, distribution_config)
            existing = self._distribution_with_caller_reference(dist.distribution_config.caller_reference)
            if existing is not None:
                raise cf.DistributionAlreadyExists(existing.distribution_id)
            self.distributions[dist.distribution_id] = dist
            self.tagger.tag_resource(dist.arn, tags)
            return dist, dist.location, dist.etag

    # 3, 4, 6
    def update_distribution(
        self: Any, dist_config: dict[str, Any], _id: str, if_match: str | None
    ) -> tuple[Any, str, str]:
        with lock:
            dist = self.distributions.get(_id) if _id else None
            if dist is None:
                raise NoSuchDistribution()
            check_if_match(dist, if_match)
            if not dist_config:
                raise NoSuchDistribution()  # moto's answer to an update without a body
            if dist_config.get("CallerReference") != dist.distribution_config.caller_reference:
                raise error("IllegalUpdate", ILLEGAL_CALLER_REFERENCE_UPDATE)
            dist.distribution_config = cf.DistributionConfig(dist_config)
            new_version(dist)
            return dist, dist.location, dist.etag

    # 3, 5
    def delete_distribution(self: Any, distribution_id: str, if_match: str | None) -> None:
        with lock:
            dist = self.distributions.get(distribution_id)
            if dist is None:
                raise NoSuchDistribution()
            if dist.distribution_config.Enabled or dist.status != "Deployed":
                raise error("DistributionNotDisabled", DISTRIBUTION_NOT_DISABLED)
            check_if_match(dist, if_match)
            del self.distributions[distribution_id]
            self.invalidations.pop(distribution_id, None)
            self.tagger.delete_all_tags_for_resource(dist.arn)

    cf.CloudFrontBackend.create_distribution_with_tags = create_distribution_with_tags
    cf.CloudFrontBackend.update_distribution = update_distribution
    cf.CloudFrontBackend.delete_distribution = delete_distribution

    def check_resource(backend: Any, arn: str) -> None:
        _, sep, dist_id = arn.partition(":distribution/")
        if sep and dist_id not in backend.distributions:
            raise error("NoSuchResource", NO_SUCH_RESOURCE)

    original_list_tags = cf.CloudFrontBackend.list_tags_for_resource
    original_tag = cf.CloudFrontBackend.tag_resource
    original_untag = cf.CloudFrontBackend.untag_resource

    def list_tags_for_resource(self: Any, resource: str) -> dict[str, list[dict[str, str]]]:
        check_resource(self, resource)
        return original_list_tags(self, resource)

    def tag_resource(self: Any, arn: str, tags: dict[str, str]) -> None:
        check_resource(self, arn)
        original_tag(self, arn, tags)

    def untag_resource(self: Any, arn: str, tag_keys: list[str]) -> None:
        check_resource(self, arn)
        original_untag(self, arn, tag_keys)

    cf.CloudFrontBackend.list_tags_for_resource = list_tags_for_resource
    cf.CloudFrontBackend.tag_resource = tag_resource
    cf.CloudFrontBackend.untag_resource = untag_resource


# --------------------------------------------------------------------------
# Resource Groups Tagging API (patch 8)
# --------------------------------------------------------------------------

CLOUDFRONT_TAGGING_REGION = "us-east-1"


def _apply_tagging_api() -> None:
    from collections.abc import Iterator

    from moto.core.resource_tagging import TaggedResource
    from moto.resourcegroupstaggingapi.models import ResourceGroupsTaggingAPIBackend
    from moto.s3.models import s3_backends
    from moto.utilities.utils import get_partition

    def listed_in(resource: TaggedResource, account_id: str, region: str) -> bool:
        if resource.resource_type.startswith("cloudfront:"):
            return region == CLOUDFRONT_TAGGING_REGION
        if resource.resource_type == "s3:bucket":
            name = resource.arn.rsplit(":", 1)[-1]
            bucket = s3_backends[account_id][get_partition(region)].buckets.get(name)
            return bucket is not None and bucket.region_name == region
        return True

    original = ResourceGroupsTaggingAPIBackend._get_resources_generator

    def get_resources_generator(self: ResourceGroupsTaggingAPIBackend, *args: Any,
                                **kwargs: Any) -> Iterator[TaggedResource]:
        for resource in original(self, *args, **kwargs):
            if listed_in(resource, self.account_id, self.region_name):
                yield resource

    ResourceGroupsTaggingAPIBackend._get_resources_generator = get_resources_generator
