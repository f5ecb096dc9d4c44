"""Tests of the emulator's ECR (moto + moto_patches 9-12), the Resource Groups Tagging API for
ECR repositories (moto_patches 13), the IAM reads that check the Karpenter node role may pull
from ECR (moto_patches 14), and of ecr_push.py, the helper that pushes an image. Through boto3
(retries off) and the `aws` CLI as an independent client, against aws_emulator.py with the
sandbox seed (for the node role).

Run with:  .venv/bin/python -m pytest tests/emulators -q
"""

from __future__ import annotations

import gzip
import hashlib
import io
import itertools
import json
import os
import subprocess
import sys
import tarfile
import urllib.parse
from datetime import datetime, timedelta, timezone
from typing import Any, Callable

import pytest
from botocore.exceptions import ClientError

from test_emulators import CLEAN_ENV, HERE, REGION, client, start_emulator

sys.path.insert(0, HERE)
import ecr_push  # noqa: E402
import moto_patches  # noqa: E402

ACCOUNT = "123456789012"
NODE_ROLE = "KarpenterNodeRole-comfyui-sandbox"
KMS_KEY = f"arn:aws:kms:{REGION}:{ACCOUNT}:key/1234abcd-12ab-34cd-56ef-1234567890ab"
MANAGED = "arn:aws:iam::aws:policy/"
PULL_ACTIONS = {"ecr:GetAuthorizationToken", "ecr:BatchGetImage", "ecr:GetDownloadUrlForLayer"}
LIFECYCLE = json.dumps({"rules": [{
    "rulePriority": 1, "description": "keep the last 10 images",
    "selection": {"tagStatus": "any", "countType": "imageCountMoreThan", "countNumber": 10},
    "action": {"type": "expire"}}]}, indent=2)

_names = itertools.count(1)


def name(prefix: str = "ecrt") -> str:
    return f"{prefix}-{next(_names)}"


# --------------------------------------------------------------------------
# fixtures and helpers
# --------------------------------------------------------------------------


@pytest.fixture(scope="module")
def emu(tmp_path_factory):
    proc, info = start_emulator(tmp_path_factory.mktemp("ecr"))
    yield info
    rc = proc.stop()
    assert rc == 0, f"emulator exited with {rc}"


def recording(service: str, emu: dict, region: str = REGION):
    """A boto3 client keeping the raw answer of each operation: c.raw[op] = (status, headers, body)."""
    c = client(service, emu["endpoint"], region=region)
    c.raw = {}

    def keep(http_response, model, **_):
        c.raw[model.name] = (http_response.status_code, dict(http_response.headers),
                             http_response.content.decode())

    c.meta.events.register("after-call", keep)
    return c


@pytest.fixture(scope="module")
def ecr(emu):
    return recording("ecr", emu)


@pytest.fixture(scope="module")
def iam(emu):
    return recording("iam", emu)


def error(call: Callable[[], Any]) -> tuple[str, int, str]:
    with pytest.raises(ClientError) as e:
        call()
    r = e.value.response
    return r["Error"]["Code"], r["ResponseMetadata"]["HTTPStatusCode"], r["Error"]["Message"]


def code(call: Callable[[], Any]) -> tuple[str, int]:
    return error(call)[:2]


def repo_arn(repo: str, region: str = REGION) -> str:
    return f"arn:aws:ecr:{region}:{ACCOUNT}:repository/{repo}"


def tags_of(ecr, repo: str) -> dict[str, str]:
    return {t["Key"]: t["Value"] for t in ecr.list_tags_for_resource(resourceArn=repo_arn(repo))["tags"]}


def describe(ecr, repo: str) -> dict[str, Any]:
    [r] = ecr.describe_repositories(repositoryNames=[repo])["repositories"]
    return r


def image_of(ecr, repo: str, tag: str) -> dict[str, Any]:
    [d] = ecr.describe_images(repositoryName=repo, imageIds=[{"imageTag": tag}])["imageDetails"]
    return d


def listed(ecr, repo: str, **kwargs: Any) -> list[tuple[str, str | None]]:
    pages = ecr.get_paginator("list_images").paginate(repositoryName=repo, **kwargs)
    return sorted((i["imageDigest"], i.get("imageTag")) for p in pages for i in p["imageIds"])


def digest_of(image: ecr_push.Image) -> str:
    return "sha256:" + hashlib.sha256(image.manifest.encode()).hexdigest()


# --------------------------------------------------------------------------
# repositories
# --------------------------------------------------------------------------


def test_create_repository_defaults(ecr):
    repo = name()
    before = datetime.now(timezone.utc) - timedelta(seconds=5)
    created = ecr.create_repository(repositoryName=repo)["repository"]
    assert created == {
        "repositoryArn": repo_arn(repo),
        "registryId": ACCOUNT,
        "repositoryName": repo,
        "repositoryUri": f"{ACCOUNT}.dkr.ecr.{REGION}.amazonaws.com/{repo}",
        "createdAt": created["createdAt"],
        "imageTagMutability": "MUTABLE",
        "imageScanningConfiguration": {"scanOnPush": False},
        # no encryptionConfiguration given: ECR answers AES256
        "encryptionConfiguration": {"encryptionType": "AES256"},
    }
    assert before <= created["createdAt"] <= datetime.now(timezone.utc) + timedelta(seconds=5)
    assert describe(ecr, repo) == created
    assert tags_of(ecr, repo) == {}
    status, headers, _ = ecr.raw["DescribeRepositories"]
    assert status == 200 and headers["Content-Type"] == "application/x-amz-json-1.1"


def test_create_repository_like_comfyplat(ecr):
    repo = f"comfyplat/{name('comfyui')}"  # a namespaced name
    created = ecr.create_repository(
        repositoryName=repo, imageTagMutability="IMMUTABLE", imageScanningConfiguration={"scanOnPush": True},
        encryptionConfiguration={"encryptionType": "KMS", "kmsKey": KMS_KEY},
        tags=[{"Key": "comfyplat:platform", "Value": "sandbox"}, {"Key": "team", "Value": "art"}])["repository"]
    assert created["repositoryArn"] == repo_arn(repo)
    assert created["repositoryUri"] == f"{ACCOUNT}.dkr.ecr.{REGION}.amazonaws.com/{repo}"
    assert (created["imageTagMutability"], created["imageScanningConfiguration"], created["encryptionConfiguration"]) == (
        "IMMUTABLE", {"scanOnPush": True}, {"encryptionType": "KMS", "kmsKey": KMS_KEY})
    assert describe(ecr, repo) == created
    assert tags_of(ecr, repo) == {"comfyplat:platform": "sandbox", "team": "art"}
    code_, status, message = error(lambda: ecr.create_repository(repositoryName=repo))
    assert (code_, status) == ("RepositoryAlreadyExistsException", 400)
    assert message == f"The repository with name '{repo}' already exists in the registry with id '{ACCOUNT}'"
    assert code(lambda: ecr.create_repository(repositoryName="Not_Valid")) == ("InvalidParameterException", 400)


