"""Tests of the emulator's CloudFront (moto + moto_patches 3-7), with boto3 against
aws_emulator.py --seed none: versions (ETag / If-Match), deployment status driven by reads
(COMFYPLAT_EMULATOR_CLOUDFRONT_DEPLOY_READS), DeleteDistribution's preconditions,
CallerReference rules, the DistributionConfig round trip and the XML shapes the AWS SDK for
Rust parses, ListDistributions summaries and tagging; and where the Resource Groups Tagging
API lists distributions and buckets (moto_patches 8).

Run with:  .venv/bin/python -m pytest tests/emulators -q
"""

from __future__ import annotations

import os
import sys
from typing import Any, Callable

import pytest
from botocore.exceptions import ClientError

import test_emulators
from test_emulators import client, start_emulator

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import moto_patches  # noqa: E402

READS_ENV = moto_patches.CLOUDFRONT_DEPLOY_READS_ENV
XMLNS = 'xmlns="http://cloudfront.amazonaws.com/doc/2020-05-31/"'
ALL_METHODS = ["GET", "HEAD", "OPTIONS", "PUT", "PATCH", "POST", "DELETE"]
ACM_ARN = "arn:aws:acm:us-east-1:123456789012:certificate/0b0c2a8e-1111-2222-3333-444455556666"
CACHING_DISABLED = "4135ea2d-6df8-44a3-9df3-4b5a84be39ad"
ALL_VIEWER = "216adef6-5c7f-47e4-b989-5492eafa07d3"


# --------------------------------------------------------------------------
# fixtures and helpers
# --------------------------------------------------------------------------


def start_with_reads(tmp, reads: str | None):
    """An emulator (--seed none) whose CloudFront deploys after `reads` reads (None: unset)."""
    with pytest.MonkeyPatch.context() as mp:
        if reads is None:
            mp.delitem(test_emulators.CLEAN_ENV, READS_ENV, raising=False)
        else:
            mp.setitem(test_emulators.CLEAN_ENV, READS_ENV, reads)
        return start_emulator(tmp, seed="none")


@pytest.fixture(scope="module")
def emu(tmp_path_factory):
    proc, info = start_with_reads(tmp_path_factory.mktemp("cloudfront"), None)  # the default: 2
    yield info
    assert proc.stop() == 0


@pytest.fixture
def cf(emu):
    return cloudfront(emu)


def cloudfront(emu):
    c = client("cloudfront", emu["endpoint"], region="us-east-1")
    c.raw = {}  # operation name -> (status, headers, body) of its last answer

    def keep(http_response, model, **_):
        c.raw[model.name] = (http_response.status_code, dict(http_response.headers),
                             http_response.content.decode())

    c.meta.events.register("after-call.cloudfront.*", keep)
    return c


def error(call: Callable[[], Any]) -> tuple[str, int, str]:
    with pytest.raises(ClientError) as e:
        call()
    r = e.value.response
    return r["Error"]["Code"], r["ResponseMetadata"]["HTTPStatusCode"], r["Error"]["Message"]


def config(ref: str, **changes: Any) -> dict[str, Any]:
    """A DistributionConfig like comfyplat's: an ALB origin behind CloudFront with a secret
    header, a custom certificate, managed cache and origin-request policies."""
    out = {
        "CallerReference": ref,
        "Comment": f"comfyplat {ref}",
        "Enabled": True,
        "PriceClass": "PriceClass_100",
        "HttpVersion": "http2and3",
        "IsIPV6Enabled": False,
        "WebACLId": "",
        "Aliases": {"Quantity": 1, "Items": ["comfy.example.com"]},
        "ViewerCertificate": {"ACMCertificateArn": ACM_ARN, "SSLSupportMethod": "sni-only",
                              "MinimumProtocolVersion": "TLSv1.2_2021"},
        "Origins": {"Quantity": 1, "Items": [{
            "Id": "alb", "DomainName": "k8s-comfyui-comfyui-0123456789.us-west-2.elb.amazonaws.com",
            "ConnectionAttempts": 2, "ConnectionTimeout": 5,
            "CustomHeaders": {"Quantity": 1, "Items": [{"HeaderName": "X-Origin-Verify",
                                                        "HeaderValue": "s3cret"}]},
            "CustomOriginConfig": {"HTTPPort": 80, "HTTPSPort": 443, "OriginProtocolPolicy": "http-only",
                                   "OriginReadTimeout": 60, "OriginKeepaliveTimeout": 10,
                                   "OriginSslProtocols": {"Quantity": 1, "Items": ["TLSv1.2"]}}}]},
        "DefaultCacheBehavior": {
            "TargetOriginId": "alb", "ViewerProtocolPolicy": "redirect-to-https",
            "AllowedMethods": {"Quantity": 7, "Items": ALL_METHODS,
                               "CachedMethods": {"Quantity": 2, "Items": ["GET", "HEAD"]}},
            "Compress": True, "CachePolicyId": CACHING_DISABLED, "OriginRequestPolicyId": ALL_VIEWER},
    }
    out.update(changes)
    return out


