"""Tests of the AWS emulator (moto + sandbox seed) and the recording proxy.

Run with:  .venv/bin/python -m pytest tests/emulators -q
"""

from __future__ import annotations

import http.client
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request

import boto3
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError, ConnectionClosedError, EndpointConnectionError

HERE = os.path.dirname(os.path.abspath(__file__))
REGION = "us-west-2"

CLEAN_ENV = {
    k: v
    for k, v in os.environ.items()
    if not k.startswith("AWS_") and not k.startswith("MOTO_")
}
CLEAN_ENV.update(
    AWS_ACCESS_KEY_ID="testing",
    AWS_SECRET_ACCESS_KEY="testing",
    AWS_CONFIG_FILE=os.devnull,
    AWS_SHARED_CREDENTIALS_FILE=os.devnull,
    AWS_EC2_METADATA_DISABLED="true",
)


# --------------------------------------------------------------------------
# process helpers
# --------------------------------------------------------------------------


class Proc:
    def __init__(self, args, ready_file, log_path):
        self.ready_file = ready_file
        self.log_path = log_path
        self.log = open(log_path, "wb")
        self.popen = subprocess.Popen(
            [sys.executable, *args],
            stdout=self.log,
            stderr=subprocess.STDOUT,
            env=CLEAN_ENV,
            cwd=HERE,
        )
        self.info = None

    def wait_ready(self, timeout=60.0) -> dict:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if os.path.exists(self.ready_file):
                with open(self.ready_file) as f:
                    self.info = json.load(f)
                return self.info
            if self.popen.poll() is not None:
                break
            time.sleep(0.05)
        self.stop()
        with open(self.log_path, "rb") as f:
            tail = f.read()[-4000:].decode("utf-8", "replace")
        raise RuntimeError(f"process did not become ready: {self.popen.args}\n{tail}")

    def stop(self) -> int | None:
        if self.popen.poll() is None:
            self.popen.send_signal(signal.SIGTERM)
            try:
                self.popen.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.popen.kill()
                self.popen.wait(timeout=5)
        self.log.close()
        return self.popen.returncode


def start_emulator(tmp_path, seed="sandbox", extra=()) -> tuple[Proc, dict]:
    ready = str(tmp_path / "aws.json")
    proc = Proc(
        [
            "aws_emulator.py",
            "--port", "0",
            "--ready-file", ready,
            "--seed", seed,
            "--region", REGION,
            *extra,
        ],
        ready,
        str(tmp_path / "aws.log"),
    )
    try:
        return proc, proc.wait_ready()
    except Exception:
        proc.stop()
        raise


def start_proxy(tmp_path, upstream, name="proxy", **opts) -> tuple[Proc, dict, str]:
    ready = str(tmp_path / f"{name}.json")
    log = str(tmp_path / f"{name}.jsonl")
    args = [
        "recording_proxy.py",
        "--upstream", upstream,
        "--port", "0",
        "--ready-file", ready,
        "--log", log,
    ]
    for key, value in opts.items():
        flag = "--" + key.replace("_", "-")
        args += [flag] if value is True else [flag, str(value)]
    proc = Proc(args, ready, str(tmp_path / f"{name}.out"))
    try:
        return proc, proc.wait_ready(timeout=20), log
    except Exception:
        proc.stop()
        raise


def client(service, endpoint, retries=1, region=REGION):
    return boto3.client(
        service,
        endpoint_url=endpoint,
        region_name=region,
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
        config=Config(
            retries={"total_max_attempts": retries, "mode": "standard"},
            s3={"addressing_style": "path"},
            connect_timeout=5,
            read_timeout=30,
        ),
    )


def read_log(path) -> list[dict]:
    with open(path) as f:
        return [json.loads(line) for line in f if line.strip()]


def proxy_stats(endpoint) -> dict:
    with urllib.request.urlopen(endpoint + "/__proxy/stats", timeout=5) as r:
        return json.load(r)


def bucket_exists(s3_direct, name) -> bool:
    try:
        s3_direct.head_bucket(Bucket=name)
        return True
    except ClientError as e:
        if e.response["ResponseMetadata"]["HTTPStatusCode"] == 404:
            return False
        raise


def create_bucket(s3, name):
    return s3.create_bucket(
        Bucket=name, CreateBucketConfiguration={"LocationConstraint": REGION}
    )


# --------------------------------------------------------------------------
# fixtures
# --------------------------------------------------------------------------


