"""Fidelity fixes to moto, applied in the emulator process before the server starts.

Each patch makes moto answer as AWS does for something comfyplat relies on; each has a test
in test_emulators.py (S3), test_cloudfront.py (CloudFront, Tagging API) or test_ecr.py (ECR, the
Tagging API for ECR, IAM).

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

9. ECR image digests. moto's digest of an image was sha256 of its layers' digests run
   together, so two manifests with the same layers (e.g. the same JSON, reformatted) had the
   same digest and were still stored as two images. As ECR: imageDigest is `sha256:` + the hex
   sha256 of the exact manifest bytes (UTF-8) as pushed, and it is what identifies an image.

10. ECR PutImage and BatchDeleteImage. As ECR (moto's answer in brackets):
   * an unknown repository answers RepositoryNotFoundException (HTTP 500); a manifest that is
     not JSON InvalidParameterException (500);
   * an imageDigest other than the manifest's answers ImageDigestDoesNotMatchException (the
     given digest was stored as the image's);
   * an image manifest (schemaVersion 2, `config` and `layers`) whose config or layer blobs
     were not uploaded to the repository (InitiateLayerUpload, UploadLayerPart,
     CompleteLayerUpload) answers LayersNotFoundException (accepted);
   * the same manifest again with a tag it already has, or again untagged, answers
     ImageAlreadyExistsException (moto's, kept);
   * a tag held by another image in an IMMUTABLE repository answers
     ImageTagAlreadyExistsException (ImageAlreadyExistsException with the other image's digest);
     in a MUTABLE one the tag moves and the other image keeps its other tags, or stays in the
     repository untagged (it was deleted). The *_WITH_EXCLUSION modes take the exclusion
     filters' wildcards (`*`) as wildcards (moto: as regular expressions).
   * BatchDeleteImage by digest of an untagged image lists `{"imageDigest": ...}` in imageIds
     (moto deleted it and listed nothing).
   Moving a tag in an IMMUTABLE repository: BatchDeleteImage of the tag, then PutImage.
   Messages: ImageTagAlreadyExistsException's is the text ECR gives `docker push`; those of
   ImageDigestDoesNotMatchException and LayersNotFoundException are written here (the codes and
   statuses are the API model's: 400). Not changed: imageSizeInBytes (moto: the config's size).

11. ECR pagination. moto ignored maxResults and never answered a nextToken. As ECR:
   DescribeRepositories, DescribeImages and ListImages answer pages of maxResults (default 100)
   with a nextToken while more remain; maxResults or nextToken together with repositoryNames /
   imageIds, or a nextToken not from this emulator, answer InvalidParameterException. Also
   DescribeImages' filter.tagStatus (TAGGED, UNTAGGED, ANY), which moto ignored.

12. ECR tag limits. moto took any tags. As ECR, on CreateRepository and TagResource: a key of 1
   to 128 characters, a value of at most 256 (else InvalidTagParameterException), at most 50
   tags on a repository, counting those it has (else TooManyTagsException); nothing is changed
   by a refused request. Messages written here.

13. Resource Groups Tagging API and ECR. moto's tagging API did not know ECR. GetResources (and
   GetTagKeys, GetTagValues, TagResources, UntagResources) now list a region's tagged ECR
   repositories as ResourceType `ecr:repository`, ARN
   arn:aws:ecr:<region>:<account>:repository/<name>.

14. IAM GetPolicyVersion. IAM answers PolicyVersion.Document URL-encoded (RFC 3986), as moto
   already does for GetRolePolicy; moto answered it as plain JSON.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import re
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

# ECR (patches 9-12)
ECR_PAGE_SIZE = 100  # DescribeRepositories / DescribeImages / ListImages without maxResults
ECR_MAX_TAGS = 50
ECR_TAG_KEY_MAX = 128
ECR_TAG_VALUE_MAX = 256
ECR_INVALID_JSON = "Invalid parameter at 'ImageManifest' failed to satisfy constraint: 'Invalid JSON syntax'"


def ecr_manifest_digest(manifest: str) -> str:
    """An image's digest as ECR computes it (patch 9): sha256 of the manifest's exact bytes."""
    return "sha256:" + hashlib.sha256(manifest.encode("utf-8")).hexdigest()


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
    _apply_ecr()
    _apply_ecr_tagging_api()
    _apply_iam()


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


# --------------------------------------------------------------------------
# ECR (patches 9-12)
# --------------------------------------------------------------------------


def _ecr_blob_digests(manifest: Any) -> list[str]:
    """The blobs an image manifest refers to (config, then layers); none for a manifest list /
    image index or a schema 1 manifest. Layers with `urls` (foreign layers) are not uploaded."""
    if not isinstance(manifest, dict) or manifest.get("schemaVersion") != 2 or "layers" not in manifest:
        return []
    out = []
    config = manifest.get("config")
    if isinstance(config, dict) and config.get("digest"):
        out.append(config["digest"])
    for layer in manifest.get("layers") or []:
        if isinstance(layer, dict) and layer.get("digest") and not layer.get("urls"):
            out.append(layer["digest"])
    return list(dict.fromkeys(out))


def _ecr_tag_is_immutable(repo: Any, tag: str) -> bool:
    """Whether the repository's tag mutability setting keeps `tag` where it is."""
    mode = str(getattr(repo.image_tag_mutability, "value", repo.image_tag_mutability))
    filters = repo.image_tag_mutability_exclusion_filters or []
    excluded = any(
        re.fullmatch(".*".join(re.escape(part) for part in str(f.get("filter", "")).split("*")), tag)
        for f in filters
    )
    if mode == "IMMUTABLE":
        return True
    if mode == "IMMUTABLE_WITH_EXCLUSION":
        return not excluded
    if mode == "MUTABLE_WITH_EXCLUSION":
        return excluded
    return False