def create(cf, ref: str, tags: dict[str, str] | None = None, **changes: Any) -> dict[str, Any]:
    return cf.create_distribution_with_tags(DistributionConfigWithTags={
        "DistributionConfig": config(ref, **changes),
        "Tags": {"Items": [{"Key": k, "Value": v} for k, v in (tags or {"comfyplat:platform": "sandbox"}).items()]}})


def status(cf, dist_id: str) -> str:
    return cf.get_distribution(Id=dist_id)["Distribution"]["Status"]


def deployed(cf, dist_id: str, max_reads: int = 10) -> int:
    """Read until Deployed; the number of reads it took."""
    for n in range(1, max_reads + 1):
        if status(cf, dist_id) == "Deployed":
            return n
    raise AssertionError(f"{dist_id} not Deployed after {max_reads} reads")


def disable(cf, dist_id: str) -> str:
    """Disable the distribution; its new ETag."""
    got = cf.get_distribution_config(Id=dist_id)
    cfg = got["DistributionConfig"]
    cfg["Enabled"] = False
    return cf.update_distribution(Id=dist_id, IfMatch=got["ETag"], DistributionConfig=cfg)["ETag"]


def assert_contains(sent: Any, got: Any, path: str = "") -> None:
    """Everything sent comes back (extra members CloudFront adds are allowed)."""
    if isinstance(sent, dict):
        assert isinstance(got, dict), f"{path}: {got!r}"
        for key, value in sent.items():
            assert key in got, f"{path}.{key} missing in {got!r}"
            assert_contains(value, got[key], f"{path}.{key}")
    elif isinstance(sent, list):
        assert isinstance(got, list) and len(got) == len(sent), f"{path}: {got!r} != {sent!r}"
        for i, (s, g) in enumerate(zip(sent, got)):
            assert_contains(s, g, f"{path}[{i}]")
    else:
        assert got == sent, f"{path}: {got!r} != {sent!r}"


# --------------------------------------------------------------------------
# 3, 4: versions and deployment
# --------------------------------------------------------------------------


def test_create_with_tags_is_in_progress_until_read_twice(cf):
    created = create(cf, "deploy-1", {"comfyplat:platform": "sandbox", "team": "art"})
    dist = created["Distribution"]
    status_code, headers, body = cf.raw["CreateDistributionWithTags"]
    assert status_code == 201 and headers["ETag"] == created["ETag"] and created["ETag"]
    assert headers["Location"] == f"https://cloudfront.amazonaws.com/2020-05-31/distribution/{dist['Id']}"
    assert dist["Status"] == "InProgress"
    assert dist["ARN"] == f"arn:aws:cloudfront::123456789012:distribution/{dist['Id']}"
    assert dist["DomainName"].endswith(".cloudfront.net")
    # default N=2: the first read still answers InProgress, the second Deployed, for good
    first = cf.get_distribution(Id=dist["Id"])
    assert first["Distribution"]["Status"] == "InProgress" and first["ETag"] == created["ETag"]
    assert [status(cf, dist["Id"]) for _ in range(3)] == ["Deployed"] * 3
    assert cf.raw["GetDistribution"][1]["ETag"] == created["ETag"]  # deploying keeps the version
    tags = cf.list_tags_for_resource(Resource=dist["ARN"])["Tags"]["Items"]
    assert sorted((t["Key"], t["Value"]) for t in tags) == [("comfyplat:platform", "sandbox"), ("team", "art")]


