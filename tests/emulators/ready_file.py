"""The ready file every emulator writes once it serves: JSON, written atomically (temp file,
fsync, rename) so a reader never sees half of it."""

from __future__ import annotations

import json
import os


def write_json_atomic(path: str, data: dict, mode: int | None = None) -> None:
    """`mode` (e.g. 0o600 for a file holding credentials) is set before any byte is written."""
    path = os.path.abspath(path)
    directory = os.path.dirname(path)
    os.makedirs(directory, exist_ok=True)
    tmp = os.path.join(directory, f".{os.path.basename(path)}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o666 if mode is None else mode)
    if mode is not None:
        os.fchmod(fd, mode)  # a stale temp file keeps its old mode through O_CREAT
    with os.fdopen(fd, "w") as f:
        json.dump(data, f)
        f.write("\n")
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
