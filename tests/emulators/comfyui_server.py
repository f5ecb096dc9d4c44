#!/usr/bin/env python3
r"""A stand-in for ComfyUI's HTTP + WebSocket API (0.33.0) for comfyplat's tests, with the AWS edge
in front of it (CloudFront sign-in token, ALB stickiness over replicas) and injectable faults.

    python comfyui_server.py --port 0 --ready-file PATH [--replicas N] [--token T] [--data-dir DIR]
                             [--step-seconds S] [--history-delay S]

Listens on 127.0.0.1 only (port 0 = pick a free port), aiohttp (as ComfyUI). When serving, writes
atomically
    {"port": N, "pid": PID, "endpoint": "http://127.0.0.1:N"}
to the ready file; runs until SIGTERM/SIGINT, then closes the websockets (1001), stops and exits 0.
--replicas N (1..16, default 1): N independent ComfyUI states behind the one port. --data-dir DIR
(default: a temp dir removed on exit) holds per replica `replica-<i>/` with input/, output/,
temp/ and models/<the 26 directories of a fresh checkout>; temp/ is emptied at start and at exit
(cleanup_temp). --step-seconds (default 0.02): time per sampler step. --history-delay (default
0.2): seconds from the end of a prompt to its history entry (the real server writes it just after
`execution_success` is sent, so clients must poll /history briefly).

What it answers is ComfyUI 0.33.0 as observed from a real server ("the facts", recorded in the
issue that asked for `comfyplat run`)
and, where the facts are silent, ComfyUI's source (server.py, execution.py, folder_paths.py,
comfy_execution/{graph,progress,jobs}.py) re-implemented here, not copied.

Implemented
-----------
The edge (before any replica)
  * --token T: every request except /__control/* (the websocket upgrade included) needs
    `Authorization: Bearer T`, else 401 `{"message": "Unauthorized"}` (application/json). The
    401 carries no ALB cookie: the CloudFront sign-in answers it, the ALB never sees the request.
  * ALB stickiness (duration-based): a request with cookie AWSALB (or AWSALBCORS) naming a replica
    goes there; without a valid one (absent, forged, unknown), round-robin 0, 1, ... Every response
    routed to a replica (2xx..5xx, injected faults, 404/405, the websocket 101 and a refused
    upgrade's 502) sets `AWSALB=<v>; Expires=<now + 7 days, RFC 1123>; Path=/` and
    `AWSALBCORS=<v>; Expires=...; Path=/; SameSite=None; Secure`. <v> is opaque and fresh on each
    response (base64 of a nonce, the replica index masked by an HMAC of it, padding and an HMAC
    tag under a per-process key): not an index, and a value from another process is invalid.
ComfyUI routes (per replica; every route also answers under /api/..., as ComfyUI registers them)
  * GET /system_stats (version 0.33.0, frontend 1.49.6, a cpu device, ram from sysconf; the
    templates version is a made-up value), GET /features, GET /embeddings, GET /models (27 folder
    keys), GET /models/{folder} (recursive, `/`-separated, extension-filtered, sorted; checkpoints,
    loras, vae, text_encoders (+clip) and diffusion_models (+unet) also list output/<key>; an
    unknown folder (also the legacy names clip/unet) 404), POST /free (200, no effect).
  * GET /object_info, GET /object_info/{Class} (unknown: 200 {}): the catalog below, with input
    (required/optional/hidden), input_order, is_input_list, output, output_is_list, output_name,
    name, display_name, description, python_module, category, output_node,
    has_intermediate_output, output_tooltips (when set), search_aliases. Combos listing files
    (checkpoints, loras, LoadImage's input/ images) are read at each request.
  * POST /prompt as server.py: the `number` counter advances before anything is checked (so also
    for rejected prompts; "front": true negates it, an explicit "number" is used as a float); no
    "prompt" key: 400 no_prompt; a "prompt_id" that is not a canonical lowercase UUID string: 400
    invalid_prompt_id (else it is echoed; absent: a uuid4); then validation (below); the body's
    extra_data gets client_id and create_time (ms), the sensitive comfy.org keys are kept out of
    /queue and /history. 200 `{"prompt_id", "number", "node_errors"}` (node_errors non-empty when
    some outputs were invalid but others good: only the good ones run). An empty or non-JSON body
    (here and on POST /queue, /history, /free): 500 text/plain
    "500 Internal Server Error\n\nServer got itself in trouble". partial_execution_targets honoured.
  * Validation (execution.validate_prompt/validate_inputs): missing_node_type (unknown class; no
    class_type), prompt_no_outputs; per node, in the prompt_outputs_failed_validation envelope
    (`details` = "message: details" of the output nodes' own errors, joined by newlines):
    required_input_missing, bad_linked_input, return_type_mismatch, exception_during_validation
    (e.g. a link to a missing node: KeyError, with traceback), exception_during_inner_validation,
    invalid_input_type (values are converted to INT/FLOAT/STRING/BOOLEAN and stored converted),
    value_smaller_than_min, value_bigger_than_max, value_not_in_list (old-style list and new-style
    ["COMBO", {"options"}]; more than 20 options: "(list of length N)", input_config null),
    custom_validation_failed (LoadImage: "image - Invalid image file: X"). node_errors entries
    carry errors, dependent_outputs (every failed output, as ComfyUI appends them) and class_type.
    Nothing is queued or sent for a rejected prompt.
  * GET /prompt, GET /queue (running + pending in heap order, items [number, prompt_id, prompt,
    extra_data, outputs_to_execute]), POST /queue {"clear": true} / {"delete": [ids]},
    POST /interrupt: body {} (or empty, or not JSON) interrupts whatever runs; {"prompt_id": X}
    only if X is the running prompt. The flag is cleared when the next prompt starts, so an
    interrupt with nothing running is forgotten.
  * GET /history (?max_items, ?offset as ComfyUI), GET /history/{id} ({} unknown or not yet
    written), POST /history {"clear": true} / {"delete": [ids]}; at most 10000 entries (oldest go).
    Entry: prompt, outputs (UI of the output nodes, cached ones included), status {status_str
    success|error, completed, messages [[event, data]...]}, meta {node_id: {node_id, display_node,
    parent_node: null, real_node_id}}.
  * GET /view?filename=&subfolder=&type=: `name [output]`/`[input]`/`[temp]` annotations; empty
    filename, a leading `/` or `..` in it, or an unknown type: 400; a subfolder escaping the
    folder: 403; no filename or no such file: 404 (all with empty bodies); else the file with
    Content-Type by extension (mimetypes; html/js/css forced to application/octet-stream) and
    Content-Disposition: filename="...". &preview=...: 200 image/webp (see Not implemented).
  * POST /upload/image (multipart `image`, optional `overwrite` "true"/"1", `subfolder`, `type`
    input|temp|output, default input): `{"name", "subfolder", "type"}`; without overwrite a
    clashing name becomes `name (1).png`, `(2)`, ... unless the bytes are the same (then the
    existing name, file untouched); a path escaping the folder or no file: 400; an unknown type:
    500 (ComfyUI raises there). Upload size limit 100 MB (max_upload_size).
  * GET /api/jobs (status=, workflow_id=, sort_by=created_at|execution_duration,
    sort_order=asc|desc, limit=, offset=; bad values 400 {"error"}) → {"jobs", "pagination"
    {offset, limit, total, has_more}}; GET /api/jobs/{id} adds outputs, execution_status, workflow
    {prompt, extra_data}; unknown 404 {"error": "Job not found"}. Status pending, in_progress,
    completed or failed (interrupted prompts are failed). Only /api/jobs and /api/api/jobs answer
    (ComfyUI registers the route with its /api); /jobs is 404.
  * Any other path 404 "404: Not Found"; a known path with another method 405; HEAD as GET.
WebSocket GET /ws?clientId=ID
  * First message status {status: {exec_info: {queue_remaining}}, sid} (no clientId: a fresh hex
    sid); on a reconnect while that client's prompt runs, then `executing {"node": <current>}`.
    A client's *first* message {"type": "feature_flags", "data": {...}} is answered with
    feature_flags = GET /features; `supports_preview_metadata: true` switches its previews to the
    metadata form. A new socket with a used clientId takes over (the old one stays open but gets
    nothing more); events for a client whose socket is not connected are lost.
  * Messages are sent in emission order by one publisher per replica (ComfyUI's send_sync queue);
    `status` goes to every socket, execution events only to the socket of the prompt's client_id.
    A prompt without client_id sends only progress_state (to every socket), status and
    execution_interrupted (to every socket).
  * Order of one prompt: status ×2 (queued, taken), execution_start {prompt_id, timestamp},
    execution_cached {nodes, prompt_id, timestamp}; per node: progress_state (running),
    executing {node, display_node, prompt_id}, [per sampler step: progress_state, [binary
    preview 4 with metadata], progress {value, max, prompt_id, node}, [binary preview 1]],
    [executed {node, display_node, output, prompt_id} for nodes with UI output], progress_state
    (finished); then execution_success {prompt_id, timestamp}, status, executing {node: null,
    prompt_id}. progress_state = {prompt_id, nodes: {id: {value, max, state, node_id, prompt_id,
    display_node_id, parent_node_id: null, real_node_id}}} for every node started so far (start:
    0.0 of 1.0, finish: value = max). Timestamps in ms. Binary frames: 4-byte big-endian type 1 +
    4-byte image type 2 (PNG) + an 8x8 PNG; type 4 + 4-byte JSON length + JSON {node_id,
    prompt_id, display_node_id, parent_node_id, real_node_id, image_type: "image/png"} + PNG.
  * Node order: ComfyUI's ExecutionList (each node after its inputs; among ready nodes an output
    node first, then one feeding an output, then one two links away, else the first added).
  * Caching (the classic cache): a node's key is its class, IS_CHANGED (LoadImage: the file's
    sha256) and its inputs with links replaced by the upstream node's key; entries whose key is
    not in the new prompt are dropped first. Cached nodes are listed in execution_cached (prompt
    order), get no executing/progress; a cached output node replays `executed` with the same
    output (same file names, no new file) and a finished progress_state.
  * Failures: execution_error {prompt_id, node_id, node_type, executed (nodes run so far, in
    order), exception_message (str(ex) + "\n", as ComfyUI formats it), exception_type (module.Name,
    builtins bare), traceback (traceback.format_tb: list of strings), current_inputs {name:
    [formatted value]} (links resolved, hidden inputs included), current_outputs (the prompt's
    node ids), timestamp}; history status_str error, completed false. Interrupt: checked before a
    node runs (after its executing) and in the sampler callback after each step;
    execution_interrupted {prompt_id, node_id, node_type, executed, timestamp}.
Node catalog (class: output key in `executed`/history)
  * CheckpointLoaderSimple (ckpt_name from checkpoints; the file must still exist at run time),
    LoraLoader (lora_name from loras), CLIPTextEncode, EmptyLatentImage, KSampler (seed INT
    0..2^64-1 with control_after_generate, steps 1..10000, cfg FLOAT, sampler_name and scheduler
    new-style COMBO, denoise), VAEDecode, LoadImage (combo of input/ images, image_upload: true;
    PNG size from IHDR, JPEG/GIF/WebP taken as 64x64, else PIL.UnidentifiedImageError at run time),
    EmptyImage (color 0xRRGGBB), ImageInvert, RegexReplace (Python's re: a bad pattern raises
    re.error at run time), CreateVideo (IMAGE [+ AUDIO] -> VIDEO); two stand-in-only sources under
    python_module custom_nodes.comfyplat_stand_in: EmptyAudio (-> AUDIO) and EmptyMesh (a cube ->
    MESH).
  * SaveImage: "images" [{filename <prefix>_<NNNNN>_.png, subfolder, type output}] (one PNG per
    batch item, tEXt `prompt` + one chunk per extra_pnginfo key; counter = max existing + 1 for
    the prefix; %width% %height% %year% %month% %day% %hour% %minute% %second% expanded, other %..%
    left as is; a prefix escaping output/ fails with ComfyUI's "**** ERROR: Saving image outside
    the output folder is not allowed." Exception). PreviewImage: "images" type temp,
    ComfyUI_temp_<5 random>_<NNNNN>_.png in temp/. SaveAnimatedWEBP: "images" [one .webp] +
    "animated": [frames != 1]. SaveAudio: "audio" [.flac]. SaveVideo: "images" [.mp4] +
    "animated": [true] (ComfyUI's PreviewVideo shape). PreviewAny: "text": [value]. SaveGLB: "3d"
    [.glb].
  * Files are real and small: solid-colour PNGs of the requested size; WebP = RIFF/VP8X (animation
    flag, canvas size)/ANIM + one 1x1 lossless ANMF per frame; FLAC = fLaC + STREAMINFO, no
    frames; MP4 = ftyp (isom) + mdat (JSON description); GLB = valid glTF 2.0 binary of the mesh.
Control API (for tests: no token, no ALB cookie, not logged; `?replica=i` selects one replica
where it matters, default all; bad input 400 {"error"})
  * POST /__control/faults {"faults": [...]} appends faults (at most 1000 waiting; answer: the
    waiting faults); GET /__control/faults lists them. Each is consumed when it fires:
    - {"kind": "http_status", "method"?: M (default any), "path_prefix"?: P (default "/"),
      "status": 400..599, "count"?: N (default 1)}: the next N matching requests (P matched against
      the path without its /api prefix) get an ALB error page without reaching ComfyUI: text/html
      `<html><head><title>502 Bad Gateway</title></head><body><center><h1>502 Bad Gateway</h1>
      </center></body></html>` (the status's own phrase), `Server: awselb/2.0`.
    - {"kind": "drop_prompt_response", "count"?: N}: the next N POST /prompt are handled normally
      (queued when valid), then the connection is closed without a response.
    - {"kind": "drop_ws", "after_type": T, "count"?: N}: right after a socket is sent its N-th text
      message of type T (counted per socket), that TCP connection is aborted (no close frame).
    - {"kind": "refuse_ws", "count"?: N}: the next N websocket upgrades get the ALB 502 page.
  * POST /__control/settings {"step_seconds"?, "history_delay"?} (0..60 s).
  * POST /__control/models {"<folder key>": ["a.safetensors", "sub/b.safetensors"], ...}: creates
    empty files in the key's first directory (models/<key>); answers the resulting lists.
  * GET /__control/log → {"requests": [{replica (null when the token check refused it), method,
    path, query, status (null when the response was dropped), authorization, cookie, json (the
    parsed body of POST /prompt, /interrupt, /queue, /history, else null)}]}, arrival order, the
    last 10000, faulted and websocket requests included (an upgrade's status is 101).
  * GET /__control/files → [{replica, type output|temp|input, subfolder, filename, size, sha256}].
  * POST /__control/reset (all replicas, ?replica ignored): stops running and queued prompts,
    empties queues, history, execution caches, input/output/temp and models, resets the number
    counters, settings (to the command line's), faults, log and the round-robin position.
    Connected websockets stay connected.
Bounds
  * History 10000 per replica, log 10000, 1000 waiting faults, 10000 websocket messages waiting per
    replica (more are dropped with a warning), a websocket send stuck for 10 s aborts that socket,
    uploads 100 MB, 16 replicas, 64 Mpixel per image-making node (more fails at run time like
    torch's CPU allocator: RuntimeError "DefaultCPUAllocator: not enough memory"). The prompt
    queue is unbounded, as ComfyUI's.

Not implemented
---------------
  * Models are never loaded (empty files do); no safetensors header check, no real sampling:
    images are solid colours derived from the inputs. No image codec: /view's preview=
    (webp/jpeg, quality, channel=) always answers the same 1x1 WebP.
  * Routes not listed (e.g. /experiment/models, /upload/mask, /view_metadata, /extensions,
    /userdata, /settings, /api/jobs/{id}/cancel, the frontend's static files), extra_model_paths,
    CORS/origin checks, subgraphs/node expansion, lazy inputs, async nodes, OUTPUT_IS_LIST/
    INPUT_IS_LIST batching, IS_CHANGED for nodes other than LoadImage, the LRU/RAM cache modes,
    --disable-metadata, the SQLite user DB and binary TEXT (3) frames.
  * ComfyUI drops the sid of a closing socket even when a newer socket has taken it over; here the
    newer socket keeps it (so reconnect tests are not racy).
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import collections
import dataclasses
import email.utils
import hashlib
import hmac
import heapq
import http
import json
import logging
import mimetypes
import os
import random
import re
import shutil
import signal
import struct
import sys
import tempfile
import time
import traceback
import uuid
import zlib
from datetime import datetime, timedelta, timezone
from typing import Any, Callable

from aiohttp import WSMsgType, web

from ready_file import write_json_atomic

LOG = logging.getLogger("comfyui_server")

COMFYUI_VERSION = "0.33.0"
FRONTEND_VERSION = "1.49.6"
TEMPLATES_VERSION = "0.7.69"  # a stand-in value: the facts give the key, not the number
MAX_RESOLUTION = 16384
MAX_UPLOAD_SIZE = 100 * 1024 * 1024  # ComfyUI's default --max-upload-size (100 MB)
MAXIMUM_HISTORY_SIZE = 10000  # execution.py: the oldest entry goes when there are more
MAX_PIXELS = 64 * 1024 * 1024  # stand-in cap on the pixels one node makes (see "Bounds")
MAX_REPLICAS = 16
LOG_SIZE = 10000  # entries kept by /__control/log
MAX_FAULTS = 1000  # faults waiting at once
OUTBOX_SIZE = 10000  # websocket messages waiting to be sent, per replica
SEND_TIMEOUT = 10.0  # seconds one websocket send may take before the socket is aborted
SENSITIVE_EXTRA_DATA_KEYS = ("auth_token_comfy_org", "api_key_comfy_org")

FEATURES = {"supports_preview_metadata": True, "supports_model_type_tags": True,
            "max_upload_size": MAX_UPLOAD_SIZE, "extension": {"manager": {"supports_v4": True}},
            "node_replacements": True, "assets": False}

BINARY_PREVIEW_IMAGE = 1
BINARY_PREVIEW_IMAGE_WITH_METADATA = 4
IMAGE_TYPE_PNG = 2

MODEL_EXTENSIONS = {".ckpt", ".pt", ".pt2", ".bin", ".pth", ".safetensors", ".pkl", ".sft"}
# folder key -> (directories relative to the replica root, extensions); folder_paths.py's table,
# plus the output/<key> folders main.py adds. An empty extension set lists every file.
MODEL_FOLDERS: dict[str, tuple[tuple[str, ...], frozenset[str]]] = {
    "checkpoints": (("models/checkpoints", "output/checkpoints"), frozenset(MODEL_EXTENSIONS)),
    "configs": (("models/configs",), frozenset({".yaml"})),
    "loras": (("models/loras", "output/loras"), frozenset(MODEL_EXTENSIONS)),
    "vae": (("models/vae", "output/vae"), frozenset(MODEL_EXTENSIONS)),
    "text_encoders": (("models/text_encoders", "models/clip", "output/clip"), frozenset(MODEL_EXTENSIONS)),
    "diffusion_models": (("models/diffusion_models", "models/unet", "output/diffusion_models"),
                         frozenset(MODEL_EXTENSIONS)),
    "clip_vision": (("models/clip_vision",), frozenset(MODEL_EXTENSIONS)),
    "style_models": (("models/style_models",), frozenset(MODEL_EXTENSIONS)),
    "embeddings": (("models/embeddings",), frozenset(MODEL_EXTENSIONS)),
    "diffusers": (("models/diffusers",), frozenset({"folder"})),
    "vae_approx": (("models/vae_approx",), frozenset(MODEL_EXTENSIONS)),
    "controlnet": (("models/controlnet", "models/t2i_adapter"), frozenset(MODEL_EXTENSIONS)),
    "gligen": (("models/gligen",), frozenset(MODEL_EXTENSIONS)),
    "upscale_models": (("models/upscale_models",), frozenset(MODEL_EXTENSIONS)),
    "latent_upscale_models": (("models/latent_upscale_models",), frozenset(MODEL_EXTENSIONS)),
    "custom_nodes": (("custom_nodes",), frozenset()),
    "hypernetworks": (("models/hypernetworks",), frozenset(MODEL_EXTENSIONS)),
    "photomaker": (("models/photomaker",), frozenset(MODEL_EXTENSIONS)),
    "classifiers": (("models/classifiers",), frozenset({""})),
    "model_patches": (("models/model_patches",), frozenset(MODEL_EXTENSIONS)),
    "audio_encoders": (("models/audio_encoders",), frozenset(MODEL_EXTENSIONS)),
    "background_removal": (("models/background_removal",), frozenset(MODEL_EXTENSIONS)),
    "frame_interpolation": (("models/frame_interpolation",), frozenset(MODEL_EXTENSIONS)),
    "geometry_estimation": (("models/geometry_estimation",), frozenset(MODEL_EXTENSIONS)),
    "optical_flow": (("models/optical_flow",), frozenset(MODEL_EXTENSIONS)),
    "detection": (("models/detection",), frozenset(MODEL_EXTENSIONS)),
    "datasets": (("datasets",), frozenset()),
}
# The models/ directories a fresh ComfyUI checkout has (the facts' list).
MODEL_DIRS = ("audio_encoders", "background_removal", "checkpoints", "clip", "clip_vision", "configs",
              "controlnet", "detection", "diffusers", "diffusion_models", "embeddings",
              "frame_interpolation", "geometry_estimation", "gligen", "hypernetworks",
              "latent_upscale_models", "loras", "model_patches", "optical_flow", "photomaker",
              "style_models", "text_encoders", "unet", "upscale_models", "vae", "vae_approx")

SAMPLERS = ["euler", "euler_cfg_pp", "euler_ancestral", "euler_ancestral_cfg_pp", "heun", "heunpp2",
            "dpm_2", "dpm_2_ancestral", "lms", "dpm_fast", "dpm_adaptive", "dpmpp_2s_ancestral",
            "dpmpp_2s_ancestral_cfg_pp", "dpmpp_sde", "dpmpp_sde_gpu", "dpmpp_2m", "dpmpp_2m_cfg_pp",
            "dpmpp_2m_sde", "dpmpp_2m_sde_gpu", "dpmpp_3m_sde", "dpmpp_3m_sde_gpu", "ddpm", "lcm",
            "ipndm", "ipndm_v", "deis", "res_multistep", "res_multistep_cfg_pp",
            "res_multistep_ancestral", "res_multistep_ancestral_cfg_pp", "gradient_estimation",
            "er_sde", "seeds_2", "seeds_3", "ddim", "uni_pc", "uni_pc_bh2"]
SCHEDULERS = ["simple", "sgm_uniform", "karras", "exponential", "ddim_uniform", "beta", "normal",
              "linear_quadratic", "kl_optimal"]


def now_ms() -> int:
    return int(time.time() * 1000)


# --------------------------------------------------------------------------
# small files with the right magic
# --------------------------------------------------------------------------

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
# The classic 1x1 lossless WebP; its VP8L chunk (with padding) is reused as every animation frame.
WEBP_1X1 = base64.b64decode("UklGRhoAAABXRUJQVlA4TA0AAAAvAAAAEAcQERGIiP4HAA==")


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def encode_png(width: int, height: int, rgb: tuple[int, int, int], text: dict[str, str] | None = None) -> bytes:
    """A solid-colour 8-bit RGB PNG; `text` becomes tEXt chunks (iTXt when not Latin-1, as
    PIL's PngInfo.add_text does), written before the image data."""
    row = b"\x00" + bytes(rgb) * width
    z = zlib.compressobj(6)
    idat = b"".join(z.compress(row) for _ in range(height)) + z.flush()
    chunks = [PNG_SIGNATURE, _png_chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0))]
    for key, value in (text or {}).items():
        try:
            chunks.append(_png_chunk(b"tEXt", key.encode("latin-1") + b"\0" + value.encode("latin-1")))
        except UnicodeEncodeError:
            chunks.append(_png_chunk(b"iTXt", key.encode("latin-1") + b"\0\0\0\0\0" + value.encode("utf-8")))
    chunks += [_png_chunk(b"IDAT", idat), _png_chunk(b"IEND", b"")]
    return b"".join(chunks)