def test_describe_missing_repository(ecr):
    missing = name("missing")
    code_, status, message = error(lambda: ecr.describe_repositories(repositoryNames=[missing]))
    assert (code_, status) == ("RepositoryNotFoundException", 400)
    assert message == f"The repository with name '{missing}' does not exist in the registry with id '{ACCOUNT}'"
    _, headers, body = ecr.raw["DescribeRepositories"]
    assert headers["X-Amzn-Errortype"] == "RepositoryNotFoundException"
    assert json.loads(body)["__type"] == "RepositoryNotFoundException"


def test_put_image_tag_mutability_and_scanning_configuration(ecr):
    repo = name()
    ecr.create_repository(repositoryName=repo)
    out = ecr.put_image_tag_mutability(repositoryName=repo, imageTagMutability="IMMUTABLE")
    out.pop("ResponseMetadata")
    assert out == {"registryId": ACCOUNT, "repositoryName": repo, "imageTagMutability": "IMMUTABLE"}
    out = ecr.put_image_scanning_configuration(repositoryName=repo, imageScanningConfiguration={"scanOnPush": True})
    out.pop("ResponseMetadata")
    assert out == {"registryId": ACCOUNT, "repositoryName": repo, "imageScanningConfiguration": {"scanOnPush": True}}
    got = describe(ecr, repo)
    assert (got["imageTagMutability"], got["imageScanningConfiguration"]) == ("IMMUTABLE", {"scanOnPush": True})
    ecr.put_image_tag_mutability(repositoryName=repo, imageTagMutability="MUTABLE")
    ecr.put_image_scanning_configuration(repositoryName=repo, imageScanningConfiguration={"scanOnPush": False})
    got = describe(ecr, repo)
    assert (got["imageTagMutability"], got["imageScanningConfiguration"]) == ("MUTABLE", {"scanOnPush": False})
    missing = name("missing")
    assert code(lambda: ecr.put_image_tag_mutability(repositoryName=missing, imageTagMutability="IMMUTABLE")) == (
        "RepositoryNotFoundException", 400)
    assert code(lambda: ecr.put_image_scanning_configuration(
        repositoryName=missing, imageScanningConfiguration={"scanOnPush": True})) == ("RepositoryNotFoundException", 400)
    assert code(lambda: ecr.put_image_tag_mutability(repositoryName=repo, imageTagMutability="SOMETIMES")) == (
        "InvalidParameterException", 400)


def test_lifecycle_policy_round_trip(ecr):
    repo = name()
    ecr.create_repository(repositoryName=repo)
    code_, status, message = error(lambda: ecr.get_lifecycle_policy(repositoryName=repo))
    assert (code_, status) == ("LifecyclePolicyNotFoundException", 400)
    assert message == (f"Lifecycle policy does not exist for the repository with name '{repo}' "
                       f"in the registry with id '{ACCOUNT}'")
    assert code(lambda: ecr.delete_lifecycle_policy(repositoryName=repo)) == ("LifecyclePolicyNotFoundException", 400)

    put = ecr.put_lifecycle_policy(repositoryName=repo, lifecyclePolicyText=LIFECYCLE)
    assert (put["registryId"], put["repositoryName"], put["lifecyclePolicyText"]) == (ACCOUNT, repo, LIFECYCLE)
    got = ecr.get_lifecycle_policy(repositoryName=repo)
    assert got["lifecyclePolicyText"] == LIFECYCLE  # the text as put, whitespace and all
    assert isinstance(got["lastEvaluatedAt"], datetime)
    bad = json.dumps({"rules": [{"rulePriority": 1, "description": "no selection or action, padded " + "x" * 60}]})
    assert code(lambda: ecr.put_lifecycle_policy(repositoryName=repo, lifecyclePolicyText=bad)) == (
        "InvalidParameterException", 400)
    assert ecr.get_lifecycle_policy(repositoryName=repo)["lifecyclePolicyText"] == LIFECYCLE

    deleted = ecr.delete_lifecycle_policy(repositoryName=repo)
    assert deleted["lifecyclePolicyText"] == LIFECYCLE
    assert code(lambda: ecr.get_lifecycle_policy(repositoryName=repo)) == ("LifecyclePolicyNotFoundException", 400)
    missing = name("missing")
    for call in (lambda: ecr.get_lifecycle_policy(repositoryName=missing),
                 lambda: ecr.delete_lifecycle_policy(repositoryName=missing),
                 lambda: ecr.put_lifecycle_policy(repositoryName=missing, lifecyclePolicyText=LIFECYCLE)):
        assert code(call) == ("RepositoryNotFoundException", 400)


def test_tags_by_repository_arn(ecr):
    repo = name()
    ecr.create_repository(repositoryName=repo, tags=[{"Key": "comfyplat:platform", "Value": "sandbox"}])
    arn = repo_arn(repo)
    ecr.tag_resource(resourceArn=arn, tags=[{"Key": "team", "Value": "art"}, {"Key": "comfyplat:platform", "Value": "x"}])
    assert tags_of(ecr, repo) == {"comfyplat:platform": "x", "team": "art"}
    assert ecr.raw["TagResource"][:1] == (200,)
    ecr.untag_resource(resourceArn=arn, tagKeys=["team", "not-there"])
    assert tags_of(ecr, repo) == {"comfyplat:platform": "x"}
    missing = repo_arn(name("missing"))
    for call in (lambda: ecr.list_tags_for_resource(resourceArn=missing),
                 lambda: ecr.tag_resource(resourceArn=missing, tags=[{"Key": "a", "Value": "b"}]),
                 lambda: ecr.untag_resource(resourceArn=missing, tagKeys=["a"])):
        assert code(call) == ("RepositoryNotFoundException", 400)
    assert code(lambda: ecr.list_tags_for_resource(resourceArn="arn:aws:s3:::a-bucket")) == (
        "InvalidParameterException", 400)