def test_every_kind_of_read_counts(cf):
    dist_id = create(cf, "deploy-2")["Distribution"]["Id"]
    assert cf.get_distribution_config(Id=dist_id)["ETag"]  # read 1
    listed = {d["Id"]: d for d in cf.list_distributions()["DistributionList"]["Items"]}  # read 2
    assert listed[dist_id]["Status"] == "Deployed"
    dist_id = create(cf, "deploy-3")["Distribution"]["Id"]
    assert cf.get_distribution_config(Id=dist_id)["DistributionConfig"]["Comment"] == "comfyplat deploy-3"
    assert status(cf, dist_id) == "Deployed"


def test_update_needs_the_current_etag_and_starts_a_new_deployment(cf):
    created = create(cf, "update-1")
    dist_id, etag1 = created["Distribution"]["Id"], created["ETag"]
    assert deployed(cf, dist_id) == 2
    cfg = config("update-1")
    assert error(lambda: cf.update_distribution(Id=dist_id, DistributionConfig=cfg))[:2] == (
        "InvalidIfMatchVersion", 400)
    assert error(lambda: cf.update_distribution(Id=dist_id, IfMatch="E2QWRUHAPOMQZL", DistributionConfig=cfg)) == (
        "PreconditionFailed", 412, moto_patches.PRECONDITION_FAILED)
    assert error(lambda: cf.update_distribution(Id="E000000000000", IfMatch=etag1, DistributionConfig=cfg))[:2] == (
        "NoSuchDistribution", 404)

    # the update replaces the whole configuration
    new = config("update-1", Comment="second", Aliases={"Quantity": 0}, PriceClass="PriceClass_All",
                 ViewerCertificate={"CloudFrontDefaultCertificate": True},
                 Origins={"Quantity": 1, "Items": [{
                     "Id": "alb2", "DomainName": "k8s-other.us-west-2.elb.amazonaws.com",
                     "CustomOriginConfig": {"HTTPPort": 8080, "HTTPSPort": 443,
                                            "OriginProtocolPolicy": "http-only"}}]},
                 DefaultCacheBehavior={"TargetOriginId": "alb2", "ViewerProtocolPolicy": "https-only",
                                       "CachePolicyId": CACHING_DISABLED})
    updated = cf.update_distribution(Id=dist_id, IfMatch=etag1, DistributionConfig=new)
    etag2 = updated["ETag"]
    assert etag2 and etag2 != etag1 and cf.raw["UpdateDistribution"][1]["ETag"] == etag2
    assert updated["Distribution"]["Status"] == "InProgress"
    got = cf.get_distribution_config(Id=dist_id)
    assert got["ETag"] == etag2
    cfg2 = got["DistributionConfig"]
    assert_contains(new, cfg2)
    assert cfg2["Aliases"] == {"Quantity": 0}
    [origin] = cfg2["Origins"]["Items"]
    assert origin["CustomHeaders"] == {"Quantity": 0} and origin["Id"] == "alb2"
    behaviour = cfg2["DefaultCacheBehavior"]
    assert "OriginRequestPolicyId" not in behaviour and behaviour["Compress"] is False
    assert status(cf, dist_id) == "Deployed"  # GetDistributionConfig above was read 1
    # the old version is gone for good
    assert error(lambda: cf.update_distribution(Id=dist_id, IfMatch=etag1, DistributionConfig=new))[:2] == (
        "PreconditionFailed", 412)
    assert cf.get_distribution(Id=dist_id)["ETag"] == etag2


# --------------------------------------------------------------------------
# 5: delete
# --------------------------------------------------------------------------


