#!/usr/bin/env python3
"""Recording, fault-injecting HTTP/1.1 reverse proxy in front of moto, or (--kubernetes) in
front of a Kubernetes API server.

    python recording_proxy.py --upstream http://127.0.0.1:PORT --port 0 \
        --ready-file PATH --log FILE [--fault-rate 0.0] [--fault-seed 1] \
        [--delay-ms 0] [--fault-modes before,after,reset]

    python recording_proxy.py --kubernetes --upstream https://127.0.0.1:PORT --upstream-ca CA.pem \
        [--kubeconfig-from KUBECONFIG] --port 0 --ready-file PATH --log FILE [...same options]

AWS mode
--------
Every request (except the proxy's own control endpoint) is appended to the log
file as one JSON line:

    {"ts", "method", "path", "query", "service", "action", "write", "status",
     "fault", "upstream_status", "end"}

`ts` is when the request was read, `end` when its answer (or fault) went out (for a hung
request: when it was forwarded). `status` is what the client saw (0 for a reset connection); `upstream_status`
is what moto answered, or null if the request was not forwarded.

Faults (probability --fault-rate, deterministic RNG seeded by --fault-seed):
  before    not forwarded; the client gets the service's throttling error, or
            every other time its internal error
  throttle  not forwarded; the service's throttling error, every time
  internal  not forwarded; the service's internal error (500)
  after     forwarded (the change happens upstream), then the real response is
            replaced by the service's internal error (500)
  reset     not forwarded; the client connection is reset without a response
Every error is the one the real service answers, in its own protocol's shape, status and code
(SERVICE_FAULTS): S3 a bare <Error> (SlowDown 503, InternalError 500, AccessDenied 403);
CloudFront the wrapped rest-xml <ErrorResponse> (Throttling 400, InternalError 500, AccessDenied
403); IAM, STS and ELB query XML (Throttling 400, ServiceFailure / InternalFailure 500,
AccessDenied 403); EC2 its <Response><Errors> (RequestLimitExceeded 503); ECR and the Tagging API
awsJson1_1 with the code in `__type` (ThrottlingException / ThrottledException 400,
ServerException / InternalServiceException 500, AccessDeniedException 400); EKS rest-json with
the code in `x-amzn-ErrorType` (TooManyRequestsException 429, ServerException 500,
AccessDeniedException 403).
--deny ACTION[,ACTION]: those actions always get the service's AccessDenied, not forwarded
(logged with fault "deny"): a permanent failure, for partial-failure tests.
--hang-after ACTION[,ACTION]: those actions are forwarded (the change happens upstream and
is logged with its upstream status and fault "hang"), then the client never gets an answer:
a process killed right after a call whose response it never saw.
Requests with header `x-comfyplat-no-fault: 1` are never faulted.

Kubernetes mode (--kubernetes; see kube_proxy.py)
------------------------------------------------
The proxy serves HTTPS itself (a throw-away CA and a 127.0.0.1/localhost certificate from
kube_server.serve_tls, in a temp dir removed at exit: kubectl and kube-rs send bearer tokens
over TLS only) and forwards every request (method, path, query, headers with Authorization,
body) to --upstream, over TLS trusting --upstream-ca when it is https. Chunked answers
(watches) are passed on chunk by chunk as they arrive; when the client of a watch goes away
the upstream connection is closed. It writes a kubeconfig pointing at itself next to the ready
file (<ready file without extension>.kubeconfig, mode 0600, removed at exit), with the current
context's names and user entry of --kubeconfig-from if given (else an empty user). Log lines:

    {"ts", "method", "path", "query": {name: last value}, "service": "kubernetes",
     "action": "METHOD /path", "verb", "group", "version", "resource", "namespace", "name",
     "subresource", "dry_run", "write", "status", "fault", "upstream_status", "end"}

verb/group/.../subresource as the apiserver parses the path (kube_proxy.request_info; all null
but verb for non-resource paths such as /version or discovery); write = POST/PUT/PATCH/DELETE
without dryRun=All. Fault modes (--fault-modes, default 429,500,503,reset): 429, 429-status,
500, 409, 503, reset, each also as <mode>-after (forwarded first); the answers are described in
kube_proxy.py. --hang-after / --fault-match patterns are "METHOD /path" shell globs (fnmatch:
`*` also matches `/`; a pattern starting with `/` matches any method).

Both modes
----------
--fault-writes: only writes can be faulted. --fault-match PATTERN[,PATTERN]: only requests
whose action matches (AWS: the action name, e.g. Put*; Kubernetes: "METHOD /path") can be
faulted. --fault-services SERVICE[,SERVICE]: only requests to those services (AWS: the signing
name of the request's credential scope, as logged in "service"; Kubernetes: "kubernetes") can be
faulted. --fault-limit N: at most N random faults in all. Only requests that can be faulted
draw from the RNG, so the fault sequence among them does not depend on the others.
--delay-ms N: every forwarded request waits N ms before it is forwarded.
--hang-after and --fault-match may be given several times.

Control endpoint (not logged, not forwarded): GET /__proxy/stats ->
    {"requests": N, "writes": N, "faults": N}

The ready file receives (atomically) {"port", "pid", "endpoint"} and, with --kubernetes,
"endpoint": "https://127.0.0.1:N", "ca_file" (PEM path), "ca_data" (base64 PEM),
"kubeconfig" (path) and "upstream".
"""