def _apply_ecr() -> None:
    from moto.core.exceptions import ServiceException
    from moto.core.responses import ActionResult
    from moto.ecr import models as ecr
    from moto.ecr.exceptions import ImageAlreadyExistsException, InvalidParameterException
    from moto.ecr.responses import ECRResponse

    # moto's error serialiser finds the service model by the exception's module
    EcrError = type("EcrError", (ServiceException,), {"__module__": "moto.ecr.exceptions"})
    lock = threading.RLock()

    # 9: the digest of the manifest's bytes (put_image below passes it; this covers the rest)
    def create_digest(self: Any) -> None:
        self._image_digest = ecr_manifest_digest(self.image_manifest)

    ecr.Image._create_digest = create_digest

    def untag(image: Any, tag: str) -> None:
        image.image_tags.remove(tag)
        image.image_tag = image.image_tags[-1] if image.image_tags else None

    # 10
    def put_image(self: Any, repository_name: str, image_manifest: str, image_tag: str | None,
                  image_manifest_mediatype: str | None = None, digest: str | None = None) -> Any:
        with lock:
            repo = self._get_repository(repository_name)
            try:
                parsed = json.loads(image_manifest)
            except (TypeError, ValueError):
                raise InvalidParameterException(ECR_INVALID_JSON)
            media_type = image_manifest_mediatype or (parsed.get("mediaType") if isinstance(parsed, dict) else None)
            if not media_type:
                raise InvalidParameterException("image manifest mediatype not provided in manifest or parameter")
            computed = ecr_manifest_digest(image_manifest)
            if digest and digest != computed:
                raise EcrError(
                    "ImageDigestDoesNotMatchException",
                    f"The image digest '{digest}' does not match the digest '{computed}' calculated for "
                    f"the image manifest in the repository with name '{repository_name}' "
                    f"in the registry with id '{repo.registry_id}'")
            missing = [d for d in _ecr_blob_digests(parsed) if d not in repo.layers]
            if missing:
                raise EcrError(
                    "LayersNotFoundException",
                    f"Layers with digests '[{', '.join(missing)}]' required for pushing image into repository "
                    f"with name '{repository_name}' in the registry with id '{repo.registry_id}' do not exist")
            image = next((i for i in repo.images if i.get_image_digest() == computed), None)
            if image is not None and (image_tag is None or image_tag in image.image_tags):
                raise ImageAlreadyExistsException(repository_name=repository_name, registry_id=repo.registry_id,
                                                  digest=computed, image_tag=image_tag or "null")
            if image_tag is not None:
                holder = next((i for i in repo.images if image_tag in i.image_tags), None)
                if holder is not None:
                    if _ecr_tag_is_immutable(repo, image_tag):
                        raise EcrError(
                            "ImageTagAlreadyExistsException",
                            f"The image tag '{image_tag}' already exists in the '{repository_name}' repository "
                            "and cannot be overwritten because the repository is immutable.")
                    untag(holder, image_tag)
            if image is None:
                image = ecr.Image(self.account_id, image_tag, image_manifest, repository_name, media_type,
                                  computed, registry_id=repo.registry_id)
                repo.images.append(image)
            else:
                image.update_tag(image_tag)
            return image

    original_batch_delete_image = ecr.ECRBackend.batch_delete_image

    def batch_delete_image(self: Any, repository_name: str, registry_id: str | None = None,
                           image_ids: list[dict[str, str]] | None = None) -> dict[str, Any]:
        with lock:
            repo = self.repositories.get(repository_name)
            untagged = {i.get_image_digest() for i in repo.images if not i.image_tags} if repo else set()
            result = original_batch_delete_image(self, repository_name, registry_id, image_ids)
            left = {i.get_image_digest() for i in repo.images}
            listed = set()
            for image_id in image_ids or []:
                d = image_id.get("imageDigest")
                if "imageTag" not in image_id and d in untagged and d not in left and d not in listed:
                    listed.add(d)
                    result["imageIds"].append({"imageDigest": d})
            return result

    ecr.ECRBackend.put_image = put_image
    ecr.ECRBackend.batch_delete_image = batch_delete_image

    # 11: pages of maxResults (default 100), opaque nextTokens naming the operation and offset
    def page(op: str, items: list[Any], max_results: int | None, next_token: str | None) -> tuple[list[Any], str | None]:
        start = 0
        if next_token:
            try:
                name, _, offset = base64.urlsafe_b64decode(next_token.encode()).decode().partition(":")
                start = int(offset)
                if name != op or start < 0:
                    raise ValueError(next_token)
            except (ValueError, UnicodeDecodeError):
                raise InvalidParameterException(
                    "Invalid parameter at 'nextToken' failed to satisfy constraint: 'Invalid NextToken'")
        end = start + (max_results or ECR_PAGE_SIZE)
        token = base64.urlsafe_b64encode(f"{op}:{end}".encode()).decode() if end < len(items) else None
        return items[start:end], token

    def not_with(named: str, response: Any) -> None:
        for param in ("maxResults", "nextToken"):
            if response._get_param(param) is not None:
                raise InvalidParameterException(
                    f"Invalid parameter at '{param}' failed to satisfy constraint: "
                    f"'{param} cannot be used when {named} is specified'")

    def describe_repositories(self: Any) -> Any:
        names = self._get_param("repositoryNames")
        if names:
            not_with("repositoryNames", self)
        repos = self.ecr_backend.describe_repositories(repository_names=names,
                                                       registry_id=self._get_param("registryId"))
        repos, token = page("DescribeRepositories", list(repos), self._get_param("maxResults"),
                            self._get_param("nextToken"))
        return ActionResult({"repositories": repos, "nextToken": token})

    def list_images(self: Any) -> Any:
        tag_status = (self._get_param("filter") or {}).get("tagStatus", "ANY")
        images = self.ecr_backend.list_images(self._get_param("repositoryName"), self._get_param("registryId"),
                                              tag_status=tag_status)
        ids = []
        for image in images:
            for tag in image.image_tags or [None]:
                ids.append({"imageDigest": image.image_digest, **({"imageTag": tag} if tag else {})})
        ids, token = page("ListImages", ids, self._get_param("maxResults"), self._get_param("nextToken"))
        return ActionResult({"imageIds": ids, "nextToken": token})

    def describe_images(self: Any) -> Any:
        image_ids = self._get_param("imageIds")
        if image_ids:
            not_with("imageIds", self)
        images = list(self.ecr_backend.describe_images(self._get_param("repositoryName"),
                                                       self._get_param("registryId"), image_ids))
        tag_status = (self._get_param("filter") or {}).get("tagStatus", "ANY")
        if tag_status == "TAGGED":
            images = [i for i in images if i.image_tags]
        elif tag_status == "UNTAGGED":
            images = [i for i in images if not i.image_tags]
        images, token = page("DescribeImages", images, self._get_param("maxResults"), self._get_param("nextToken"))
        details = []
        for image in images:
            detail = {
                "registryId": image.registry_id,
                "repositoryName": image.repository_name,
                "imageDigest": image.image_digest,
                "imageSizeInBytes": image.image_size_in_bytes,
                "imagePushedAt": image.image_pushed_at,
                "imageManifestMediaType": image.image_manifest_media_type,
            }
            if image.image_tags:  # ECR leaves imageTags out for an untagged image
                detail["imageTags"] = list(image.image_tags)
            details.append(detail)
        return ActionResult({"imageDetails": details, "nextToken": token})

    ECRResponse.describe_repositories = describe_repositories
    ECRResponse.list_images = list_images
    ECRResponse.describe_images = describe_images

    # 12: tag limits
    def check_tags(tags: list[dict[str, str]] | None, existing: dict[str, str]) -> None:
        merged = dict(existing)
        for tag in tags or []:
            key, value = tag.get("Key") or "", tag.get("Value") or ""
            if not 1 <= len(key) <= ECR_TAG_KEY_MAX:
                raise EcrError("InvalidTagParameterException",
                                       f"Tag keys must be 1 to {ECR_TAG_KEY_MAX} characters long: '{key[:200]}'")
            if len(value) > ECR_TAG_VALUE_MAX:
                raise EcrError("InvalidTagParameterException",
                                       f"Tag values may be at most {ECR_TAG_VALUE_MAX} characters long "
                                       f"(the value of tag '{key}')")
            merged[key] = value
        if len(merged) > ECR_MAX_TAGS:
            raise EcrError("TooManyTagsException",
                                   f"A repository can have at most {ECR_MAX_TAGS} tags ({len(merged)} requested)")

    original_create_repository = ecr.ECRBackend.create_repository
    original_tag_resource = ecr.ECRBackend.tag_resource

    def create_repository(self: Any, repository_name: str, registry_id: str | None, encryption_config: Any,
                          image_scan_config: Any, image_tag_mutability: str, tags: list[dict[str, str]],
                          *args: Any, **kwargs: Any) -> Any:
        check_tags(tags, {})
        return original_create_repository(self, repository_name, registry_id, encryption_config,
                                          image_scan_config, image_tag_mutability, tags, *args, **kwargs)

    def tag_resource(self: Any, arn: str, tags: list[dict[str, str]]) -> None:
        with lock:
            resource = self._parse_resource_arn(arn)
            repo = self._get_repository(resource.repo_name, resource.account_id)
            check_tags(tags, self.tagger.get_tag_dict_for_resource(repo.arn))
            original_tag_resource(self, arn, tags)

    ecr.ECRBackend.create_repository = create_repository
    ecr.ECRBackend.tag_resource = tag_resource


