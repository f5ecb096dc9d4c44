#!/usr/bin/env python3
"""Recording, fault-injecting HTTP/1.1 reverse proxy in front of moto.

    python recording_proxy.py --upstream http://127.0.0.1:PORT --port 0 \
        --ready-file PATH --log FILE [--fault-rate 0.0] [--fault-seed 1] \
        [--delay-ms 0] [--fault-modes before,after,reset]

Every request (except the proxy's own control endpoint) is appended to the log
file as one JSON line:

    {"ts", "method", "path", "query", "service", "action", "write", "status",
     "fault", "upstream_status"}

`status` is what the client saw (0 for a reset connection); `upstream_status`
is what moto answered, or null if the request was not forwarded.

Faults (probability --fault-rate, deterministic RNG seeded by --fault-seed):
  before  not forwarded; the client gets the service's throttling error, or
          every other time its internal error
  after   forwarded (the change happens upstream), then the real response is
          replaced by the service's internal error (500)
  reset   not forwarded; the client connection is reset without a response
--deny ACTION[,ACTION]: those actions always get AccessDenied (403), not forwarded
(logged with fault "deny"): a permanent failure, for partial-failure tests.
--hang-after ACTION[,ACTION]: those actions are forwarded (the change happens upstream and
is logged with its upstream status and fault "hang"), then the client never gets an answer:
a process killed right after a call whose response it never saw.
Requests with header `x-comfyplat-no-fault: 1` are never faulted.

Control endpoint (not logged, not forwarded): GET /__proxy/stats ->
    {"requests": N, "writes": N, "faults": N}
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import random
import re
import socket
import struct
import sys
import threading
import time
import urllib.parse
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


def fault_response(service: str, kind: str):
    """kind: 'throttle', 'internal' or 'deny'. Returns (status, headers, body)."""
    if kind == "deny":
        return deny_response(service)
    if service == "s3":
        if kind == "throttle":
            code, msg, status = "SlowDown", "Please reduce your request rate.", 503
        else:
            code, msg, status = (
                "InternalError",
                "We encountered an internal error. Please try again.",
                500,
            )
        body = (
            '<?xml version="1.0" encoding="UTF-8"?>\n'
            f"<Error><Code>{code}</Code><Message>{msg}</Message>"
            "<RequestId>fault</RequestId><HostId>fault</HostId></Error>"
        ).encode()
        return status, {"Content-Type": "application/xml"}, body
    if service in QUERY_XML_NAMESPACES or service == "unknown":
        ns = QUERY_XML_NAMESPACES.get(service, QUERY_XML_NAMESPACES["iam"])
        if kind == "throttle":
            etype, code, msg, status = "Sender", "Throttling", "Rate exceeded", 400
        else:
            etype, code, msg, status = (
                "Receiver",
                "ServiceFailure" if service in ("iam", "unknown") else "InternalFailure",
                "An internal error occurred.",
                500,
            )
        if service == "ec2":
            body = (
                '<?xml version="1.0" encoding="UTF-8"?>\n'
                f"<Response><Errors><Error><Code>{'RequestLimitExceeded' if kind == 'throttle' else 'InternalError'}</Code>"
                f"<Message>{msg}</Message></Error></Errors><RequestID>fault</RequestID></Response>"
            ).encode()
            status = 503 if kind == "throttle" else 500
        else:
            body = (
                f'<ErrorResponse xmlns="{ns}"><Error><Type>{etype}</Type>'
                f"<Code>{code}</Code><Message>{msg}</Message></Error>"
                "<RequestId>fault</RequestId></ErrorResponse>"
            ).encode()
        return status, {"Content-Type": "text/xml"}, body
    # rest-json / json services
    if kind == "throttle":
        etype, msg, status = "ThrottlingException", "Rate exceeded", 429
    else:
        etype, msg, status = "InternalFailure", "An internal error occurred.", 500
    body = json.dumps({"message": msg}).encode()
    return (
        status,
        {
            "Content-Type": "application/json",
            "x-amzn-ErrorType": etype,
            "x-amzn-RequestId": "fault",
        },
        body,
    )


def deny_response(service: str):
    """A permanent AccessDenied in the service's own shape (no retry will help)."""
    msg = "User: arn:aws:iam::123456789012:user/test is not authorized to perform this action"
    if service == "s3":
        body = (
            '<?xml version="1.0" encoding="UTF-8"?>\n'
            f"<Error><Code>AccessDenied</Code><Message>{msg}</Message>"
            "<RequestId>fault</RequestId><HostId>fault</HostId></Error>"
        ).encode()
        return 403, {"Content-Type": "application/xml"}, body
    if service in QUERY_XML_NAMESPACES or service == "unknown":
        ns = QUERY_XML_NAMESPACES.get(service, QUERY_XML_NAMESPACES["iam"])
        body = (
            f'<ErrorResponse xmlns="{ns}"><Error><Type>Sender</Type>'
            f"<Code>AccessDenied</Code><Message>{msg}</Message></Error>"
            "<RequestId>fault</RequestId></ErrorResponse>"
        ).encode()
        return 403, {"Content-Type": "text/xml"}, body
    body = json.dumps({"message": msg}).encode()
    return 403, {"Content-Type": "application/json", "x-amzn-ErrorType": "AccessDeniedException"}, body