from __future__ import annotations

import argparse
import fnmatch
import http.client
import json
import os
import random
import re
import select
import shutil
import socket
import ssl
import struct
import sys
import tempfile
import threading
import time
import urllib.parse
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from ready_file import write_json_atomic

HOST = "127.0.0.1"

HOP_BY_HOP = {
    "connection",
    "keep-alive",
    "proxy-connection",
    "proxy-authenticate",
    "proxy-authorization",
    "te",
    "trailer",
    "trailers",
    "transfer-encoding",
    "upgrade",
    "expect",
}

READ_PREFIXES = (
    "Get",
    "List",
    "Describe",
    "Simulate",
    "Generate",
    "Head",
    "Check",
    "Search",
    "Lookup",
    "Validate",
)

QUERY_XML_NAMESPACES = {
    "iam": "https://iam.amazonaws.com/doc/2010-05-08/",
    "sts": "https://sts.amazonaws.com/doc/2011-06-15/",
    "ec2": "http://ec2.amazonaws.com/doc/2016-11-15/",
    "elasticloadbalancing": "http://elasticloadbalancing.amazonaws.com/doc/2015-12-01/",
}

CREDENTIAL_RE = re.compile(r"Credential=([^,\s]+)")


# --------------------------------------------------------------------------
# request classification
# --------------------------------------------------------------------------


def service_of(headers, query: dict) -> str:
    auth = headers.get("Authorization", "")
    m = CREDENTIAL_RE.search(auth)
    scope = m.group(1) if m else (query.get("X-Amz-Credential") or [""])[0]
    parts = scope.split("/")
    # AKID/DATE/REGION/SERVICE/aws4_request
    if len(parts) >= 5 and parts[-1] == "aws4_request":
        return parts[-2]
    return "unknown"


# bucket subresource -> (Get, Put, Delete) operation names
S3_BUCKET_SUBRESOURCES = {
    "policy": ("GetBucketPolicy", "PutBucketPolicy", "DeleteBucketPolicy"),
    "publicAccessBlock": (
        "GetPublicAccessBlock",
        "PutPublicAccessBlock",
        "DeletePublicAccessBlock",
    ),
    "encryption": (
        "GetBucketEncryption",
        "PutBucketEncryption",
        "DeleteBucketEncryption",
    ),
    "tagging": ("GetBucketTagging", "PutBucketTagging", "DeleteBucketTagging"),
    "lifecycle": (
        "GetBucketLifecycleConfiguration",
        "PutBucketLifecycleConfiguration",
        "DeleteBucketLifecycle",
    ),
    "versioning": ("GetBucketVersioning", "PutBucketVersioning", None),
    "location": ("GetBucketLocation", None, None),
    "acl": ("GetBucketAcl", "PutBucketAcl", None),
    "cors": ("GetBucketCors", "PutBucketCors", "DeleteBucketCors"),
    "website": ("GetBucketWebsite", "PutBucketWebsite", "DeleteBucketWebsite"),
    "logging": ("GetBucketLogging", "PutBucketLogging", None),
    "notification": (
        "GetBucketNotificationConfiguration",
        "PutBucketNotificationConfiguration",
        None,
    ),
    "ownershipControls": (
        "GetBucketOwnershipControls",
        "PutBucketOwnershipControls",
        "DeleteBucketOwnershipControls",
    ),
    "replication": (
        "GetBucketReplication",
        "PutBucketReplication",
        "DeleteBucketReplication",
    ),
    "object-lock": (
        "GetObjectLockConfiguration",
        "PutObjectLockConfiguration",
        None,
    ),
    "accelerate": (
        "GetBucketAccelerateConfiguration",
        "PutBucketAccelerateConfiguration",
        None,
    ),
    "requestPayment": ("GetBucketRequestPayment", "PutBucketRequestPayment", None),
    "policyStatus": ("GetBucketPolicyStatus", None, None),
    "intelligent-tiering": (
        "GetBucketIntelligentTieringConfiguration",
        "PutBucketIntelligentTieringConfiguration",
        "DeleteBucketIntelligentTieringConfiguration",
    ),
    "analytics": (
        "GetBucketAnalyticsConfiguration",
        "PutBucketAnalyticsConfiguration",
        "DeleteBucketAnalyticsConfiguration",
    ),
    "metrics": (
        "GetBucketMetricsConfiguration",
        "PutBucketMetricsConfiguration",
        "DeleteBucketMetricsConfiguration",
    ),
    "inventory": (
        "GetBucketInventoryConfiguration",
        "PutBucketInventoryConfiguration",
        "DeleteBucketInventoryConfiguration",
    ),
}

S3_OBJECT_SUBRESOURCES = {
    "tagging": ("GetObjectTagging", "PutObjectTagging", "DeleteObjectTagging"),
    "acl": ("GetObjectAcl", "PutObjectAcl", None),
    "retention": ("GetObjectRetention", "PutObjectRetention", None),
    "legal-hold": ("GetObjectLegalHold", "PutObjectLegalHold", None),
    "attributes": ("GetObjectAttributes", None, None),
}