# --------------------------------------------------------------------------
# Resource Groups Tagging API and ECR (patch 13)
# --------------------------------------------------------------------------


class _EcrRepositories:
    """ECR's part in the Resource Groups Tagging API: what moto's TaggableResourcesMixin asks of
    a backend, over one region's ECR backend."""

    def __init__(self, backend: Any) -> None:
        self.backend = backend

    def iter_tagged_resources(self) -> Any:
        from moto.core.resource_tagging import TaggedResource

        for repo in list(self.backend.repositories.values()):
            yield TaggedResource(arn=repo.arn, tags=self.backend.tagger.get_tag_dict_for_resource(repo.arn),
                                 resource_type="ecr:repository")

    def owns_arn(self, arn: str) -> bool:
        return arn.startswith(f"arn:{self.backend.partition}:ecr:{self.backend.region_name}:")

    def tag_resource(self, arn: str, tags: dict[str, str]) -> None:
        self.backend.tag_resource(arn, [{"Key": k, "Value": v} for k, v in tags.items()])

    def untag_resource(self, arn: str, tag_keys: list[str]) -> None:
        self.backend.untag_resource(arn, tag_keys)


def _apply_ecr_tagging_api() -> None:
    from collections.abc import Iterator

    from moto.ecr.models import ecr_backends
    from moto.resourcegroupstaggingapi import models as rgta

    original = rgta.iter_taggable_backends

    def iter_taggable_backends(account_id: str, region_name: str) -> Iterator[Any]:
        yield from original(account_id, region_name)
        if account_id in ecr_backends and region_name in ecr_backends[account_id].keys():
            yield _EcrRepositories(ecr_backends[account_id][region_name])

    rgta.iter_taggable_backends = iter_taggable_backends


# --------------------------------------------------------------------------
# IAM (patch 14)
# --------------------------------------------------------------------------


def _apply_iam() -> None:
    from moto.core.serialize import url_encode
    from moto.iam.responses import IamResponse

    IamResponse.RESPONSE_KEY_PATH_TO_TRANSFORMER = {
        **IamResponse.RESPONSE_KEY_PATH_TO_TRANSFORMER,
        "GetPolicyVersionResponse.PolicyVersion.Document": url_encode,
    }