def test_delete_needs_a_disabled_deployed_distribution_and_the_latest_etag(cf):
    created = create(cf, "delete-1")
    dist_id, arn, etag1 = created["Distribution"]["Id"], created["Distribution"]["ARN"], created["ETag"]
    deployed(cf, dist_id)
    assert error(lambda: cf.delete_distribution(Id=dist_id, IfMatch=etag1)) == (
        "DistributionNotDisabled", 409, moto_patches.DISTRIBUTION_NOT_DISABLED)
    etag2 = disable(cf, dist_id)
    # disabled but still InProgress
    assert error(lambda: cf.delete_distribution(Id=dist_id, IfMatch=etag2))[:2] == ("DistributionNotDisabled", 409)
    assert deployed(cf, dist_id) == 2
    assert error(lambda: cf.delete_distribution(Id=dist_id, IfMatch=etag1)) == (
        "PreconditionFailed", 412, moto_patches.PRECONDITION_FAILED)
    assert error(lambda: cf.delete_distribution(Id=dist_id))[:2] == ("InvalidIfMatchVersion", 400)
    cf.delete_distribution(Id=dist_id, IfMatch=etag2)
    assert cf.raw["DeleteDistribution"][0] == 204
    assert error(lambda: cf.get_distribution(Id=dist_id))[:2] == ("NoSuchDistribution", 404)
    assert error(lambda: cf.get_distribution_config(Id=dist_id))[:2] == ("NoSuchDistribution", 404)
    assert error(lambda: cf.delete_distribution(Id=dist_id, IfMatch=etag2))[:2] == ("NoSuchDistribution", 404)
    assert dist_id not in [d["Id"] for d in cf.list_distributions()["DistributionList"].get("Items", [])]
    # its tags went with it
    assert error(lambda: cf.list_tags_for_resource(Resource=arn))[:2] == ("NoSuchResource", 404)
    assert error(lambda: cf.tag_resource(Resource=arn, Tags={"Items": [{"Key": "k", "Value": "v"}]}))[:2] == (
        "NoSuchResource", 404)
    # the CallerReference is free again
    create(cf, "delete-1")


# --------------------------------------------------------------------------
# 6: CallerReference
# --------------------------------------------------------------------------


def test_caller_reference_is_unique_and_cannot_change(cf):
    created = create(cf, "ref-1")
    dist_id, etag = created["Distribution"]["Id"], created["ETag"]
    code, http, message = error(lambda: create(cf, "ref-1", Comment="another"))
    assert (code, http) == ("DistributionAlreadyExists", 409)
    assert message.endswith(f"Already exists: {dist_id}"), message
    assert error(lambda: cf.create_distribution(DistributionConfig=config("ref-1")))[:2] == (
        "DistributionAlreadyExists", 409)
    assert error(lambda: cf.update_distribution(Id=dist_id, IfMatch=etag,
                                                DistributionConfig=config("ref-2"))) == (
        "IllegalUpdate", 400, moto_patches.ILLEGAL_CALLER_REFERENCE_UPDATE)
    got = cf.get_distribution_config(Id=dist_id)
    assert got["ETag"] == etag and got["DistributionConfig"]["CallerReference"] == "ref-1"


# --------------------------------------------------------------------------
# 7: round trip and XML shapes
# --------------------------------------------------------------------------


def test_distribution_config_round_trip(cf):
    sent = config("round-1")
    created = create(cf, "round-1")
    dist_id = created["Distribution"]["Id"]
    from_config = cf.get_distribution_config(Id=dist_id)["DistributionConfig"]
    from_get = cf.get_distribution(Id=dist_id)["Distribution"]["DistributionConfig"]
    for got in (created["Distribution"]["DistributionConfig"], from_config, from_get):
        assert_contains(sent, got)
        assert got["ViewerCertificate"] == {
            "CloudFrontDefaultCertificate": False, "ACMCertificateArn": ACM_ARN, "SSLSupportMethod": "sni-only",
            "MinimumProtocolVersion": "TLSv1.2_2021", "Certificate": ACM_ARN, "CertificateSource": "acm"}
        behaviour = got["DefaultCacheBehavior"]
        # with a cache policy, no legacy cache settings are made up
        for legacy in ("ForwardedValues", "MinTTL", "DefaultTTL", "MaxTTL", "RealtimeLogConfigArn"):
            assert legacy not in behaviour, legacy
        assert behaviour["AllowedMethods"]["Items"] == ALL_METHODS
        assert behaviour["AllowedMethods"]["CachedMethods"] == {"Quantity": 2, "Items": ["GET", "HEAD"]}
        assert got["Staging"] is False
    # the same, field by field, for the record
    [origin] = from_config["Origins"]["Items"]
    assert (origin["Id"], origin["ConnectionAttempts"], origin["ConnectionTimeout"]) == ("alb", 2, 5)
    assert origin["CustomHeaders"] == {"Quantity": 1, "Items": [{"HeaderName": "X-Origin-Verify",
                                                                  "HeaderValue": "s3cret"}]}
    assert origin["CustomOriginConfig"] == {
        "HTTPPort": 80, "HTTPSPort": 443, "OriginProtocolPolicy": "http-only", "OriginReadTimeout": 60,
        "OriginKeepaliveTimeout": 10, "OriginSslProtocols": {"Quantity": 1, "Items": ["TLSv1.2"]}}
    assert (from_config["Comment"], from_config["Enabled"], from_config["PriceClass"], from_config["HttpVersion"],
            from_config["IsIPV6Enabled"], from_config["WebACLId"]) == (
        "comfyplat round-1", True, "PriceClass_100", "http2and3", False, "")
    assert from_config["Aliases"] == {"Quantity": 1, "Items": ["comfy.example.com"]}
    assert (from_config["DefaultCacheBehavior"]["CachePolicyId"],
            from_config["DefaultCacheBehavior"]["OriginRequestPolicyId"],
            from_config["DefaultCacheBehavior"]["Compress"]) == (CACHING_DISABLED, ALL_VIEWER, True)