def test_tag_limits(ecr):
    """moto_patches 12: 50 tags, keys of 1-128 characters, values of at most 256."""
    fifty = [{"Key": f"k{i:02}", "Value": "v"} for i in range(50)]
    repo = name()
    ecr.create_repository(repositoryName=repo, tags=fifty)
    assert len(tags_of(ecr, repo)) == 50
    arn = repo_arn(repo)
    assert code(lambda: ecr.tag_resource(resourceArn=arn, tags=[{"Key": "one-more", "Value": "v"}])) == (
        "TooManyTagsException", 400)
    ecr.tag_resource(resourceArn=arn, tags=[{"Key": "k00", "Value": "changed"}])  # replacing is not adding
    assert len(tags_of(ecr, repo)) == 50 and tags_of(ecr, repo)["k00"] == "changed"

    too_many = name()
    assert code(lambda: ecr.create_repository(repositoryName=too_many, tags=fifty + [{"Key": "x", "Value": "y"}])) == (
        "TooManyTagsException", 400)
    assert code(lambda: ecr.describe_repositories(repositoryNames=[too_many]))[0] == "RepositoryNotFoundException"

    other = name()
    ecr.create_repository(repositoryName=other, tags=[{"Key": "k" * 128, "Value": "v" * 256}])
    for bad in ({"Key": "k" * 129, "Value": "v"}, {"Key": "k", "Value": "v" * 257}):
        assert code(lambda: ecr.tag_resource(resourceArn=repo_arn(other), tags=[bad])) == (
            "InvalidTagParameterException", 400)
        assert code(lambda: ecr.create_repository(repositoryName=name(), tags=[bad])) == (
            "InvalidTagParameterException", 400)
    assert tags_of(ecr, other) == {"k" * 128: "v" * 256}
    _, headers, body = ecr.raw["CreateRepository"]
    assert headers["X-Amzn-Errortype"] == "InvalidTagParameterException"
    assert json.loads(body)["__type"] == "InvalidTagParameterException"


def test_delete_repository(ecr):
    repo = name()
    ecr.create_repository(repositoryName=repo, tags=[{"Key": "comfyplat:platform", "Value": "del"}])
    ecr_push.push(ecr, repo, "v1", seed=1)
    code_, status, message = error(lambda: ecr.delete_repository(repositoryName=repo))
    assert (code_, status) == ("RepositoryNotEmptyException", 400)
    assert message == (f"The repository with name '{repo}' in registry with id '{ACCOUNT}' "
                       "cannot be deleted because it still contains images")
    assert code(lambda: ecr.delete_repository(repositoryName=repo, force=False)) == ("RepositoryNotEmptyException", 400)
    deleted = ecr.delete_repository(repositoryName=repo, force=True)["repository"]
    assert (deleted["repositoryName"], deleted["repositoryArn"]) == (repo, repo_arn(repo))
    assert code(lambda: ecr.describe_repositories(repositoryNames=[repo])) == ("RepositoryNotFoundException", 400)
    assert code(lambda: ecr.delete_repository(repositoryName=repo)) == ("RepositoryNotFoundException", 400)
    # a new repository of the same name starts empty, without the old tags
    ecr.create_repository(repositoryName=repo)
    assert tags_of(ecr, repo) == {} and listed(ecr, repo) == []
    ecr.delete_repository(repositoryName=repo)  # empty: no force needed


# --------------------------------------------------------------------------
# images: digests, PutImage rules, tag moves (moto_patches 9, 10)
# --------------------------------------------------------------------------


def test_digest_is_the_sha256_of_the_manifest_bytes(ecr):
    repo = name()
    ecr.create_repository(repositoryName=repo)
    image = ecr_push.build_image(seed=11)
    pushed = ecr_push.push(ecr, repo, "v1", seed=11)
    expected = "sha256:" + hashlib.sha256(image.manifest.encode("utf-8")).hexdigest()
    assert pushed["imageId"] == {"imageDigest": expected, "imageTag": "v1"}
    assert (pushed["imageManifest"], pushed["imageManifestMediaType"]) == (image.manifest, ecr_push.DOCKER_MANIFEST)
    assert (pushed["registryId"], pushed["repositoryName"]) == (ACCOUNT, repo)
    detail = image_of(ecr, repo, "v1")
    assert (detail["imageDigest"], detail["imageTags"], detail["registryId"], detail["repositoryName"]) == (
        expected, ["v1"], ACCOUNT, repo)
    assert detail["imageManifestMediaType"] == ecr_push.DOCKER_MANIFEST
    assert abs(detail["imagePushedAt"] - datetime.now(timezone.utc)) < timedelta(minutes=1)
    [by_digest] = ecr.describe_images(repositoryName=repo, imageIds=[{"imageDigest": expected}])["imageDetails"]
    assert by_digest["imageTags"] == ["v1"]
    # the same JSON, other bytes (another indentation): another digest, another image
    reformatted = json.dumps(json.loads(image.manifest))
    other = ecr.put_image(repositoryName=repo, imageManifest=reformatted, imageTag="compact")["image"]
    assert other["imageId"]["imageDigest"] == "sha256:" + hashlib.sha256(reformatted.encode()).hexdigest() != expected
    assert listed(ecr, repo) == sorted([(expected, "v1"), (other["imageId"]["imageDigest"], "compact")])
    # BatchGetImage hands back the exact bytes
    [got] = ecr.batch_get_image(repositoryName=repo, imageIds=[{"imageTag": "v1"}])["images"]
    assert got["imageManifest"] == image.manifest


def test_put_image_errors(ecr):
    repo = name()
    ecr.create_repository(repositoryName=repo)
    image = ecr_push.build_image(seed=21)
    missing = name("missing")
    assert code(lambda: ecr.put_image(repositoryName=missing, imageManifest=image.manifest, imageTag="v1")) == (
        "RepositoryNotFoundException", 400)
    assert error(lambda: ecr.put_image(repositoryName=repo, imageManifest="{not json", imageTag="v1")) == (
        "InvalidParameterException", 400, moto_patches.ECR_INVALID_JSON)
    # blobs not uploaded yet
    code_, status, message = error(lambda: ecr.put_image(repositoryName=repo, imageManifest=image.manifest,
                                                         imageTag="v1"))
    assert (code_, status) == ("LayersNotFoundException", 400)
    for digest in image.blobs:
        assert digest in message
    assert listed(ecr, repo) == []
    ecr_push.upload_blobs(ecr, repo, image)
    # a digest that is not the manifest's
    code_, status, message = error(lambda: ecr.put_image(repositoryName=repo, imageManifest=image.manifest,
                                                         imageTag="v1", imageDigest="sha256:" + "0" * 64))
    assert (code_, status) == ("ImageDigestDoesNotMatchException", 400)
    assert digest_of(image) in message
    assert listed(ecr, repo) == []
    pushed = ecr.put_image(repositoryName=repo, imageManifest=image.manifest, imageTag="v1",
                           imageDigest=digest_of(image))["image"]
    assert pushed["imageId"]["imageDigest"] == digest_of(image)