def _pick(triple, method):
    idx = {"GET": 0, "PUT": 1, "DELETE": 2}.get(method)
    if idx is None or triple[idx] is None:
        return None
    return triple[idx]


def s3_action(method: str, path: str, query: dict, headers) -> str:
    x_id = (query.get("x-id") or [None])[0]
    if x_id:
        return x_id
    segments = path.lstrip("/").split("/", 1)
    bucket = urllib.parse.unquote(segments[0]) if segments[0] else ""
    key = segments[1] if len(segments) > 1 else ""
    if not bucket:
        return "ListBuckets" if method == "GET" else f"{method} /"
    if not key:
        for sub, triple in S3_BUCKET_SUBRESOURCES.items():
            if sub in query:
                name = _pick(triple, method)
                if name:
                    return name
        if method == "GET" and "versions" in query:
            return "ListObjectVersions"
        if method == "GET" and "uploads" in query:
            return "ListMultipartUploads"
        if method == "POST" and "delete" in query:
            return "DeleteObjects"
        if method == "GET":
            return "ListObjectsV2" if query.get("list-type") == ["2"] else "ListObjects"
        return {
            "PUT": "CreateBucket",
            "DELETE": "DeleteBucket",
            "HEAD": "HeadBucket",
        }.get(method, f"{method} bucket")
    for sub, triple in S3_OBJECT_SUBRESOURCES.items():
        if sub in query:
            name = _pick(triple, method)
            if name:
                return name
    if method == "POST" and "uploads" in query:
        return "CreateMultipartUpload"
    if method == "POST" and "uploadId" in query:
        return "CompleteMultipartUpload"
    if method == "PUT" and "uploadId" in query:
        return "UploadPartCopy" if "x-amz-copy-source" in headers else "UploadPart"
    if method == "DELETE" and "uploadId" in query:
        return "AbortMultipartUpload"
    if method == "GET" and "uploadId" in query:
        return "ListParts"
    if method == "PUT" and "x-amz-copy-source" in headers:
        return "CopyObject"
    return {
        "GET": "GetObject",
        "PUT": "PutObject",
        "DELETE": "DeleteObject",
        "HEAD": "HeadObject",
        "POST": "PostObject",
    }.get(method, f"{method} object")


def query_action(headers, query: dict, body: bytes) -> str | None:
    action = (query.get("Action") or [None])[0]
    if action:
        return action
    ctype = headers.get("Content-Type", "")
    if body and "x-www-form-urlencoded" in ctype:
        form = urllib.parse.parse_qs(body.decode("utf-8", "replace"))
        return (form.get("Action") or [None])[0]
    return None


def classify(method: str, path: str, query: dict, headers, body: bytes):
    """Returns (service, action, write)."""
    service = service_of(headers, query)
    if service == "s3":
        return service, s3_action(method, path, query, headers), method in (
            "PUT",
            "POST",
            "DELETE",
        )
    action = query_action(headers, query, body)
    if action:  # AWS query protocol (iam, sts, ec2, elbv2, ...)
        return service, action, not action.startswith(READ_PREFIXES)
    target = headers.get("X-Amz-Target")
    if target:  # awsJson protocol
        action = target.rsplit(".", 1)[-1]
        return service, action, not action.startswith(READ_PREFIXES)
    # rest-json (eks, ...)
    return service, f"{method} {path}", method not in ("GET", "HEAD")


# --------------------------------------------------------------------------
# fault responses in the services' own shapes
# --------------------------------------------------------------------------


DENY_MESSAGE = "User: arn:aws:iam::123456789012:user/test is not authorized to perform this action"