def test_default_certificate_and_legacy_cache_settings(cf):
    legacy = {"TargetOriginId": "alb", "ViewerProtocolPolicy": "allow-all",
              "ForwardedValues": {"QueryString": True, "Cookies": {"Forward": "all"}},
              "MinTTL": 0, "DefaultTTL": 60, "MaxTTL": 600}
    dist_id = create(cf, "round-2", ViewerCertificate={"CloudFrontDefaultCertificate": True},
                     DefaultCacheBehavior=legacy)["Distribution"]["Id"]
    got = cf.get_distribution_config(Id=dist_id)["DistributionConfig"]
    assert got["ViewerCertificate"] == {"CloudFrontDefaultCertificate": True, "SSLSupportMethod": "vip",
                                        "MinimumProtocolVersion": "TLSv1", "CertificateSource": "cloudfront"}
    assert_contains(legacy, got["DefaultCacheBehavior"])
    assert "CachePolicyId" not in got["DefaultCacheBehavior"]


def test_xml_root_elements_and_headers(cf):
    """What a strict client (the AWS SDK for Rust) checks: root element, namespace, headers."""
    created = create(cf, "xml-1")
    dist_id = created["Distribution"]["Id"]
    cf.get_distribution_config(Id=dist_id)
    cf.get_distribution(Id=dist_id)
    cf.list_distributions()
    cf.list_tags_for_resource(Resource=created["Distribution"]["ARN"])
    error(lambda: cf.delete_distribution(Id=dist_id, IfMatch=created["ETag"]))
    roots = {"CreateDistributionWithTags": "Distribution", "GetDistributionConfig": "DistributionConfig",
             "GetDistribution": "Distribution", "ListDistributions": "DistributionList",
             "ListTagsForResource": "Tags", "DeleteDistribution": "ErrorResponse"}
    for op, root in roots.items():
        _, headers, body = cf.raw[op]
        first = body.split("?>", 1)[-1].lstrip()
        assert first.startswith(f"<{root} {XMLNS}>"), (op, body[:200])
        assert headers["Content-Type"] == "application/xml"
    for op in ("CreateDistributionWithTags", "GetDistributionConfig", "GetDistribution"):
        assert cf.raw[op][1]["ETag"] == created["ETag"], op
    body = cf.raw["DeleteDistribution"][2]
    assert "<Error><Type>Sender</Type><Code>DistributionNotDisabled</Code>" in body
    # LastModifiedTime: an ISO 8601 timestamp of the create (moto answered a fixed 2021 date)
    assert created["Distribution"]["LastModifiedTime"].year >= 2025


# --------------------------------------------------------------------------
# ListDistributions, tags
# --------------------------------------------------------------------------


def test_list_distributions_summaries(cf):
    a = create(cf, "list-a", Comment="comfyplat sandbox")
    b = create(cf, "list-b", Comment="")
    summaries = {d["Id"]: d for d in cf.list_distributions()["DistributionList"]["Items"]}
    raw_body = cf.raw["ListDistributions"][2]
    assert "<DistributionSummary>" in raw_body
    for created, comment in ((a, "comfyplat sandbox"), (b, "")):
        dist = created["Distribution"]
        s = summaries[dist["Id"]]
        assert (s["ARN"], s["DomainName"], s["Comment"], s["Enabled"], s["Staging"]) == (
            dist["ARN"], dist["DomainName"], comment, True, False)
        assert s["Status"] in ("InProgress", "Deployed")
        assert s["ETag"] == created["ETag"]
        assert [o["Id"] for o in s["Origins"]["Items"]] == ["alb"] and s["Origins"]["Quantity"] == 1
        assert s["Origins"]["Items"][0]["CustomHeaders"]["Items"][0]["HeaderName"] == "X-Origin-Verify"
        assert s["Aliases"]["Items"] == ["comfy.example.com"]