def test_immutable_tags(ecr):
    repo = name()
    ecr.create_repository(repositoryName=repo, imageTagMutability="IMMUTABLE")
    one, two = ecr_push.build_image(31), ecr_push.build_image(32)
    ecr_push.push(ecr, repo, "v1", seed=31)
    # the same manifest under the same tag again
    code_, status, message = error(lambda: ecr_push.push(ecr, repo, "v1", seed=31))
    assert (code_, status) == ("ImageAlreadyExistsException", 400)
    assert message == (f"Image with digest '{digest_of(one)}' and tag 'v1' already exists in the repository "
                       f"with name '{repo}' in registry with id '{ACCOUNT}'")
    # another manifest under a tag the repository has
    code_, status, message = error(lambda: ecr_push.push(ecr, repo, "v1", seed=32))
    assert (code_, status) == ("ImageTagAlreadyExistsException", 400)
    assert message == (f"The image tag 'v1' already exists in the '{repo}' repository and cannot be overwritten "
                       "because the repository is immutable.")
    _, headers, body = ecr.raw["PutImage"]
    assert headers["X-Amzn-Errortype"] == "ImageTagAlreadyExistsException"
    assert json.loads(body)["__type"] == "ImageTagAlreadyExistsException"
    assert image_of(ecr, repo, "v1")["imageDigest"] == digest_of(one)
    # a new tag for an image the repository has
    ecr_push.push(ecr, repo, "stable", seed=31)
    assert sorted(image_of(ecr, repo, "v1")["imageTags"]) == ["stable", "v1"]
    # untagged, again: nothing changes
    assert code(lambda: ecr_push.push(ecr, repo, None, seed=31)) == ("ImageAlreadyExistsException", 400)
    assert listed(ecr, repo) == [(digest_of(one), "stable"), (digest_of(one), "v1")]
    assert digest_of(two) not in {d for d, _ in listed(ecr, repo)}


def test_move_a_tag_by_delete_and_push(ecr):
    """What comfyplat's tests do in an IMMUTABLE repository: BatchDeleteImage of the tag, then
    PutImage of another manifest under it."""
    repo = name()
    ecr.create_repository(repositoryName=repo, imageTagMutability="IMMUTABLE")
    one, two = ecr_push.build_image(41), ecr_push.build_image(42)
    ecr_push.push(ecr, repo, "latest", seed=41)
    ecr_push.push(ecr, repo, "v1", seed=41)
    deleted = ecr.batch_delete_image(repositoryName=repo, imageIds=[{"imageTag": "latest"}])
    assert (deleted["imageIds"], deleted["failures"]) == ([{"imageDigest": digest_of(one), "imageTag": "latest"}], [])
    assert image_of(ecr, repo, "v1")["imageTags"] == ["v1"]  # the image keeps its other tag
    code_, status, message = error(lambda: image_of(ecr, repo, "latest"))
    assert (code_, status) == ("ImageNotFoundException", 400)
    assert message == (f"The image with imageId {{imageDigest:'null', imageTag:'latest'}} does not exist within "
                       f"the repository with name '{repo}' in the registry with id '{ACCOUNT}'")
    pushed = ecr_push.push(ecr, repo, "latest", seed=42)
    assert pushed["imageId"] == {"imageDigest": digest_of(two), "imageTag": "latest"}
    assert image_of(ecr, repo, "latest")["imageDigest"] == digest_of(two)
    assert listed(ecr, repo) == sorted([(digest_of(one), "v1"), (digest_of(two), "latest")])
    # removing an image's last tag removes the image
    ecr.batch_delete_image(repositoryName=repo, imageIds=[{"imageTag": "v1"}])
    assert listed(ecr, repo) == [(digest_of(two), "latest")]
    missing = ecr.batch_delete_image(repositoryName=repo, imageIds=[{"imageTag": "v1"}])
    assert missing["imageIds"] == [] and missing["failures"] == [
        {"imageId": {"imageTag": "v1"}, "failureCode": "ImageNotFound", "failureReason": "Requested image not found"}]
    assert code(lambda: ecr.batch_delete_image(repositoryName=name("missing"), imageIds=[{"imageTag": "v1"}])) == (
        "RepositoryNotFoundException", 400)


def test_mutable_push_over_a_tag_leaves_the_previous_image_untagged(ecr):
    repo = name()
    ecr.create_repository(repositoryName=repo)
    one, two = ecr_push.build_image(51), ecr_push.build_image(52)
    ecr_push.push(ecr, repo, "latest", seed=51)
    ecr_push.push(ecr, repo, "latest", seed=52)
    assert image_of(ecr, repo, "latest")["imageDigest"] == digest_of(two)
    assert listed(ecr, repo) == sorted([(digest_of(one), None), (digest_of(two), "latest")])
    assert listed(ecr, repo, filter={"tagStatus": "UNTAGGED"}) == [(digest_of(one), None)]
    assert listed(ecr, repo, filter={"tagStatus": "TAGGED"}) == [(digest_of(two), "latest")]
    [untagged] = ecr.describe_images(repositoryName=repo, filter={"tagStatus": "UNTAGGED"})["imageDetails"]
    assert untagged["imageDigest"] == digest_of(one) and "imageTags" not in untagged
    [tagged] = ecr.describe_images(repositoryName=repo, filter={"tagStatus": "TAGGED"})["imageDetails"]
    assert tagged["imageDigest"] == digest_of(two)
    deleted = ecr.batch_delete_image(repositoryName=repo, imageIds=[{"imageDigest": digest_of(one)}])
    assert (deleted["imageIds"], deleted["failures"]) == ([{"imageDigest": digest_of(one)}], [])
    assert listed(ecr, repo) == [(digest_of(two), "latest")]


def test_tag_mutability_exclusion_filters_are_wildcards(ecr):
    """moto_patches 10: exclusion filters match tags with `*` wildcards."""
    immutable, mutable = name(), name()
    ecr.create_repository(repositoryName=immutable, imageTagMutability="IMMUTABLE_WITH_EXCLUSION",
                          imageTagMutabilityExclusionFilters=[{"filterType": "WILDCARD", "filter": "dev-*"}])
    ecr.create_repository(repositoryName=mutable, imageTagMutability="MUTABLE_WITH_EXCLUSION",
                          imageTagMutabilityExclusionFilters=[{"filterType": "WILDCARD", "filter": "release-*"}])
    for repo in (immutable, mutable):
        for tag in ("dev-1", "release-1", "latest"):
            ecr_push.push(ecr, repo, tag, seed=61)
    # IMMUTABLE, except dev-*
    ecr_push.push(ecr, immutable, "dev-1", seed=62)
    assert image_of(ecr, immutable, "dev-1")["imageDigest"] == digest_of(ecr_push.build_image(62))
    for tag in ("release-1", "latest"):
        assert code(lambda: ecr_push.push(ecr, immutable, tag, seed=62)) == ("ImageTagAlreadyExistsException", 400)
    # MUTABLE, except release-*
    for tag in ("dev-1", "latest"):
        ecr_push.push(ecr, mutable, tag, seed=62)
    assert code(lambda: ecr_push.push(ecr, mutable, "release-1", seed=62)) == ("ImageTagAlreadyExistsException", 400)