def _riff_chunk(fourcc: bytes, data: bytes) -> bytes:
    return fourcc + struct.pack("<I", len(data)) + data + (b"\0" if len(data) % 2 else b"")


def encode_animated_webp(width: int, height: int, frames: int, fps: float) -> bytes:
    """RIFF/WEBP with VP8X (animation flag, canvas size), ANIM and one 1x1 ANMF per frame."""
    u24 = lambda v: struct.pack("<I", v)[:3]  # noqa: E731
    vp8l = WEBP_1X1[12:]
    vp8x = bytes([0x02, 0, 0, 0]) + u24(width - 1) + u24(height - 1)
    anim = struct.pack("<IH", 0xFFFFFFFF, 0)
    duration = max(1, min(0xFFFFFF, round(1000 / fps)))
    frame = u24(0) + u24(0) + u24(0) + u24(0) + u24(duration) + b"\0" + vp8l
    body = b"WEBP" + _riff_chunk(b"VP8X", vp8x) + _riff_chunk(b"ANIM", anim) + \
        b"".join(_riff_chunk(b"ANMF", frame) for _ in range(frames))
    return b"RIFF" + struct.pack("<I", len(body)) + body


def encode_flac(sample_rate: int, channels: int, samples: int) -> bytes:
    """`fLaC` + a STREAMINFO block (16-bit samples) and no audio frames."""
    packed = (sample_rate << 44) | ((channels - 1) << 41) | (15 << 36) | samples
    info = struct.pack(">HH", 4096, 4096) + bytes(6) + packed.to_bytes(8, "big") + bytes(16)
    return b"fLaC" + bytes([0x80]) + len(info).to_bytes(3, "big") + info