@pytest.fixture(scope="module")
def emulator(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("aws")
    proc, info = start_emulator(tmp)
    yield info
    rc = proc.stop()
    assert rc == 0, f"emulator exited with {rc}"
    for path in (info["kube"]["kubeconfig"], info["kube"]["ca_file"]):
        assert not os.path.exists(os.path.dirname(path)), f"{path}: temp dir left behind"


@pytest.fixture
def proxy(tmp_path, emulator):
    proc, info, log = start_proxy(tmp_path, emulator["endpoint"])
    yield info, log
    proc.stop()


@pytest.fixture
def fault_proxy(tmp_path, emulator):
    procs = []

    def make(**opts):
        proc, info, log = start_proxy(
            tmp_path, emulator["endpoint"], name=f"proxy{len(procs)}", **opts
        )
        procs.append(proc)
        return info, log

    yield make
    for proc in procs:
        proc.stop()


# --------------------------------------------------------------------------
# emulator + seed
# --------------------------------------------------------------------------


def test_ready_file_shape(emulator):
    assert emulator["endpoint"] == f"http://127.0.0.1:{emulator['port']}"
    assert isinstance(emulator["pid"], int) and emulator["pid"] > 0
    assert emulator["port"] > 0
    kube = emulator["kube"]
    assert kube["endpoint"] == f"https://127.0.0.1:{kube['port']}"
    # without --kubeconfig the kubeconfig goes to a temp dir (removed at exit: see the fixture)
    assert os.path.isfile(kube["kubeconfig"]) and os.path.isfile(kube["ca_file"])
    assert not kube["kubeconfig"].startswith(HERE)


def test_seeded_cluster_active(emulator):
    eks = client("eks", emulator["endpoint"])
    cluster = eks.describe_cluster(name="comfyui-sandbox")["cluster"]
    assert cluster["status"] == "ACTIVE"
    assert cluster["roleArn"].endswith(":role/comfyui-sandbox-cluster-role")
    subnets = cluster["resourcesVpcConfig"]["subnetIds"]
    assert len(subnets) == 2
    ec2 = client("ec2", emulator["endpoint"])
    described = ec2.describe_subnets(SubnetIds=subnets)["Subnets"]
    assert len({s["AvailabilityZone"] for s in described}) == 2
    assert {s["VpcId"] for s in described} == {emulator["seed"]["vpc_id"]}
    vpc = ec2.describe_vpcs(VpcIds=[emulator["seed"]["vpc_id"]])["Vpcs"][0]
    assert vpc["CidrBlock"] == "10.0.0.0/16"
    assert cluster["resourcesVpcConfig"]["securityGroupIds"] == [
        emulator["seed"]["security_group_id"]
    ]


def test_seeded_node_role(emulator):
    iam = client("iam", emulator["endpoint"])
    name = "KarpenterNodeRole-comfyui-sandbox"
    role = iam.get_role(RoleName=name)["Role"]
    trust = role["AssumeRolePolicyDocument"]
    assert trust["Statement"][0]["Principal"] == {"Service": "ec2.amazonaws.com"}
    assert trust["Statement"][0]["Action"] == "sts:AssumeRole"
    tags = {t["Key"]: t["Value"] for t in iam.list_role_tags(RoleName=name)["Tags"]}
    assert tags == {"owner": "platform-team"}
    assert iam.list_role_policies(RoleName=name)["PolicyNames"] == [
        "platform-team-existing"
    ]
    doc = iam.get_role_policy(RoleName=name, PolicyName="platform-team-existing")[
        "PolicyDocument"
    ]
    assert doc["Statement"][0]["Action"] == "ec2:DescribeInstances"
    attached = {
        p["PolicyArn"]
        for p in iam.list_attached_role_policies(RoleName=name)["AttachedPolicies"]
    }
    # the emulator loads AWS managed policies, so both are attached
    assert attached == set(emulator["seed"]["node_role_managed_policies"])
    assert len(attached) == 2


def test_seeded_unowned_bucket(emulator):
    s3 = client("s3", emulator["endpoint"])
    bucket = "platform-team-datasets-123456789012"
    assert s3.get_bucket_location(Bucket=bucket)["LocationConstraint"] == REGION
    body = s3.get_object(Bucket=bucket, Key="README.txt")["Body"].read()
    assert body.startswith(b"Datasets of the platform team")
    keys = [o["Key"] for o in s3.list_objects_v2(Bucket=bucket)["Contents"]]
    assert keys == ["README.txt"]


def test_emulator_without_seed_and_clean_exit(tmp_path):
    proc, info = start_emulator(tmp_path, seed="none")
    try:
        assert info["seed"] is None
        assert info["kube"] is None  # no cluster, no Kubernetes API
        s3 = client("s3", info["endpoint"])
        assert s3.list_buckets()["Buckets"] == []
    finally:
        rc = proc.stop()
    assert rc == 0


# --------------------------------------------------------------------------
# proxy: forwarding + classification
# --------------------------------------------------------------------------


def test_proxy_forwards_and_classifies(proxy, emulator):
    info, log = proxy
    ep = info["endpoint"]
    assert info["endpoint"] == f"http://127.0.0.1:{info['port']}"
    s3 = client("s3", ep)
    iam = client("iam", ep)
    sts = client("sts", ep)
    eks = client("eks", ep)
    direct_s3 = client("s3", emulator["endpoint"])

    create_bucket(s3, "cp-proxy-classify")
    assert bucket_exists(direct_s3, "cp-proxy-classify")
    policy = json.dumps(
        {
            "Version": "2012-10-17",
            "Statement": [
                {
                    "Effect": "Allow",
                    "Principal": {"AWS": "arn:aws:iam::123456789012:root"},
                    "Action": "s3:GetObject",
                    "Resource": "arn:aws:s3:::cp-proxy-classify/*",
                }
            ],
        }
    )
    s3.put_bucket_policy(Bucket="cp-proxy-classify", Policy=policy)
    assert json.loads(s3.get_bucket_policy(Bucket="cp-proxy-classify")["Policy"]) == json.loads(policy)
    s3.head_bucket(Bucket="cp-proxy-classify")
    s3.put_object(Bucket="cp-proxy-classify", Key="dir/a b.txt", Body=b"x" * 70000)
    head = s3.head_object(Bucket="cp-proxy-classify", Key="dir/a b.txt")
    assert head["ContentLength"] == 70000
    got = s3.get_object(Bucket="cp-proxy-classify", Key="dir/a b.txt")["Body"].read()
    assert got == b"x" * 70000
    s3.list_objects_v2(Bucket="cp-proxy-classify")
    s3.delete_objects(
        Bucket="cp-proxy-classify", Delete={"Objects": [{"Key": "dir/a b.txt"}]}
    )
    s3.delete_bucket(Bucket="cp-proxy-classify")

    iam.create_role(
        RoleName="cp-proxy-role",
        AssumeRolePolicyDocument=json.dumps(
            {
                "Version": "2012-10-17",
                "Statement": [
                    {
                        "Effect": "Allow",
                        "Principal": {"Service": "ec2.amazonaws.com"},
                        "Action": "sts:AssumeRole",
                    }
                ],
            }
        ),
    )
    assert iam.get_role(RoleName="cp-proxy-role")["Role"]["RoleName"] == "cp-proxy-role"
    assert sts.get_caller_identity()["Account"] == "123456789012"
    assert eks.describe_cluster(name="comfyui-sandbox")["cluster"]["status"] == "ACTIVE"
    eks.tag_resource(
        resourceArn=emulator["seed"]["cluster_arn"], tags={"probe": "1"}
    )
    iam.delete_role(RoleName="cp-proxy-role")

    entries = read_log(log)
    by_action = {}
    for e in entries:
        by_action.setdefault(e["action"], []).append(e)
        assert set(e) >= {
            "ts", "method", "path", "query", "service", "action", "write", "status", "fault",
            "end",
        }
        assert e["fault"] is None
        assert isinstance(e["ts"], float) and e["end"] >= e["ts"]

    def one(action):
        assert action in by_action, (action, sorted(by_action))
        return by_action[action][0]

    expected = {
        "CreateBucket": ("s3", True, "PUT", "/cp-proxy-classify"),
        "PutBucketPolicy": ("s3", True, "PUT", "/cp-proxy-classify"),
        "GetBucketPolicy": ("s3", False, "GET", "/cp-proxy-classify"),
        "HeadBucket": ("s3", False, "HEAD", "/cp-proxy-classify"),
        "PutObject": ("s3", True, "PUT", None),
        "HeadObject": ("s3", False, "HEAD", None),
        "GetObject": ("s3", False, "GET", None),
        "ListObjectsV2": ("s3", False, "GET", "/cp-proxy-classify"),
        "DeleteObjects": ("s3", True, "POST", "/cp-proxy-classify"),
        "DeleteBucket": ("s3", True, "DELETE", "/cp-proxy-classify"),
        "CreateRole": ("iam", True, "POST", "/"),
        "GetRole": ("iam", False, "POST", "/"),
        "DeleteRole": ("iam", True, "POST", "/"),
        "GetCallerIdentity": ("sts", False, "POST", "/"),
        "GET /clusters/comfyui-sandbox": ("eks", False, "GET", "/clusters/comfyui-sandbox"),
    }
    for action, (service, write, method, path) in expected.items():
        e = one(action)
        assert e["service"] == service, e
        assert e["write"] is write, e
        assert e["method"] == method, e
        assert 200 <= e["status"] < 300, e
        if path is not None:
            assert e["path"] == path, e
    assert one("PutBucketPolicy")["query"] == "policy"
    tag_actions = [a for a in by_action if a.startswith("POST /tags/")]
    assert len(tag_actions) == 1
    assert by_action[tag_actions[0]][0]["write"] is True
    assert by_action[tag_actions[0]][0]["service"] == "eks"

    stats = proxy_stats(ep)
    assert stats["requests"] == len(entries)
    assert stats["writes"] == sum(1 for e in entries if e["write"])
    assert stats["faults"] == 0
    # the stats endpoint itself is neither logged nor counted
    assert proxy_stats(ep)["requests"] == len(entries)
    assert len(read_log(log)) == len(entries)


def test_s3_action_names():
    sys.path.insert(0, HERE)
    from recording_proxy import s3_action

    cases = [
        ("GET", "/", {}, "ListBuckets"),
        ("PUT", "/b", {}, "CreateBucket"),
        ("PUT", "/b", {"policy": [""]}, "PutBucketPolicy"),
        ("GET", "/b", {"policy": [""]}, "GetBucketPolicy"),
        ("DELETE", "/b", {"policy": [""]}, "DeleteBucketPolicy"),
        ("DELETE", "/b", {"publicAccessBlock": [""]}, "DeletePublicAccessBlock"),
        ("PUT", "/b", {"publicAccessBlock": [""]}, "PutPublicAccessBlock"),
        ("PUT", "/b", {"encryption": [""]}, "PutBucketEncryption"),
        ("PUT", "/b", {"tagging": [""]}, "PutBucketTagging"),
        ("PUT", "/b", {"lifecycle": [""]}, "PutBucketLifecycleConfiguration"),
        ("GET", "/b", {"lifecycle": [""]}, "GetBucketLifecycleConfiguration"),
        ("DELETE", "/b", {"lifecycle": [""]}, "DeleteBucketLifecycle"),
        ("PUT", "/b", {"versioning": [""]}, "PutBucketVersioning"),
        ("GET", "/b", {"location": [""]}, "GetBucketLocation"),
        ("HEAD", "/b", {}, "HeadBucket"),
        ("GET", "/b", {"list-type": ["2"]}, "ListObjectsV2"),
        ("GET", "/b", {"versions": [""]}, "ListObjectVersions"),
        ("POST", "/b", {"delete": [""]}, "DeleteObjects"),
        ("PUT", "/b/k/x", {}, "PutObject"),
        ("GET", "/b/k", {}, "GetObject"),
        ("DELETE", "/b/k", {}, "DeleteObject"),
        ("DELETE", "/b", {}, "DeleteBucket"),
        ("GET", "/b/k", {"x-id": ["GetObject"]}, "GetObject"),
    ]
    for method, path, query, want in cases:
        assert s3_action(method, path, query, {}) == want, (method, path, query)


# --------------------------------------------------------------------------
# proxy: HTTP mechanics
# --------------------------------------------------------------------------


def _sigv4_headers(service):
    return {
        "Authorization": (
            "AWS4-HMAC-SHA256 Credential=testing/20250101/us-west-2/"
            f"{service}/aws4_request, SignedHeaders=host, Signature=00"
        ),
        "X-Amz-Date": "20250101T000000Z",
    }


def test_keep_alive_and_chunked_request(proxy, emulator):
    info, log = proxy
    conn = http.client.HTTPConnection("127.0.0.1", info["port"], timeout=10)
    # several requests on one connection
    for _ in range(3):
        conn.request(
            "POST",
            "/",
            body="Action=GetCallerIdentity&Version=2011-06-15",
            headers={
                **_sigv4_headers("sts"),
                "Content-Type": "application/x-www-form-urlencoded; charset=utf-8",
            },
        )
        resp = conn.getresponse()
        body = resp.read()
        assert resp.status == 200, body
        assert b"123456789012" in body
    sock_before = conn.sock
    # chunked request body on the same connection
    conn.putrequest("POST", "/")
    for k, v in _sigv4_headers("sts").items():
        conn.putheader(k, v)
    conn.putheader("Content-Type", "application/x-www-form-urlencoded")
    conn.putheader("Transfer-Encoding", "chunked")
    conn.endheaders()
    payload = b"Action=GetCallerIdentity&Version=2011-06-15"
    for part in (payload[:10], payload[10:]):
        conn.send(b"%x\r\n%s\r\n" % (len(part), part))
    conn.send(b"0\r\n\r\n")
    resp = conn.getresponse()
    body = resp.read()
    assert resp.status == 200, body
    assert conn.sock is sock_before, "connection was not kept alive"
    conn.close()
    entries = read_log(log)
    assert [e["action"] for e in entries] == ["GetCallerIdentity"] * 4
    assert all(e["service"] == "sts" and e["write"] is False for e in entries)


def test_unknown_service_and_query_action(proxy):
    info, log = proxy
    conn = http.client.HTTPConnection("127.0.0.1", info["port"], timeout=10)
    conn.request("GET", "/?Action=ListRoles&Version=2010-05-08", headers=_sigv4_headers("iam"))
    resp = conn.getresponse()
    resp.read()
    assert resp.status == 200
    conn.request("GET", "/nothing-signed")
    resp = conn.getresponse()
    resp.read()
    conn.close()
    entries = read_log(log)
    assert entries[0]["service"] == "iam" and entries[0]["action"] == "ListRoles"
    assert entries[0]["write"] is False
    assert entries[0]["query"] == "Action=ListRoles&Version=2010-05-08"
    assert entries[1]["service"] == "unknown"


# --------------------------------------------------------------------------
# proxy: faults
# --------------------------------------------------------------------------


def test_fault_before_is_not_forwarded(fault_proxy, emulator):
    info, log = fault_proxy(fault_rate=1.0, fault_modes="before")
    ep = info["endpoint"]
    direct_s3 = client("s3", emulator["endpoint"])
    s3 = client("s3", ep)
    with pytest.raises(ClientError) as exc:
        create_bucket(s3, "cp-fault-before")
    err = exc.value.response
    assert err["Error"]["Code"] == "SlowDown"
    assert err["ResponseMetadata"]["HTTPStatusCode"] == 503
    assert not bucket_exists(direct_s3, "cp-fault-before")

    # second 'before' fault alternates to an internal error
    with pytest.raises(ClientError) as exc:
        create_bucket(s3, "cp-fault-before")
    assert exc.value.response["Error"]["Code"] == "InternalError"
    assert exc.value.response["ResponseMetadata"]["HTTPStatusCode"] == 500
    assert not bucket_exists(direct_s3, "cp-fault-before")

    iam = client("iam", ep)
    with pytest.raises(ClientError) as exc:
        iam.get_role(RoleName="KarpenterNodeRole-comfyui-sandbox")
    assert exc.value.response["Error"]["Code"] == "Throttling"
    assert exc.value.response["ResponseMetadata"]["HTTPStatusCode"] == 400

    sts = client("sts", ep)
    with pytest.raises(ClientError) as exc:
        sts.get_caller_identity()
    assert exc.value.response["Error"]["Code"] in ("InternalFailure", "ServiceFailure")
    assert exc.value.response["ResponseMetadata"]["HTTPStatusCode"] == 500

    eks = client("eks", ep)
    with pytest.raises(ClientError) as exc:
        eks.describe_cluster(name="comfyui-sandbox")
    assert exc.value.response["Error"]["Code"] == "TooManyRequestsException"
    assert exc.value.response["ResponseMetadata"]["HTTPStatusCode"] == 429

    entries = read_log(log)
    assert [e["fault"] for e in entries] == ["before"] * 5
    assert [e["status"] for e in entries] == [503, 500, 400, 500, 429]
    assert all(e["upstream_status"] is None for e in entries)
    assert proxy_stats(ep) == {"requests": 5, "writes": 2, "faults": 5}


def test_fault_before_is_retried_by_sdk(fault_proxy, emulator):
    # with retries enabled, a throttled write eventually succeeds exactly once
    info, log = fault_proxy(fault_rate=0.5, fault_seed=7, fault_modes="before")
    s3 = client("s3", info["endpoint"], retries=10)
    for i in range(4):
        create_bucket(s3, f"cp-fault-retry-{i}")
    direct = client("s3", emulator["endpoint"])
    for i in range(4):
        assert bucket_exists(direct, f"cp-fault-retry-{i}")
    entries = read_log(log)
    assert any(e["fault"] == "before" for e in entries)
    forwarded = [e for e in entries if e["fault"] is None]
    assert len(forwarded) == 4 and all(e["status"] == 200 for e in forwarded)


def test_fault_after_is_forwarded(fault_proxy, emulator):
    info, log = fault_proxy(fault_rate=1.0, fault_modes="after")
    ep = info["endpoint"]
    direct_s3 = client("s3", emulator["endpoint"])
    s3 = client("s3", ep)
    with pytest.raises(ClientError) as exc:
        create_bucket(s3, "cp-fault-after")
    assert exc.value.response["Error"]["Code"] == "InternalError"
    assert exc.value.response["ResponseMetadata"]["HTTPStatusCode"] == 500
    assert bucket_exists(direct_s3, "cp-fault-after")

    iam = client("iam", ep)
    with pytest.raises(ClientError) as exc:
        iam.create_role(RoleName="cp-fault-after-role", AssumeRolePolicyDocument="{}")
    assert exc.value.response["Error"]["Code"] == "ServiceFailure"
    assert exc.value.response["ResponseMetadata"]["HTTPStatusCode"] == 500
    direct_iam = client("iam", emulator["endpoint"])
    assert direct_iam.get_role(RoleName="cp-fault-after-role")["Role"]["RoleName"]

    eks = client("eks", ep)
    with pytest.raises(ClientError) as exc:
        eks.list_clusters()
    assert exc.value.response["Error"]["Code"] == "ServerException"

    entries = read_log(log)
    assert [e["fault"] for e in entries] == ["after"] * 3
    assert [e["status"] for e in entries] == [500, 500, 500]
    assert [e["upstream_status"] for e in entries] == [200, 200, 200]
    assert proxy_stats(ep) == {"requests": 3, "writes": 2, "faults": 3}

    # the retry of the write that already happened
    plain = client("s3", emulator["endpoint"])
    with pytest.raises(ClientError) as exc:
        create_bucket(plain, "cp-fault-after")
    assert exc.value.response["Error"]["Code"] == "BucketAlreadyOwnedByYou"


def test_fault_reset_closes_connection(fault_proxy, emulator):
    info, log = fault_proxy(fault_rate=1.0, fault_modes="reset")
    s3 = client("s3", info["endpoint"])
    with pytest.raises((ConnectionClosedError, EndpointConnectionError, ConnectionError)):
        create_bucket(s3, "cp-fault-reset")
    assert not bucket_exists(client("s3", emulator["endpoint"]), "cp-fault-reset")
    entries = read_log(log)
    assert entries[0]["fault"] == "reset" and entries[0]["status"] == 0
    # the proxy keeps serving after a reset
    assert proxy_stats(info["endpoint"])["faults"] >= 1


def test_no_fault_header_and_determinism(fault_proxy, emulator):
    info, log = fault_proxy(fault_rate=1.0, fault_modes="before,after,reset")
    conn = http.client.HTTPConnection("127.0.0.1", info["port"], timeout=10)
    conn.request(
        "POST",
        "/",
        body="Action=GetCallerIdentity&Version=2011-06-15",
        headers={
            **_sigv4_headers("sts"),
            "Content-Type": "application/x-www-form-urlencoded",
            "x-comfyplat-no-fault": "1",
        },
    )
    resp = conn.getresponse()
    resp.read()
    assert resp.status == 200
    conn.close()
    assert read_log(log)[0]["fault"] is None

    def sequence(seed):
        info2, log2 = fault_proxy(fault_rate=0.5, fault_seed=seed, fault_modes="before")
        s3 = client("s3", info2["endpoint"])
        for _ in range(12):
            try:
                s3.list_buckets()
            except ClientError:
                pass
        return [e["fault"] for e in read_log(log2)]

    a, b = sequence(3), sequence(3)
    assert a == b
    assert "before" in a and None in a


def test_fault_selection_by_action_writes_and_limit(fault_proxy, emulator):
    info, log = fault_proxy(fault_rate=1.0, fault_modes="before", fault_match="Create*,Put*", fault_limit=1)
    s3 = client("s3", info["endpoint"])
    s3.list_buckets()  # not matched: never faulted
    with pytest.raises(ClientError) as exc:
        create_bucket(s3, "cp-fault-select")
    assert exc.value.response["Error"]["Code"] == "SlowDown"
    create_bucket(s3, "cp-fault-select")  # the one fault allowed is used up
    assert [(e["action"], e["fault"]) for e in read_log(log)] == [
        ("ListBuckets", None), ("CreateBucket", "before"), ("CreateBucket", None)]

    info, log = fault_proxy(fault_rate=1.0, fault_modes="before", fault_writes=True)
    s3 = client("s3", info["endpoint"])
    s3.list_buckets()
    with pytest.raises(ClientError):
        s3.delete_bucket(Bucket="cp-fault-select")
    assert [(e["action"], e["fault"]) for e in read_log(log)] == [("ListBuckets", None), ("DeleteBucket", "before")]
    client("s3", emulator["endpoint"]).delete_bucket(Bucket="cp-fault-select")


# Every service comfyplat (or the sandbox) talks to: its boto3 name, a read call, the action the
# proxy logs for it, and what its real throttle, internal error and denial are: (code, status).
SERVICE_FAULTS = [
    ("s3", lambda c: c.list_buckets(), "ListBuckets",
     ("SlowDown", 503), ("InternalError", 500), ("AccessDenied", 403)),
    ("cloudfront", lambda c: c.list_distributions(), "GET /2020-05-31/distribution",
     ("Throttling", 400), ("InternalError", 500), ("AccessDenied", 403)),
    ("iam", lambda c: c.list_roles(), "ListRoles",
     ("Throttling", 400), ("ServiceFailure", 500), ("AccessDenied", 403)),
    ("sts", lambda c: c.get_caller_identity(), "GetCallerIdentity",
     ("Throttling", 400), ("InternalFailure", 500), ("AccessDenied", 403)),
    ("ec2", lambda c: c.describe_vpcs(), "DescribeVpcs",
     ("RequestLimitExceeded", 503), ("InternalError", 500), ("UnauthorizedOperation", 403)),
    ("elbv2", lambda c: c.describe_load_balancers(), "DescribeLoadBalancers",
     ("Throttling", 400), ("InternalFailure", 500), ("AccessDenied", 403)),
    ("ecr", lambda c: c.describe_repositories(), "DescribeRepositories",
     ("ThrottlingException", 400), ("ServerException", 500), ("AccessDeniedException", 400)),
    ("resourcegroupstaggingapi", lambda c: c.get_resources(), "GetResources",
     ("ThrottledException", 400), ("InternalServiceException", 500), ("AccessDeniedException", 400)),
    ("eks", lambda c: c.describe_cluster(name="comfyui-sandbox"), "GET /clusters/comfyui-sandbox",
     ("TooManyRequestsException", 429), ("ServerException", 500), ("AccessDeniedException", 403)),
]


def _botocore_error(call, botocore_client) -> tuple[str, int, str, dict]:
    """(code, status, message, parsed response) of the ClientError botocore raises."""
    with pytest.raises(ClientError) as exc:
        call(botocore_client)
    err = exc.value.response
    return err["Error"]["Code"], err["ResponseMetadata"]["HTTPStatusCode"], err["Error"].get("Message", ""), err


def _throttling_per_botocore(parsed: dict) -> bool:
    """botocore's standard retry mode's own verdict: is this a throttling error?"""
    from botocore.retries.standard import RetryContext, ThrottledRetryableChecker

    return ThrottledRetryableChecker().is_retryable(RetryContext(attempt_number=1, parsed_response=parsed))


def test_every_services_injected_throttling_is_its_real_error_and_botocore_retries_it(tmp_path, emulator):
    """Parsed by botocore (a client we did not write): each service's throttle has the service's
    code and status, botocore's standard mode calls it throttling, and retries it to success."""
    wrong = []
    for n, (service, call, action, (code, status), _, _) in enumerate(SERVICE_FAULTS):
        proc, info, log = start_proxy(tmp_path, emulator["endpoint"], name=f"throttle{n}", fault_rate=1,
                                      fault_modes="throttle", fault_limit=2)
        try:
            got = _botocore_error(call, client(service, info["endpoint"]))
            if got[:2] != (code, status) or not got[2]:
                wrong.append(f"{service}: {got[:3]}, expected {(code, status)}")
            if not _throttling_per_botocore(got[3]):
                wrong.append(f"{service}: botocore does not call {got[0]} throttling")
            try:
                call(client(service, info["endpoint"], retries=3))  # the second fault, then through
            except ClientError as exc:
                wrong.append(f"{service}: not retried by botocore: {exc}")
            entries = [(e["action"], e["fault"], e["status"]) for e in read_log(log)]
            if entries != [(action, "throttle", status)] * 2 + [(action, None, 200)]:
                wrong.append(f"{service}: {entries}")
        finally:
            proc.stop()
    assert not wrong, "\n".join(wrong)


def test_every_services_injected_internal_error_and_denial_are_its_real_errors(tmp_path, emulator):
    wrong = []
    iproc, internal, ilog = start_proxy(tmp_path, emulator["endpoint"], name="internal", fault_rate=1,
                                        fault_modes="internal")
    try:
        dproc, denying, dlog = start_proxy(tmp_path, emulator["endpoint"], name="deny", deny="*")
    except Exception:
        iproc.stop()
        raise
    try:
        for service, call, _, _, (icode, istatus), (dcode, dstatus) in SERVICE_FAULTS:
            got = _botocore_error(call, client(service, internal["endpoint"]))
            if got[:2] != (icode, istatus) or not got[2]:
                wrong.append(f"{service} internal: {got[:3]}, expected {(icode, istatus)}")
            got = _botocore_error(call, client(service, denying["endpoint"]))
            if got[:2] != (dcode, dstatus) or ("not authorized" not in got[2] and got[2] != "Access Denied"):
                wrong.append(f"{service} deny: {got[:3]}, expected {(dcode, dstatus)}")
            if _throttling_per_botocore(got[3]):
                wrong.append(f"{service}: botocore calls the denial {got[0]} throttling")
    finally:
        iproc.stop()
        dproc.stop()
    entries = read_log(ilog) + read_log(dlog)
    assert len(entries) == 2 * len(SERVICE_FAULTS)
    assert all(e["upstream_status"] is None and e["fault"] in ("internal", "deny") for e in entries)
    assert not wrong, "\n".join(wrong)


def test_fault_services_limits_faults_to_those_services(fault_proxy, emulator):
    info, log = fault_proxy(fault_rate=1.0, fault_modes="throttle", fault_services="sts,eks")
    ep = info["endpoint"]
    client("s3", ep).list_buckets()
    client("iam", ep).get_role(RoleName="KarpenterNodeRole-comfyui-sandbox")
    for service, call in (("sts", lambda c: c.get_caller_identity()), ("eks", lambda c: c.list_clusters())):
        with pytest.raises(ClientError):
            call(client(service, ep))
    assert [(e["service"], e["fault"]) for e in read_log(log)] == [
        ("s3", None), ("iam", None), ("sts", "throttle"), ("eks", "throttle")]


def test_kubernetes_proxy_in_front_of_the_emulators_cluster(tmp_path, emulator):
    """The wiring an integration test uses: upstream = the ready file's kube endpoint and CA,
    the proxy's kubeconfig with the emulator's user (exec plugin `aws eks get-token`)."""
    kube = emulator["kube"]
    proc, info, log = start_proxy(tmp_path, kube["endpoint"], name="kproxy", kubernetes=True,
                                  upstream_ca=kube["ca_file"], kubeconfig_from=kube["kubeconfig"], delay_ms=100)
    try:
        assert info["endpoint"].startswith("https://127.0.0.1:") and info["upstream"] == kube["endpoint"]
        out = subprocess.run(["kubectl", "--kubeconfig", info["kubeconfig"], "--cache-dir", str(tmp_path / "cache"),
                              "get", "ingressclass", "alb", "-o", "name"],
                             capture_output=True, text=True, timeout=60, env=CLEAN_ENV)
        assert out.returncode == 0, out.stderr
        assert out.stdout.strip() == "ingressclass.networking.k8s.io/alb"
        got = [e for e in read_log(log) if e["resource"] == "ingressclasses"]
        assert [(e["verb"], e["group"], e["name"], e["status"]) for e in got] == [
            ("get", "networking.k8s.io", "alb", 200)]
    finally:
        assert proc.stop() == 0
    assert not os.path.exists(info["kubeconfig"])


def test_delay(fault_proxy):
    info, log = fault_proxy(delay_ms=300)
    sts = client("sts", info["endpoint"])
    t0 = time.monotonic()
    sts.get_caller_identity()
    assert time.monotonic() - t0 >= 0.3


# --------------------------------------------------------------------------
# moto behaviours the Rust adapters rely on (canaries for a moto upgrade)
# --------------------------------------------------------------------------


def _error(fn):
    with pytest.raises(ClientError) as exc:
        fn()
    r = exc.value.response
    return r["Error"]["Code"], r["ResponseMetadata"]["HTTPStatusCode"]


def test_moto_facts(emulator):
    ep = emulator["endpoint"]
    s3 = client("s3", ep)
    s3_east = client("s3", ep, region="us-east-1")
    iam = client("iam", ep)
    b = "cp-facts-west"
    create_bucket(s3, b)
    # re-creating an owned bucket
    assert _error(lambda: create_bucket(s3, b)) == ("BucketAlreadyOwnedByYou", 409)
    assert _error(lambda: s3_east.create_bucket(Bucket=b)) == ("BucketAlreadyOwnedByYou", 409)
    s3_east.create_bucket(Bucket="cp-facts-east")
    s3_east.create_bucket(Bucket="cp-facts-east")  # us-east-1 legacy: 200 again
    assert _error(lambda: s3.create_bucket(Bucket="cp-facts-noloc")) == (
        "IllegalLocationConstraintException", 400)
    # absent bucket sub-configurations
    assert _error(lambda: s3.get_bucket_policy(Bucket=b)) == ("NoSuchBucketPolicy", 404)
    assert _error(lambda: s3.get_public_access_block(Bucket=b)) == (
        "NoSuchPublicAccessBlockConfiguration", 404)
    assert _error(lambda: s3.get_bucket_encryption(Bucket=b)) == (
        "ServerSideEncryptionConfigurationNotFoundError", 404)
    assert _error(lambda: s3.get_bucket_lifecycle_configuration(Bucket=b)) == (
        "NoSuchLifecycleConfiguration", 404)
    assert _error(lambda: s3.get_bucket_tagging(Bucket=b)) == ("NoSuchTagSet", 404)
    assert "Status" not in s3.get_bucket_versioning(Bucket=b)
    assert _error(lambda: s3.get_bucket_policy(Bucket="cp-facts-missing")) == ("NoSuchBucket", 404)
    s3.delete_bucket_policy(Bucket=b)  # deleting an absent policy succeeds (204)
    # IAM returns policy documents URL-encoded on the wire (boto3 decodes them)
    raw = {}
    iam.meta.events.register(
        "after-call.iam.GetRolePolicy",
        lambda http_response, **kw: raw.setdefault("body", http_response.content),
    )
    iam.get_role_policy(
        RoleName="KarpenterNodeRole-comfyui-sandbox", PolicyName="platform-team-existing"
    )
    assert b"<PolicyDocument>%7B%22Version%22" in raw["body"]
    assert _error(lambda: iam.get_role(RoleName="cp-facts-nope")) == ("NoSuchEntity", 404)


def test_tls_only_bucket_policy_allows_requests_and_other_denies_still_apply(emulator):
    """moto_patches: a Deny conditioned on aws:SecureTransport=false does not apply to
    emulator requests (they stand for the SDK's HTTPS requests); an unconditional Deny does."""
    s3 = client("s3", emulator["endpoint"])
    b = "cp-facts-deny"
    create_bucket(s3, b)
    s3.put_object(Bucket=b, Key="k", Body=b"1")
    statement = {
        "Effect": "Deny",
        "Principal": "*",
        "Action": "s3:*",
        "Resource": [f"arn:aws:s3:::{b}", f"arn:aws:s3:::{b}/*"],
        "Condition": {"Bool": {"aws:SecureTransport": "false"}},
    }
    s3.put_bucket_policy(Bucket=b, Policy=json.dumps({"Version": "2012-10-17", "Statement": [statement]}))
    assert s3.get_object(Bucket=b, Key="k")["Body"].read() == b"1"
    s3.put_object(Bucket=b, Key="k2", Body=b"2")
    unconditional = {k: v for k, v in statement.items() if k != "Condition"}
    unconditional["Action"] = "s3:GetObject"
    s3.put_bucket_policy(
        Bucket=b, Policy=json.dumps({"Version": "2012-10-17", "Statement": [statement, unconditional]})
    )
    assert _error(lambda: s3.get_object(Bucket=b, Key="k"))[1] == 403
    s3.delete_bucket_policy(Bucket=b)
    s3.delete_objects(Bucket=b, Delete={"Objects": [{"Key": "k"}, {"Key": "k2"}]})
    s3.delete_bucket(Bucket=b)


def test_get_bucket_versioning_root_element(emulator):
    """moto_patches: a never-versioned bucket answers <VersioningConfiguration/> like S3;
    an enabled one still carries its status."""
    import urllib.request

    s3 = client("s3", emulator["endpoint"])
    b = "cp-facts-versioning"
    create_bucket(s3, b)
    raw = s3.get_bucket_versioning(Bucket=b)
    assert "Status" not in raw
    body = urllib.request.urlopen(f"{emulator['endpoint']}/{b}?versioning").read().decode()
    assert "<VersioningConfiguration" in body and "GetBucketVersioningResponse" not in body, body
    s3.put_bucket_versioning(Bucket=b, VersioningConfiguration={"Status": "Enabled"})
    assert s3.get_bucket_versioning(Bucket=b)["Status"] == "Enabled"
    body = urllib.request.urlopen(f"{emulator['endpoint']}/{b}?versioning").read().decode()
    assert "<VersioningConfiguration" in body and "<Status>Enabled</Status>" in body, body
    s3.delete_bucket(Bucket=b)


def test_deny_is_permanent_and_not_forwarded(tmp_path, emulator):
    proc, info, log = start_proxy(tmp_path, emulator["endpoint"], name="deny", deny="PutBucketPolicy")
    try:
        s3 = client("s3", info["endpoint"])
        b = "cp-deny-test"
        create_bucket(s3, b)
        for _ in range(2):
            try:
                s3.put_bucket_policy(Bucket=b, Policy='{"Version":"2012-10-17","Statement":[]}')
                raise AssertionError("expected AccessDenied")
            except ClientError as e:
                assert e.response["Error"]["Code"] == "AccessDenied"
                assert e.response["ResponseMetadata"]["HTTPStatusCode"] == 403
        denied = [r for r in read_log(log) if r["action"] == "PutBucketPolicy"]
        assert len(denied) == 2 and all(r["fault"] == "deny" and r["upstream_status"] is None for r in denied)
        direct = client("s3", emulator["endpoint"])
        assert _error(lambda: direct.get_bucket_policy(Bucket=b))[0] == "NoSuchBucketPolicy"
        direct.delete_bucket(Bucket=b)
    finally:
        proc.stop()


# --------------------------------------------------------------------------
# the virtualenv's tools for the Rust tests
# --------------------------------------------------------------------------


def test_jsonschema_validates_draft_2020_12():
    """requirements.txt pins jsonschema; the Rust tests validate plan JSON with it."""
    from importlib.metadata import version

    import jsonschema

    with open(os.path.join(HERE, "requirements.txt")) as f:
        pins = dict(line.split("==", 1) for line in f.read().split() if "==" in line)
    assert version("jsonschema") == pins["jsonschema"]
    schema = {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "type": "object",
        "required": ["resources"],
        "properties": {"resources": {"type": "array", "prefixItems": [{"const": "ecr"}], "items": False}},
    }
    validator = jsonschema.validators.validator_for(schema)
    assert validator is jsonschema.Draft202012Validator
    validator.check_schema(schema)
    assert validator(schema).is_valid({"resources": ["ecr"]})
    assert not validator(schema).is_valid({"resources": ["ecr", "extra"]})  # prefixItems + items: 2020-12
    out = subprocess.run([sys.executable, "-W", "ignore::DeprecationWarning", "-m", "jsonschema", "--version"],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0 and out.stdout.strip() == pins["jsonschema"], out