def test_describe_images_errors(ecr):
    repo = name()
    ecr.create_repository(repositoryName=repo)
    ecr_push.push(ecr, repo, "v1", seed=71)
    assert code(lambda: ecr.describe_images(repositoryName=repo, imageIds=[{"imageTag": "v2"}])) == (
        "ImageNotFoundException", 400)
    assert code(lambda: ecr.describe_images(repositoryName=repo, imageIds=[{"imageDigest": "sha256:" + "1" * 64}])) == (
        "ImageNotFoundException", 400)
    missing = name("missing")
    assert code(lambda: ecr.describe_images(repositoryName=missing)) == ("RepositoryNotFoundException", 400)
    assert code(lambda: ecr.list_images(repositoryName=missing)) == ("RepositoryNotFoundException", 400)


# --------------------------------------------------------------------------
# pagination (moto_patches 11)
# --------------------------------------------------------------------------


def test_pagination_of_images(ecr):
    repo = name()
    ecr.create_repository(repositoryName=repo)
    for i in range(5):
        ecr_push.push(ecr, repo, f"v{i}", seed=80 + i)
    first = ecr.list_images(repositoryName=repo, maxResults=2)
    assert len(first["imageIds"]) == 2 and first["nextToken"]
    second = ecr.list_images(repositoryName=repo, maxResults=2, nextToken=first["nextToken"])
    third = ecr.list_images(repositoryName=repo, maxResults=2, nextToken=second["nextToken"])
    assert len(third["imageIds"]) == 1 and "nextToken" not in third
    seen = [i["imageTag"] for page in (first, second, third) for i in page["imageIds"]]
    assert sorted(seen) == [f"v{i}" for i in range(5)]
    assert "nextToken" not in ecr.list_images(repositoryName=repo)  # fewer than 100
    pages = list(ecr.get_paginator("describe_images").paginate(repositoryName=repo, PaginationConfig={"PageSize": 2}))
    assert [len(p["imageDetails"]) for p in pages] == [2, 2, 1]
    assert sorted(d["imageTags"][0] for p in pages for d in p["imageDetails"]) == [f"v{i}" for i in range(5)]
    # a token belongs to its operation; maxResults / nextToken do not go with imageIds
    assert code(lambda: ecr.describe_images(repositoryName=repo, nextToken=first["nextToken"])) == (
        "InvalidParameterException", 400)
    assert code(lambda: ecr.list_images(repositoryName=repo, nextToken="not-a-token")) == (
        "InvalidParameterException", 400)
    assert code(lambda: ecr.describe_images(repositoryName=repo, imageIds=[{"imageTag": "v1"}], maxResults=1)) == (
        "InvalidParameterException", 400)


def test_pagination_of_repositories(ecr):
    prefix = name("page")
    repos = [f"{prefix}-{i:03}" for i in range(101)]
    for repo in repos:
        ecr.create_repository(repositoryName=repo)
    try:
        first = ecr.describe_repositories()
        assert len(first["repositories"]) == 100 and first["nextToken"]  # the default page: 100
        pages = ecr.get_paginator("describe_repositories").paginate(PaginationConfig={"PageSize": 7})
        names = [r["repositoryName"] for p in pages for r in p["repositories"]]
        assert len(names) == len(set(names)) and set(repos) <= set(names)
        assert code(lambda: ecr.describe_repositories(repositoryNames=[repos[0]], maxResults=1)) == (
            "InvalidParameterException", 400)
        assert code(lambda: ecr.describe_repositories(repositoryNames=[repos[0]], nextToken=first["nextToken"])) == (
            "InvalidParameterException", 400)
        assert [r["repositoryName"] for r in ecr.describe_repositories(repositoryNames=repos[:2])["repositories"]] == (
            repos[:2])
    finally:
        for repo in repos:
            ecr.delete_repository(repositoryName=repo)


# --------------------------------------------------------------------------
# Resource Groups Tagging API (moto_patches 13)
# --------------------------------------------------------------------------


def test_tagging_api_lists_repositories_by_tag(emu, ecr):
    platform = name("rgta")
    owned = [name(), f"comfyplat/{name()}"]
    for repo in owned:
        ecr.create_repository(repositoryName=repo, tags=[{"Key": "comfyplat:platform", "Value": platform}])
    other = name()
    ecr.create_repository(repositoryName=other, tags=[{"Key": "comfyplat:platform", "Value": "someone-else"}])
    untagged = name()
    ecr.create_repository(repositoryName=untagged)
    west = recording("resourcegroupstaggingapi", emu)

    def found(rgta, **kwargs):
        pages = rgta.get_paginator("get_resources").paginate(
            TagFilters=[{"Key": "comfyplat:platform", "Values": [platform]}], **kwargs)
        return {m["ResourceARN"]: m["Tags"] for p in pages for m in p["ResourceTagMappingList"]}

    expected = {repo_arn(r): [{"Key": "comfyplat:platform", "Value": platform}] for r in owned}
    assert found(west, ResourceTypeFilters=["ecr:repository"]) == expected
    assert found(west, ResourceTypeFilters=["ecr"]) == expected
    assert found(west) == expected
    assert found(west, ResourceTypeFilters=["s3"]) == {}
    assert found(recording("resourcegroupstaggingapi", emu, region="eu-west-1")) == {}  # ECR is regional
    assert platform in west.get_tag_values(Key="comfyplat:platform")["TagValues"]
    # TagResources / UntagResources reach the repository's tags
    out = west.tag_resources(ResourceARNList=[repo_arn(untagged)], Tags={"comfyplat:platform": platform})
    assert out["FailedResourcesMap"] == {}
    assert tags_of(ecr, untagged) == {"comfyplat:platform": platform}
    assert repo_arn(untagged) in found(west, ResourceTypeFilters=["ecr:repository"])
    west.untag_resources(ResourceARNList=[repo_arn(untagged)], TagKeys=["comfyplat:platform"])
    assert tags_of(ecr, untagged) == {}
    # a deleted repository is not listed any more
    ecr.delete_repository(repositoryName=owned[0])
    assert set(found(west, ResourceTypeFilters=["ecr:repository"])) == {repo_arn(owned[1])}