# --------------------------------------------------------------------------
# proxy
# --------------------------------------------------------------------------


class ProxyState:
    def __init__(self, upstream: str, log_path: str, fault_rate: float,
                 fault_seed: int, delay_ms: int, fault_modes: list[str],
                 deny: frozenset[str] = frozenset(),
                 hang: frozenset[str] = frozenset()):
        u = urllib.parse.urlsplit(upstream)
        if u.scheme != "http" or not u.hostname:
            raise ValueError(f"upstream must be http://host:port, got {upstream!r}")
        if u.hostname not in ("127.0.0.1", "localhost", "::1"):
            raise ValueError("upstream must be on the loopback interface")
        self.upstream_host = u.hostname
        self.upstream_port = u.port or 80
        self.upstream_hostport = f"{u.hostname}:{self.upstream_port}"
        self.log_file = open(log_path, "a", buffering=1, encoding="utf-8")
        self.log_lock = threading.Lock()
        self.fault_rate = fault_rate
        self.rng = random.Random(fault_seed)
        self.fault_modes = fault_modes
        self.deny = deny
        self.hang = hang
        self.delay = delay_ms / 1000.0
        self.lock = threading.Lock()
        self.requests = 0
        self.writes = 0
        self.faults = 0
        self.fault_counter = 0
        self.before_counter = 0

    def decide_fault(self, exempt: bool) -> tuple[str | None, str]:
        with self.lock:
            if exempt or self.fault_rate <= 0 or not self.fault_modes:
                return None, ""
            if self.rng.random() >= self.fault_rate:
                return None, ""
            mode = self.fault_modes[self.fault_counter % len(self.fault_modes)]
            self.fault_counter += 1
            kind = "internal"
            if mode == "before":
                # mostly throttling, every other one an internal error
                kind = "throttle" if self.before_counter % 2 == 0 else "internal"
                self.before_counter += 1
            return mode, kind

    def record(self, entry: dict, write: bool, fault: str | None) -> None:
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
    def _send(self, status: int, headers, body: bytes, head: bool = False,
              keep_length: bool = False) -> None:
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
        no_body = head or status in (204, 304) or 100 <= status < 200
        if not has_length and not (status in (204, 304) or 100 <= status < 200):
            self.send_header("Content-Length", str(len(body)))
        if self.close_connection:
            self.send_header("Connection", "close")
        self.end_headers()
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

        query = urllib.parse.parse_qs(raw_query, keep_blank_values=True)
        service, action, write = classify(method, path, query, self.headers, body)
        exempt = self.headers.get("x-comfyplat-no-fault", "").strip() == "1"
        fault, kind = st.decide_fault(exempt)
        if action in st.deny and not exempt:
            fault, kind = "before", "deny"
        entry = {
            "ts": time.time(),
            "method": method,
            "path": path,
            "query": raw_query,
            "service": service,
            "action": action,
            "write": write,
            "status": 0,
            "fault": fault,
            "upstream_status": None,
        }
        head = method == "HEAD"
        try:
            if fault == "reset":
                entry["status"] = 0
                st.record(entry, write, fault)
                self._reset()
                return
            if fault == "before":
                status, headers, fbody = fault_response(service, kind)
                entry["status"] = status
                if kind == "deny":
                    entry["fault"] = "deny"
                st.record(entry, write, fault)
                self._send(status, list(headers.items()), fbody, head=head)
                return

            if st.delay:
                time.sleep(st.delay)
            try:
                up_status, up_headers, up_body = self._forward(method, body)
            except OSError as exc:
                entry["status"] = 502
                st.record(entry, write, fault)
                self._send(502, [("Content-Type", "text/plain")],
                           f"upstream error: {exc}".encode(), head=head)
                return
            entry["upstream_status"] = up_status
            if action in st.hang and not exempt:
                entry["fault"] = "hang"
                st.record(entry, write, "hang")
                while True:  # the client gives up or is killed; the thread is a daemon
                    time.sleep(60)
            if fault == "after":
                status, headers, fbody = fault_response(service, "internal")
                entry["status"] = status
                st.record(entry, write, fault)
                self._send(status, list(headers.items()), fbody, head=head)
                return
            entry["status"] = up_status
            st.record(entry, write, fault)
            # HEAD answers carry the entity's Content-Length without a body
            self._send(up_status, up_headers, up_body, head=head, keep_length=head)
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True

    def _forward(self, method: str, body: bytes):
        st = self.state
        conn = http.client.HTTPConnection(st.upstream_host, st.upstream_port, timeout=120)
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
            resp = conn.getresponse()
            data = b"" if method == "HEAD" else resp.read()
            return resp.status, resp.getheaders(), data
        finally:
            conn.close()

    def do_GET(self):
        self._handle()

    do_POST = do_PUT = do_DELETE = do_HEAD = do_PATCH = do_OPTIONS = do_GET


class ProxyServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 128


def make_server(state: ProxyState, port: int) -> ProxyServer:
    handler = type("BoundProxyHandler", (ProxyHandler,), {"state": state})
    return ProxyServer((HOST, port), handler)




def main(argv: list[str] | None = None) -> int:
    import signal

    p = argparse.ArgumentParser(description="recording reverse proxy for moto")
    p.add_argument("--upstream", required=True)
    p.add_argument("--port", type=int, default=0)
    p.add_argument("--ready-file", required=True)
    p.add_argument("--log", required=True)
    p.add_argument("--fault-rate", type=float, default=0.0)
    p.add_argument("--fault-seed", type=int, default=1)
    p.add_argument("--delay-ms", type=int, default=0)
    p.add_argument("--fault-modes", default="before,after,reset")
    p.add_argument("--deny", default="", help="comma-separated actions always answered with AccessDenied (not forwarded)")
    p.add_argument("--hang-after", default="", help="comma-separated actions forwarded and then never answered")
    args = p.parse_args(argv)

    modes = [m.strip() for m in args.fault_modes.split(",") if m.strip()]
    bad = [m for m in modes if m not in ("before", "after", "reset")]
    if bad:
        p.error(f"unknown fault mode(s): {', '.join(bad)}")
    if not 0.0 <= args.fault_rate <= 1.0:
        p.error("--fault-rate must be within [0, 1]")

    state = ProxyState(args.upstream, args.log, args.fault_rate, args.fault_seed,
                       args.delay_ms, modes,
                       frozenset(a.strip() for a in args.deny.split(",") if a.strip()),
                       frozenset(a.strip() for a in args.hang_after.split(",") if a.strip()))
    server = make_server(state, args.port)
    port = server.server_address[1]

    def on_signal(signum, _frame):
        # shutdown() blocks until serve_forever returns: call it off-thread
        threading.Thread(target=server.shutdown, daemon=True).start()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)

    endpoint = f"http://{HOST}:{port}"
    write_json_atomic(args.ready_file, {"port": port, "pid": os.getpid(), "endpoint": endpoint})
    print(f"proxy listening on {endpoint} -> {args.upstream}", flush=True)
    try:
        server.serve_forever(poll_interval=0.2)
    finally:
        server.server_close()
        state.log_file.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