# Each service's error protocol and, per fault kind, what the real service answers:
# (HTTP status, error code, message). Codes are the error shapes of the botocore service models
# in the venv (botocore/data/<service>/*/service-2.json) where the model has one; where it has
# none, what clients got from the real service:
#   cloudfront  Throttling (400, Sender): the rest-xml wrapped <ErrorResponse> of the 2020-05-31 API
#   ecr         ThrottlingException "Rate exceeded", status 400 (aws/amazon-ecs-agent#498);
#               ServerException (model)
#   tagging     ThrottledException, InternalServiceException (model)
#   eks         TooManyRequestsException "Too Many Requests", 429, on DescribeCluster
#               (awslabs/amazon-eks-ami#218, #999; the model's ThrottlingException is only on
#               some writes); ServerException 500, AccessDeniedException 403 (model)
#   iam, sts    Throttling (400, Sender); IAM's ServiceFailure (model), STS's InternalFailure
#   ec2         RequestLimitExceeded (503), in EC2's own <Response><Errors> shape
# awsJson services answer AccessDeniedException with 400, as every client error.
SERVICE_FAULTS = {
    "s3": ("rest-xml", {
        "throttle": (503, "SlowDown", "Please reduce your request rate."),
        "internal": (500, "InternalError", "We encountered an internal error. Please try again."),
        "deny": (403, "AccessDenied", "Access Denied"),
    }),
    "cloudfront": ("rest-xml-wrapped", {
        "throttle": (400, "Throttling", "Rate exceeded"),
        "internal": (500, "InternalError", "We encountered an internal error. Please try again."),
        "deny": (403, "AccessDenied", DENY_MESSAGE),
    }),
    "iam": ("query", {
        "throttle": (400, "Throttling", "Rate exceeded"),
        "internal": (500, "ServiceFailure", "An internal error occurred."),
        "deny": (403, "AccessDenied", DENY_MESSAGE),
    }),
    "sts": ("query", {
        "throttle": (400, "Throttling", "Rate exceeded"),
        "internal": (500, "InternalFailure", "An internal error occurred."),
        "deny": (403, "AccessDenied", DENY_MESSAGE),
    }),
    "elasticloadbalancing": ("query", {
        "throttle": (400, "Throttling", "Rate exceeded"),
        "internal": (500, "InternalFailure", "An internal error occurred."),
        "deny": (403, "AccessDenied", DENY_MESSAGE),
    }),
    "ec2": ("ec2", {
        "throttle": (503, "RequestLimitExceeded", "Request limit exceeded."),
        "internal": (500, "InternalError", "An internal error has occurred."),
        "deny": (403, "UnauthorizedOperation", "You are not authorized to perform this operation."),
    }),
    "ecr": ("json", {
        "throttle": (400, "ThrottlingException", "Rate exceeded"),
        "internal": (500, "ServerException", "An internal error occurred."),
        "deny": (400, "AccessDeniedException", DENY_MESSAGE),
    }),
    "tagging": ("json", {
        "throttle": (400, "ThrottledException", "Rate exceeded"),
        "internal": (500, "InternalServiceException", "An internal error occurred."),
        "deny": (400, "AccessDeniedException", DENY_MESSAGE),
    }),
    "eks": ("rest-json", {
        "throttle": (429, "TooManyRequestsException", "Too Many Requests"),
        "internal": (500, "ServerException", "An internal error occurred."),
        "deny": (403, "AccessDeniedException", DENY_MESSAGE),
    }),
}
# A service not in the table: rest-json with the common codes; an unsigned request ("unknown"):
# query XML, as IAM.
OTHER_FAULTS = ("rest-json", {
    "throttle": (429, "ThrottlingException", "Rate exceeded"),
    "internal": (500, "InternalFailure", "An internal error occurred."),
    "deny": (403, "AccessDeniedException", DENY_MESSAGE),
})
CLOUDFRONT_NAMESPACE = "http://cloudfront.amazonaws.com/doc/2020-05-31/"


def fault_response(service: str, kind: str):
    """The error the real `service` answers for `kind` ('throttle', 'internal' or 'deny'), in
    its protocol's shape: (status, headers, body)."""
    if service == "unknown":
        protocol, kinds = SERVICE_FAULTS["iam"]
    else:
        protocol, kinds = SERVICE_FAULTS.get(service, OTHER_FAULTS)
    status, code, msg = kinds[kind]
    request_id = str(uuid.uuid4())
    sender = "Sender" if status < 500 else "Receiver"
    if protocol == "rest-xml":  # S3: a bare <Error>
        body = (
            '<?xml version="1.0" encoding="UTF-8"?>\n'
            f"<Error><Code>{code}</Code><Message>{msg}</Message>"
            f"<RequestId>{request_id}</RequestId><HostId>fault</HostId></Error>"
        )
        return status, {"Content-Type": "application/xml", "x-amz-request-id": request_id}, body.encode()
    if protocol in ("rest-xml-wrapped", "query"):
        ns = CLOUDFRONT_NAMESPACE if protocol == "rest-xml-wrapped" else QUERY_XML_NAMESPACES.get(
            service, QUERY_XML_NAMESPACES["iam"])
        body = (
            f'<?xml version="1.0"?>\n<ErrorResponse xmlns="{ns}"><Error><Type>{sender}</Type>'
            f"<Code>{code}</Code><Message>{msg}</Message></Error>"
            f"<RequestId>{request_id}</RequestId></ErrorResponse>"
        )
        return status, {"Content-Type": "text/xml", "x-amzn-RequestId": request_id}, body.encode()
    if protocol == "ec2":
        body = (
            '<?xml version="1.0" encoding="UTF-8"?>\n'
            f"<Response><Errors><Error><Code>{code}</Code><Message>{msg}</Message></Error></Errors>"
            f"<RequestID>{request_id}</RequestID></Response>"
        )
        return status, {"Content-Type": "text/xml;charset=UTF-8"}, body.encode()
    if protocol == "json":  # awsJson1_1: the code in the body's __type
        message_key = "Message" if service == "tagging" else "message"
        body = json.dumps({"__type": code, message_key: msg})
        return status, {"Content-Type": "application/x-amz-json-1.1", "x-amzn-RequestId": request_id}, body.encode()
    # rest-json: the code in the x-amzn-ErrorType header
    return (
        status,
        {"Content-Type": "application/json", "x-amzn-ErrorType": code, "x-amzn-RequestId": request_id},
        json.dumps({"message": msg}).encode(),
    )