# --------------------------------------------------------------------------
# IAM: may the Karpenter node role pull from ECR? (moto_patches 14)
# --------------------------------------------------------------------------


def statements(document: dict[str, Any]) -> list[dict[str, Any]]:
    s = document["Statement"]
    return [s] if isinstance(s, dict) else s


def allowed_actions(document: dict[str, Any]) -> set[str]:
    out: set[str] = set()
    for s in statements(document):
        if s["Effect"] == "Allow":
            out.update([s["Action"]] if isinstance(s["Action"], str) else s["Action"])
    return out


def test_node_role_may_pull_from_ecr(emu, iam):
    attached = {p["PolicyName"]: p["PolicyArn"]
                for p in iam.list_attached_role_policies(RoleName=NODE_ROLE)["AttachedPolicies"]}
    assert attached["AmazonEC2ContainerRegistryReadOnly"] == MANAGED + "AmazonEC2ContainerRegistryReadOnly"
    policy = iam.get_policy(PolicyArn=attached["AmazonEC2ContainerRegistryReadOnly"])["Policy"]
    assert (policy["Path"], policy["IsAttachable"], policy["AttachmentCount"] >= 1) == ("/", True, True)
    version = iam.get_policy_version(PolicyArn=policy["Arn"], VersionId=policy["DefaultVersionId"])["PolicyVersion"]
    assert version["IsDefaultVersion"] is True and version["VersionId"] == policy["DefaultVersionId"]
    assert PULL_ACTIONS <= allowed_actions(version["Document"])
    # on the wire the document is URL-encoded, as IAM sends it
    body = iam.raw["GetPolicyVersion"][2]
    encoded = body.split("<Document>", 1)[1].split("</Document>", 1)[0]
    assert encoded.startswith("%7B") and json.loads(urllib.parse.unquote(encoded)) == version["Document"]
    # the seeded inline policy is readable too (and grants no ECR pull)
    assert iam.list_role_policies(RoleName=NODE_ROLE)["PolicyNames"] == ["platform-team-existing"]
    inline = iam.get_role_policy(RoleName=NODE_ROLE, PolicyName="platform-team-existing")
    assert not PULL_ACTIONS & allowed_actions(inline["PolicyDocument"])
    assert iam.raw["GetRolePolicy"][2].count("%7B") >= 1
    assert code(lambda: iam.get_role_policy(RoleName=NODE_ROLE, PolicyName="nope")) == ("NoSuchEntity", 404)


@pytest.mark.parametrize("policy_name, pull", [
    ("AmazonEC2ContainerRegistryReadOnly", True),
    ("AmazonEC2ContainerRegistryPullOnly", True),
    ("AmazonEC2ContainerRegistryPowerUser", True),
    ("AmazonEC2ContainerRegistryFullAccess", False),  # ecr:* rather than the actions by name
])
def test_ecr_managed_policies_attach_and_read_back(iam, policy_name, pull):
    role = name("node-role")
    iam.create_role(RoleName=role, AssumeRolePolicyDocument=json.dumps({
        "Version": "2012-10-17",
        "Statement": [{"Effect": "Allow", "Principal": {"Service": "ec2.amazonaws.com"}, "Action": "sts:AssumeRole"}]}))
    arn = MANAGED + policy_name
    iam.attach_role_policy(RoleName=role, PolicyArn=arn)
    assert iam.list_attached_role_policies(RoleName=role)["AttachedPolicies"] == [
        {"PolicyName": policy_name, "PolicyArn": arn}]
    policy = iam.get_policy(PolicyArn=arn)["Policy"]
    document = iam.get_policy_version(PolicyArn=arn, VersionId=policy["DefaultVersionId"])["PolicyVersion"]["Document"]
    actions = allowed_actions(document)
    assert (PULL_ACTIONS <= actions) is pull
    assert pull or "ecr:*" in actions
    iam.detach_role_policy(RoleName=role, PolicyArn=arn)
    iam.delete_role(RoleName=role)


def test_missing_iam_entities(iam):
    assert code(lambda: iam.get_policy(PolicyArn=MANAGED + "AmazonEC2ContainerRegistryNope")) == ("NoSuchEntity", 404)
    assert code(lambda: iam.get_policy_version(PolicyArn=MANAGED + "AmazonEC2ContainerRegistryPullOnly",
                                               VersionId="v99")) == ("NoSuchEntity", 404)
    assert code(lambda: iam.list_attached_role_policies(RoleName=name("no-role"))) == ("NoSuchEntity", 404)


# --------------------------------------------------------------------------
# ecr_push.py
# --------------------------------------------------------------------------


def run_push(emu: dict, *args: str) -> tuple[int, dict[str, Any] | str]:
    p = subprocess.run([sys.executable, os.path.join(HERE, "ecr_push.py"), "--endpoint", emu["endpoint"], *args],
                       env=CLEAN_ENV, capture_output=True, text=True, timeout=60)
    if p.returncode in (0, 1):
        lines = p.stdout.strip().splitlines()
        assert len(lines) == 1, p.stdout + p.stderr
        return p.returncode, json.loads(lines[0])
    return p.returncode, p.stderr


@pytest.mark.parametrize("fmt", ["docker", "oci"])
def test_helper_builds_a_valid_image(fmt):
    image = ecr_push.build_image(seed=7, fmt=fmt)
    manifest_type, config_type, layer_type = ecr_push.FORMATS[fmt]
    manifest = json.loads(image.manifest)
    assert (manifest["schemaVersion"], manifest["mediaType"], image.media_type) == (2, manifest_type, manifest_type)
    [layer] = manifest["layers"]
    config = manifest["config"]
    assert (config["mediaType"], layer["mediaType"]) == (config_type, layer_type)
    assert list(image.blobs) == [config["digest"], layer["digest"]]
    for descriptor in (config, layer):
        blob = image.blobs[descriptor["digest"]]
        assert descriptor["digest"] == "sha256:" + hashlib.sha256(blob).hexdigest()
        assert descriptor["size"] == len(blob)
    tar = gzip.decompress(image.blobs[layer["digest"]])
    with tarfile.open(fileobj=io.BytesIO(tar)) as t:
        [member] = t.getmembers()
        assert t.extractfile(member).read() == b"comfyplat test layer, seed 7\n"
    image_config = json.loads(image.blobs[config["digest"]])
    assert image_config["rootfs"] == {"type": "layers", "diff_ids": ["sha256:" + hashlib.sha256(tar).hexdigest()]}
    assert (image_config["os"], image_config["architecture"]) == ("linux", "amd64")
    # deterministic per seed, different across seeds
    assert ecr_push.build_image(seed=7, fmt=fmt) == image
    assert ecr_push.build_image(seed=8, fmt=fmt).digest != image.digest
    assert image.digest == digest_of(image)


