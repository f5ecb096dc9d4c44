"""The ready file every emulator writes once it serves: JSON, written atomically (temp file,
fsync, rename) so a reader never sees half of it."""

from __future__ import annotations

import json
import os


def write_json_atomic(path: str, data: dict) -> None:
    path = os.path.abspath(path)
    directory = os.path.dirname(path)
    os.makedirs(directory, exist_ok=True)
    tmp = os.path.join(directory, f".{os.path.basename(path)}.{os.getpid()}.tmp")
    with open(tmp, "w") as f:
        json.dump(data, f)
        f.write("\n")
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