def deny_response(service: str):
    """A permanent AccessDenied in the service's own shape (no retry will help)."""
    return fault_response(service, "deny")


class AwsMode:
    """The AWS flavour: actions from the request's protocol, faults in the services' shapes."""

    name = "aws"
    fault_modes = ("before", "after", "reset", "throttle", "internal")
    default_fault_modes = "before,after,reset"
    streams = False

    def __init__(self):
        self.lock = threading.Lock()
        self.before_counter = 0

    def classify(self, method: str, path: str, raw_query: str, headers, body: bytes):
        query = urllib.parse.parse_qs(raw_query, keep_blank_values=True)
        service, action, write = classify(method, path, query, headers, body)
        return action, write, {"query": raw_query, "service": service, "action": action}

    @staticmethod
    def plan(fault: str) -> tuple[str, str]:
        return {"after": ("after", "answer"), "reset": ("before", "reset")}.get(fault, ("before", "answer"))

    def answer(self, fault: str, method: str, fields: dict, body: bytes):
        service = fields["service"]
        if fault == "deny":
            status, headers, fbody = deny_response(service)
        elif fault == "before":
            # mostly throttling, every other one an internal error
            with self.lock:
                kind = "throttle" if self.before_counter % 2 == 0 else "internal"
                self.before_counter += 1
            status, headers, fbody = fault_response(service, kind)
        elif fault == "throttle":
            status, headers, fbody = fault_response(service, "throttle")
        else:  # after, internal
            status, headers, fbody = fault_response(service, "internal")
        return status, list(headers.items()), fbody


def split_patterns(values) -> list[str]:
    """--hang-after/--fault-match/--deny values (each comma-separated, flags repeatable)."""
    out = []
    for value in values or []:
        out += [p.strip() for p in value.split(",") if p.strip()]
    return out


def matches(action: str, patterns) -> bool:
    """A shell glob per pattern; "METHOD /path" patterns: the method is case-insensitive, and a
    pattern starting with "/" matches any method."""
    for pattern in patterns:
        if pattern.startswith("/"):
            pattern = "* " + pattern
        method, sep, rest = pattern.partition(" ")
        if sep:
            pattern = f"{method.upper()} {rest}"
        if fnmatch.fnmatchcase(action, pattern):
            return True
    return False


class ProxyState:
    def __init__(self, upstream: str, log_path: str, fault_rate: float,
                 fault_seed: int, delay_ms: int, fault_modes: list[str],
                 deny=(), hang=(), *, mode=None, upstream_ca: str | None = None,
                 fault_writes: bool = False, fault_match=(), fault_limit: int | None = None,
                 fault_services=()):
        self.mode = mode if mode is not None else AwsMode()
        u = urllib.parse.urlsplit(upstream)
        schemes = ("http", "https") if self.mode.name == "kubernetes" else ("http",)
        if u.scheme not in schemes or not u.hostname:
            raise ValueError(f"upstream must be {'|'.join(schemes)}://host:port, got {upstream!r}")
        if u.hostname not in ("127.0.0.1", "localhost", "::1"):
            raise ValueError("upstream must be on the loopback interface")
        self.upstream_host = u.hostname
        self.upstream_port = u.port or (443 if u.scheme == "https" else 80)
        self.upstream_hostport = f"{u.hostname}:{self.upstream_port}"
        self.upstream_tls = None
        if u.scheme == "https":
            if not upstream_ca:
                raise ValueError("an https upstream needs --upstream-ca")
            self.upstream_tls = ssl.create_default_context(cafile=upstream_ca)
        self.log_file = open(log_path, "a", buffering=1, encoding="utf-8")
        self.log_lock = threading.Lock()
        self.fault_rate = fault_rate
        self.rng = random.Random(fault_seed)
        self.fault_modes = fault_modes
        self.fault_writes = fault_writes
        self.fault_match = list(fault_match)
        self.fault_services = set(fault_services)
        self.fault_limit = fault_limit
        self.deny = list(deny)
        self.hang = list(hang)
        self.delay = delay_ms / 1000.0
        self.lock = threading.Lock()
        self.requests = 0
        self.writes = 0
        self.faults = 0
        self.fault_counter = 0

    def connect(self, timeout: float | None) -> http.client.HTTPConnection:
        if self.upstream_tls is not None:
            return http.client.HTTPSConnection(self.upstream_host, self.upstream_port, timeout=timeout,
                                               context=self.upstream_tls)
        return http.client.HTTPConnection(self.upstream_host, self.upstream_port, timeout=timeout)

    def decide_fault(self, action: str, write: bool, exempt: bool, service: str | None = None) -> str | None:
        """The random fault for this request (a fault mode) or None."""
        if exempt or self.fault_rate <= 0 or not self.fault_modes:
            return None
        if (self.fault_writes and not write) or (self.fault_match and not matches(action, self.fault_match)):
            return None
        if self.fault_services and service not in self.fault_services:
            return None
        with self.lock:
            if self.fault_limit is not None and self.fault_counter >= self.fault_limit:
                return None
            if self.rng.random() >= self.fault_rate:
                return None
            mode = self.fault_modes[self.fault_counter % len(self.fault_modes)]
            self.fault_counter += 1
            return mode

    def record(self, entry: dict, write: bool, fault: str | None) -> None:
        # When the answer (or the fault) went out; with "ts" (when the request was read) it
        # gives each request's interval, from which the sequential rounds of a run follow.
        entry.setdefault("end", time.time())
        with self.lock:
            self.requests += 1
            if write:
                self.writes += 1
            if fault:
                self.faults += 1
        line = json.dumps(entry, separators=(",", ":"))
        with self.log_lock:
            self.log_file.write(line + "\n")
            self.log_file.flush()

    def stats(self) -> dict:
        with self.lock:
            return {"requests": self.requests, "writes": self.writes, "faults": self.faults}


class ProxyHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "comfyplat-recording-proxy"
    sys_version = ""

    state: ProxyState  # set on the class by make_server

    def log_message(self, fmt, *args):  # quiet; the JSON log is the record
        pass

    # -- body -------------------------------------------------------------
    def _read_body(self) -> bytes:
        te = self.headers.get("Transfer-Encoding", "")
        if "chunked" in te.lower():
            chunks = []
            while True:
                line = self.rfile.readline(65537)
                if not line:
                    raise ConnectionError("eof in chunked body")
                size = int(line.split(b";", 1)[0].strip() or b"0", 16)
                if size == 0:
                    # trailers until empty line
                    while True:
                        t = self.rfile.readline(65537)
                        if t in (b"\r\n", b"\n", b""):
                            break
                    break
                chunks.append(self.rfile.read(size))
                self.rfile.readline(3)  # CRLF after chunk
            return b"".join(chunks)
        length = self.headers.get("Content-Length")
        if length:
            return self.rfile.read(int(length))
        return b""

    # -- responses ----------------------------------------------------------
    def _send_head(self, status: int, headers, *, length: int | None, keep_length: bool = False,
                   chunked: bool = False) -> None:
        self.send_response(status)
        has_length = False
        for name, value in headers:
            lname = name.lower()
            if lname in HOP_BY_HOP or lname in ("date", "server"):
                continue
            if lname == "content-length":
                if not keep_length:
                    continue
                has_length = True
            self.send_header(name, value)
        if chunked:
            self.send_header("Transfer-Encoding", "chunked")
        elif not has_length and length is not None and not (status in (204, 304) or 100 <= status < 200):
            self.send_header("Content-Length", str(length))
        if self.close_connection:
            self.send_header("Connection", "close")
        self.end_headers()

    def _send(self, status: int, headers, body: bytes, head: bool = False,
              keep_length: bool = False) -> None:
        self._send_head(status, headers, length=len(body), keep_length=keep_length)
        no_body = head or status in (204, 304) or 100 <= status < 200
        if not no_body and body:
            self.wfile.write(body)
        self.wfile.flush()

    def _reset(self) -> None:
        """Drop the client connection without a response (TCP RST)."""
        self.close_connection = True
        try:
            self.connection.setsockopt(
                socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0)
            )
        except OSError:
            pass
        try:
            self.connection.close()
        except OSError:
            pass

    @staticmethod
    def _hang() -> None:
        while True:  # the client gives up or is killed; the thread is a daemon
            time.sleep(60)

    # -- dispatch -------------------------------------------------------------
    def _handle(self) -> None:
        st = self.state
        method = self.command
        split = urllib.parse.urlsplit(self.path)
        path, raw_query = split.path or "/", split.query

        try:
            body = self._read_body()
        except (ValueError, ConnectionError):
            self.close_connection = True
            self._send(400, [("Content-Type", "text/plain")], b"bad request body")
            return

        if path.startswith("/__proxy/"):
            if path == "/__proxy/stats" and method == "GET":
                data = json.dumps(st.stats()).encode()
                self._send(200, [("Content-Type", "application/json")], data)
            else:
                self._send(404, [("Content-Type", "text/plain")], b"not found")
            return

        action, write, fields = st.mode.classify(method, path, raw_query, self.headers, body)
        exempt = self.headers.get("x-comfyplat-no-fault", "").strip() == "1"
        fault = st.decide_fault(action, write, exempt, fields.get("service"))
        if st.deny and not exempt and matches(action, st.deny):
            fault = "deny"
        entry = {
            "ts": time.time(),
            "method": method,
            "path": path,
            **fields,
            "write": write,
            "status": 0,
            "fault": fault,
            "upstream_status": None,
        }
        head = method == "HEAD"
        when, what = st.mode.plan(fault) if fault else (None, None)
        try:
            if when == "before":
                if what == "reset":
                    st.record(entry, write, fault)
                    self._reset()
                    return
                status, headers, fbody = st.mode.answer(fault, method, fields, body)
                entry["status"] = status
                st.record(entry, write, fault)
                self._send(status, headers, fbody, head=head)
                return

            if st.delay:
                time.sleep(st.delay)
            try:
                conn, resp = self._open_upstream(method, body)
            except OSError as exc:
                entry["status"] = 502
                st.record(entry, write, fault)
                self._send(502, [("Content-Type", "text/plain")],
                           f"upstream error: {exc}".encode(), head=head)
                return
            try:
                stream = st.mode.streams and resp.chunked and not head
                if stream:
                    up_body = b""
                else:
                    try:
                        up_body = b"" if head else resp.read()
                    except (OSError, http.client.HTTPException) as exc:
                        entry["status"] = 502
                        st.record(entry, write, fault)
                        self._send(502, [("Content-Type", "text/plain")],
                                   f"upstream error: {exc!r}".encode(), head=head)
                        return
                entry["upstream_status"] = resp.status
                if st.hang and not exempt and matches(action, st.hang):
                    entry["fault"] = "hang"
                    st.record(entry, write, "hang")
                    conn.close()
                    self._hang()
                if when == "after":
                    conn.close()  # a stream is cut: nobody reads the rest
                    if what == "reset":
                        st.record(entry, write, fault)
                        self._reset()
                        return
                    status, headers, fbody = st.mode.answer(fault, method, fields, body)
                    entry["status"] = status
                    st.record(entry, write, fault)
                    self._send(status, headers, fbody, head=head)
                    return
                entry["status"] = resp.status
                st.record(entry, write, fault)
                if stream:
                    self._relay(conn, resp)
                else:
                    # HEAD answers carry the entity's Content-Length without a body
                    self._send(resp.status, resp.getheaders(), up_body, head=head, keep_length=head)
            finally:
                conn.close()
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True

    def _open_upstream(self, method: str, body: bytes):
        """Sends the request upstream; returns (connection, response) with the headers read."""
        st = self.state
        conn = st.connect(timeout=120)
        try:
            conn.putrequest(method, self.path, skip_host=True, skip_accept_encoding=True)
            for name, value in self.headers.items():
                lname = name.lower()
                if lname in HOP_BY_HOP or lname in ("host", "content-length"):
                    continue
                conn.putheader(name, value)
            conn.putheader("Host", st.upstream_hostport)
            if body or method in ("POST", "PUT", "PATCH"):
                conn.putheader("Content-Length", str(len(body)))
            conn.putheader("Connection", "close")
            conn.endheaders(body if body else None)
            return conn, conn.getresponse()
        except BaseException:
            conn.close()
            raise

    # -- streaming (watches) ------------------------------------------------------
    def _relay(self, conn, resp) -> None:
        """Passes a chunked answer on as it arrives, chunk by chunk."""
        self._send_head(resp.status, resp.getheaders(), length=None, chunked=True)
        self.wfile.flush()
        conn.sock.settimeout(None)  # a watch may stay quiet for minutes
        done = threading.Event()
        threading.Thread(target=self._close_upstream_when_client_leaves, args=(conn, done),
                         daemon=True).start()
        complete = False
        try:
            while True:
                data = resp.read1(65536)
                if not data:
                    complete = True
                    break
                self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
        except (OSError, ValueError, http.client.HTTPException):
            pass
        finally:
            done.set()
        if complete:
            try:
                self.wfile.write(b"0\r\n\r\n")
            except OSError:
                self.close_connection = True
        else:
            # the upstream broke off (or the client left): no terminating chunk, as upstream
            self.close_connection = True

    def _close_upstream_when_client_leaves(self, conn, done: threading.Event) -> None:
        """While a stream is relayed, the client sends nothing; when its socket turns readable
        with EOF or a TLS alert (close_notify), it has gone: shut the upstream connection so the
        relay (blocked reading upstream) ends and the upstream sees the watch end. Only the raw
        descriptor is looked at (the TLS state belongs to the relaying thread)."""
        try:
            raw = socket.socket(fileno=os.dup(self.connection.fileno()))
        except OSError:
            return
        try:
            while not done.is_set():
                readable, _, _ = select.select([raw], [], [], 0.25)
                if not readable:
                    continue
                try:
                    peek = raw.recv(1, socket.MSG_PEEK | socket.MSG_DONTWAIT)
                except BlockingIOError:
                    continue
                except OSError:
                    peek = b""
                if peek in (b"", b"\x15"):  # EOF, or a TLS alert record
                    break
                done.wait(0.25)  # something else: not ours to read
            else:
                return
            try:
                up = socket.socket(fileno=os.dup(conn.sock.fileno()))
                try:
                    up.shutdown(socket.SHUT_RDWR)
                finally:
                    up.close()
            except (OSError, AttributeError):
                pass
        finally:
            raw.close()

    def do_GET(self):
        self._handle()

    do_POST = do_PUT = do_DELETE = do_HEAD = do_PATCH = do_OPTIONS = do_GET


class ProxyServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 128

    def handle_error(self, request, client_address):
        # TLS handshakes refused by a client, clients going away: one line, no traceback
        sys.stderr.write(f"recording_proxy: connection from {client_address}: {sys.exc_info()[1]!r}\n")


def make_server(state: ProxyState, port: int) -> ProxyServer:
    handler = type("BoundProxyHandler", (ProxyHandler,), {"state": state})
    return ProxyServer((HOST, port), handler)


def kubeconfig_path(ready_file: str) -> str:
    """Where --kubernetes writes its kubeconfig: next to the ready file."""
    return os.path.splitext(os.path.abspath(ready_file))[0] + ".kubeconfig"


def main(argv: list[str] | None = None) -> int:
    import signal

    p = argparse.ArgumentParser(description="recording reverse proxy for moto or a Kubernetes API server")
    p.add_argument("--kubernetes", action="store_true",
                   help="Kubernetes API mode: serve HTTPS, log resources, answer faults as an apiserver")
    p.add_argument("--upstream", required=True)
    p.add_argument("--upstream-ca", help="(--kubernetes) CA file to trust for an https upstream")
    p.add_argument("--kubeconfig-from", help="(--kubernetes) kubeconfig whose current context's user "
                                              "entry the proxy's kubeconfig gets")
    p.add_argument("--port", type=int, default=0)
    p.add_argument("--ready-file", required=True)
    p.add_argument("--log", required=True)
    p.add_argument("--fault-rate", type=float, default=0.0)
    p.add_argument("--fault-seed", type=int, default=1)
    p.add_argument("--delay-ms", type=int, default=0)
    p.add_argument("--fault-modes", default=None,
                   help="comma-separated, used in turn (default: before,after,reset; --kubernetes: "
                        "429,500,503,reset)")
    p.add_argument("--fault-writes", action="store_true", help="only writes can be faulted")
    p.add_argument("--fault-match", action="append", default=[],
                   help="comma-separated patterns; only matching requests can be faulted")
    p.add_argument("--fault-limit", type=int, default=None, help="at most this many random faults")
    p.add_argument("--fault-services", action="append", default=[],
                   help="comma-separated services (AWS: signing names, e.g. s3,cloudfront,tagging); "
                        "only their requests can be faulted")
    p.add_argument("--deny", action="append", default=[],
                   help="comma-separated actions always answered with AccessDenied (not forwarded)")
    p.add_argument("--hang-after", action="append", default=[],
                   help="comma-separated actions/patterns forwarded and then never answered")
    args = p.parse_args(argv)

    if args.kubernetes:
        import kube_proxy

        mode = kube_proxy.KubeMode()
        if split_patterns(args.deny):
            p.error("--deny is not supported with --kubernetes")
    else:
        mode = AwsMode()
        for flag in ("upstream_ca", "kubeconfig_from"):
            if getattr(args, flag):
                p.error(f"--{flag.replace('_', '-')} needs --kubernetes")
    modes = [m.strip() for m in (args.fault_modes or mode.default_fault_modes).split(",") if m.strip()]
    bad = [m for m in modes if m not in mode.fault_modes]
    if bad:
        p.error(f"unknown fault mode(s): {', '.join(bad)} (known: {', '.join(mode.fault_modes)})")
    if not 0.0 <= args.fault_rate <= 1.0:
        p.error("--fault-rate must be within [0, 1]")
    if args.fault_limit is not None and args.fault_limit < 0:
        p.error("--fault-limit must be >= 0")

    try:
        state = ProxyState(args.upstream, args.log, args.fault_rate, args.fault_seed,
                           args.delay_ms, modes, split_patterns(args.deny), split_patterns(args.hang_after),
                           mode=mode, upstream_ca=args.upstream_ca, fault_writes=args.fault_writes,
                           fault_match=split_patterns(args.fault_match), fault_limit=args.fault_limit,
                           fault_services=split_patterns(args.fault_services))
    except (ValueError, OSError) as exc:
        p.error(str(exc))
    server = make_server(state, args.port)
    port = server.server_address[1]
    ready = {"port": port, "pid": os.getpid(), "endpoint": f"http://{HOST}:{port}"}
    tls_dir = kubeconfig = None
    try:
        if args.kubernetes:
            import kube_proxy
            import kube_server

            tls_dir = tempfile.mkdtemp(prefix="kube-proxy-tls-")
            certs = kube_server.serve_tls(server, tls_dir)
            endpoint = f"https://{HOST}:{port}"
            kubeconfig = kubeconfig_path(args.ready_file)
            write_json_atomic(kubeconfig, kube_proxy.kubeconfig(endpoint, certs["ca_data"], args.kubeconfig_from),
                              mode=0o600)
            ready.update(endpoint=endpoint, ca_file=certs["ca_file"], ca_data=certs["ca_data"],
                         kubeconfig=kubeconfig, upstream=args.upstream)
    except BaseException:
        server.server_close()
        if tls_dir:
            shutil.rmtree(tls_dir, ignore_errors=True)
        raise

    def on_signal(signum, _frame):
        # shutdown() blocks until serve_forever returns: call it off-thread
        threading.Thread(target=server.shutdown, daemon=True).start()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)

    write_json_atomic(args.ready_file, ready)
    print(f"proxy listening on {ready['endpoint']} -> {args.upstream}", flush=True)
    try:
        server.serve_forever(poll_interval=0.2)
    finally:
        server.server_close()
        state.log_file.close()
        if kubeconfig:
            try:
                os.unlink(kubeconfig)
            except OSError:
                pass
        if tls_dir:
            shutil.rmtree(tls_dir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