def test_helper_command_line(emu, ecr):
    repo = name()
    ecr.create_repository(repositoryName=repo, imageTagMutability="IMMUTABLE")
    rc, out = run_push(emu, "--repository", repo, "--tag", "v1", "--layer-seed", "3")
    image = ecr_push.build_image(3)
    assert rc == 0, out
    assert out == {"digest": image.digest, "repository": repo, "tag": "v1", "mediaType": ecr_push.DOCKER_MANIFEST,
                   "manifest": image.manifest}
    assert image_of(ecr, repo, "v1")["imageDigest"] == image.digest
    check = ecr.batch_check_layer_availability(repositoryName=repo, layerDigests=list(image.blobs))
    assert check["failures"] == [] and {(x["layerDigest"], x["layerSize"]) for x in check["layers"]} == {
        (d, len(b)) for d, b in image.blobs.items()}
    # refusals: JSON on stdout, exit 1
    rc, out = run_push(emu, "--repository", repo, "--tag", "v1", "--layer-seed", "4")
    assert rc == 1 and out["error"]["code"] == "ImageTagAlreadyExistsException"
    assert (out["error"]["status"], out["error"]["operation"]) == (400, "PutImage")
    rc, out = run_push(emu, "--repository", repo, "--tag", "v1", "--layer-seed", "3")
    assert rc == 1 and out["error"]["code"] == "ImageAlreadyExistsException"
    rc, out = run_push(emu, "--repository", name("missing"), "--tag", "v1")
    assert rc == 1 and out["error"]["code"] == "RepositoryNotFoundException"
    # the delete + push way to move the tag
    ecr.batch_delete_image(repositoryName=repo, imageIds=[{"imageTag": "v1"}])
    rc, out = run_push(emu, "--repository", repo, "--tag", "v1", "--layer-seed", "4")
    assert rc == 0 and out["digest"] == ecr_push.build_image(4).digest == image_of(ecr, repo, "v1")["imageDigest"]
    # untagged, and OCI media types
    rc, out = run_push(emu, "--repository", repo, "--layer-seed", "5", "--format", "oci")
    assert rc == 0 and out["tag"] is None and out["mediaType"] == ecr_push.OCI_MANIFEST
    [detail] = ecr.describe_images(repositoryName=repo, imageIds=[{"imageDigest": out["digest"]}])["imageDetails"]
    assert "imageTags" not in detail and detail["imageManifestMediaType"] == ecr_push.OCI_MANIFEST


def test_helper_only_talks_to_loopback(emu):
    for endpoint in ("https://api.ecr.us-west-2.amazonaws.com", "http://10.0.0.1:5000", "127.0.0.1:5000"):
        p = subprocess.run([sys.executable, os.path.join(HERE, "ecr_push.py"), "--endpoint", endpoint,
                            "--repository", "x", "--tag", "t"], env=CLEAN_ENV, capture_output=True, text=True,
                           timeout=60)
        assert p.returncode == 2 and "loopback" in p.stderr, (endpoint, p.stderr)


# --------------------------------------------------------------------------
# the aws CLI as an independent client
# --------------------------------------------------------------------------


