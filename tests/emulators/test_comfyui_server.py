"""Tests for comfyui_server.py, driven only by independent clients: `requests` for HTTP and
`websocket-client` for /ws.

Three servers run for the module: one replica (most tests), two replicas (ALB stickiness) and
one with --token (the edge sign-in). Each test starts from POST /__control/reset.
"""

from __future__ import annotations

import base64
import email.utils
import hashlib
import json
import os
import signal
import struct
import subprocess
import sys
import time
import uuid
import zlib
from datetime import datetime, timedelta, timezone

import pytest
import requests
import websocket

HERE = os.path.dirname(os.path.abspath(__file__))
TIMEOUT = 10


# --------------------------------------------------------------------------
# servers and clients
# --------------------------------------------------------------------------

def start_server(tmp, *args):
    ready = tmp / "ready.json"
    log = open(tmp / "server.log", "w")
    proc = subprocess.Popen([sys.executable, os.path.join(HERE, "comfyui_server.py"), "--port", "0",
                             "--ready-file", str(ready), "--step-seconds", "0.01", *args],
                            stdout=log, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 20
    while not ready.exists() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    assert ready.exists(), (tmp / "server.log").read_text()
    info = json.loads(ready.read_text())
    assert info == {"port": info["port"], "pid": proc.pid, "endpoint": f"http://127.0.0.1:{info['port']}"}
    return proc, log, info


def stop_server(proc, log, tmp):
    proc.send_signal(signal.SIGTERM)
    try:
        rc = proc.wait(10)
    except subprocess.TimeoutExpired:
        proc.kill()
        rc = proc.wait()
    log.close()
    text = (tmp / "server.log").read_text()
    assert rc == 0, text
    assert "Traceback" not in text, text


class Comfy:
    """A client of one stand-in: HTTP through a requests.Session (which keeps the ALB cookie),
    websockets through websocket-client."""

    def __init__(self, info, token=None):
        self.endpoint = info["endpoint"]
        self.token = token
        self.http = requests.Session()
        if token:
            self.http.headers["Authorization"] = f"Bearer {token}"

    def get(self, path, **kw):
        return self.http.get(self.endpoint + path, timeout=TIMEOUT, **kw)

    def post(self, path, body=None, **kw):
        if body is not None:
            kw["json"] = body
        return self.http.post(self.endpoint + path, timeout=TIMEOUT, **kw)

    def control(self, method, path, body=None, **params):
        r = requests.request(method, f"{self.endpoint}/__control/{path}", json=body, params=params, timeout=TIMEOUT)
        assert r.status_code == 200, r.text
        return r.json()

    def ws(self, client_id=None, **kw):
        if self.token:
            kw.setdefault("header", [f"Authorization: Bearer {self.token}"])
        cookie = "; ".join(f"{c.name}={c.value}" for c in self.http.cookies if c.name == "AWSALB")
        if cookie:
            kw.setdefault("cookie", cookie)
        return WS(self.endpoint, client_id, **kw)

    def submit(self, prompt, client_id=None, **extra):
        body = {"prompt": prompt, **extra}
        if client_id is not None:
            body["client_id"] = client_id
        r = self.post("/prompt", body)
        assert r.status_code == 200, r.text
        return r.json()

    def history(self, prompt_id, timeout=TIMEOUT):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            entry = self.get(f"/history/{prompt_id}").json()
            if entry:
                return entry[prompt_id]
            time.sleep(0.02)
        raise AssertionError(f"no history for {prompt_id}")

    def files(self):
        return self.control("GET", "files")


class WS:
    """A /ws client keeping every frame: `frames` is [("text", message) | ("binary", bytes)]."""

    def __init__(self, endpoint, client_id=None, **kw):
        url = "ws" + endpoint[len("http"):] + "/ws" + (f"?clientId={client_id}" if client_id else "")
        self.sock = websocket.create_connection(url, timeout=TIMEOUT, **kw)
        self.frames = []

    def recv(self, timeout=TIMEOUT):
        deadline = time.monotonic() + timeout
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise AssertionError("no websocket message in time")
            self.sock.settimeout(remaining)
            opcode, data = self.sock.recv_data()
            if opcode == websocket.ABNF.OPCODE_BINARY:
                self.frames.append(("binary", data))
                continue
            assert opcode == websocket.ABNF.OPCODE_TEXT, opcode
            message = json.loads(data)
            self.frames.append(("text", message))
            return message

    def until(self, predicate, timeout=TIMEOUT):
        """Text messages up to and including the first one `predicate` accepts."""
        deadline = time.monotonic() + timeout
        messages = []
        while True:
            messages.append(self.recv(deadline - time.monotonic()))
            if predicate(messages[-1]):
                return messages

    def until_done(self, prompt_id, timeout=TIMEOUT):
        """Messages up to the legacy done signal: executing with node null."""
        return self.until(lambda m: m["type"] == "executing" and m["data"]["node"] is None
                          and m["data"]["prompt_id"] == prompt_id, timeout)

    def frames_text(self, kind):
        """Every text message of type `kind` received so far."""
        return [m for k, m in self.frames if k == "text" and m["type"] == kind]

    def send(self, message):
        self.sock.send(json.dumps(message))

    def close(self):
        self.sock.close()


@pytest.fixture(scope="module")
def single(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("comfy")
    proc, log, info = start_server(tmp)
    yield info
    stop_server(proc, log, tmp)


@pytest.fixture(scope="module")
def duo_server(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("duo")
    proc, log, info = start_server(tmp, "--replicas", "2")
    yield info
    stop_server(proc, log, tmp)


@pytest.fixture(scope="module")
def guarded_server(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("guarded")
    proc, log, info = start_server(tmp, "--token", "s3cret")
    yield info
    stop_server(proc, log, tmp)


@pytest.fixture
def comfy(single):
    c = Comfy(single)
    c.control("POST", "reset")
    return c


@pytest.fixture
def duo(duo_server):
    c = Comfy(duo_server)
    c.control("POST", "reset")
    return c


@pytest.fixture
def guarded(guarded_server):
    c = Comfy(guarded_server, token="s3cret")
    c.control("POST", "reset")
    return c


# --------------------------------------------------------------------------
# workflows and helpers
# --------------------------------------------------------------------------

CKPT = "sd15.safetensors"


def t2i(seed=1, steps=3, prefix="t2i/run", ckpt=CKPT):
    """The default text-to-image graph, ids as ComfyUI's default workflow numbers them."""
    return {
        "3": {"class_type": "KSampler", "inputs": {
            "seed": seed, "steps": steps, "cfg": 7.5, "sampler_name": "euler", "scheduler": "normal",
            "denoise": 1.0, "model": ["4", 0], "positive": ["6", 0], "negative": ["7", 0],
            "latent_image": ["5", 0]}},
        "4": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": ckpt}},
        "5": {"class_type": "EmptyLatentImage", "inputs": {"width": 64, "height": 48, "batch_size": 1}},
        "6": {"class_type": "CLIPTextEncode", "inputs": {"text": "a cat", "clip": ["4", 1]}},
        "7": {"class_type": "CLIPTextEncode", "inputs": {"text": "blurry", "clip": ["4", 1]}},
        "8": {"class_type": "VAEDecode", "inputs": {"samples": ["3", 0], "vae": ["4", 2]}},
        "9": {"class_type": "SaveImage", "inputs": {"filename_prefix": prefix, "images": ["8", 0]}},
    }


def regex_graph(pattern="("):
    return {"1": {"class_type": "RegexReplace", "inputs": {"string": "abc", "regex_pattern": pattern,
                                                           "replace": "x"}},
            "2": {"class_type": "PreviewAny", "inputs": {"source": ["1", 0]}}}


def png(width, height, rgb=(1, 2, 3)):
    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
    rows = b"".join(b"\x00" + bytes(rgb) * width for _ in range(height))
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)) + \
        chunk(b"IDAT", zlib.compress(rows)) + chunk(b"IEND", b"")


def png_chunks(data):
    """[(type, data)] of a PNG, checking the signature and every CRC."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    pos, chunks = 8, []
    while pos < len(data):
        (length,) = struct.unpack(">I", data[pos:pos + 4])
        kind, body = data[pos + 4:pos + 8], data[pos + 8:pos + 8 + length]
        assert struct.unpack(">I", data[pos + 8 + length:pos + 12 + length])[0] == zlib.crc32(kind + body)
        chunks.append((kind, body))
        pos += 12 + length
    return chunks


def types(messages):
    return [m["type"] for m in messages]


def status_msg(remaining):
    return {"type": "status", "data": {"status": {"exec_info": {"queue_remaining": remaining}}}}


def run(comfy, ws, prompt, client_id, **extra):
    """Submit, wait for the done signal; (POST answer, messages after the submit)."""
    answer = comfy.submit(prompt, client_id, **extra)
    return answer, ws.until_done(answer["prompt_id"])


def wait_progress(ws, value):
    ws.until(lambda m: m["type"] == "progress" and m["data"]["value"] >= value)


# --------------------------------------------------------------------------
# the text-to-image run, end to end
# --------------------------------------------------------------------------

def test_text_to_image_messages_history_and_view(comfy):
    comfy.control("POST", "models", {"checkpoints": [CKPT]})
    comfy.control("POST", "settings", {"history_delay": 1.0})
    ws = comfy.ws("client-1")
    assert ws.recv() == {"type": "status", "data": {"status": {"exec_info": {"queue_remaining": 0}},
                                                    "sid": "client-1"}}
    answer, messages = run(comfy, ws, t2i(steps=3), "client-1")
    pid = answer["prompt_id"]
    assert answer == {"prompt_id": pid, "number": 0, "node_errors": {}}
    assert str(uuid.UUID(pid)) == pid
    done_at = time.monotonic()
    assert comfy.get(f"/history/{pid}").json() == {}  # written history_delay after the end

    assert messages[:4] == [status_msg(1), status_msg(1),
                            {"type": "execution_start", "data": {"prompt_id": pid,
                                                                 "timestamp": messages[2]["data"]["timestamp"]}},
                            {"type": "execution_cached", "data": {"nodes": [], "prompt_id": pid,
                                                                  "timestamp": messages[3]["data"]["timestamp"]}}]
    assert messages[-3:] == [{"type": "execution_success", "data": {"prompt_id": pid,
                                                                    "timestamp": messages[-3]["data"]["timestamp"]}},
                             status_msg(0), {"type": "executing", "data": {"node": None, "prompt_id": pid}}]
    ts = [messages[2]["data"]["timestamp"], messages[-3]["data"]["timestamp"]]
    assert abs(ts[0] - time.time() * 1000) < 60000 and ts[0] <= ts[1]

    # Per node: progress_state running, executing, [progress...], [executed], progress_state finished.
    order = [m["data"]["node"] for m in messages if m["type"] == "executing" and m["data"]["node"]]
    assert order == ["4", "5", "7", "6", "3", "8", "9"]  # ComfyUI's pick: outputs' feeders first
    body = messages[4:-3]
    for node in order:
        i = body.index({"type": "executing", "data": {"node": node, "display_node": node, "prompt_id": pid}})
        before, after = body[i - 1], body[i + 1:]
        assert before["type"] == "progress_state" and before["data"]["nodes"][node] == {
            "value": 0.0, "max": 1.0, "state": "running", "node_id": node, "prompt_id": pid,
            "display_node_id": node, "parent_node_id": None, "real_node_id": node}
        end = next(j for j, m in enumerate(after) if m["type"] == "progress_state"
                   and m["data"]["nodes"][node]["state"] == "finished")
        kinds = types(after[:end])
        if node == "3":
            assert kinds == ["progress_state", "progress"] * 3
            assert [m["data"] for m in after[:end] if m["type"] == "progress"] == [
                {"value": v, "max": 3, "prompt_id": pid, "node": "3"} for v in (1, 2, 3)]
            assert after[end]["data"]["nodes"]["3"]["value"] == 3
        elif node == "9":
            assert kinds == ["executed"]
        else:
            assert kinds == []
    final_state = body[-1]["data"]["nodes"]
    assert sorted(final_state) == sorted(order) and {s["state"] for s in final_state.values()} == {"finished"}

    # One binary preview after each progress message: type 1, image type 2 (PNG), PNG bytes.
    frames = ws.frames
    for i, (kind, value) in enumerate(frames):
        if kind == "text" and value["type"] == "progress":
            nxt_kind, nxt = frames[i + 1]
            assert nxt_kind == "binary" and struct.unpack(">II", nxt[:8]) == (1, 2)
            png_chunks(nxt[8:])
    assert sum(k == "binary" for k, _ in frames) == 3

    executed = next(m for m in messages if m["type"] == "executed")
    image = {"filename": "run_00001_.png", "subfolder": "t2i", "type": "output"}
    assert executed == {"type": "executed", "data": {"node": "9", "display_node": "9",
                                                     "output": {"images": [image]}, "prompt_id": pid}}

    entry = comfy.history(pid)
    assert time.monotonic() - done_at > 0.5
    number, hid, prompt, extra, outputs = entry["prompt"]
    assert (number, hid, prompt, outputs) == (0, pid, t2i(steps=3), ["9"])
    assert extra["client_id"] == "client-1" and isinstance(extra["create_time"], int)
    assert entry["outputs"] == {"9": {"images": [image]}}
    assert entry["meta"] == {"9": {"node_id": "9", "display_node": "9", "parent_node": None, "real_node_id": "9"}}
    assert entry["status"]["status_str"] == "success" and entry["status"]["completed"] is True
    assert [e for e, _ in entry["status"]["messages"]] == ["execution_start", "execution_cached", "execution_success"]
    assert list(comfy.get("/history").json()) == [pid]

    view = comfy.get("/view", params={"filename": "run_00001_.png", "subfolder": "t2i", "type": "output"})
    assert view.status_code == 200 and view.headers["Content-Type"] == "image/png"
    assert view.headers["Content-Disposition"] == 'filename="run_00001_.png"'
    (meta,) = [f for f in comfy.files() if f["filename"] == "run_00001_.png"]
    assert meta == {"replica": 0, "type": "output", "subfolder": "t2i", "filename": "run_00001_.png",
                    "size": len(view.content), "sha256": hashlib.sha256(view.content).hexdigest()}
    chunks = png_chunks(view.content)
    assert struct.unpack(">II", chunks[0][1][:8]) == (64, 48)
    (text,) = [body for kind, body in chunks if kind == b"tEXt"]
    key, _, value = text.partition(b"\0")
    assert key == b"prompt" and json.loads(value) == t2i(steps=3)

    job = comfy.get(f"/api/jobs/{pid}").json()
    assert job["status"] == "completed" and job["outputs_count"] == 1 and job["priority"] == 0
    assert job["preview_output"] == {**image, "nodeId": "9", "mediaType": "images"}
    assert job["workflow"] == {"prompt": t2i(steps=3), "extra_data": extra}
    assert job["execution_end_time"] >= job["execution_start_time"]
    ws.close()


def test_rerun_is_cached_and_a_new_seed_only_reruns_downstream(comfy):
    comfy.control("POST", "models", {"checkpoints": [CKPT]})
    ws = comfy.ws("c")
    ws.recv()
    first, _ = run(comfy, ws, t2i(), "c")
    files = comfy.files()
    again, messages = run(comfy, ws, t2i(), "c")
    cached = next(m for m in messages if m["type"] == "execution_cached")
    assert cached["data"]["nodes"] == ["3", "4", "5", "6", "7", "8", "9"]
    assert [m for m in messages if m["type"] == "executing"] == [
        {"type": "executing", "data": {"node": None, "prompt_id": again["prompt_id"]}}]
    assert [m["data"] for m in messages if m["type"] == "executed"] == [
        {"node": "9", "display_node": "9", "prompt_id": again["prompt_id"],
         "output": {"images": [{"filename": "run_00001_.png", "subfolder": "t2i", "type": "output"}]}}]
    assert "progress" not in types(messages)
    assert comfy.files() == files  # no new file
    assert comfy.history(again["prompt_id"])["outputs"] == comfy.history(first["prompt_id"])["outputs"]

    third, messages = run(comfy, ws, t2i(seed=2), "c")
    assert next(m for m in messages if m["type"] == "execution_cached")["data"]["nodes"] == ["4", "5", "6", "7"]
    assert [m["data"]["node"] for m in messages if m["type"] == "executing"] == ["3", "8", "9", None]
    assert comfy.history(third["prompt_id"])["outputs"]["9"]["images"][0]["filename"] == "run_00002_.png"
    ws.close()


def test_prompt_without_client_id_sends_only_broadcasts(comfy):
    ws = comfy.ws("watcher")
    ws.recv()
    graph = {"1": {"class_type": "EmptyImage", "inputs": {"width": 8, "height": 8, "batch_size": 1, "color": 0}},
             "2": {"class_type": "SaveImage", "inputs": {"images": ["1", 0], "filename_prefix": "anon"}}}
    answer = comfy.submit(graph)
    messages = ws.until(lambda m: m == status_msg(0))
    assert set(types(messages)) == {"status", "progress_state"}
    assert set(comfy.history(answer["prompt_id"])["prompt"][3]) == {"create_time"}
    ws.close()


def test_websocket_sid_feature_flags_and_preview_metadata(comfy):
    anonymous = comfy.ws()
    first = anonymous.recv()
    sid = first["data"]["sid"]
    assert len(sid) == 32 and int(sid, 16) >= 0
    anonymous.close()

    comfy.control("POST", "models", {"checkpoints": [CKPT]})
    ws = comfy.ws("flags")
    ws.recv()
    ws.send({"type": "feature_flags", "data": {"supports_preview_metadata": True}})
    assert ws.recv() == {"type": "feature_flags", "data": comfy.get("/features").json()}
    answer, _ = run(comfy, ws, t2i(steps=2), "flags")
    frames = ws.frames
    previews = [v for k, v in frames if k == "binary"]
    assert len(previews) == 2
    for frame in previews:
        kind, length = struct.unpack(">II", frame[:8])
        meta = json.loads(frame[8:8 + length])
        assert kind == 4 and meta == {"node_id": "3", "prompt_id": answer["prompt_id"], "display_node_id": "3",
                                      "parent_node_id": None, "real_node_id": "3", "image_type": "image/png"}
        png_chunks(frame[8 + length:])
    # The metadata preview comes before its progress message (the progress handler sends it).
    i = next(i for i, (k, _) in enumerate(frames) if k == "binary")
    assert frames[i - 1][1]["type"] == "progress_state" and frames[i + 1][1]["type"] == "progress"
    ws.close()


# --------------------------------------------------------------------------
# validation
# --------------------------------------------------------------------------

def empty_image(**inputs):
    return {"class_type": "EmptyImage", "inputs": {"width": 16, "height": 16, "batch_size": 1, "color": 0, **inputs}}


def save(source="1", prefix="v"):
    return {"class_type": "SaveImage", "inputs": {"images": [source, 0], "filename_prefix": prefix}}


def reject(comfy, prompt, **extra):
    r = comfy.post("/prompt", {"prompt": prompt, "client_id": "v", **extra})
    assert r.status_code == 400 and r.headers["Content-Type"] == "application/json; charset=utf-8", r.text
    return r.json()


def failed(node_errors, details=""):
    return {"error": {"type": "prompt_outputs_failed_validation", "message": "Prompt outputs failed validation",
                      "details": details, "extra_info": {}}, "node_errors": node_errors}


def test_missing_node_type(comfy):
    assert reject(comfy, {"1": {"class_type": "NoSuchNodeType", "inputs": {}}}) == {
        "error": {"type": "missing_node_type",
                  "message": "Node 'NoSuchNodeType' not found. The custom node may not be installed.",
                  "details": "Node ID '#1'",
                  "extra_info": {"node_id": "1", "class_type": "NoSuchNodeType", "node_title": "NoSuchNodeType"}},
        "node_errors": {}}
    assert reject(comfy, {"1": {"inputs": {}}}) == {
        "error": {"type": "missing_node_type",
                  "message": "Node 'ID #1' has no class_type. The workflow may be corrupted or a custom node is "
                             "missing.",
                  "details": "Node ID '#1'", "extra_info": {"node_id": "1", "class_type": None, "node_title": None}},
        "node_errors": {}}


def test_required_input_missing(comfy):
    image = empty_image()
    del image["inputs"]["color"]
    assert reject(comfy, {"1": image, "2": save()}) == failed({"1": {
        "errors": [{"type": "required_input_missing", "message": "Required input is missing", "details": "color",
                    "extra_info": {"input_name": "color"}}],
        "dependent_outputs": ["2"], "class_type": "EmptyImage"}})


def test_value_not_in_list_old_and_new_style_combos(comfy):
    comfy.control("POST", "models", {"checkpoints": ["fake.safetensors"]})
    tooltip = {"tooltip": "The name of the checkpoint (model) to load."}
    assert reject(comfy, t2i(ckpt="nope.safetensors")) == failed({"4": {
        "errors": [{"type": "value_not_in_list", "message": "Value not in list",
                    "details": "ckpt_name: 'nope.safetensors' not in ['fake.safetensors']",
                    "extra_info": {"input_name": "ckpt_name", "input_config": [["fake.safetensors"], tooltip],
                                   "received_value": "nope.safetensors"}}],
        "dependent_outputs": ["9"], "class_type": "CheckpointLoaderSimple"}})
    graph = t2i(ckpt="fake.safetensors")
    graph["3"]["inputs"]["sampler_name"] = "nope"
    samplers = comfy.get("/object_info/KSampler").json()["KSampler"]["input"]["required"]["sampler_name"]
    assert samplers[0] == "COMBO" and "euler" in samplers[1]["options"]
    assert reject(comfy, graph)["node_errors"]["3"]["errors"] == [{
        "type": "value_not_in_list", "message": "Value not in list",
        "details": f"sampler_name: 'nope' not in (list of length {len(samplers[1]['options'])})",
        "extra_info": {"input_name": "sampler_name", "input_config": None, "received_value": "nope"}}]


def test_min_max_and_type_conversion(comfy):
    config = ["INT", {"default": 512, "min": 1, "max": 16384, "step": 1}]
    assert reject(comfy, {"1": empty_image(width=99999), "2": save()}) == failed({"1": {
        "errors": [{"type": "value_bigger_than_max", "message": "Value 99999 bigger than max of 16384",
                    "details": "width", "extra_info": {"input_name": "width", "input_config": config,
                                                       "received_value": 99999}}],
        "dependent_outputs": ["2"], "class_type": "EmptyImage"}})
    assert reject(comfy, {"1": empty_image(height=0), "2": save()})["node_errors"]["1"]["errors"] == [{
        "type": "value_smaller_than_min", "message": "Value 0 smaller than min of 1", "details": "height",
        "extra_info": {"input_name": "height", "input_config": config, "received_value": 0}}]
    assert reject(comfy, {"1": empty_image(width="abc"), "2": save()})["node_errors"]["1"]["errors"] == [{
        "type": "invalid_input_type", "message": "Failed to convert an input value to a INT value",
        "details": "width, abc, invalid literal for int() with base 10: 'abc'",
        "extra_info": {"input_name": "width", "input_config": config, "received_value": "abc",
                       "exception_message": "invalid literal for int() with base 10: 'abc'"}}]
    # A string that converts is accepted and stored converted.
    ok = comfy.submit({"1": empty_image(width="24"), "2": save()})
    assert comfy.history(ok["prompt_id"])["prompt"][2]["1"]["inputs"]["width"] == 24


def test_return_type_mismatch_and_link_to_missing_node(comfy):
    latent = {"class_type": "EmptyLatentImage", "inputs": {"width": 64, "height": 64, "batch_size": 1}}
    details = "images, received_type(LATENT) mismatch input_type(IMAGE)"
    assert reject(comfy, {"1": latent, "2": save()}) == failed({"2": {
        "errors": [{"type": "return_type_mismatch", "message": "Return type mismatch between linked nodes",
                    "details": details,
                    "extra_info": {"input_name": "images", "input_config": ["IMAGE", {"tooltip": "The images to save."}],
                                   "received_type": "LATENT", "linked_node": ["1", 0]}}],
        "dependent_outputs": ["2"], "class_type": "SaveImage"}},
        details=f"Return type mismatch between linked nodes: {details}")
    answer = reject(comfy, {"2": save(source="9")})
    error = answer["node_errors"]["2"]["errors"][0]
    assert answer["error"]["details"] == "Exception when validating node: '9'"
    assert error["type"] == "exception_during_validation" and error["details"] == "'9'"
    assert error["extra_info"]["exception_type"] == "KeyError"
    assert error["extra_info"]["traceback"] and all(isinstance(t, str) for t in error["extra_info"]["traceback"])


def test_custom_validation_no_outputs_no_prompt_and_bad_body(comfy):
    load = {"class_type": "LoadImage", "inputs": {"image": "does_not_exist.png"}}
    assert reject(comfy, {"1": load, "2": {"class_type": "PreviewImage", "inputs": {"images": ["1", 0]}}}) == \
        failed({"1": {"errors": [{"type": "custom_validation_failed", "message": "Custom validation failed for node",
                                  "details": "image - Invalid image file: does_not_exist.png",
                                  "extra_info": {"input_name": "image"}}],
                      "dependent_outputs": ["2"], "class_type": "LoadImage"}})
    assert reject(comfy, {"1": empty_image()}) == {
        "error": {"type": "prompt_no_outputs", "message": "Prompt has no outputs", "details": "", "extra_info": {}},
        "node_errors": {}}
    r = comfy.post("/prompt", {"client_id": "x"})
    assert r.status_code == 400 and r.json() == {
        "error": {"type": "no_prompt", "message": "No prompt provided", "details": "No prompt provided",
                  "extra_info": {}}, "node_errors": {}}
    for body in (b"", b"{not json"):
        r = comfy.post("/prompt", data=body)
        assert r.status_code == 500 and r.headers["Content-Type"] == "text/plain; charset=utf-8"
        assert r.text == "500 Internal Server Error\n\nServer got itself in trouble"


def test_prompt_id_echo_invalid_ids_and_the_number_counter(comfy):
    ws = comfy.ws("n")
    ws.recv()
    mine = str(uuid.uuid4())
    answer = comfy.submit({"1": empty_image(), "2": save()}, "n", prompt_id=mine)
    assert answer == {"prompt_id": mine, "number": 0, "node_errors": {}}
    ws.until_done(mine)
    assert list(comfy.history(mine)["outputs"]) == ["2"]
    for bad in (mine.upper(), mine.replace("-", ""), "not-a-uuid", 12):
        assert reject(comfy, {"1": empty_image(), "2": save()}, prompt_id=bad) == {
            "error": {"type": "invalid_prompt_id", "message": "prompt_id must be a valid UUID",
                      "details": "prompt_id must be a UUID string in canonical lowercase hyphenated form; omit it "
                                 "to let the server generate one", "extra_info": {}},
            "node_errors": {}}
    reject(comfy, {"1": empty_image()})
    # Five rejected prompts advanced the counter; nothing was queued or sent for them.
    answer = comfy.submit({"1": empty_image(color=1), "2": save()}, "n")
    assert answer["number"] == 6
    assert ws.recv() == status_msg(1)
    ws.until_done(answer["prompt_id"])
    ws.close()


# --------------------------------------------------------------------------
# execution failures and interrupts
# --------------------------------------------------------------------------

def test_execution_error_with_traceback(comfy):
    ws = comfy.ws("e")
    ws.recv()
    answer, messages = run(comfy, ws, regex_graph("("), "e")
    pid = answer["prompt_id"]
    assert types(messages) == ["status", "status", "execution_start", "execution_cached", "progress_state",
                               "executing", "execution_error", "status", "executing"]
    error = messages[6]["data"]
    assert list(error) == ["prompt_id", "node_id", "node_type", "executed", "exception_message", "exception_type",
                           "traceback", "current_inputs", "current_outputs", "timestamp"]
    assert {k: error[k] for k in list(error)[:6]} == {
        "prompt_id": pid, "node_id": "1", "node_type": "RegexReplace", "executed": [],
        "exception_message": "missing ), unterminated subpattern at position 0\n", "exception_type": "re.error"}
    assert len(error["traceback"]) > 3 and all(isinstance(line, str) for line in error["traceback"])
    assert error["current_inputs"] == {"string": ["abc"], "regex_pattern": ["("], "replace": ["x"]}
    assert error["current_outputs"] == ["1", "2"]
    entry = comfy.history(pid)
    assert entry["status"]["status_str"] == "error" and entry["status"]["completed"] is False
    assert entry["status"]["messages"][-1] == ["execution_error", error]
    assert entry["outputs"] == {}
    job = comfy.get(f"/api/jobs/{pid}").json()
    assert job["status"] == "failed" and job["execution_error"] == error

    escape = {"1": empty_image(), "2": save(prefix="../escape")}
    answer, messages = run(comfy, ws, escape, "e")
    error = next(m for m in messages if m["type"] == "execution_error")["data"]
    assert error["exception_type"] == "Exception" and error["executed"] == ["1"] and error["node_id"] == "2"
    assert error["exception_message"].startswith("**** ERROR: Saving image outside the output folder is not allowed.")
    assert error["current_inputs"]["prompt"] == [str(escape)] and error["current_inputs"]["extra_pnginfo"] == [None]
    ws.close()


def slow_t2i(comfy, steps=200, **kw):
    comfy.control("POST", "models", {"checkpoints": [CKPT]})
    comfy.control("POST", "settings", {"step_seconds": 0.03})
    return t2i(steps=steps, **kw)


def test_untargeted_interrupt_during_sampling(comfy):
    graph = slow_t2i(comfy)
    ws = comfy.ws("i")
    ws.recv()
    answer = comfy.submit(graph, "i")
    wait_progress(ws, 2)
    assert comfy.post("/interrupt", {}).status_code == 200
    messages = ws.until_done(answer["prompt_id"])
    interrupted = next(m for m in messages if m["type"] == "execution_interrupted")["data"]
    assert interrupted == {"prompt_id": answer["prompt_id"], "node_id": "3", "node_type": "KSampler",
                           "executed": ["4", "5", "7", "6"], "timestamp": interrupted["timestamp"]}
    assert max(m["data"]["value"] for m in ws.frames_text("progress")) < 200
    entry = comfy.history(answer["prompt_id"])
    assert entry["status"]["status_str"] == "error" and entry["status"]["messages"][-1][0] == "execution_interrupted"
    assert "execution_success" not in types(messages)
    ws.close()


def test_targeted_interrupt_only_hits_the_running_prompt(comfy):
    graph = slow_t2i(comfy)
    ws = comfy.ws("t")
    ws.recv()
    answer = comfy.submit(graph, "t")
    wait_progress(ws, 1)
    # Another id (or a queued prompt's id) does nothing; the sampler keeps going.
    assert comfy.post("/interrupt", {"prompt_id": str(uuid.uuid4())}).status_code == 200
    seen = max(m["data"]["value"] for m in ws.frames_text("progress"))
    wait_progress(ws, seen + 3)
    assert comfy.post("/interrupt", {"prompt_id": answer["prompt_id"]}).status_code == 200
    messages = ws.until_done(answer["prompt_id"])
    assert "execution_interrupted" in types(messages)
    # An interrupt with nothing running is forgotten when the next prompt starts.
    assert comfy.post("/interrupt", data=b"").status_code == 200
    again, messages = run(comfy, ws, t2i(steps=2, seed=5), "t")
    assert "execution_success" in types(messages)
    ws.close()


def test_queue_front_delete_and_jobs(comfy):
    graph = slow_t2i(comfy)
    ws = comfy.ws("q")
    ws.recv()
    a = comfy.submit(graph, "q")
    wait_progress(ws, 1)
    b = comfy.submit(t2i(steps=2, seed=7), "q")
    c = comfy.submit(t2i(steps=2, seed=8), "q", front=True)
    assert (a["number"], b["number"], c["number"]) == (0, 1, -2)
    queue = comfy.get("/queue").json()
    assert [item[1] for item in queue["queue_running"]] == [a["prompt_id"]]
    assert sorted(item[1] for item in queue["queue_pending"]) == sorted([b["prompt_id"], c["prompt_id"]])
    number, pid, prompt, extra, outputs = queue["queue_running"][0]
    assert (number, prompt, outputs, extra["client_id"]) == (0, graph, ["9"], "q")
    assert comfy.get("/prompt").json() == {"exec_info": {"queue_remaining": 3}}
    jobs = {j["id"]: j for j in comfy.get("/api/jobs").json()["jobs"]}
    assert {k: j["status"] for k, j in jobs.items()} == {a["prompt_id"]: "in_progress", b["prompt_id"]: "pending",
                                                         c["prompt_id"]: "pending"}
    assert comfy.get(f"/api/jobs/{c['prompt_id']}").json()["priority"] == -2
    assert comfy.get("/api/jobs/" + str(uuid.uuid4())).status_code == 404

    assert comfy.post("/queue", {"delete": [b["prompt_id"]]}).status_code == 200
    assert [item[1] for item in comfy.get("/queue").json()["queue_pending"]] == [c["prompt_id"]]
    comfy.post("/interrupt", {})
    ws.until_done(a["prompt_id"])
    ws.until_done(c["prompt_id"])
    comfy.history(c["prompt_id"])
    page = comfy.get("/api/jobs", params={"limit": 1, "sort_order": "asc"}).json()
    assert page["pagination"] == {"offset": 0, "limit": 1, "total": 2, "has_more": True}
    assert page["jobs"][0]["id"] == a["prompt_id"] and page["jobs"][0]["status"] == "failed"
    assert comfy.get("/api/jobs", params={"sort_by": "nope"}).status_code == 400

    assert comfy.post("/history", {"delete": [a["prompt_id"]]}).status_code == 200
    assert list(comfy.get("/history").json()) == [c["prompt_id"]]
    assert comfy.post("/history", {"clear": True}).status_code == 200
    assert comfy.get("/history").json() == {}
    ws.close()


# --------------------------------------------------------------------------
# outputs, uploads, /view, models
# --------------------------------------------------------------------------

def test_outputs_of_each_kind(comfy):
    graph = {
        "1": empty_image(width=16, height=12, batch_size=2, color=0xFF0000),
        "2": {"class_type": "SaveAnimatedWEBP", "inputs": {"images": ["1", 0], "filename_prefix": "anim/a",
                                                           "fps": 6.0, "lossless": False, "quality": 80,
                                                           "method": "default"}},
        "3": {"class_type": "EmptyAudio", "inputs": {"duration": 0.5, "sample_rate": 8000, "channels": 1}},
        "4": {"class_type": "SaveAudio", "inputs": {"audio": ["3", 0], "filename_prefix": "audio/snd"}},
        "5": {"class_type": "CreateVideo", "inputs": {"images": ["1", 0], "fps": 12.0, "audio": ["3", 0]}},
        "6": {"class_type": "SaveVideo", "inputs": {"video": ["5", 0], "filename_prefix": "video/clip",
                                                    "format": "mp4", "codec": "h264"}},
        "7": {"class_type": "PreviewAny", "inputs": {"source": "hello"}},
        "8": {"class_type": "EmptyMesh", "inputs": {"size": 2.0}},
        "9": {"class_type": "SaveGLB", "inputs": {"mesh": ["8", 0], "filename_prefix": "mesh/cube"}},
        "10": {"class_type": "PreviewImage", "inputs": {"images": ["1", 0]}},
    }
    ws = comfy.ws("o")
    ws.recv()
    answer, messages = run(comfy, ws, graph, "o")
    outputs = comfy.history(answer["prompt_id"])["outputs"]
    executed = {m["data"]["node"]: m["data"]["output"] for m in messages if m["type"] == "executed"}
    assert executed == outputs
    temp = outputs.pop("10")["images"]
    assert outputs == {
        "2": {"images": [{"filename": "a_00001_.webp", "subfolder": "anim", "type": "output"}], "animated": [True]},
        "4": {"audio": [{"filename": "snd_00001_.flac", "subfolder": "audio", "type": "output"}]},
        "6": {"images": [{"filename": "clip_00001_.mp4", "subfolder": "video", "type": "output"}], "animated": [True]},
        "7": {"text": ["hello"]},
        "9": {"3d": [{"filename": "cube_00001_.glb", "subfolder": "mesh", "type": "output"}]},
    }
    assert [t["type"] for t in temp] == ["temp", "temp"] and [t["subfolder"] for t in temp] == ["", ""]
    assert temp[0]["filename"].startswith("ComfyUI_temp_") and temp[0]["filename"].endswith("_00001_.png")
    assert temp[1]["filename"] == temp[0]["filename"].replace("_00001_", "_00002_")

    def view(ref):
        r = comfy.get("/view", params=ref)
        assert r.status_code == 200
        return r.headers["Content-Type"], r.content

    ctype, data = view(outputs["2"]["images"][0])
    assert ctype == "image/webp" and data[:4] == b"RIFF" and data[8:16] == b"WEBPVP8X"
    assert data.count(b"ANMF") == 2 and struct.unpack("<I", data[4:8])[0] == len(data) - 8
    ctype, data = view(outputs["4"]["audio"][0])
    assert ctype == "audio/flac" and data[:4] == b"fLaC"
    ctype, data = view(outputs["6"]["images"][0])
    assert ctype == "video/mp4" and data[4:12] == b"ftypisom"
    ctype, data = view(outputs["9"]["3d"][0])
    magic, version, length = struct.unpack("<4sII", data[:12])
    assert ctype == "model/gltf-binary" and (magic, version, length) == (b"glTF", 2, len(data))
    (json_len,) = struct.unpack("<I", data[12:16])
    assert json.loads(data[20:20 + json_len])["accessors"][0]["count"] == 8
    ctype, data = view(temp[0])
    assert ctype == "image/png" and struct.unpack(">II", png_chunks(data)[0][1][:8]) == (16, 12)
    job = comfy.get(f"/api/jobs/{answer['prompt_id']}").json()
    assert job["outputs_count"] == 6 and job["preview_output"]["type"] == "output"

    # One frame is not an animation.
    single = {"1": empty_image(), "2": dict(graph["2"], inputs=dict(graph["2"]["inputs"], images=["1", 0]))}
    answer, _ = run(comfy, ws, single, "o")
    assert comfy.history(answer["prompt_id"])["outputs"]["2"]["animated"] == [False]
    ws.close()


def upload(comfy, name, data, **fields):
    r = comfy.post("/upload/image", files={"image": (name, data, "image/png")}, data=fields)
    assert r.status_code == 200, r.text
    return r.json()


def test_upload_name_clash_overwrite_subfolder_and_load_image(comfy):
    first, second = png(4, 3, (9, 9, 9)), png(5, 5)
    assert upload(comfy, "up.png", first) == {"name": "up.png", "subfolder": "", "type": "input"}
    assert upload(comfy, "up.png", second) == {"name": "up (1).png", "subfolder": "", "type": "input"}
    assert upload(comfy, "up.png", first) == {"name": "up.png", "subfolder": "", "type": "input"}  # same bytes
    assert upload(comfy, "up.png", second, overwrite="true") == {"name": "up.png", "subfolder": "", "type": "input"}
    assert upload(comfy, "up.png", first, subfolder="sub") == {"name": "up.png", "subfolder": "sub", "type": "input"}
    assert upload(comfy, "o.png", first, type="temp") == {"name": "o.png", "subfolder": "", "type": "temp"}
    inputs = {(f["subfolder"], f["filename"]): f["sha256"] for f in comfy.files() if f["type"] == "input"}
    assert inputs == {("", "up.png"): hashlib.sha256(second).hexdigest(),
                      ("", "up (1).png"): hashlib.sha256(second).hexdigest(),
                      ("sub", "up.png"): hashlib.sha256(first).hexdigest()}
    choices = comfy.get("/object_info/LoadImage").json()["LoadImage"]["input"]["required"]["image"]
    assert choices == [["up (1).png", "up.png"], {"image_upload": True}]
    assert comfy.post("/upload/image", files={"image": ("x.png", b"x")}, data={"type": "nope"}).status_code == 500
    assert comfy.post("/upload/image", files={"image": ("x.png", b"x")}, data={"subfolder": "../.."}).status_code == 400
    assert comfy.post("/upload/image", data={"overwrite": "true"}).status_code == 400

    ws = comfy.ws("u")
    ws.recv()
    graph = {"1": {"class_type": "LoadImage", "inputs": {"image": "sub/up.png"}},
             "2": {"class_type": "SaveImage", "inputs": {"images": ["1", 0], "filename_prefix": "loaded"}}}
    answer, _ = run(comfy, ws, graph, "u")
    (image,) = comfy.history(answer["prompt_id"])["outputs"]["2"]["images"]
    data = comfy.get("/view", params=image).content
    assert struct.unpack(">II", png_chunks(data)[0][1][:8]) == (4, 3)

    # A file that is no image fails at execution time as PIL does.
    upload(comfy, "bad.png", b"not an image")
    graph["1"]["inputs"]["image"] = "bad.png"
    _, messages = run(comfy, ws, graph, "u")
    error = next(m for m in messages if m["type"] == "execution_error")["data"]
    assert error["exception_type"] == "PIL.UnidentifiedImageError"
    ws.close()


def test_view_status_rules(comfy):
    upload(comfy, "in.png", png(2, 2))

    def status(**params):
        r = comfy.get("/view", params=params)
        if r.status_code != 200:
            assert r.content == b""
        return r.status_code

    assert status(filename="in.png", type="input") == 200
    assert status(filename="in.png [input]") == 200  # the annotation picks the folder
    assert status(filename="in.png", type="input", subfolder="") == 200
    assert status(filename="../in.png", type="input") == 400
    assert status(filename="/etc/passwd") == 400
    assert status(filename="in.png", type="bogus") == 400
    assert status(filename=" [output]") == 400
    assert status(filename="in.png", type="input", subfolder="../..") == 403
    assert status(filename="in.png", type="input", subfolder="/etc") == 403
    assert status(filename="in.png") == 404  # type defaults to output
    assert status(filename="nope.png", type="input") == 404
    assert status(type="input") == 404
    r = comfy.get("/view", params={"filename": "in.png", "type": "input", "preview": "webp;50"})
    assert r.headers["Content-Type"] == "image/webp" and r.content[8:12] == b"WEBP"


def test_models_and_object_info(comfy):
    assert comfy.get("/object_info/NoSuchNode").json() == {}
    info = comfy.get("/object_info").json()
    assert set(info) == {
        "CheckpointLoaderSimple", "LoraLoader", "CLIPTextEncode", "EmptyLatentImage", "KSampler", "VAEDecode",
        "SaveImage", "PreviewImage", "LoadImage", "EmptyImage", "ImageInvert", "SaveAnimatedWEBP", "EmptyAudio",
        "SaveAudio", "CreateVideo", "SaveVideo", "PreviewAny", "EmptyMesh", "SaveGLB", "RegexReplace"}
    for name, node in info.items():
        assert {"input", "input_order", "is_input_list", "output", "output_is_list", "output_name", "name",
                "display_name", "description", "python_module", "category", "output_node",
                "search_aliases"} <= set(node), name
        assert node["name"] == name and node["input_order"] == {k: list(v) for k, v in node["input"].items()}
    ks = info["KSampler"]
    assert ks["input"]["required"]["seed"] == ["INT", {"default": 0, "min": 0, "max": 18446744073709551615,
                                                       "control_after_generate": True,
                                                       "tooltip": "The random seed used for creating the noise."}]
    assert ks["input"]["required"]["scheduler"][0] == "COMBO" and ks["output"] == ["LATENT"]
    assert info["SaveImage"]["output_node"] is True and info["SaveImage"]["input"]["hidden"] == {
        "prompt": "PROMPT", "extra_pnginfo": "EXTRA_PNGINFO"}
    assert info["CheckpointLoaderSimple"]["output_name"] == ["MODEL", "CLIP", "VAE"]
    assert info["EmptyImage"]["input"]["required"]["color"] == [
        "INT", {"default": 0, "min": 0, "max": 16777215, "step": 1, "display": "color"}]
    assert info["CheckpointLoaderSimple"]["input"]["required"]["ckpt_name"][0] == []

    folders = comfy.get("/models").json()
    assert len(folders) == 27 and {"checkpoints", "loras", "text_encoders", "diffusion_models"} <= set(folders)
    comfy.control("POST", "models", {"checkpoints": ["b.safetensors", "sub/a.ckpt", "notamodel.txt"],
                                     "loras": ["style.safetensors"], "text_encoders": ["t5.safetensors"]})
    assert comfy.get("/models/checkpoints").json() == ["b.safetensors", "sub/a.ckpt"]
    assert comfy.get("/models/loras").json() == ["style.safetensors"]
    assert comfy.get("/models/text_encoders").json() == ["t5.safetensors"]
    assert comfy.get("/models/clip").status_code == 404 and comfy.get("/models/nope").status_code == 404
    ckpt = comfy.get("/object_info/CheckpointLoaderSimple").json()["CheckpointLoaderSimple"]
    assert ckpt["input"]["required"]["ckpt_name"][0] == ["b.safetensors", "sub/a.ckpt"]
    lora = comfy.get("/object_info/LoraLoader").json()["LoraLoader"]
    assert lora["input"]["required"]["lora_name"][0] == ["style.safetensors"]
    r = requests.post(comfy.endpoint + "/__control/models", json={"checkpoints": ["../x.safetensors"]}, timeout=5)
    assert r.status_code == 400


def test_system_stats_features_and_api_prefix(comfy):
    stats = comfy.get("/system_stats").json()
    assert stats["system"]["comfyui_version"] == "0.33.0" and stats["system"]["os"] == "linux"
    assert stats["devices"][0]["name"] == "cpu" and stats["devices"][0]["index"] is None
    assert comfy.get("/features").json() == {
        "supports_preview_metadata": True, "supports_model_type_tags": True, "max_upload_size": 104857600,
        "extension": {"manager": {"supports_v4": True}}, "node_replacements": True, "assets": False}
    for path in ("/object_info", "/object_info/KSampler", "/queue", "/prompt", "/features", "/models",
                 "/models/checkpoints", "/history", "/embeddings", "/history/x"):
        assert comfy.get(path).json() == comfy.get("/api" + path).json(), path
    assert set(comfy.get("/api/system_stats").json()) == {"system", "devices"}
    assert comfy.get("/api/jobs").json() == comfy.get("/api/api/jobs").json() == {
        "jobs": [], "pagination": {"offset": 0, "limit": None, "total": 0, "has_more": False}}
    assert comfy.get("/jobs").status_code == 404
    assert comfy.get("/nothing/here").status_code == 404
    assert comfy.http.delete(comfy.endpoint + "/prompt", timeout=5).status_code == 405

    ws = comfy.ws("p")
    ws.recv()
    r = comfy.post("/api/prompt", {"prompt": {"1": empty_image(), "2": save(prefix="api")}, "client_id": "p"})
    pid = r.json()["prompt_id"]
    ws.until_done(pid)
    image = comfy.history(pid)["outputs"]["2"]["images"][0]
    assert comfy.get("/api/view", params=image).content == comfy.get("/view", params=image).content
    assert comfy.get(f"/api/history/{pid}").json() == comfy.get(f"/history/{pid}").json()
    ws.close()


# --------------------------------------------------------------------------
# faults, log, control
# --------------------------------------------------------------------------

ALB_502 = ("<html><head><title>502 Bad Gateway</title></head><body><center><h1>502 Bad Gateway</h1></center>"
           "</body></html>")


def test_http_status_fault(comfy):
    comfy.control("POST", "faults", {"faults": [
        {"kind": "http_status", "method": "GET", "path_prefix": "/history/", "status": 502, "count": 2},
        {"kind": "http_status", "path_prefix": "/queue", "status": 503}]})
    for path in ("/history/abc", "/api/history/abc"):
        r = comfy.get(path)
        assert r.status_code == 502 and r.text == ALB_502
        assert r.headers["Server"] == "awselb/2.0" and r.headers["Content-Type"].startswith("text/html")
        assert "AWSALB=" in r.headers["Set-Cookie"]
    assert comfy.get("/history/abc").json() == {}
    assert comfy.get("/history").status_code == 200  # the prefix is /history/
    r = comfy.post("/queue", {"clear": True})
    assert r.status_code == 503 and "503 Service Unavailable" in r.text
    assert comfy.post("/queue", {"clear": True}).status_code == 200
    assert comfy.control("GET", "faults") == {"faults": []}
    log = comfy.control("GET", "log")["requests"]
    assert [(e["path"], e["status"]) for e in log] == [
        ("/history/abc", 502), ("/api/history/abc", 502), ("/history/abc", 200), ("/history", 200),
        ("/queue", 503), ("/queue", 200)]
    assert log[4]["json"] == {"clear": True} and log[0]["json"] is None


def test_drop_prompt_response_fault(comfy):
    comfy.control("POST", "faults", {"faults": [{"kind": "drop_prompt_response"}]})
    pid = str(uuid.uuid4())
    body = {"prompt": {"1": empty_image(), "2": save()}, "client_id": "d", "prompt_id": pid}
    with pytest.raises(requests.ConnectionError):
        comfy.post("/prompt", body)
    assert comfy.history(pid)["status"]["status_str"] == "success"  # it was queued and ran
    entry = comfy.control("GET", "log")["requests"][0]
    assert entry == {"replica": 0, "method": "POST", "path": "/prompt", "query": {}, "status": None,
                     "authorization": None, "cookie": None, "json": body}
    assert comfy.submit({"1": empty_image(), "2": save()})["number"] == 1  # consumed


def test_drop_ws_fault_and_reconnect(comfy):
    graph = slow_t2i(comfy, steps=20)
    comfy.control("POST", "settings", {"step_seconds": 0.1})
    comfy.control("POST", "faults", {"faults": [{"kind": "drop_ws", "after_type": "progress", "count": 2}]})
    ws = comfy.ws("r")
    ws.recv()
    answer = comfy.submit(graph, "r")
    with pytest.raises((websocket.WebSocketConnectionClosedException, ConnectionError)):
        ws.until_done(answer["prompt_id"])
    assert [m["data"]["value"] for m in ws.frames_text("progress")] == [1, 2]
    again = comfy.ws("r")  # the same clientId gets the next messages
    assert again.recv()["data"]["sid"] == "r"
    assert again.recv() == {"type": "executing", "data": {"node": "3"}}  # ComfyUI's catch-up on reconnect
    messages = again.until_done(answer["prompt_id"])
    values = [m["data"]["value"] for m in messages if m["type"] == "progress"]
    assert values and values[0] > 2 and values[-1] == 20
    assert "execution_success" in types(messages)
    again.close()


def test_refuse_ws_fault(comfy):
    comfy.control("POST", "faults", {"faults": [{"kind": "refuse_ws", "count": 1}]})
    with pytest.raises(websocket.WebSocketBadStatusException) as refused:
        comfy.ws("x")
    assert refused.value.status_code == 502
    ws = comfy.ws("x")
    assert ws.recv()["data"]["sid"] == "x"
    ws.close()
    log = comfy.control("GET", "log")["requests"]
    assert [(e["path"], e["query"], e["status"]) for e in log] == [("/ws", {"clientId": "x"}, 502),
                                                                   ("/ws", {"clientId": "x"}, 101)]


def test_bad_control_requests(comfy):
    def control(path, body):
        return requests.post(f"{comfy.endpoint}/__control/{path}", json=body, timeout=5)

    assert control("faults", {"faults": [{"kind": "explode"}]}).status_code == 400
    assert control("faults", {"faults": [{"kind": "http_status", "status": 200}]}).status_code == 400
    assert control("faults", {"faults": [{"kind": "drop_ws"}]}).status_code == 400
    assert control("settings", {"step_seconds": -1}).status_code == 400
    assert control("settings", {"speed": 1}).status_code == 400
    assert requests.get(f"{comfy.endpoint}/__control/files?replica=5", timeout=5).status_code == 400
    assert requests.get(f"{comfy.endpoint}/__control/nope", timeout=5).status_code == 404
    assert comfy.control("GET", "log") == {"requests": []}  # control requests are not logged


# --------------------------------------------------------------------------
# two replicas behind a sticky ALB
# --------------------------------------------------------------------------

def alb_cookie(response):
    """The AWSALB value a response set, checking both cookies' attributes."""
    raw = response.raw.headers.getlist("Set-Cookie")
    assert len(raw) == 2
    alb, cors = raw
    value = alb.split(";")[0].removeprefix("AWSALB=")
    expires = email.utils.parsedate_to_datetime(alb.split("Expires=")[1].split(";")[0])
    assert abs(expires - (datetime.now(timezone.utc) + timedelta(days=7))) < timedelta(minutes=1)
    assert alb == f"AWSALB={value}; Expires={email.utils.format_datetime(expires, usegmt=True)}; Path=/"
    assert cors == f"AWSALBCORS={value}; Expires={email.utils.format_datetime(expires, usegmt=True)}; Path=/; " \
                   "SameSite=None; Secure"
    base64.b64decode(value, validate=True)
    assert value not in ("0", "1")
    return value


def test_round_robin_without_cookie_sticky_with_it(duo):
    plain = [requests.get(duo.endpoint + "/queue", timeout=5) for _ in range(4)]
    values = [alb_cookie(r) for r in plain]
    assert len(set(values)) == 4  # opaque and fresh every time
    assert [e["replica"] for e in duo.control("GET", "log")["requests"]] == [0, 1, 0, 1]
    # A cookie pins the replica it names, whatever the round robin would do.
    for value, replica in zip(values, [0, 1, 0, 1]):
        r = requests.get(duo.endpoint + "/queue", cookies={"AWSALB": value}, timeout=5)
        assert r.status_code == 200
        assert duo.control("GET", "log")["requests"][-1]["replica"] == replica
        assert duo.control("GET", "log")["requests"][-1]["cookie"] == f"AWSALB={value}"
    requests.get(duo.endpoint + "/queue", cookies={"AWSALB": "bm90LWEtY29va2ll"}, timeout=5)
    requests.get(duo.endpoint + "/queue", cookies={"AWSALB": "MA=="}, timeout=5)
    assert [e["replica"] for e in duo.control("GET", "log")["requests"][-2:]] == [0, 1]  # forged: round robin


def test_a_job_lives_on_its_replica(duo):
    duo.control("POST", "models", {"checkpoints": [CKPT]})
    duo.get("/system_stats")  # the session now holds the cookie
    sticky = duo.control("GET", "log")["requests"][-1]["replica"]
    ws = duo.ws("s")  # the upgrade carries the cookie too
    assert ws.recv()["data"]["sid"] == "s"
    answer, messages = run(duo, ws, t2i(), "s")
    assert "execution_success" in types(messages)
    assert duo.history(answer["prompt_id"])["status"]["completed"] is True
    log = duo.control("GET", "log")["requests"]
    assert {e["replica"] for e in log} == {sticky} and log[-1]["cookie"].startswith("AWSALB=")
    # A client that drops the cookie lands on the other replica half the time: no such job there.
    other = [requests.get(f"{duo.endpoint}/history/{answer['prompt_id']}", timeout=5) for _ in range(2)]
    assert sorted(len(r.json()) for r in other) == [0, 1]
    files = duo.files()
    assert {f["replica"] for f in files} == {sticky}
    ws.close()


# --------------------------------------------------------------------------
# the edge sign-in token
# --------------------------------------------------------------------------

def test_token_is_required_on_http_and_websocket(guarded):
    for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": "s3cret"}):
        r = requests.get(guarded.endpoint + "/system_stats", headers=headers, timeout=5)
        assert r.status_code == 401 and r.json() == {"message": "Unauthorized"}
        assert "Set-Cookie" not in r.headers  # the edge answers before the ALB
    assert guarded.get("/system_stats").status_code == 200
    with pytest.raises(websocket.WebSocketBadStatusException) as refused:
        WS(guarded.endpoint, "w")
    assert refused.value.status_code == 401
    ws = guarded.ws("w")
    assert ws.recv()["data"]["sid"] == "w"
    answer, messages = run(guarded, ws, {"1": empty_image(), "2": save()}, "w")
    assert "execution_success" in types(messages)
    ws.close()
    log = guarded.control("GET", "log")["requests"]
    assert [(e["status"], e["authorization"], e["replica"]) for e in log[:4]] == [
        (401, None, None), (401, "Bearer wrong", None), (401, "s3cret", None), (200, "Bearer s3cret", 0)]
    assert (log[4]["path"], log[4]["status"]) == ("/ws", 401)
    assert (log[5]["path"], log[5]["status"], log[5]["authorization"]) == ("/ws", 101, "Bearer s3cret")