def test_tagging(cf):
    arn = create(cf, "tags-1", {"a": "1"})["Distribution"]["ARN"]

    def tags():
        return sorted((t["Key"], t["Value"]) for t in cf.list_tags_for_resource(Resource=arn)["Tags"]["Items"])

    cf.tag_resource(Resource=arn, Tags={"Items": [{"Key": "b", "Value": "2"}, {"Key": "a", "Value": "3"}]})
    assert tags() == [("a", "3"), ("b", "2")]
    cf.untag_resource(Resource=arn, TagKeys={"Items": ["a"]})
    assert tags() == [("b", "2")]
    missing = arn.rsplit("/", 1)[0] + "/E000000000000"
    assert error(lambda: cf.list_tags_for_resource(Resource=missing))[:2] == ("NoSuchResource", 404)


def test_tagging_api_lists_distributions_in_us_east_1_and_buckets_in_their_region(emu, cf):
    """moto_patches 8: GetResources in us-west-2 does not list the (global) distribution, nor
    a bucket of another region; us-east-1 lists the distribution."""
    dist_arn = create(cf, "rgta-1", {"comfyplat:platform": "rgta"})["Distribution"]["ARN"]
    buckets = {"us-west-2": "cp-rgta-west", "eu-west-1": "cp-rgta-eu"}
    for region, name in buckets.items():
        s3 = client("s3", emu["endpoint"], region=region)
        s3.create_bucket(Bucket=name, CreateBucketConfiguration={"LocationConstraint": region})
        s3.put_bucket_tagging(Bucket=name, Tagging={"TagSet": [{"Key": "comfyplat:platform", "Value": "rgta"}]})

    def found(region):
        rgta = client("resourcegroupstaggingapi", emu["endpoint"], region=region)
        pages = rgta.get_paginator("get_resources").paginate(
            TagFilters=[{"Key": "comfyplat:platform", "Values": ["rgta"]}])
        return {m["ResourceARN"] for page in pages for m in page["ResourceTagMappingList"]}

    try:
        assert found("us-west-2") == {"arn:aws:s3:::cp-rgta-west"}
        assert found("eu-west-1") == {"arn:aws:s3:::cp-rgta-eu"}
        assert found("us-east-1") == {dist_arn}
    finally:
        for region, name in buckets.items():
            client("s3", emu["endpoint"], region=region).delete_bucket(Bucket=name)


# --------------------------------------------------------------------------
# COMFYPLAT_EMULATOR_CLOUDFRONT_DEPLOY_READS
# --------------------------------------------------------------------------


def test_deploy_reads_setting():
    assert moto_patches.cloudfront_deploy_reads({}) == 2
    assert moto_patches.cloudfront_deploy_reads({READS_ENV: " "}) == 2
    assert moto_patches.cloudfront_deploy_reads({READS_ENV: "0"}) == 0
    assert moto_patches.cloudfront_deploy_reads({READS_ENV: "5"}) == 5
    for bad in ("-1", "two", "1.5"):
        with pytest.raises(ValueError, match=READS_ENV):
            moto_patches.cloudfront_deploy_reads({READS_ENV: bad})


@pytest.mark.parametrize("reads", ["0", "3"])
def test_deploy_reads_from_the_environment(tmp_path, reads):
    proc, info = start_with_reads(tmp_path, reads)
    try:
        cf = cloudfront(info)
        created = create(cf, "env-1")
        n = int(reads)
        assert created["Distribution"]["Status"] == ("Deployed" if n == 0 else "InProgress")
        dist_id = created["Distribution"]["Id"]
        assert [status(cf, dist_id) for _ in range(max(n, 1))] == ["InProgress"] * (n - 1) + ["Deployed"]
        etag = disable(cf, dist_id)
        if n == 0:  # Deployed at once: the disabled distribution can go right away
            cf.delete_distribution(Id=dist_id, IfMatch=etag)
        else:
            assert error(lambda: cf.delete_distribution(Id=dist_id, IfMatch=etag))[:2] == (
                "DistributionNotDisabled", 409)
    finally:
        assert proc.stop() == 0


def test_bad_deploy_reads_stops_the_emulator(tmp_path):
    with pytest.raises(RuntimeError, match=READS_ENV):
        start_with_reads(tmp_path, "soon")