def _mp4_box(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", 8 + len(data)) + kind + data


def encode_mp4(description: dict) -> bytes:
    """An ISO BMFF `ftyp` box (isom) and an `mdat` box holding `description` as JSON."""
    return _mp4_box(b"ftyp", b"isom" + struct.pack(">I", 512) + b"isomiso2avc1mp41") + \
        _mp4_box(b"mdat", json.dumps(description).encode())


def encode_glb(vertices: tuple[tuple[float, float, float], ...], faces: tuple[tuple[int, int, int], ...]) -> bytes:
    """A valid glTF 2.0 binary: one mesh, float32 positions, uint32 indices."""
    positions = b"".join(struct.pack("<3f", *v) for v in vertices)
    indices = b"".join(struct.pack("<3I", *f) for f in faces)
    doc = {
        "asset": {"version": "2.0", "generator": "comfyui_server.py"},
        "scene": 0, "scenes": [{"nodes": [0]}], "nodes": [{"mesh": 0}],
        "meshes": [{"primitives": [{"attributes": {"POSITION": 0}, "indices": 1}]}],
        "buffers": [{"byteLength": len(positions) + len(indices)}],
        "bufferViews": [{"buffer": 0, "byteOffset": 0, "byteLength": len(positions), "target": 34962},
                        {"buffer": 0, "byteOffset": len(positions), "byteLength": len(indices), "target": 34963}],
        "accessors": [{"bufferView": 0, "componentType": 5126, "count": len(vertices), "type": "VEC3",
                       "min": [min(v[i] for v in vertices) for i in range(3)],
                       "max": [max(v[i] for v in vertices) for i in range(3)]},
                      {"bufferView": 1, "componentType": 5125, "count": 3 * len(faces), "type": "SCALAR"}],
    }
    js = json.dumps(doc).encode()
    js += b" " * (-len(js) % 4)
    binary = positions + indices
    binary += b"\0" * (-len(binary) % 4)
    chunks = struct.pack("<I", len(js)) + b"JSON" + js + struct.pack("<I", len(binary)) + b"BIN\0" + binary
    return b"glTF" + struct.pack("<II", 2, 12 + len(chunks)) + chunks


def image_size(data: bytes) -> tuple[int, int] | None:
    """(width, height) of a PNG; (64, 64) for other images the stand-in recognises (JPEG, GIF,
    WebP); None when the bytes are no image."""
    if data.startswith(PNG_SIGNATURE) and data[12:16] == b"IHDR":
        return struct.unpack(">II", data[16:24])
    if data.startswith(b"\xff\xd8\xff") or data[:6] in (b"GIF87a", b"GIF89a") or \
            (data[:4] == b"RIFF" and data[8:12] == b"WEBP"):
        return 64, 64
    return None


# --------------------------------------------------------------------------
# the values flowing along links
# --------------------------------------------------------------------------

@dataclasses.dataclass(frozen=True)
class Model:
    name: str


@dataclasses.dataclass(frozen=True)
class Clip:
    name: str


@dataclasses.dataclass(frozen=True)
class Vae:
    name: str


@dataclasses.dataclass(frozen=True)
class Conditioning:
    text: str
    clip: str


@dataclasses.dataclass(frozen=True)
class Latent:
    """`width`/`height` in latent pixels (image pixels / 8); one colour per batch item."""
    width: int
    height: int
    colors: tuple[tuple[int, int, int], ...]


@dataclasses.dataclass(frozen=True)
class Image:
    """A batch of solid-colour images: one colour per batch item."""
    width: int
    height: int
    colors: tuple[tuple[int, int, int], ...]


@dataclasses.dataclass(frozen=True)
class Mask:
    width: int
    height: int


@dataclasses.dataclass(frozen=True)
class Audio:
    sample_rate: int
    channels: int
    samples: int


@dataclasses.dataclass(frozen=True)
class Video:
    images: Image
    fps: float
    audio: Audio | None


@dataclasses.dataclass(frozen=True)
class Mesh:
    vertices: tuple[tuple[float, float, float], ...]
    faces: tuple[tuple[int, int, int], ...]


def check_pixels(width: int, height: int, batch: int) -> None:
    if width * height * batch > MAX_PIXELS:
        raise RuntimeError(f"[enforce fail at alloc_cpu.cpp:117] data. DefaultCPUAllocator: not enough memory: "
                           f"you tried to allocate {width * height * batch * 12} bytes.")


# --------------------------------------------------------------------------
# replica folders (folder_paths.py)
# --------------------------------------------------------------------------

class Folders:
    """One replica's ComfyUI base directory: input/, output/, temp/, models/<dir>/."""

    def __init__(self, root: str):
        self.root = os.path.abspath(root)
        self.input = os.path.join(self.root, "input")
        self.output = os.path.join(self.root, "output")
        self.temp = os.path.join(self.root, "temp")

    def create(self) -> None:
        for path in (self.input, self.output, self.temp):
            os.makedirs(path, exist_ok=True)
        for name in MODEL_DIRS:
            os.makedirs(os.path.join(self.root, "models", name), exist_ok=True)

    def wipe(self) -> None:
        """Everything the stand-in or its clients wrote (files, models), then a fresh tree."""
        for name in ("input", "output", "temp", "models"):
            shutil.rmtree(os.path.join(self.root, name), ignore_errors=True)
        self.create()

    def clean_temp(self) -> None:
        shutil.rmtree(self.temp, ignore_errors=True)
        os.makedirs(self.temp, exist_ok=True)

    def by_type(self, kind: str | None) -> str | None:
        return {"output": self.output, "temp": self.temp, "input": self.input}.get(kind)

    def annotated(self, name: str) -> tuple[str, str | None]:
        """folder_paths.annotated_filepath: `name [output]` / `[input]` / `[temp]`."""
        for suffix, base in (("[output]", self.output), ("[input]", self.input), ("[temp]", self.temp)):
            if name.endswith(suffix):
                return name[:-len(suffix) - 1], base
        return name, None

    def annotated_path(self, name: str) -> str:
        name, base = self.annotated(name)
        return os.path.join(base or self.input, name)

    def model_dirs(self, key: str) -> list[str]:
        return [os.path.join(self.root, d) for d in MODEL_FOLDERS[key][0]]

    def filename_list(self, key: str) -> list[str]:
        """folder_paths.get_filename_list: recursive, `/`-separated, filtered by extension, sorted."""
        extensions = MODEL_FOLDERS[key][1]
        found = set()
        for top in self.model_dirs(key):
            for dirpath, dirnames, filenames in os.walk(top, followlinks=True):
                dirnames[:] = [d for d in dirnames if d != ".git"]
                for f in filenames:
                    if not extensions or os.path.splitext(f)[1].lower() in extensions:
                        found.add(os.path.relpath(os.path.join(dirpath, f), top).replace(os.sep, "/"))
        return sorted(found)

    def full_model_path(self, key: str, name: str) -> str:
        for top in self.model_dirs(key):
            path = os.path.join(top, name)
            if os.path.isfile(path):
                return path
        raise FileNotFoundError(f"Model in folder '{key}' with filename '{name}' not found.")

    def input_images(self) -> list[str]:
        """LoadImage's choices: the files directly in input/ whose type is image/*."""
        return sorted(f for f in os.listdir(self.input)
                      if os.path.isfile(os.path.join(self.input, f))
                      and (mimetypes.guess_type(f)[0] or "").startswith("image/"))


def save_path(prefix: str, output_dir: str, width: int = 0, height: int = 0) -> tuple[str, str, int, str]:
    """folder_paths.get_save_image_path: (folder, file name stem, counter, subfolder)."""
    if "%" in prefix:
        now = time.localtime()
        for key, value in (("width", width), ("height", height), ("year", now.tm_year),
                           ("month", f"{now.tm_mon:02}"), ("day", f"{now.tm_mday:02}"),
                           ("hour", f"{now.tm_hour:02}"), ("minute", f"{now.tm_min:02}"),
                           ("second", f"{now.tm_sec:02}")):
            prefix = prefix.replace(f"%{key}%", str(value))
    subfolder = os.path.dirname(os.path.normpath(prefix))
    filename = os.path.basename(os.path.normpath(prefix))
    folder = os.path.join(output_dir, subfolder)
    common = os.path.commonpath((output_dir, os.path.abspath(folder)))
    if common != output_dir:
        raise Exception("**** ERROR: Saving image outside the output folder is not allowed."
                        f"\n full_output_folder: {os.path.abspath(folder)}"
                        f"\n         output_dir: {output_dir}"
                        f"\n         commonpath: {common}")
    os.makedirs(folder, exist_ok=True)
    counters = [0]
    for existing in os.listdir(folder):
        stem, sep, rest = existing[len(filename) + 1:].partition("_")
        if existing[:len(filename)] == filename and existing[len(filename):len(filename) + 1] == "_" \
                and sep and stem.isdigit():
            counters.append(int(stem))
    return folder, filename, max(counters) + 1, subfolder


def write_file(path: str, data: bytes) -> None:
    with open(path, "wb") as f:
        f.write(data)


# --------------------------------------------------------------------------
# the node catalog
# --------------------------------------------------------------------------

class InterruptProcessingException(Exception):
    """comfy.model_management's: raised at the next check after POST /interrupt."""


@dataclasses.dataclass
class NodeContext:
    """What a running node may use: its replica's folders and settings, and the progress hook
    (the ProgressBar / sampler callback of ComfyUI)."""
    folders: Folders
    step_seconds: float
    progress: Callable[[int, int, bytes | None], Any]  # async (value, max, preview PNG or None)


class Node:
    """A ComfyUI node class, V1 style. Subclasses set the class attributes object_info shows and
    implement `run`, which gets the inputs as keyword arguments (links resolved, hidden inputs
    added) and returns (outputs tuple, ui dict or None)."""
    DISPLAY_NAME: str | None = None
    CATEGORY = "sd"
    DESCRIPTION = ""
    PYTHON_MODULE = "nodes"
    RETURN_TYPES: tuple[str, ...] = ()
    RETURN_NAMES: tuple[str, ...] | None = None
    OUTPUT_TOOLTIPS: tuple[str, ...] | None = None
    OUTPUT_NODE = False
    SEARCH_ALIASES: tuple[str, ...] = ()
    # Inputs checked by `validate` (VALIDATE_INPUTS' arguments) instead of min/max/combo checks.
    VALIDATES: tuple[str, ...] = ()

    @classmethod
    def input_types(cls, folders: Folders) -> dict:
        raise NotImplementedError

    @classmethod
    def is_changed(cls, folders: Folders, inputs: dict) -> str:
        """IS_CHANGED: part of the cache key."""
        return ""

    @classmethod
    def validate(cls, folders: Folders, **inputs) -> bool | str:
        """VALIDATE_INPUTS: True, or the reason the inputs are invalid."""
        return True

    async def run(self, ctx: NodeContext, **inputs) -> tuple[tuple, dict | None]:
        raise NotImplementedError

    @classmethod
    def info(cls, name: str, folders: Folders) -> dict:
        """server.py's node_info()."""
        inputs = cls.input_types(folders)
        info = {
            "input": inputs,
            "input_order": {section: list(spec) for section, spec in inputs.items()},
            "is_input_list": False,
            "output": list(cls.RETURN_TYPES),
            "output_is_list": [False] * len(cls.RETURN_TYPES),
            "output_name": list(cls.RETURN_NAMES or cls.RETURN_TYPES),
            "name": name,
            "display_name": cls.DISPLAY_NAME or name,
            "description": cls.DESCRIPTION,
            "python_module": cls.PYTHON_MODULE,
            "category": cls.CATEGORY,
            "output_node": cls.OUTPUT_NODE,
            "has_intermediate_output": False,
        }
        if cls.OUTPUT_TOOLTIPS:
            info["output_tooltips"] = list(cls.OUTPUT_TOOLTIPS)
        info["search_aliases"] = list(cls.SEARCH_ALIASES)
        return info


HIDDEN_PROMPT = {"prompt": "PROMPT", "extra_pnginfo": "EXTRA_PNGINFO"}


def png_metadata(prompt: dict | None, extra_pnginfo: dict | None) -> dict[str, str]:
    text = {} if prompt is None else {"prompt": json.dumps(prompt)}
    for key, value in (extra_pnginfo or {}).items():
        text[key] = json.dumps(value)
    return text


def color_of(*parts: Any) -> tuple[int, int, int]:
    digest = hashlib.sha256(json.dumps(parts, default=str).encode()).digest()
    return digest[0], digest[1], digest[2]


class CheckpointLoaderSimple(Node):
    DISPLAY_NAME = "Load Checkpoint"
    CATEGORY = "loaders"
    DESCRIPTION = "Loads a diffusion model checkpoint, diffusion models are used to denoise latents."
    RETURN_TYPES = ("MODEL", "CLIP", "VAE")
    OUTPUT_TOOLTIPS = ("The model used for denoising latents.",
                       "The CLIP model used for encoding text prompts.",
                       "The VAE model used for encoding and decoding images to and from latent space.")
    SEARCH_ALIASES = ("load model", "checkpoint", "model loader", "load checkpoint", "ckpt", "model")

    @classmethod
    def input_types(cls, folders):
        return {"required": {"ckpt_name": [folders.filename_list("checkpoints"),
                                           {"tooltip": "The name of the checkpoint (model) to load."}]}}

    async def run(self, ctx, ckpt_name):
        ctx.folders.full_model_path("checkpoints", ckpt_name)
        return (Model(ckpt_name), Clip(ckpt_name), Vae(ckpt_name)), None


class LoraLoader(Node):
    DISPLAY_NAME = "Load LoRA"
    CATEGORY = "loaders"
    DESCRIPTION = ("LoRAs are used to modify diffusion and CLIP models, altering the way in which latents are "
                   "denoised such as applying styles. Multiple LoRA nodes can be linked together.")
    RETURN_TYPES = ("MODEL", "CLIP")
    OUTPUT_TOOLTIPS = ("The modified diffusion model.", "The modified CLIP model.")

    @classmethod
    def input_types(cls, folders):
        strength = {"default": 1.0, "min": -100.0, "max": 100.0, "step": 0.01}
        return {"required": {
            "model": ["MODEL", {"tooltip": "The diffusion model the LoRA will be applied to."}],
            "clip": ["CLIP", {"tooltip": "The CLIP model the LoRA will be applied to."}],
            "lora_name": [folders.filename_list("loras"), {"tooltip": "The name of the LoRA."}],
            "strength_model": ["FLOAT", {**strength, "tooltip": "How strongly to modify the diffusion model. "
                                                                "This value can be negative."}],
            "strength_clip": ["FLOAT", {**strength, "tooltip": "How strongly to modify the CLIP model. "
                                                               "This value can be negative."}],
        }}

    async def run(self, ctx, model, clip, lora_name, strength_model, strength_clip):
        ctx.folders.full_model_path("loras", lora_name)
        return (Model(f"{model.name}+{lora_name}:{strength_model}"),
                Clip(f"{clip.name}+{lora_name}:{strength_clip}")), None


class CLIPTextEncode(Node):
    DISPLAY_NAME = "CLIP Text Encode (Prompt)"
    CATEGORY = "conditioning"
    DESCRIPTION = ("Encodes a text prompt using a CLIP model into an embedding that can be used to guide the "
                   "diffusion model towards generating specific images.")
    RETURN_TYPES = ("CONDITIONING",)
    OUTPUT_TOOLTIPS = ("A conditioning containing the embedded text used to guide the diffusion model.",)

    @classmethod
    def input_types(cls, folders):
        return {"required": {
            "text": ["STRING", {"multiline": True, "dynamicPrompts": True, "tooltip": "The text to be encoded."}],
            "clip": ["CLIP", {"tooltip": "The CLIP model used for encoding the text."}],
        }}

    async def run(self, ctx, text, clip):
        return (Conditioning(text, clip.name),), None


class EmptyLatentImage(Node):
    DISPLAY_NAME = "Empty Latent Image"
    CATEGORY = "latent"
    DESCRIPTION = "Create a new batch of empty latent images to be denoised via sampling."
    RETURN_TYPES = ("LATENT",)
    OUTPUT_TOOLTIPS = ("The empty latent image batch.",)

    @classmethod
    def input_types(cls, folders):
        return {"required": {
            "width": ["INT", {"default": 512, "min": 16, "max": MAX_RESOLUTION, "step": 8,
                              "tooltip": "The width of the latent images in pixels."}],
            "height": ["INT", {"default": 512, "min": 16, "max": MAX_RESOLUTION, "step": 8,
                               "tooltip": "The height of the latent images in pixels."}],
            "batch_size": ["INT", {"default": 1, "min": 1, "max": 4096,
                                   "tooltip": "The number of latent images in the batch."}],
        }}

    async def run(self, ctx, width, height, batch_size):
        check_pixels(width, height, batch_size)
        return (Latent(width // 8, height // 8, ((0, 0, 0),) * batch_size),), None


class KSampler(Node):
    DISPLAY_NAME = "KSampler"
    CATEGORY = "sampling"
    DESCRIPTION = "Uses the provided model, positive and negative conditioning to denoise the latent image."
    RETURN_TYPES = ("LATENT",)
    OUTPUT_TOOLTIPS = ("The denoised latent.",)

    @classmethod
    def input_types(cls, folders):
        return {"required": {
            "model": ["MODEL", {"tooltip": "The model used for denoising the input latent."}],
            "seed": ["INT", {"default": 0, "min": 0, "max": 0xFFFFFFFFFFFFFFFF, "control_after_generate": True,
                             "tooltip": "The random seed used for creating the noise."}],
            "steps": ["INT", {"default": 20, "min": 1, "max": 10000,
                              "tooltip": "The number of steps used in the denoising process."}],
            "cfg": ["FLOAT", {"default": 8.0, "min": 0.0, "max": 100.0, "step": 0.1, "round": 0.01,
                              "tooltip": "The Classifier-Free Guidance scale balances creativity and adherence "
                                         "to the prompt. Higher values result in images more closely matching "
                                         "the prompt however too high values will negatively impact quality."}],
            "sampler_name": ["COMBO", {"options": SAMPLERS, "default": "euler",
                                       "tooltip": "The algorithm used when sampling, this can affect the quality, "
                                                  "speed, and style of the generated output."}],
            "scheduler": ["COMBO", {"options": SCHEDULERS, "default": "simple",
                                    "tooltip": "The scheduler controls how noise is gradually removed to form "
                                               "the image."}],
            "positive": ["CONDITIONING", {"tooltip": "The conditioning describing the attributes you want to "
                                                     "include in the image."}],
            "negative": ["CONDITIONING", {"tooltip": "The conditioning describing the attributes you want to "
                                                     "exclude from the image."}],
            "latent_image": ["LATENT", {"tooltip": "The latent image to denoise."}],
            "denoise": ["FLOAT", {"default": 1.0, "min": 0.0, "max": 1.0, "step": 0.01,
                                  "tooltip": "The amount of denoising applied, lower values will maintain the "
                                             "structure of the initial image allowing for image to image "
                                             "sampling."}],
        }}

    async def run(self, ctx, model, seed, steps, cfg, sampler_name, scheduler, positive, negative,
                  latent_image, denoise):
        # One sleep per step, then the callback (interrupt check, progress, preview), as a
        # sampler's callback runs after each step.
        for step in range(steps):
            await asyncio.sleep(ctx.step_seconds)
            shade = color_of(seed, step)
            await ctx.progress(step + 1, steps, encode_png(8, 8, shade))
        colors = tuple(color_of(model.name, positive.text, negative.text, seed + i, steps, cfg, sampler_name,
                                scheduler, denoise, c) for i, c in enumerate(latent_image.colors))
        return (Latent(latent_image.width, latent_image.height, colors),), None


class VAEDecode(Node):
    DISPLAY_NAME = "VAE Decode"
    CATEGORY = "latent"
    DESCRIPTION = "Decodes latent images back into pixel space images."
    RETURN_TYPES = ("IMAGE",)
    OUTPUT_TOOLTIPS = ("The decoded image.",)

    @classmethod
    def input_types(cls, folders):
        return {"required": {
            "samples": ["LATENT", {"tooltip": "The latent to be decoded."}],
            "vae": ["VAE", {"tooltip": "The VAE model used for decoding the latent."}],
        }}

    async def run(self, ctx, samples, vae):
        return (Image(samples.width * 8, samples.height * 8, samples.colors),), None


class SaveImage(Node):
    DISPLAY_NAME = "Save Image"
    CATEGORY = "image"
    DESCRIPTION = "Saves the input images to your ComfyUI output directory."
    OUTPUT_NODE = True
    SEARCH_ALIASES = ("save", "save image", "export image", "output image", "write image", "download")
    TYPE = "output"

    @classmethod
    def input_types(cls, folders):
        return {"required": {
            "images": ["IMAGE", {"tooltip": "The images to save."}],
            "filename_prefix": ["STRING", {"default": "ComfyUI",
                                           "tooltip": "The prefix for the file to save. This may include "
                                                      "formatting information such as %date:yyyy-MM-dd% or "
                                                      "%Empty Latent Image.width% to include values from nodes."}],
        }, "hidden": dict(HIDDEN_PROMPT)}

    def directory(self, folders: Folders) -> str:
        return folders.output

    async def run(self, ctx, images, filename_prefix="ComfyUI", prompt=None, extra_pnginfo=None):
        folder, filename, counter, subfolder = save_path(filename_prefix, self.directory(ctx.folders),
                                                         images.width, images.height)
        results = []
        for batch_number, rgb in enumerate(images.colors):
            file = f"{filename.replace('%batch_num%', str(batch_number))}_{counter:05}_.png"
            write_file(os.path.join(folder, file),
                       encode_png(images.width, images.height, rgb, png_metadata(prompt, extra_pnginfo)))
            results.append({"filename": file, "subfolder": subfolder, "type": self.TYPE})
            counter += 1
        return (), {"images": results}


class PreviewImage(SaveImage):
    DISPLAY_NAME = "Preview Image"
    DESCRIPTION = "Saves the input images to your ComfyUI temp directory."
    SEARCH_ALIASES = ("preview", "preview image", "show image", "view image", "display image")
    TYPE = "temp"

    @classmethod
    def input_types(cls, folders):
        return {"required": {"images": ["IMAGE"]}, "hidden": dict(HIDDEN_PROMPT)}

    def directory(self, folders):
        return folders.temp

    async def run(self, ctx, images, prompt=None, extra_pnginfo=None):
        suffix = "".join(random.choice("abcdefghijklmnopqrstupvxyz") for _ in range(5))
        return await super().run(ctx, images, f"ComfyUI_temp_{suffix}", prompt, extra_pnginfo)


class UnidentifiedImageError(OSError):
    """PIL's, for a LoadImage file that is no image."""


UnidentifiedImageError.__module__ = "PIL"


class LoadImage(Node):
    DISPLAY_NAME = "Load Image"
    CATEGORY = "image"
    RETURN_TYPES = ("IMAGE", "MASK")
    SEARCH_ALIASES = ("load image", "open image", "import image", "image input", "upload image")
    VALIDATES = ("image",)

    @classmethod
    def input_types(cls, folders):
        return {"required": {"image": [folders.input_images(), {"image_upload": True}]}}

    @classmethod
    def is_changed(cls, folders, inputs):
        path = folders.annotated_path(str(inputs.get("image", "")))
        if not os.path.isfile(path):
            return ""
        with open(path, "rb") as f:
            return hashlib.sha256(f.read()).hexdigest()

    @classmethod
    def validate(cls, folders, image):
        if not os.path.exists(folders.annotated_path(image)):
            return f"Invalid image file: {image}"
        return True

    async def run(self, ctx, image):
        path = ctx.folders.annotated_path(image)
        with open(path, "rb") as f:
            size = image_size(f.read())
        if size is None:
            raise UnidentifiedImageError(f"cannot identify image file '{path}'")
        width, height = size
        return (Image(width, height, ((128, 128, 128),)), Mask(width, height)), None


class EmptyImage(Node):
    CATEGORY = "image"
    RETURN_TYPES = ("IMAGE",)

    @classmethod
    def input_types(cls, folders):
        return {"required": {
            "width": ["INT", {"default": 512, "min": 1, "max": MAX_RESOLUTION, "step": 1}],
            "height": ["INT", {"default": 512, "min": 1, "max": MAX_RESOLUTION, "step": 1}],
            "batch_size": ["INT", {"default": 1, "min": 1, "max": 4096}],
            "color": ["INT", {"default": 0, "min": 0, "max": 0xFFFFFF, "step": 1, "display": "color"}],
        }}

    async def run(self, ctx, width, height, batch_size, color):
        check_pixels(width, height, batch_size)
        rgb = ((color >> 16) & 0xFF, (color >> 8) & 0xFF, color & 0xFF)
        return (Image(width, height, (rgb,) * batch_size),), None


class ImageInvert(Node):
    DISPLAY_NAME = "Invert Image"
    CATEGORY = "image"
    RETURN_TYPES = ("IMAGE",)

    @classmethod
    def input_types(cls, folders):
        return {"required": {"image": ["IMAGE"]}}

    async def run(self, ctx, image):
        inverted = tuple((255 - r, 255 - g, 255 - b) for r, g, b in image.colors)
        return (Image(image.width, image.height, inverted),), None


class SaveAnimatedWEBP(Node):
    DISPLAY_NAME = "Save Animated WEBP"
    CATEGORY = "image/animation"
    PYTHON_MODULE = "comfy_extras.nodes_images"
    OUTPUT_NODE = True

    @classmethod
    def input_types(cls, folders):
        return {"required": {
            "images": ["IMAGE"],
            "filename_prefix": ["STRING", {"default": "ComfyUI"}],
            "fps": ["FLOAT", {"default": 6.0, "min": 0.01, "max": 1000.0, "step": 0.01}],
            "lossless": ["BOOLEAN", {"default": True}],
            "quality": ["INT", {"default": 80, "min": 0, "max": 100}],
            "method": [["default", "fastest", "slowest"]],
        }, "hidden": dict(HIDDEN_PROMPT)}

    async def run(self, ctx, images, filename_prefix, fps, lossless, quality, method, prompt=None,
                  extra_pnginfo=None):
        folder, filename, counter, subfolder = save_path(filename_prefix, ctx.folders.output,
                                                         images.width, images.height)
        file = f"{filename}_{counter:05}_.webp"
        frames = len(images.colors)
        write_file(os.path.join(folder, file), encode_animated_webp(images.width, images.height, frames, fps))
        return (), {"images": [{"filename": file, "subfolder": subfolder, "type": "output"}],
                    "animated": [frames != 1]}


class EmptyAudio(Node):
    DISPLAY_NAME = "Empty Audio"
    CATEGORY = "audio"
    DESCRIPTION = "Silence of the given length (a stand-in node: makes an AUDIO without a file)."
    PYTHON_MODULE = "custom_nodes.comfyplat_stand_in"
    RETURN_TYPES = ("AUDIO",)

    @classmethod
    def input_types(cls, folders):
        return {"required": {
            "duration": ["FLOAT", {"default": 1.0, "min": 0.0, "max": 3600.0, "step": 0.01}],
            "sample_rate": ["INT", {"default": 44100, "min": 1, "max": 192000}],
            "channels": ["INT", {"default": 2, "min": 1, "max": 2}],
        }}

    async def run(self, ctx, duration, sample_rate, channels):
        return (Audio(sample_rate, channels, int(duration * sample_rate)),), None


class SaveAudio(Node):
    DISPLAY_NAME = "Save Audio (FLAC)"
    CATEGORY = "audio"
    PYTHON_MODULE = "comfy_extras.nodes_audio"
    OUTPUT_NODE = True
    SEARCH_ALIASES = ("export flac",)

    @classmethod
    def input_types(cls, folders):
        return {"required": {
            "audio": ["AUDIO"],
            "filename_prefix": ["STRING", {"default": "audio/ComfyUI"}],
        }, "hidden": dict(HIDDEN_PROMPT)}

    async def run(self, ctx, audio, filename_prefix="audio/ComfyUI", prompt=None, extra_pnginfo=None):
        folder, filename, counter, subfolder = save_path(filename_prefix, ctx.folders.output)
        file = f"{filename.replace('%batch_num%', '0')}_{counter:05}_.flac"
        write_file(os.path.join(folder, file), encode_flac(audio.sample_rate, audio.channels, audio.samples))
        return (), {"audio": [{"filename": file, "subfolder": subfolder, "type": "output"}]}


class CreateVideo(Node):
    DISPLAY_NAME = "Create Video"
    CATEGORY = "image/video"
    DESCRIPTION = "Create a video from images."
    PYTHON_MODULE = "comfy_extras.nodes_video"
    RETURN_TYPES = ("VIDEO",)

    @classmethod
    def input_types(cls, folders):
        return {"required": {
            "images": ["IMAGE", {"tooltip": "The images to create a video from."}],
            "fps": ["FLOAT", {"default": 30.0, "min": 1.0, "max": 120.0, "step": 1.0}],
        }, "optional": {"audio": ["AUDIO", {"tooltip": "The audio to add to the video."}]}}

    async def run(self, ctx, images, fps, audio=None):
        return (Video(images, fps, audio),), None


class SaveVideo(Node):
    DISPLAY_NAME = "Save Video"
    CATEGORY = "image/video"
    DESCRIPTION = "Saves the input images to your ComfyUI output directory."
    PYTHON_MODULE = "comfy_extras.nodes_video"
    OUTPUT_NODE = True

    @classmethod
    def input_types(cls, folders):
        return {"required": {
            "video": ["VIDEO", {"tooltip": "The video to save."}],
            "filename_prefix": ["STRING", {"default": "video/ComfyUI",
                                           "tooltip": "The prefix for the file to save."}],
            "format": ["COMBO", {"options": ["auto", "mp4"], "default": "auto",
                                 "tooltip": "The format to save the video as."}],
            "codec": ["COMBO", {"options": ["auto", "h264"], "default": "auto",
                                "tooltip": "The codec to use for the video."}],
        }, "hidden": dict(HIDDEN_PROMPT)}

    async def run(self, ctx, video, filename_prefix, format, codec, prompt=None, extra_pnginfo=None):
        images = video.images
        folder, filename, counter, subfolder = save_path(filename_prefix, ctx.folders.output,
                                                         images.width, images.height)
        file = f"{filename}_{counter:05}_.mp4"
        write_file(os.path.join(folder, file), encode_mp4({
            "width": images.width, "height": images.height, "frames": len(images.colors), "fps": video.fps,
            "audio": video.audio is not None}))
        # ComfyUI's PreviewVideo: videos are reported under "images", flagged animated.
        return (), {"images": [{"filename": file, "subfolder": subfolder, "type": "output"}], "animated": [True]}


class PreviewAny(Node):
    DISPLAY_NAME = "Preview Any"
    CATEGORY = "utils"
    PYTHON_MODULE = "comfy_extras.nodes_preview_any"
    OUTPUT_NODE = True

    @classmethod
    def input_types(cls, folders):
        return {"required": {"source": ["*", {}]}}

    async def run(self, ctx, source=None):
        if isinstance(source, str):
            value = source
        elif isinstance(source, (int, float, bool)):
            value = str(source)
        elif source is None:
            value = "None"
        else:
            try:
                value = json.dumps(source)
            except TypeError:
                value = str(source)
        return (), {"text": [value]}


class EmptyMesh(Node):
    DISPLAY_NAME = "Empty Mesh (cube)"
    CATEGORY = "3d"
    DESCRIPTION = "A cube of the given size (a stand-in node: makes a MESH without a model)."
    PYTHON_MODULE = "custom_nodes.comfyplat_stand_in"
    RETURN_TYPES = ("MESH",)

    @classmethod
    def input_types(cls, folders):
        return {"required": {"size": ["FLOAT", {"default": 1.0, "min": 0.01, "max": 1000.0, "step": 0.01}]}}

    async def run(self, ctx, size):
        h = size / 2
        vertices = tuple((x, y, z) for x in (-h, h) for y in (-h, h) for z in (-h, h))
        faces = ((0, 1, 3), (0, 3, 2), (4, 6, 7), (4, 7, 5), (0, 4, 5), (0, 5, 1),
                 (2, 3, 7), (2, 7, 6), (0, 2, 6), (0, 6, 4), (1, 5, 7), (1, 7, 3))
        return (Mesh(vertices, faces),), None


class SaveGLB(Node):
    DISPLAY_NAME = "Save 3D Model"
    CATEGORY = "3d"
    PYTHON_MODULE = "comfy_extras.nodes_hunyuan3d"
    OUTPUT_NODE = True

    @classmethod
    def input_types(cls, folders):
        return {"required": {
            "mesh": ["MESH"],
            "filename_prefix": ["STRING", {"default": "mesh/ComfyUI"}],
        }, "hidden": dict(HIDDEN_PROMPT)}

    async def run(self, ctx, mesh, filename_prefix="mesh/ComfyUI", prompt=None, extra_pnginfo=None):
        folder, filename, counter, subfolder = save_path(filename_prefix, ctx.folders.output)
        file = f"{filename}_{counter:05}_.glb"
        write_file(os.path.join(folder, file), encode_glb(mesh.vertices, mesh.faces))
        return (), {"3d": [{"filename": file, "subfolder": subfolder, "type": "output"}]}


class RegexReplace(Node):
    DISPLAY_NAME = "Regex Replace"
    CATEGORY = "utils/string"
    DESCRIPTION = "Find and replace text using regex patterns."
    PYTHON_MODULE = "comfy_extras.nodes_string"
    RETURN_TYPES = ("STRING",)

    @classmethod
    def input_types(cls, folders):
        return {"required": {
            "string": ["STRING", {"multiline": True}],
            "regex_pattern": ["STRING", {"multiline": True}],
            "replace": ["STRING", {"multiline": True}],
        }, "optional": {
            "case_insensitive": ["BOOLEAN", {"default": True}],
            "multiline": ["BOOLEAN", {"default": False}],
            "dotall": ["BOOLEAN", {"default": False, "tooltip": "When enabled, the dot (.) character will match "
                                                                "any character including newline characters."}],
            "count": ["INT", {"default": 0, "min": 0, "max": 100,
                              "tooltip": "Maximum number of replacements to make. Set to 0 to replace all "
                                         "occurrences (default)."}],
        }}

    async def run(self, ctx, string, regex_pattern, replace, case_insensitive=True, multiline=False,
                  dotall=False, count=0):
        flags = (re.IGNORECASE if case_insensitive else 0) | (re.MULTILINE if multiline else 0) | \
            (re.DOTALL if dotall else 0)
        return (re.sub(regex_pattern, replace, string, count=count, flags=flags),), None


NODES: dict[str, type[Node]] = {cls.__name__: cls for cls in (
    CheckpointLoaderSimple, LoraLoader, CLIPTextEncode, EmptyLatentImage, KSampler, VAEDecode, SaveImage,
    PreviewImage, LoadImage, EmptyImage, ImageInvert, SaveAnimatedWEBP, EmptyAudio, SaveAudio, CreateVideo,
    SaveVideo, PreviewAny, EmptyMesh, SaveGLB, RegexReplace)}


# --------------------------------------------------------------------------
# validation (execution.py: validate_prompt, validate_inputs)
# --------------------------------------------------------------------------

def is_link(value: Any) -> bool:
    return isinstance(value, list) and len(value) == 2 and isinstance(value[0], str) and isinstance(value[1], int)


def full_type_name(klass: type) -> str:
    module = klass.__module__
    return klass.__qualname__ if module == "builtins" else f"{module}.{klass.__qualname__}"


def input_info(class_inputs: dict, name: str) -> tuple[Any, str, dict] | None:
    """(type, "required"|"optional", options) of a declared input, None if not declared."""
    for category in ("required", "optional"):
        spec = class_inputs.get(category, {}).get(name)
        if spec is not None:
            return spec[0], category, (spec[1] if len(spec) > 1 else {})
    return None


def types_match(received: Any, expected: Any) -> bool:
    """validate_node_input: equal, `*` on either side, or comma-separated type sets that overlap
    the way ComfyUI accepts (every received type among the expected ones)."""
    if received == expected:
        return True
    if not isinstance(received, str) or not isinstance(expected, str):
        return False
    got = {t.strip() for t in received.split(",")}
    want = {t.strip() for t in expected.split(",")}
    return "*" in got or "*" in want or got <= want


def validate_inputs(prompt: dict, unique_id: str, validated: dict, folders: Folders) -> tuple:
    if unique_id in validated:
        return validated[unique_id]
    inputs = prompt[unique_id]["inputs"]
    obj_class = NODES[prompt[unique_id]["class_type"]]
    class_inputs = obj_class.input_types(folders)
    declared = [*class_inputs.get("required", {}), *class_inputs.get("optional", {})]
    errors = []
    valid = True
    for x in declared:
        input_type, category, extra_info = input_info(class_inputs, x)
        if x not in inputs:
            if category == "required":
                errors.append({"type": "required_input_missing", "message": "Required input is missing",
                               "details": f"{x}", "extra_info": {"input_name": x}})
            continue
        val = inputs[x]
        info = [input_type, extra_info]
        if isinstance(val, list):
            if len(val) != 2:
                errors.append({"type": "bad_linked_input",
                               "message": "Bad linked input, must be a length-2 list of [node_id, slot_index]",
                               "details": f"{x}",
                               "extra_info": {"input_name": x, "input_config": info, "received_value": val}})
                continue
            o_id = val[0]
            received_type = NODES[prompt[o_id]["class_type"]].RETURN_TYPES[val[1]]
            if not types_match(received_type, input_type):
                errors.append({"type": "return_type_mismatch",
                               "message": "Return type mismatch between linked nodes",
                               "details": f"{x}, received_type({received_type}) mismatch input_type({input_type})",
                               "extra_info": {"input_name": x, "input_config": info,
                                              "received_type": received_type, "linked_node": val}})
                continue
            try:
                if validate_inputs(prompt, o_id, validated, folders)[0] is False:
                    valid = False
                    continue
            except Exception as ex:
                typ, _, tb = sys.exc_info()
                valid = False
                validated[o_id] = (False, [{
                    "type": "exception_during_inner_validation", "message": "Exception when validating inner node",
                    "details": str(ex),
                    "extra_info": {"input_name": x, "input_config": info, "exception_message": str(ex),
                                   "exception_type": full_type_name(typ), "traceback": traceback.format_tb(tb),
                                   "linked_node": val}}], o_id)
                continue
        else:
            try:
                if isinstance(val, dict) and "__value__" in val:
                    val = inputs[x] = val["__value__"]
                convert = {"INT": int, "FLOAT": float, "STRING": str, "BOOLEAN": bool}.get(input_type) \
                    if isinstance(input_type, str) else None
                if convert is not None:
                    val = inputs[x] = convert(val)
            except Exception as ex:
                errors.append({"type": "invalid_input_type",
                               "message": f"Failed to convert an input value to a {input_type} value",
                               "details": f"{x}, {val}, {ex}",
                               "extra_info": {"input_name": x, "input_config": info, "received_value": val,
                                              "exception_message": str(ex)}})
                continue
            if x in obj_class.VALIDATES:
                continue
            if "min" in extra_info and val < extra_info["min"]:
                errors.append({"type": "value_smaller_than_min",
                               "message": f"Value {val} smaller than min of {extra_info['min']}",
                               "details": f"{x}",
                               "extra_info": {"input_name": x, "input_config": info, "received_value": val}})
                continue
            if "max" in extra_info and val > extra_info["max"]:
                errors.append({"type": "value_bigger_than_max",
                               "message": f"Value {val} bigger than max of {extra_info['max']}",
                               "details": f"{x}",
                               "extra_info": {"input_name": x, "input_config": info, "received_value": val}})
                continue
            if isinstance(input_type, list) or input_type == "COMBO":
                options = extra_info.get("options", []) if input_type == "COMBO" else input_type
                if val not in options:
                    # ComfyUI does not send back long lists (scanned model paths).
                    if len(options) > 20:
                        list_info, input_config = f"(list of length {len(options)})", None
                    else:
                        list_info, input_config = str(options), info
                    errors.append({"type": "value_not_in_list", "message": "Value not in list",
                                   "details": f"{x}: '{val}' not in {list_info}",
                                   "extra_info": {"input_name": x, "input_config": input_config,
                                                  "received_value": val}})
                    continue
    if obj_class.VALIDATES:
        filtered = {x: inputs[x] for x in obj_class.VALIDATES if x in inputs and not isinstance(inputs[x], list)}
        result = obj_class.validate(folders, **filtered)
        if result is not True:
            for x in filtered:
                errors.append({"type": "custom_validation_failed", "message": "Custom validation failed for node",
                               "details": f"{x}" + ("" if result is False else f" - {result}"),
                               "extra_info": {"input_name": x}})
    ret = (False, errors, unique_id) if errors or valid is not True else (True, [], unique_id)
    validated[unique_id] = ret
    return ret


def validate_prompt(prompt: dict, partial_execution_targets: list | None, folders: Folders) -> tuple:
    """(valid, error, outputs to execute, node_errors), as execution.validate_prompt."""
    outputs = []
    for x in prompt:
        if "class_type" not in prompt[x]:
            title = prompt[x].get("_meta", {}).get("title")
            return (False, {"type": "missing_node_type",
                            "message": f"Node '{title or f'ID #{x}'}' has no class_type. The workflow may be "
                                       "corrupted or a custom node is missing.",
                            "details": f"Node ID '#{x}'",
                            "extra_info": {"node_id": x, "class_type": None, "node_title": title}}, [], {})
        class_type = prompt[x]["class_type"]
        obj_class = NODES.get(class_type)
        if obj_class is None:
            title = prompt[x].get("_meta", {}).get("title", class_type)
            return (False, {"type": "missing_node_type",
                            "message": f"Node '{title}' not found. The custom node may not be installed.",
                            "details": f"Node ID '#{x}'",
                            "extra_info": {"node_id": x, "class_type": class_type, "node_title": title}}, [], {})
        if obj_class.OUTPUT_NODE and (partial_execution_targets is None or x in partial_execution_targets):
            outputs.append(x)
    if not outputs:
        return (False, {"type": "prompt_no_outputs", "message": "Prompt has no outputs", "details": "",
                        "extra_info": {}}, [], {})
    good_outputs = []
    errors = []
    node_errors: dict[str, dict] = {}
    validated: dict[str, tuple] = {}
    for o in outputs:
        try:
            valid, reasons, _ = validate_inputs(prompt, o, validated, folders)
        except Exception as ex:
            typ, _, tb = sys.exc_info()
            valid = False
            reasons = [{"type": "exception_during_validation", "message": "Exception when validating node",
                        "details": str(ex),
                        "extra_info": {"exception_type": full_type_name(typ),
                                       "traceback": traceback.format_tb(tb)}}]
            validated[o] = (False, reasons, o)
        if valid is True:
            good_outputs.append(o)
            continue
        errors.append((o, reasons))
        # Upstream failures make downstream nodes invalid without reasons: only nodes with
        # reasons are reported, each with the outputs depending on it.
        for node_id, (node_valid, node_reasons, _) in validated.items():
            if node_valid is not True and node_reasons:
                if node_id not in node_errors:
                    node_errors[node_id] = {"errors": node_reasons, "dependent_outputs": [],
                                            "class_type": prompt[node_id]["class_type"]}
                node_errors[node_id]["dependent_outputs"].append(o)
    if not good_outputs:
        details = "\n".join(f"{e['message']}: {e['details']}" for _, reasons in errors for e in reasons)
        return (False, {"type": "prompt_outputs_failed_validation", "message": "Prompt outputs failed validation",
                        "details": details, "extra_info": {}}, [], node_errors)
    return True, None, good_outputs, node_errors


def validate_job_id(value: Any) -> str:
    """comfy_execution.jobs.validate_job_id: a canonical lowercase hyphenated UUID."""
    if not isinstance(value, str):
        raise ValueError(f"job id must be a string, got {type(value).__name__}")
    if str(uuid.UUID(value)) != value:
        raise ValueError("job id must be a UUID in canonical lowercase hyphenated form")
    return value


# --------------------------------------------------------------------------
# execution (execution.py, comfy_execution/graph.py, comfy_execution/progress.py)
# --------------------------------------------------------------------------

class ExecutionList:
    """ComfyUI's ExecutionList without lazy inputs, subgraphs or async nodes: the order in which
    nodes become ready and the "UX friendly" pick (an output node first, then a node feeding an
    output, then one two links away, else the first ready node in insertion order)."""

    def __init__(self, prompt: dict, is_cached: Callable[[str], bool]):
        self.prompt = prompt
        self.is_cached = is_cached
        self.pending: dict[str, bool] = {}
        self.block_count: dict[str, int] = {}
        self.blocking: dict[str, dict[str, bool]] = {}

    def add_node(self, node_id: str) -> None:
        stack = [node_id]
        links = []
        while stack:
            uid = stack.pop()
            if uid in self.pending:
                continue
            self.pending[uid] = True
            self.block_count[uid] = 0
            self.blocking[uid] = {}
            for value in self.prompt[uid]["inputs"].values():
                if is_link(value):
                    if not self.is_cached(value[0]):
                        stack.append(value[0])
                    links.append((value[0], uid))
        for source, target in links:
            if not self.is_cached(source) and target not in self.blocking[source]:
                self.blocking[source][target] = True
                self.block_count[target] += 1

    def _is_output(self, node_id: str) -> bool:
        return NODES[self.prompt[node_id]["class_type"]].OUTPUT_NODE

    def next(self) -> str:
        ready = [n for n in self.pending if self.block_count[n] == 0]
        for n in ready:
            if self._is_output(n):
                return n
        for n in ready:
            if any(self._is_output(b) for b in self.blocking[n]):
                return n
        for n in ready:
            if any(self._is_output(b2) for b in self.blocking[n] for b2 in self.blocking[b]):
                return n
        return ready[0]

    def complete(self, node_id: str) -> None:
        del self.pending[node_id]
        for target in self.blocking.pop(node_id):
            self.block_count[target] -= 1


def signatures(prompt: dict, folders: Folders) -> dict[str, str]:
    """Cache keys as CacheKeySetInputSignature: class, IS_CHANGED and the inputs, links replaced
    by the signature of the node they come from (so equal upstream graphs give equal keys)."""
    memo: dict[str, str | None] = {}

    def sig(uid: str) -> str:
        if uid in memo:
            return memo[uid] or "cycle"
        memo[uid] = None
        node = prompt[uid]
        items = []
        for name, value in sorted(node["inputs"].items()):
            if is_link(value) and value[0] in prompt:
                items.append([name, "link", sig(value[0]), value[1]])
            else:
                items.append([name, "value", value])
        memo[uid] = json.dumps([node["class_type"], NODES[node["class_type"]].is_changed(folders, node["inputs"]),
                                items], sort_keys=True, default=str)
        return memo[uid]

    return {uid: sig(uid) for uid in prompt}


def format_value(x: Any) -> Any:
    if x is None or isinstance(x, (int, float, bool, str)):
        return x
    return str(x)


@dataclasses.dataclass(order=True)
class QueueItem:
    """(number, prompt_id, prompt, extra_data, outputs_to_execute) + the sensitive extra_data
    keys; ordered as ComfyUI's heap orders its tuples."""
    number: float
    prompt_id: str
    prompt: dict = dataclasses.field(compare=False)
    extra_data: dict = dataclasses.field(compare=False)
    outputs: list = dataclasses.field(compare=False)
    sensitive: dict = dataclasses.field(compare=False)

    def public(self) -> list:
        return [self.number, self.prompt_id, self.prompt, self.extra_data, self.outputs]


@dataclasses.dataclass
class CacheEntry:
    outputs: tuple
    ui: dict | None


class ProgressState:
    """comfy_execution.progress's registry + WebUIProgressHandler: every change sends
    `progress_state` with all non-pending nodes of the prompt."""

    def __init__(self, replica: "Replica", prompt_id: str, client_id: str | None):
        self.replica = replica
        self.prompt_id = prompt_id
        self.client_id = client_id
        self.nodes: dict[str, dict] = {}

    def _send(self) -> None:
        self.replica.emit("progress_state", {"prompt_id": self.prompt_id, "nodes": {
            node_id: {"value": st["value"], "max": st["max"], "state": st["state"], "node_id": node_id,
                      "prompt_id": self.prompt_id, "display_node_id": node_id, "parent_node_id": None,
                      "real_node_id": node_id}
            for node_id, st in self.nodes.items()}}, self.client_id)

    def start(self, node_id: str) -> None:
        self.nodes[node_id] = {"state": "running", "value": 0.0, "max": 1.0}
        self._send()

    def update(self, node_id: str, value: int, maximum: int) -> None:
        self.nodes[node_id] = {"state": "running", "value": value, "max": maximum}
        self._send()

    def finish(self, node_id: str) -> None:
        state = self.nodes.setdefault(node_id, {"value": 0, "max": 1})
        state.update(state="finished", value=state["max"])
        self._send()


# --------------------------------------------------------------------------
# one ComfyUI: websockets, queue, worker, routes
# --------------------------------------------------------------------------

@dataclasses.dataclass
class Failure:
    """How a prompt's execution ended early: the message to add (and send)."""
    event: str
    data: dict
    broadcast: bool


class Connection:
    """One /ws socket. `send` never raises: a dead or stuck socket (no progress for
    SEND_TIMEOUT) is aborted and the message lost, as ComfyUI's send_socket_catch_exception
    drops it."""

    def __init__(self, ws: web.WebSocketResponse, transport: asyncio.Transport, sid: str,
                 after_send: Callable[["Connection", str], bool]):
        self.ws = ws
        self.transport = transport
        self.sid = sid
        self.feature_flags: dict = {}
        self.after_send = after_send  # (connection, message type) -> abort the connection now?

    async def send(self, event: str | int, data: Any) -> None:
        if isinstance(event, int):
            sending = self.ws.send_bytes(struct.pack(">I", event) + data)
        else:
            sending = self.ws.send_str(json.dumps({"type": event, "data": data}))
        try:
            await asyncio.wait_for(sending, SEND_TIMEOUT)
        except (ConnectionError, asyncio.TimeoutError):
            self.transport.abort()
            return
        if isinstance(event, str) and self.after_send(self, event):
            self.transport.abort()


class Replica:
    """The state of one ComfyUI server: its folders, queue, history, execution cache and sockets,
    one worker task executing prompts in order and one publisher task sending websocket messages
    in the order they were emitted (ComfyUI's send_sync queue and publish_loop)."""

    def __init__(self, index: int, folders: Folders, defaults: dict, faults: "Faults"):
        self.index = index
        self.folders = folders
        self.defaults = dict(defaults)
        self.settings = dict(defaults)
        self.faults = faults
        self.sockets: dict[str, Connection] = {}
        self.outbox: asyncio.Queue = asyncio.Queue(OUTBOX_SIZE)
        self.number = 0
        self.pending: list[QueueItem] = []  # a heap, listed in heap order as ComfyUI does
        self.running: QueueItem | None = None
        self.history: dict[str, dict] = {}
        self.history_timers: set[asyncio.TimerHandle] = set()
        self.cache: dict[str, CacheEntry] = {}
        self.interrupt_requested = False
        self.client_id: str | None = None  # the running prompt's client_id
        self.last_node_id: str | None = None
        self.wakeup = asyncio.Event()
        self.worker = asyncio.create_task(self._work())
        self.publisher = asyncio.create_task(self._publish())
        routes = [
            ("GET", "/ws", self.websocket), ("GET", "/system_stats", self.system_stats),
            ("GET", "/features", self.features), ("GET", "/embeddings", self.embeddings),
            ("GET", "/models", self.model_folders), ("GET", "/models/{folder}", self.models),
            ("GET", "/object_info", self.object_info), ("GET", "/object_info/{node_class}", self.object_info_one),
            ("GET", "/prompt", self.get_prompt), ("POST", "/prompt", self.post_prompt),
            ("GET", "/queue", self.get_queue), ("POST", "/queue", self.post_queue),
            ("POST", "/interrupt", self.interrupt), ("POST", "/free", self.free),
            ("GET", "/history", self.get_history), ("GET", "/history/{prompt_id}", self.get_history_one),
            ("POST", "/history", self.post_history), ("GET", "/view", self.view),
            ("POST", "/upload/image", self.upload_image),
            ("GET", "/api/jobs", self.jobs), ("GET", "/api/jobs/{job_id}", self.job),
        ]
        # (method, path regex, handler); as aiohttp matches, `{name}` is one path segment.
        self.routes = [(m, re.compile("^" + re.sub(r"\{(\w+)\}", r"(?P<\1>[^/]+)", p) + "$"), h)
                       for m, p, h in routes]

    # ---- lifecycle ----------------------------------------------------------

    async def _stop_tasks(self) -> None:
        for task in (self.worker, self.publisher):
            task.cancel()
        await asyncio.gather(self.worker, self.publisher, return_exceptions=True)
        for timer in self.history_timers:
            timer.cancel()
        self.history_timers.clear()

    async def reset(self) -> None:
        """A freshly started ComfyUI with empty folders; connected sockets stay connected."""
        await self._stop_tasks()
        self.outbox = asyncio.Queue(OUTBOX_SIZE)
        self.settings = dict(self.defaults)
        self.number = 0
        self.pending, self.running, self.history, self.cache = [], None, {}, {}
        self.interrupt_requested, self.client_id, self.last_node_id = False, None, None
        self.folders.wipe()
        self.worker = asyncio.create_task(self._work())
        self.publisher = asyncio.create_task(self._publish())

    async def close(self) -> None:
        await self._stop_tasks()
        for conn in list(self.sockets.values()):
            await conn.ws.close(code=1001, message=b"Server shutdown")

    # ---- websocket messages -------------------------------------------------

    def emit(self, event: str | int, data: Any, sid: str | None) -> None:
        """server.send_sync: queue a message for `sid` (None: every socket)."""
        try:
            self.outbox.put_nowait((event, data, sid))
        except asyncio.QueueFull:
            LOG.warning("replica %d: websocket outbox full, dropping %s", self.index, event)

    async def _publish(self) -> None:
        while True:
            event, data, sid = await self.outbox.get()
            if sid is None:
                targets = list(self.sockets.values())
            else:
                targets = [self.sockets[sid]] if sid in self.sockets else []
            for conn in targets:
                try:
                    await conn.send(event, data)
                except Exception:  # a stand-in bug: loud in the log, later messages still go out
                    LOG.exception("replica %d: sending %s", self.index, event)

    def queue_info(self) -> dict:
        return {"exec_info": {"queue_remaining": len(self.pending) + (self.running is not None)}}

    def queue_updated(self) -> None:
        self.emit("status", {"status": self.queue_info()}, None)

    def _after_send(self, conn: Connection, event: str) -> bool:
        return self.faults.after_ws_send(self.index, conn, event)

    async def websocket(self, request: web.Request) -> web.StreamResponse:
        ws = web.WebSocketResponse(timeout=2.0)  # `timeout`: how long close() waits for the client's close
        if not ws.can_prepare(request).ok:
            return web.Response(status=400, text="400: Bad Request")
        entry, cookies = request["stand_in"]
        for cookie in cookies:
            ws.headers.add("Set-Cookie", cookie)
        await ws.prepare(request)
        entry["status"] = 101
        sid = request.query.get("clientId", "") or uuid.uuid4().hex
        conn = Connection(ws, request.transport, sid, self._after_send)
        self.sockets[sid] = conn  # a socket with the same id stops getting messages
        try:
            await conn.send("status", {"status": self.queue_info(), "sid": sid})
            if self.client_id == sid and self.last_node_id is not None:
                await conn.send("executing", {"node": self.last_node_id})
            first = True
            async for msg in ws:
                if msg.type != WSMsgType.TEXT:
                    continue
                try:
                    data = json.loads(msg.data)
                except ValueError:
                    LOG.warning("replica %d: invalid JSON from websocket %s", self.index, sid)
                    continue
                if first and isinstance(data, dict) and data.get("type") == "feature_flags":
                    conn.feature_flags = data.get("data") or {}
                    await conn.send("feature_flags", FEATURES)
                first = False
        finally:
            if self.sockets.get(sid) is conn:
                del self.sockets[sid]
        return ws

    # ---- the worker ---------------------------------------------------------

    async def _work(self) -> None:
        while True:
            while not self.pending:
                self.wakeup.clear()
                await self.wakeup.wait()
            item = heapq.heappop(self.pending)
            self.running = item
            self.queue_updated()
            try:
                await self._execute(item)
            except Exception:  # a stand-in bug: loud in the log, the queue keeps moving
                LOG.exception("replica %d: executing %s", self.index, item.prompt_id)
                self.running = self.client_id = self.last_node_id = None
                self.queue_updated()

    def _check_interrupt(self) -> None:
        if self.interrupt_requested:
            self.interrupt_requested = False
            raise InterruptProcessingException()

    async def _execute(self, item: QueueItem) -> None:
        prompt_id, prompt, extra_data = item.prompt_id, item.prompt, item.extra_data
        client = extra_data.get("client_id")
        self.interrupt_requested = False
        self.client_id = client
        messages: list[list] = []

        def add_message(event: str, data: dict, broadcast: bool) -> None:
            data = {**data, "timestamp": now_ms()}
            messages.append([event, data])
            if client is not None or broadcast:
                self.emit(event, data, client)

        add_message("execution_start", {"prompt_id": prompt_id}, False)
        keys = signatures(prompt, self.folders)
        live = set(keys.values())
        self.cache = {k: v for k, v in self.cache.items() if k in live}  # classic cache: clean_unused()
        cached = [n for n in prompt if keys[n] in self.cache]
        add_message("execution_cached", {"nodes": cached, "prompt_id": prompt_id}, False)
        values = {n: self.cache[keys[n]].outputs for n in cached}
        progress = ProgressState(self, prompt_id, client)
        ui_outputs: dict[str, dict] = {}
        executed: list[str] = []
        todo = ExecutionList(prompt, lambda n: n in values)
        for output in item.outputs:
            todo.add_node(output)
        success = True
        while todo.pending:
            node_id = todo.next()
            if node_id in values:  # a cached output node: replay its UI
                ui = self.cache[keys[node_id]].ui
                if client is not None:
                    self.emit("executed", {"node": node_id, "display_node": node_id, "output": ui,
                                           "prompt_id": prompt_id}, client)
                if ui is not None:
                    ui_outputs[node_id] = ui
                progress.finish(node_id)
            else:
                progress.start(node_id)
                if client is not None:
                    self.last_node_id = node_id
                    self.emit("executing", {"node": node_id, "display_node": node_id, "prompt_id": prompt_id},
                              client)
                outcome = await self._run_node(node_id, item, values, progress, executed)
                if isinstance(outcome, Failure):
                    add_message(outcome.event, outcome.data, outcome.broadcast)
                    success = False
                    break
                outputs, ui = outcome
                values[node_id] = outputs
                self.cache[keys[node_id]] = CacheEntry(outputs, ui)
                if ui:
                    ui_outputs[node_id] = ui
                    if client is not None:
                        self.emit("executed", {"node": node_id, "display_node": node_id, "output": ui,
                                               "prompt_id": prompt_id}, client)
                progress.finish(node_id)
                executed.append(node_id)
            todo.complete(node_id)
        if success:
            add_message("execution_success", {"prompt_id": prompt_id}, False)
        self.client_id = self.last_node_id = None
        history = {
            "prompt": item.public(),
            "outputs": ui_outputs,
            "status": {"status_str": "success" if success else "error", "completed": success,
                       "messages": messages},
            "meta": {n: {"node_id": n, "display_node": n, "parent_node": None, "real_node_id": n}
                     for n in ui_outputs},
        }
        self._add_history_later(prompt_id, history)
        self.running = None
        self.queue_updated()
        if client is not None:
            self.emit("executing", {"node": None, "prompt_id": prompt_id}, client)

    def _add_history_later(self, prompt_id: str, entry: dict) -> None:
        """PromptQueue.task_done's history write, `history_delay` seconds from now."""
        def add() -> None:
            self.history_timers.discard(timer)
            self.history[prompt_id] = entry
            while len(self.history) > MAXIMUM_HISTORY_SIZE:
                del self.history[next(iter(self.history))]

        timer = asyncio.get_running_loop().call_later(self.settings["history_delay"], add)
        self.history_timers.add(timer)

    async def _run_node(self, node_id: str, item: QueueItem, values: dict, progress: ProgressState,
                        executed: list[str]) -> tuple[tuple, dict | None] | "Failure":
        """Run one node (after `progress_state` running / `executing`): its (outputs, ui), or the
        execution_error / execution_interrupted message it ended with."""
        prompt_id, prompt, client = item.prompt_id, item.prompt, item.extra_data.get("client_id")
        node = prompt[node_id]
        obj_class = NODES[node["class_type"]]

        async def hook(value: int, total: int, preview: bytes | None) -> None:
            # main.py's hijack_progress: interrupt check, progress_state, progress, preview.
            self._check_interrupt()
            progress.update(node_id, value, total)
            if client is None:
                return
            conn = self.sockets.get(client)
            with_metadata = conn is not None and conn.feature_flags.get("supports_preview_metadata") is True
            if preview is not None and with_metadata:
                meta = json.dumps({"node_id": node_id, "prompt_id": prompt_id, "display_node_id": node_id,
                                   "parent_node_id": None, "real_node_id": node_id,
                                   "image_type": "image/png"}).encode()
                self.emit(BINARY_PREVIEW_IMAGE_WITH_METADATA, struct.pack(">I", len(meta)) + meta + preview, client)
            self.emit("progress", {"value": value, "max": total, "prompt_id": prompt_id, "node": node_id}, client)
            if preview is not None and not with_metadata:
                self.emit(BINARY_PREVIEW_IMAGE, struct.pack(">I", IMAGE_TYPE_PNG) + preview, client)

        input_data = None
        try:
            input_data = self._input_data(obj_class, node, item, values)
            self._check_interrupt()
            ctx = NodeContext(self.folders, self.settings["step_seconds"], hook)
            return await obj_class().run(ctx, **{k: v[0] for k, v in input_data.items()})
        except InterruptProcessingException:
            return Failure("execution_interrupted", {"prompt_id": prompt_id, "node_id": node_id,
                                                     "node_type": node["class_type"], "executed": list(executed)},
                           True)
        except Exception as ex:
            typ, _, tb = sys.exc_info()
            return Failure("execution_error", {
                "prompt_id": prompt_id, "node_id": node_id, "node_type": node["class_type"],
                "executed": list(executed), "exception_message": f"{ex}\n", "exception_type": full_type_name(typ),
                "traceback": traceback.format_tb(tb),
                "current_inputs": {k: [format_value(x) for x in v] for k, v in (input_data or {}).items()},
                "current_outputs": list(prompt)}, False)

    def _input_data(self, obj_class: type[Node], node: dict, item: QueueItem, values: dict) -> dict[str, list]:
        """execution.get_input_data: linked values, declared literals, then hidden inputs."""
        class_inputs = obj_class.input_types(self.folders)
        data = {}
        for name, value in node["inputs"].items():
            if is_link(value):
                data[name] = [values[value[0]][value[1]]]
            elif input_info(class_inputs, name) is not None:
                data[name] = [value]
        for name, kind in class_inputs.get("hidden", {}).items():
            data[name] = [item.prompt if kind == "PROMPT" else item.extra_data.get("extra_pnginfo")]
        return data

    # ---- routes -------------------------------------------------------------

    async def dispatch(self, request: web.Request) -> web.StreamResponse:
        """Route a request as ComfyUI's aiohttp app does: every route also answers under /api
        (so /api/jobs, which is registered with its /api, answers as /api/jobs and /api/api/jobs),
        HEAD as GET, 405 for a path known for other methods, 404 otherwise; a handler exception
        is aiohttp's 500."""
        method = "GET" if request.method == "HEAD" else request.method
        allowed = set()
        for path in dict.fromkeys((request.path, bare_path(request.path))):
            for route_method, pattern, handler in self.routes:
                match = pattern.match(path)
                if match is None:
                    continue
                if route_method != method:
                    allowed.add(route_method)
                    continue
                try:
                    return await handler(request, **match.groupdict())
                except BadJSON:
                    return internal_error()
                except Exception:
                    LOG.exception("replica %d: error handling %s %s", self.index, request.method, request.path)
                    return internal_error()
        if allowed:
            return web.Response(status=405, text="405: Method Not Allowed", headers={"Allow": ",".join(sorted(allowed))})
        return web.Response(status=404, text="404: Not Found")

    async def system_stats(self, request: web.Request) -> web.Response:
        page = os.sysconf("SC_PAGE_SIZE")
        ram_total, ram_free = os.sysconf("SC_PHYS_PAGES") * page, os.sysconf("SC_AVPHYS_PAGES") * page
        return web.json_response({
            "system": {
                "os": sys.platform, "ram_total": ram_total, "ram_free": ram_free,
                "comfyui_version": COMFYUI_VERSION, "required_frontend_version": FRONTEND_VERSION,
                "installed_templates_version": TEMPLATES_VERSION, "required_templates_version": TEMPLATES_VERSION,
                "comfy_package_versions": [
                    {"name": "comfyui-frontend-package", "installed": FRONTEND_VERSION, "required": FRONTEND_VERSION},
                    {"name": "comfyui-workflow-templates", "installed": TEMPLATES_VERSION,
                     "required": TEMPLATES_VERSION}],
                "python_version": sys.version, "pytorch_version": "2.14.1+cu130", "embedded_python": False,
                "deploy_environment": "local-git",
                "argv": ["main.py", "--cpu", "--listen", "127.0.0.1", "--disable-auto-launch"],
            },
            "devices": [{"name": "cpu", "type": "cpu", "index": None, "vram_total": ram_total, "vram_free": ram_free,
                         "torch_vram_total": ram_total, "torch_vram_free": ram_free}],
        })

    async def features(self, request):
        return web.json_response(FEATURES)

    async def embeddings(self, request):
        return web.json_response([os.path.splitext(f)[0] for f in self.folders.filename_list("embeddings")])

    async def model_folders(self, request):
        return web.json_response(list(MODEL_FOLDERS))

    async def models(self, request, folder):
        if folder not in MODEL_FOLDERS:
            return web.Response(status=404)
        return web.json_response(self.folders.filename_list(folder))

    async def object_info(self, request):
        return web.json_response({name: cls.info(name, self.folders) for name, cls in NODES.items()})

    async def object_info_one(self, request, node_class):
        cls = NODES.get(node_class)
        return web.json_response({} if cls is None else {node_class: cls.info(node_class, self.folders)})

    async def get_prompt(self, request):
        return web.json_response(self.queue_info())

    async def post_prompt(self, request):
        json_data = await read_json(request)
        if "number" in json_data:
            number = float(json_data["number"])
        else:
            number = -self.number if json_data.get("front") else self.number
            self.number += 1
        if "prompt" not in json_data:
            return web.json_response({"error": {"type": "no_prompt", "message": "No prompt provided",
                                                "details": "No prompt provided", "extra_info": {}},
                                      "node_errors": {}}, status=400)
        prompt = json_data["prompt"]
        if json_data.get("prompt_id") is None:
            prompt_id = str(uuid.uuid4())
        else:
            try:
                prompt_id = validate_job_id(json_data["prompt_id"])
            except ValueError:
                return web.json_response({"error": {
                    "type": "invalid_prompt_id", "message": "prompt_id must be a valid UUID",
                    "details": "prompt_id must be a UUID string in canonical lowercase hyphenated form; omit it "
                               "to let the server generate one",
                    "extra_info": {}}, "node_errors": {}}, status=400)
        valid, error, outputs, node_errors = validate_prompt(prompt, json_data.get("partial_execution_targets"),
                                                             self.folders)
        if not valid:
            LOG.info("replica %d: invalid prompt: %s", self.index, error["type"])
            return web.json_response({"error": error, "node_errors": node_errors}, status=400)
        extra_data = json_data.get("extra_data", {})
        if "client_id" in json_data:
            extra_data["client_id"] = json_data["client_id"]
        sensitive = {k: extra_data.pop(k) for k in SENSITIVE_EXTRA_DATA_KEYS if k in extra_data}
        extra_data["create_time"] = now_ms()
        heapq.heappush(self.pending, QueueItem(number, prompt_id, prompt, extra_data, outputs, sensitive))
        self.wakeup.set()
        self.queue_updated()
        return web.json_response({"prompt_id": prompt_id, "number": number, "node_errors": node_errors})

    async def get_queue(self, request):
        return web.json_response({"queue_running": [] if self.running is None else [self.running.public()],
                                  "queue_pending": [item.public() for item in self.pending]})

    def _delete_pending(self, prompt_id: Any) -> None:
        for i, item in enumerate(self.pending):
            if item.prompt_id == prompt_id:
                del self.pending[i]
                heapq.heapify(self.pending)
                self.queue_updated()
                return

    async def post_queue(self, request):
        json_data = await read_json(request)
        if json_data.get("clear"):
            self.pending = []
            self.queue_updated()
        for prompt_id in json_data.get("delete", []):
            self._delete_pending(prompt_id)
        return web.Response(status=200)

    async def interrupt(self, request):
        try:
            json_data = json.loads(await request.text())
        except ValueError:
            json_data = {}
        prompt_id = json_data.get("prompt_id")
        if not prompt_id or (self.running is not None and self.running.prompt_id == prompt_id):
            self.interrupt_requested = True
        else:
            LOG.info("replica %d: prompt %s is not currently running, skipping interrupt", self.index, prompt_id)
        return web.Response(status=200)

    async def free(self, request):
        await read_json(request)
        return web.Response(status=200)

    async def get_history(self, request):
        max_items = request.query.get("max_items")
        max_items = None if max_items is None else int(max_items)
        offset = int(request.query.get("offset", -1))
        if offset < 0 and max_items is not None:
            offset = len(self.history) - max_items
        out = {}
        for i, (prompt_id, entry) in enumerate(self.history.items()):
            if i >= offset:
                out[prompt_id] = entry
                if max_items is not None and len(out) >= max_items:
                    break
        return web.json_response(out)

    async def get_history_one(self, request, prompt_id):
        entry = self.history.get(prompt_id)
        return web.json_response({} if entry is None else {prompt_id: entry})

    async def post_history(self, request):
        json_data = await read_json(request)
        if json_data.get("clear"):
            self.history.clear()
        for prompt_id in json_data.get("delete", []):
            self.history.pop(prompt_id, None)
        return web.Response(status=200)

    async def view(self, request):
        query = request.query
        if "filename" not in query:
            return web.Response(status=404)
        filename, output_dir = self.folders.annotated(query["filename"])
        if not filename or filename[0] == "/" or ".." in filename:
            return web.Response(status=400)
        if output_dir is None:
            output_dir = self.folders.by_type(query.get("type", "output"))
            if output_dir is None:
                return web.Response(status=400)
        if "subfolder" in query:
            full = os.path.join(output_dir, query["subfolder"])
            if os.path.commonpath((os.path.abspath(full), output_dir)) != output_dir:
                return web.Response(status=403)
            output_dir = full
        filename = os.path.basename(filename)
        path = os.path.join(output_dir, filename)
        if not os.path.isfile(path):
            return web.Response(status=404)
        disposition = {"Content-Disposition": f'filename="{filename}"'}
        if "preview" in query:
            # The stand-in has no image codec: every preview is the same 1x1 WebP.
            return web.Response(body=WEBP_1X1, content_type="image/webp", headers=disposition)
        content_type = mimetypes.guess_type(filename)[0] or "application/octet-stream"
        if content_type in {"text/html", "text/html-sandboxed", "application/xhtml+xml", "text/javascript",
                            "text/css"}:
            content_type = "application/octet-stream"
        return web.FileResponse(path, headers={**disposition, "Content-Type": content_type})

    async def upload_image(self, request):
        post = await request.post()
        image = post.get("image")
        upload_type = post.get("type") or "input"
        upload_dir = self.folders.by_type(upload_type)
        if upload_dir is None:  # ComfyUI's get_dir_by_type raises (UnboundLocalError): aiohttp's 500
            return internal_error()
        if not isinstance(image, web.FileField):
            return web.Response(status=400)
        filename = image.filename
        if not filename:
            return web.Response(status=400)
        subfolder = post.get("subfolder", "")
        folder = os.path.join(upload_dir, os.path.normpath(subfolder))
        path = os.path.abspath(os.path.join(folder, filename))
        if os.path.commonpath((upload_dir, path)) != upload_dir:
            return web.Response(status=400)
        os.makedirs(folder, exist_ok=True)
        content = image.file.read()
        if post.get("overwrite") not in ("true", "1"):
            stem, ext = os.path.splitext(filename)
            i = 1
            while os.path.exists(path):
                with open(path, "rb") as f:
                    if hashlib.sha256(f.read()).digest() == hashlib.sha256(content).digest():
                        # The same bytes under the same name: ComfyUI keeps the file and its name.
                        return web.json_response({"name": filename, "subfolder": subfolder, "type": upload_type})
                filename = f"{stem} ({i}){ext}"
                path = os.path.join(folder, filename)
                i += 1
        write_file(path, content)
        return web.json_response({"name": filename, "subfolder": subfolder, "type": upload_type})

    # ---- /api/jobs (comfy_execution/jobs.py) ---------------------------------

    def _history_job(self, prompt_id: str, entry: dict, detail: bool) -> dict:
        number, _, prompt, extra_data, _ = entry["prompt"]
        status = entry["status"]
        start = end = error = None
        for event, data in status["messages"]:
            if event == "execution_start":
                start = data.get("timestamp")
            elif event in ("execution_success", "execution_error", "execution_interrupted"):
                end = data.get("timestamp")
                if event == "execution_error":
                    error = data
        count, previewable, preview = 0, 0, None
        for node_id, node_outputs in entry["outputs"].items():
            for media_type, items in node_outputs.items():
                if media_type == "animated":
                    continue
                for output in items:
                    if not isinstance(output, dict):
                        continue  # PreviewAny's text: preview metadata, not an output
                    count += 1
                    previewable += 1
                    if preview is None or (preview["type"] != "output" and output.get("type") == "output"):
                        preview = {**output, "nodeId": node_id, "mediaType": media_type}
        job = {"id": prompt_id, "status": "completed" if status["status_str"] == "success" else "failed",
               "priority": number, "create_time": extra_data.get("create_time"),
               "execution_start_time": start, "execution_end_time": end, "execution_error": error,
               "outputs_count": count, "previewable_outputs_count": previewable, "preview_output": preview,
               "workflow_id": extra_data.get("extra_pnginfo", {}).get("workflow", {}).get("id")}
        job = {k: v for k, v in job.items() if v is not None}
        if detail:
            job.update(outputs=entry["outputs"], execution_status=status,
                       workflow={"prompt": prompt, "extra_data": extra_data})
        return job

    @staticmethod
    def _queue_job(item: QueueItem, status: str) -> dict:
        job = {"id": item.prompt_id, "status": status, "priority": item.number,
               "create_time": item.extra_data.get("create_time"), "outputs_count": 0,
               "previewable_outputs_count": 0,
               "workflow_id": item.extra_data.get("extra_pnginfo", {}).get("workflow", {}).get("id")}
        return {k: v for k, v in job.items() if v is not None}

    async def jobs(self, request):
        query = request.query
        statuses = [s.strip() for s in query.get("status", "").split(",") if s.strip() in JOB_STATUSES] or \
            list(JOB_STATUSES)
        sort_by = query.get("sort_by", "created_at")
        if sort_by not in ("created_at", "execution_duration"):
            return web.json_response({"error": "sort_by must be 'created_at' or 'execution_duration'"}, status=400)
        sort_order = query.get("sort_order", "desc")
        if sort_order not in ("asc", "desc"):
            return web.json_response({"error": "sort_order must be 'asc' or 'desc'"}, status=400)
        try:
            limit = None if query.get("limit") is None else int(query["limit"])
            offset = int(query.get("offset", 0))
        except ValueError:
            return web.json_response({"error": "limit and offset must be integers"}, status=400)
        if (limit is not None and limit <= 0) or offset < 0:
            return web.json_response({"error": "limit must be positive and offset non-negative"}, status=400)
        jobs = []
        if "in_progress" in statuses and self.running is not None:
            jobs.append(self._queue_job(self.running, "in_progress"))
        if "pending" in statuses:
            jobs += [self._queue_job(item, "pending") for item in self.pending]
        jobs += [job for job in (self._history_job(k, v, False) for k, v in self.history.items())
                 if job["status"] in statuses]
        if query.get("workflow_id"):
            jobs = [j for j in jobs if j.get("workflow_id") == query["workflow_id"]]

        def key(job: dict) -> int:
            if sort_by == "execution_duration":
                start, end = job.get("execution_start_time", 0), job.get("execution_end_time", 0)
                return end - start if start and end else 0
            return job.get("create_time", 0)

        jobs.sort(key=key, reverse=sort_order == "desc")
        total = len(jobs)
        jobs = jobs[offset:] if limit is None else jobs[offset:offset + limit]
        return web.json_response({"jobs": jobs, "pagination": {"offset": offset, "limit": limit, "total": total,
                                                               "has_more": offset + len(jobs) < total}})

    async def job(self, request, job_id):
        if job_id in self.history:
            return web.json_response(self._history_job(job_id, self.history[job_id], True))
        if self.running is not None and self.running.prompt_id == job_id:
            return web.json_response(self._queue_job(self.running, "in_progress"))
        for item in self.pending:
            if item.prompt_id == job_id:
                return web.json_response(self._queue_job(item, "pending"))
        return web.json_response({"error": "Job not found"}, status=404)


JOB_STATUSES = ("pending", "in_progress", "completed", "failed")


class BadJSON(Exception):
    """A body `await request.json()` would fail on: aiohttp answers 500."""


async def read_json(request: web.Request) -> Any:
    try:
        return json.loads(await request.text())
    except ValueError as ex:
        raise BadJSON() from ex


# --------------------------------------------------------------------------
# the edge: CloudFront sign-in, ALB stickiness, faults, request log
# --------------------------------------------------------------------------

class StickyRouter:
    """An ALB target group with duration-based stickiness over the replicas. The AWSALB value
    is opaque: a random nonce, the replica index masked with an HMAC of it, padding and an HMAC
    tag, base64 (fresh on every response, as ALB's encrypted values are). A request without a
    valid cookie is routed round-robin."""

    def __init__(self, replicas: int):
        self.replicas = replicas
        self.secret = os.urandom(32)
        self.next = 0

    def _mac(self, data: bytes) -> bytes:
        return hmac.new(self.secret, data, hashlib.sha256).digest()

    def seal(self, index: int) -> str:
        nonce = os.urandom(16)
        body = bytes([index ^ self._mac(nonce)[0]]) + os.urandom(63)
        return base64.b64encode(nonce + body + self._mac(nonce + body)[:16]).decode()

    def unseal(self, value: str) -> int | None:
        try:
            raw = base64.b64decode(value, validate=True)
        except ValueError:
            return None
        if len(raw) != 96 or not hmac.compare_digest(raw[80:], self._mac(raw[:80])[:16]):
            return None
        index = raw[16] ^ self._mac(raw[:16])[0]
        return index if index < self.replicas else None

    def route(self, cookie_header: str | None) -> int:
        cookies = {}
        for part in (cookie_header or "").split(";"):
            name, sep, value = part.strip().partition("=")
            if sep:
                cookies.setdefault(name, value.strip('"'))
        for name in ("AWSALB", "AWSALBCORS"):
            index = self.unseal(cookies.get(name, ""))
            if index is not None:
                return index
        index = self.next % self.replicas
        self.next += 1
        return index

    def set_cookies(self, index: int) -> list[str]:
        value = self.seal(index)
        expires = email.utils.format_datetime(datetime.now(timezone.utc) + timedelta(days=7), usegmt=True)
        return [f"AWSALB={value}; Expires={expires}; Path=/",
                f"AWSALBCORS={value}; Expires={expires}; Path=/; SameSite=None; Secure"]


def alb_error(status: int) -> web.Response:
    title = f"{status} {http.HTTPStatus(status).phrase}"
    return web.Response(status=status, content_type="text/html", headers={"Server": "awselb/2.0"},
                        text=f"<html><head><title>{title}</title></head><body><center><h1>{title}</h1>"
                             "</center></body></html>")


def internal_error() -> web.Response:
    """aiohttp's answer to a handler exception."""
    return web.Response(status=500, text="500 Internal Server Error\n\nServer got itself in trouble")


def bare_path(path: str) -> str:
    return path[4:] if path.startswith("/api/") else path


@dataclasses.dataclass
class Fault:
    kind: str
    replica: int | None  # None: any replica
    count: int
    method: str | None = None
    path_prefix: str = "/"
    status: int = 502
    after_type: str = ""
    seen: dict[int, int] = dataclasses.field(default_factory=dict)  # drop_ws: id(connection) -> messages

    def public(self) -> dict:
        out = {"kind": self.kind, "replica": self.replica, "count": self.count}
        if self.kind == "http_status":
            out.update(method=self.method, path_prefix=self.path_prefix, status=self.status)
        elif self.kind == "drop_ws":
            out["after_type"] = self.after_type
        return out


class Faults:
    """Injected faults, in the order added; each is consumed when it fires."""
    KINDS = ("http_status", "drop_prompt_response", "drop_ws", "refuse_ws")

    def __init__(self):
        self.faults: list[Fault] = []

    @staticmethod
    def parse(spec: Any, replica: int | None) -> Fault:
        if not isinstance(spec, dict) or spec.get("kind") not in Faults.KINDS:
            raise ValueError(f"a fault is an object with kind one of {list(Faults.KINDS)}: {spec!r}")
        allowed = {"kind", "count"} | {"http_status": {"method", "path_prefix", "status"},
                                       "drop_ws": {"after_type"}}.get(spec["kind"], set())
        unknown = set(spec) - allowed
        if unknown:
            raise ValueError(f"unknown field(s) {sorted(unknown)} for a {spec['kind']} fault")
        count = spec.get("count", 1)
        if not isinstance(count, int) or isinstance(count, bool) or not 1 <= count <= 10000:
            raise ValueError("count must be an integer 1..10000")
        fault = Fault(spec["kind"], replica, count)
        if fault.kind == "http_status":
            status, method, prefix = spec.get("status"), spec.get("method"), spec.get("path_prefix", "/")
            if not isinstance(status, int) or isinstance(status, bool) or not 400 <= status <= 599:
                raise ValueError("status must be an integer 400..599")
            if method is not None and not isinstance(method, str):
                raise ValueError("method must be a string")
            if not isinstance(prefix, str) or not prefix.startswith("/"):
                raise ValueError("path_prefix must be a string starting with /")
            fault.status, fault.method, fault.path_prefix = status, method and method.upper(), prefix
        elif fault.kind == "drop_ws":
            if not isinstance(spec.get("after_type"), str) or not spec["after_type"]:
                raise ValueError("after_type must be a websocket message type, e.g. progress")
            fault.after_type = spec["after_type"]
        return fault

    def _applies(self, fault: Fault, kind: str, replica: int) -> bool:
        return fault.kind == kind and fault.replica in (None, replica)

    def _consume(self, fault: Fault) -> None:
        fault.count -= 1
        if fault.count == 0:
            self.faults.remove(fault)

    def take_http(self, replica: int, method: str, path: str) -> int | None:
        """The status of the first http_status fault matching the request (consuming one), or None."""
        for fault in self.faults:
            if self._applies(fault, "http_status", replica) and fault.method in (None, method) \
                    and bare_path(path).startswith(fault.path_prefix):
                self._consume(fault)
                return fault.status
        return None

    def take(self, kind: str, replica: int) -> bool:
        for fault in self.faults:
            if self._applies(fault, kind, replica):
                self._consume(fault)
                return True
        return False

    def after_ws_send(self, replica: int, conn: Connection, event: str) -> bool:
        """True when `conn` has just sent the count-th message of a drop_ws fault's type."""
        for fault in self.faults:
            if self._applies(fault, "drop_ws", replica) and fault.after_type == event:
                seen = fault.seen[id(conn)] = fault.seen.get(id(conn), 0) + 1
                if seen >= fault.count:
                    self.faults.remove(fault)
                    return True
        return False


LOGGED_BODIES = ("/prompt", "/interrupt", "/queue", "/history")


class Gateway:
    """Everything on the port: /__control/* for the tests, else the edge (token check), the ALB
    (replica choice, faults, cookies) and the chosen replica's ComfyUI routes."""

    def __init__(self, replicas: list[Replica], token: str | None, faults: Faults):
        self.replicas = replicas
        self.token = token
        self.faults = faults
        self.router = StickyRouter(len(replicas))
        self.log: collections.deque[dict] = collections.deque(maxlen=LOG_SIZE)
        self.control_routes = {
            ("POST", "/__control/faults"): self.control_faults, ("GET", "/__control/faults"): self.list_faults,
            ("POST", "/__control/settings"): self.control_settings,
            ("POST", "/__control/models"): self.control_models,
            ("GET", "/__control/log"): self.control_log, ("GET", "/__control/files"): self.control_files,
            ("POST", "/__control/reset"): self.control_reset,
        }

    async def handle(self, request: web.Request) -> web.StreamResponse:
        if request.path.startswith("/__control/"):
            return await self.control(request)
        entry = {"replica": None, "method": request.method, "path": request.path, "query": dict(request.query),
                 "status": None, "authorization": request.headers.get("Authorization"),
                 "cookie": request.headers.get("Cookie"), "json": None}
        self.log.append(entry)
        bare = bare_path(request.path)
        if request.method == "POST" and bare in LOGGED_BODIES:
            try:
                entry["json"] = json.loads(await request.read())
            except ValueError:
                pass
        if self.token is not None and entry["authorization"] != f"Bearer {self.token}":
            entry["status"] = 401
            return web.json_response({"message": "Unauthorized"}, status=401)
        index = self.router.route(entry["cookie"])
        entry["replica"] = index
        cookies = self.router.set_cookies(index)
        status = self.faults.take_http(index, request.method, request.path)
        is_upgrade = bare == "/ws" and request.headers.get("Upgrade", "").lower() == "websocket"
        if status is None and is_upgrade and self.faults.take("refuse_ws", index):
            status = 502
        drop = request.method == "POST" and bare == "/prompt" and status is None and \
            self.faults.take("drop_prompt_response", index)
        if status is not None:
            response = alb_error(status)
        else:
            request["stand_in"] = (entry, cookies)
            response = await self.replicas[index].dispatch(request)
        if drop:
            request.transport.close()  # aiohttp then fails to write the response, silently
            return response
        if not response.prepared:  # the websocket handler sent its 101 with the cookies itself
            for cookie in cookies:
                response.headers.add("Set-Cookie", cookie)
            entry["status"] = response.status
        return response

    # ---- control ------------------------------------------------------------

    async def control(self, request: web.Request) -> web.StreamResponse:
        handler = self.control_routes.get((request.method, request.path))
        if handler is None:
            return web.json_response({"error": f"no control endpoint {request.method} {request.path}"},
                                     status=404)
        replica = request.query.get("replica")
        if replica is not None and not (replica.isdigit() and int(replica) < len(self.replicas)):
            return web.json_response({"error": f"replica must be 0..{len(self.replicas) - 1}"}, status=400)
        body = None
        if request.method == "POST":
            try:
                body = json.loads(await request.text() or "{}")
            except ValueError:
                return web.json_response({"error": "the body must be JSON"}, status=400)
            if not isinstance(body, dict):
                return web.json_response({"error": "the body must be a JSON object"}, status=400)
        try:
            return await handler(None if replica is None else int(replica), body)
        except ValueError as ex:
            return web.json_response({"error": str(ex)}, status=400)

    def _selected(self, replica: int | None) -> list[Replica]:
        return self.replicas if replica is None else [self.replicas[replica]]

    async def control_faults(self, replica, body):
        specs = body.get("faults")
        if not isinstance(specs, list):
            raise ValueError('the body is {"faults": [...]}')
        added = [Faults.parse(spec, replica) for spec in specs]
        if len(self.faults.faults) + len(added) > MAX_FAULTS:
            raise ValueError(f"at most {MAX_FAULTS} faults may wait at once")
        self.faults.faults += added
        return web.json_response({"faults": [f.public() for f in self.faults.faults]})

    async def list_faults(self, replica, body):
        return web.json_response({"faults": [f.public() for f in self.faults.faults]})

    async def control_settings(self, replica, body):
        unknown = set(body) - {"step_seconds", "history_delay"}
        if unknown:
            raise ValueError(f"unknown setting(s) {sorted(unknown)}")
        for key, value in body.items():
            if not isinstance(value, (int, float)) or isinstance(value, bool) or not 0 <= value <= 60:
                raise ValueError(f"{key} must be a number of seconds 0..60")
        for r in self._selected(replica):
            r.settings.update(body)
        return web.json_response({"settings": [r.settings for r in self.replicas]})

    async def control_models(self, replica, body):
        for key, names in body.items():
            if key not in MODEL_FOLDERS:
                raise ValueError(f"unknown model folder {key!r}")
            if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
                raise ValueError(f"{key} must be a list of relative file names")
            for name in names:
                if not name or name.startswith("/") or ".." in name.split("/"):
                    raise ValueError(f"bad model file name {name!r}")
        for r in self._selected(replica):
            for key, names in body.items():
                top = r.folders.model_dirs(key)[0]
                for name in names:
                    path = os.path.join(top, name)
                    os.makedirs(os.path.dirname(path), exist_ok=True)
                    open(path, "ab").close()
        return web.json_response({r.index: {key: r.folders.filename_list(key) for key in body}
                                  for r in self._selected(replica)})

    async def control_log(self, replica, body):
        return web.json_response({"requests": [e for e in self.log if replica is None or e["replica"] == replica]})

    async def control_files(self, replica, body):
        files = []
        for r in self._selected(replica):
            for kind in ("output", "temp", "input"):
                top = r.folders.by_type(kind)
                for dirpath, _, filenames in sorted(os.walk(top)):
                    for name in sorted(filenames):
                        with open(os.path.join(dirpath, name), "rb") as f:
                            data = f.read()
                        sub = os.path.relpath(dirpath, top)
                        files.append({"replica": r.index, "type": kind, "subfolder": "" if sub == "." else
                                      sub.replace(os.sep, "/"), "filename": name, "size": len(data),
                                      "sha256": hashlib.sha256(data).hexdigest()})
        return web.json_response(files)

    async def control_reset(self, replica, body):
        for r in self.replicas:
            await r.reset()
        self.faults.faults.clear()
        self.log.clear()
        self.router.next = 0
        return web.json_response({"reset": True})


# --------------------------------------------------------------------------
# main
# --------------------------------------------------------------------------

async def serve(args: argparse.Namespace, data_dir: str) -> None:
    faults = Faults()
    defaults = {"step_seconds": args.step_seconds, "history_delay": args.history_delay}
    replicas = []
    for i in range(args.replicas):
        folders = Folders(os.path.join(data_dir, f"replica-{i}"))
        folders.create()
        folders.clean_temp()  # ComfyUI's cleanup_temp at start-up
        replicas.append(Replica(i, folders, defaults, faults))
    gateway = Gateway(replicas, args.token, faults)
    app = web.Application(client_max_size=MAX_UPLOAD_SIZE)
    app.router.add_route("*", "/{tail:.*}", gateway.handle)
    runner = web.AppRunner(app, access_log=None, shutdown_timeout=5)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", args.port)
    await site.start()
    port = runner.addresses[0][1]
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    endpoint = f"http://127.0.0.1:{port}"
    write_json_atomic(args.ready_file, {"port": port, "pid": os.getpid(), "endpoint": endpoint})
    LOG.info("comfyui stand-in: %d replica(s) on %s, data in %s", len(replicas), endpoint, data_dir)
    await stop.wait()
    for replica in replicas:
        await replica.close()
    await runner.cleanup()
    for replica in replicas:
        replica.folders.clean_temp()  # and at exit


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=0, help="0 picks a free port")
    parser.add_argument("--ready-file", required=True)
    parser.add_argument("--replicas", type=int, default=1, help=f"1..{MAX_REPLICAS}")
    parser.add_argument("--token", help="require Authorization: Bearer TOKEN (not on /__control)")
    parser.add_argument("--data-dir", help="default: a temp dir removed on exit")
    parser.add_argument("--step-seconds", type=float, default=0.02, help="time per sampler step")
    parser.add_argument("--history-delay", type=float, default=0.2,
                        help="seconds from the end of a prompt to its history entry")
    args = parser.parse_args(argv)
    if not 1 <= args.replicas <= MAX_REPLICAS:
        parser.error(f"--replicas must be 1..{MAX_REPLICAS}")
    if not (0 <= args.step_seconds <= 60 and 0 <= args.history_delay <= 60):
        parser.error("--step-seconds and --history-delay must be 0..60")
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    data_dir = args.data_dir or tempfile.mkdtemp(prefix="comfyui-stand-in-")
    try:
        asyncio.run(serve(args, data_dir))
    finally:
        if args.data_dir is None:
            shutil.rmtree(data_dir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