def test_aws_cli(emu, ecr, iam):
    """Every call above through the pinned CLI (its own botocore parses what the emulator
    serves). Calls that do not depend on each other run concurrently, in phases."""
    aws = os.path.join(os.path.dirname(sys.executable), "aws")
    assert os.access(aws, os.X_OK), f"the aws CLI is missing from the virtualenv: {aws}"
    env = {**CLEAN_ENV, "AWS_ENDPOINT_URL": emu["endpoint"], "AWS_DEFAULT_REGION": REGION,
           "AWS_MAX_ATTEMPTS": "1", "AWS_PAGER": ""}

    def run_all(*commands: list[str]) -> list[tuple[int, Any]]:
        procs = [subprocess.Popen([aws, *args, "--output", "json"], env=env, text=True,
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE) for args in commands]
        out = []
        for p in procs:
            stdout, stderr = p.communicate(timeout=120)
            out.append((p.returncode, json.loads(stdout) if p.returncode == 0 and stdout.strip() else stderr))
        return out

    def ok(result: tuple[int, Any]) -> Any:
        assert result[0] == 0, result[1]
        return result[1]

    def failed(result: tuple[int, Any], error_code: str) -> None:
        assert result[0] != 0 and f"({error_code})" in result[1], result

    a, b, platform = name("cli"), name("cli"), name("cli-platform")
    one, two = ecr_push.build_image(91), ecr_push.build_image(92)

    # 1: create, and a missing repository
    created_a, created_b, missing = run_all(
        ["ecr", "create-repository", "--repository-name", a, "--image-tag-mutability", "IMMUTABLE",
         "--image-scanning-configuration", "scanOnPush=true",
         "--encryption-configuration", f"encryptionType=KMS,kmsKey={KMS_KEY}",
         "--tags", f"Key=comfyplat:platform,Value={platform}"],
        ["ecr", "create-repository", "--repository-name", b],
        ["ecr", "describe-repositories", "--repository-names", name("missing")],
    )
    ra, rb = ok(created_a)["repository"], ok(created_b)["repository"]
    assert (ra["repositoryArn"], ra["imageTagMutability"], ra["imageScanningConfiguration"],
            ra["encryptionConfiguration"]) == (repo_arn(a), "IMMUTABLE", {"scanOnPush": True},
                                               {"encryptionType": "KMS", "kmsKey": KMS_KEY})
    assert (rb["repositoryUri"], rb["encryptionConfiguration"], rb["imageTagMutability"]) == (
        f"{ACCOUNT}.dkr.ecr.{REGION}.amazonaws.com/{b}", {"encryptionType": "AES256"}, "MUTABLE")
    failed(missing, "RepositoryNotFoundException")
    for image in (one, two):
        ecr_push.upload_blobs(ecr, a, image)
    readonly = MANAGED + "AmazonEC2ContainerRegistryReadOnly"
    version_id = iam.get_policy(PolicyArn=readonly)["Policy"]["DefaultVersionId"]

    # 2: push, settings, policy, tags; IAM reads
    (put, lifecycle_put, no_lifecycle, tagged, mutability, scanning,
     attached, policy, version, inline_names, inline) = run_all(
        ["ecr", "put-image", "--repository-name", a, "--image-tag", "v1", "--image-manifest", one.manifest],
        ["ecr", "put-lifecycle-policy", "--repository-name", b, "--lifecycle-policy-text", LIFECYCLE],
        ["ecr", "get-lifecycle-policy", "--repository-name", a],
        ["ecr", "tag-resource", "--resource-arn", repo_arn(b), "--tags", "Key=team,Value=art"],
        ["ecr", "put-image-tag-mutability", "--repository-name", b, "--image-tag-mutability", "IMMUTABLE"],
        ["ecr", "put-image-scanning-configuration", "--repository-name", b,
         "--image-scanning-configuration", "scanOnPush=true"],
        ["iam", "list-attached-role-policies", "--role-name", NODE_ROLE],
        ["iam", "get-policy", "--policy-arn", readonly],
        ["iam", "get-policy-version", "--policy-arn", readonly, "--version-id", version_id],
        ["iam", "list-role-policies", "--role-name", NODE_ROLE],
        ["iam", "get-role-policy", "--role-name", NODE_ROLE, "--policy-name", "platform-team-existing"],
    )
    assert ok(put)["image"]["imageId"] == {"imageDigest": one.digest, "imageTag": "v1"}
    assert ok(lifecycle_put)["lifecyclePolicyText"] == LIFECYCLE
    failed(no_lifecycle, "LifecyclePolicyNotFoundException")
    ok(tagged)
    assert ok(mutability)["imageTagMutability"] == "IMMUTABLE"
    assert ok(scanning)["imageScanningConfiguration"] == {"scanOnPush": True}
    assert readonly in [p["PolicyArn"] for p in ok(attached)["AttachedPolicies"]]
    assert ok(policy)["Policy"]["DefaultVersionId"] == version_id
    assert PULL_ACTIONS <= allowed_actions(ok(version)["PolicyVersion"]["Document"])
    assert ok(inline_names)["PolicyNames"] == ["platform-team-existing"]
    assert statements(ok(inline)["PolicyDocument"])[0]["Action"] == "ec2:DescribeInstances"

    # 3: refusals and reads
    (other_manifest, same_again, described, no_such_tag, images, paged, lifecycle_got, tags_b, repos,
     not_empty, resources) = run_all(
        ["ecr", "put-image", "--repository-name", a, "--image-tag", "v1", "--image-manifest", two.manifest],
        ["ecr", "put-image", "--repository-name", a, "--image-tag", "v1", "--image-manifest", one.manifest],
        ["ecr", "describe-images", "--repository-name", a, "--image-ids", "imageTag=v1"],
        ["ecr", "describe-images", "--repository-name", a, "--image-ids", "imageTag=nope"],
        ["ecr", "list-images", "--repository-name", a],
        ["ecr", "describe-repositories", "--page-size", "1"],  # the CLI follows nextToken
        ["ecr", "get-lifecycle-policy", "--repository-name", b],
        ["ecr", "list-tags-for-resource", "--resource-arn", repo_arn(b)],
        ["ecr", "describe-repositories", "--repository-names", a, b],
        ["ecr", "delete-repository", "--repository-name", a],
        ["resourcegroupstaggingapi", "get-resources", "--tag-filters", f"Key=comfyplat:platform,Values={platform}",
         "--resource-type-filters", "ecr:repository"],
    )
    failed(other_manifest, "ImageTagAlreadyExistsException")
    failed(same_again, "ImageAlreadyExistsException")
    [detail] = ok(described)["imageDetails"]
    assert (detail["imageDigest"], detail["imageTags"]) == (one.digest, ["v1"])
    failed(no_such_tag, "ImageNotFoundException")
    assert ok(images)["imageIds"] == [{"imageDigest": one.digest, "imageTag": "v1"}]
    assert {a, b} <= {r["repositoryName"] for r in ok(paged)["repositories"]}
    assert ok(lifecycle_got)["lifecyclePolicyText"] == LIFECYCLE
    assert ok(tags_b)["tags"] == [{"Key": "team", "Value": "art"}]
    got = {r["repositoryName"]: r for r in ok(repos)["repositories"]}
    assert got[b]["imageTagMutability"] == "IMMUTABLE" and got[b]["imageScanningConfiguration"] == {"scanOnPush": True}
    failed(not_empty, "RepositoryNotEmptyException")
    assert ok(resources)["ResourceTagMappingList"] == [
        {"ResourceARN": repo_arn(a), "Tags": [{"Key": "comfyplat:platform", "Value": platform}]}]

    # 4: move the tag (delete), untag, drop the lifecycle policy
    deleted, untagged, lifecycle_deleted = run_all(
        ["ecr", "batch-delete-image", "--repository-name", a, "--image-ids", "imageTag=v1"],
        ["ecr", "untag-resource", "--resource-arn", repo_arn(b), "--tag-keys", "team"],
        ["ecr", "delete-lifecycle-policy", "--repository-name", b],
    )
    assert ok(deleted) == {"imageIds": [{"imageDigest": one.digest, "imageTag": "v1"}], "failures": []}
    ok(untagged)
    assert ok(lifecycle_deleted)["lifecyclePolicyText"] == LIFECYCLE

    # 5: ... and push the other manifest under it
    moved, lifecycle_gone, no_tags = run_all(
        ["ecr", "put-image", "--repository-name", a, "--image-tag", "v1", "--image-manifest", two.manifest],
        ["ecr", "delete-lifecycle-policy", "--repository-name", b],
        ["ecr", "list-tags-for-resource", "--resource-arn", repo_arn(b)],
    )
    assert ok(moved)["image"]["imageId"] == {"imageDigest": two.digest, "imageTag": "v1"}
    failed(lifecycle_gone, "LifecyclePolicyNotFoundException")
    assert ok(no_tags)["tags"] == []

    # 6: read back; delete the empty one
    described, deleted_b = run_all(
        ["ecr", "describe-images", "--repository-name", a, "--image-ids", "imageTag=v1"],
        ["ecr", "delete-repository", "--repository-name", b],
    )
    assert ok(described)["imageDetails"][0]["imageDigest"] == two.digest
    assert ok(deleted_b)["repository"]["repositoryName"] == b

    # 7: delete the other with its image, then it is gone
    [forced] = run_all(["ecr", "delete-repository", "--repository-name", a, "--force"])
    assert ok(forced)["repository"]["repositoryName"] == a
    [gone] = run_all(["ecr", "describe-repositories", "--repository-names", a])
    failed(gone, "RepositoryNotFoundException")
