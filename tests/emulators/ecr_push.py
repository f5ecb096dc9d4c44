#!/usr/bin/env python3
"""Push a small made-up image to the emulator's ECR, as `docker push` does it through the ECR API.

    python ecr_push.py --endpoint http://127.0.0.1:N --repository NAME [--tag TAG]
                       [--layer-seed N] [--format docker|oci] [--region us-west-2]

The image is a valid image manifest (schemaVersion 2) with one config blob (an image config
JSON) and one layer blob (a gzipped tar holding one file), all made from --layer-seed: the
same seed gives the same bytes and so the same digest, another seed another image. The blobs
are uploaded (BatchCheckLayerAvailability, then InitiateLayerUpload / UploadLayerPart /
CompleteLayerUpload for those the repository lacks), then PutImage sends the manifest with the
tag (none: an untagged push).

On success it prints one JSON line to stdout and exits 0:
    {"digest": "sha256:...", "repository": NAME, "tag": TAG | null,
     "mediaType": "...", "manifest": "<the manifest, exactly as pushed>"}
digest is the sha256 of the manifest's bytes, the image's ECR imageDigest. When ECR refuses
(e.g. ImageTagAlreadyExistsException for a new image under a tag of an IMMUTABLE repository,
ImageAlreadyExistsException for the same image and tag again) it prints
    {"error": {"code": "...", "message": "...", "status": 400, "operation": "PutImage"}}
to stdout and exits 1. Usage errors exit 2. Only loopback endpoints are accepted, with fixed
fake credentials: this talks to the emulator, never to AWS.

As a library: build_image(seed, fmt) -> Image, push(ecr_client, repository, tag, seed, fmt).
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
import io
import json
import sys
import tarfile
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlparse

DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_CONFIG = "application/vnd.docker.container.image.v1+json"
DOCKER_LAYER = "application/vnd.docker.image.rootfs.diff.tar.gzip"
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_LAYER = "application/vnd.oci.image.layer.v1.tar+gzip"
FORMATS = {
    "docker": (DOCKER_MANIFEST, DOCKER_CONFIG, DOCKER_LAYER),
    "oci": (OCI_MANIFEST, OCI_CONFIG, OCI_LAYER),
}
LOOPBACK = {"127.0.0.1", "localhost", "::1"}


def sha256(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


@dataclass(frozen=True)
class Image:
    manifest: str  # the manifest JSON, exactly as pushed
    media_type: str
    blobs: dict[str, bytes]  # digest -> bytes: the config, then the layer

    @property
    def digest(self) -> str:
        return sha256(self.manifest.encode("utf-8"))


def layer_tar(seed: int) -> bytes:
    """An uncompressed tar with one file; the same bytes for the same seed."""
    body = f"comfyplat test layer, seed {seed}\n".encode()
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w", format=tarfile.USTAR_FORMAT) as tar:
        info = tarfile.TarInfo(f"comfyplat/layer-{seed}.txt")
        info.size, info.mtime, info.mode = len(body), 0, 0o644
        tar.addfile(info, io.BytesIO(body))
    return out.getvalue()


def build_image(seed: int = 0, fmt: str = "docker") -> Image:
    manifest_type, config_type, layer_type = FORMATS[fmt]
    tar = layer_tar(seed)
    layer = gzip.compress(tar, mtime=0)
    config = json.dumps({
        "architecture": "amd64",
        "os": "linux",
        "config": {"Labels": {"io.comfyplat.test-seed": str(seed)}},
        "rootfs": {"type": "layers", "diff_ids": [sha256(tar)]},
    }, separators=(",", ":"), sort_keys=True).encode()
    manifest = json.dumps({
        "schemaVersion": 2,
        "mediaType": manifest_type,
        "config": {"mediaType": config_type, "size": len(config), "digest": sha256(config)},
        "layers": [{"mediaType": layer_type, "size": len(layer), "digest": sha256(layer)}],
    }, indent=3)
    return Image(manifest=manifest, media_type=manifest_type, blobs={sha256(config): config, sha256(layer): layer})


def upload_blobs(ecr: Any, repository: str, image: Image) -> list[str]:
    """Upload the image's blobs the repository does not have yet; the digests uploaded."""
    check = ecr.batch_check_layer_availability(repositoryName=repository, layerDigests=list(image.blobs))
    have = {layer["layerDigest"] for layer in check.get("layers", []) if layer.get("layerAvailability") == "AVAILABLE"}
    uploaded = []
    for digest, data in image.blobs.items():
        if digest in have:
            continue
        upload_id = ecr.initiate_layer_upload(repositoryName=repository)["uploadId"]
        ecr.upload_layer_part(repositoryName=repository, uploadId=upload_id, partFirstByte=0,
                              partLastByte=len(data) - 1, layerPartBlob=data)
        done = ecr.complete_layer_upload(repositoryName=repository, uploadId=upload_id, layerDigests=[digest])
        if done["layerDigest"] != digest:
            raise RuntimeError(f"ECR computed {done['layerDigest']} for the blob {digest}")
        uploaded.append(digest)
    return uploaded


def push(ecr: Any, repository: str, tag: str | None = None, seed: int = 0, fmt: str = "docker") -> dict[str, Any]:
    """Push the image of `seed` under `tag`; PutImage's `image` (ClientError when refused)."""
    image = build_image(seed, fmt)
    upload_blobs(ecr, repository, image)
    params: dict[str, Any] = {"repositoryName": repository, "imageManifest": image.manifest,
                              "imageManifestMediaType": image.media_type}
    if tag is not None:
        params["imageTag"] = tag
    return ecr.put_image(**params)["image"]


def client(endpoint: str, region: str) -> Any:
    import boto3
    from botocore.config import Config

    return boto3.client(
        "ecr", endpoint_url=endpoint, region_name=region,
        aws_access_key_id="testing", aws_secret_access_key="testing", aws_session_token=None,
        config=Config(retries={"total_max_attempts": 1, "mode": "standard"}, connect_timeout=5, read_timeout=30),
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--endpoint", required=True, help="the emulator, http://127.0.0.1:N")
    parser.add_argument("--repository", required=True)
    parser.add_argument("--tag", help="the image tag (default: an untagged push)")
    parser.add_argument("--layer-seed", type=int, default=0, help="which made-up image (default 0)")
    parser.add_argument("--format", choices=sorted(FORMATS), default="docker", help="manifest media types")
    parser.add_argument("--region", default="us-west-2")
    args = parser.parse_args(argv)
    host = urlparse(args.endpoint).hostname
    if urlparse(args.endpoint).scheme not in ("http", "https") or host not in LOOPBACK:
        parser.error(f"--endpoint must be a loopback URL (the emulator), not {args.endpoint!r}")

    from botocore.exceptions import ClientError

    image = build_image(args.layer_seed, args.format)
    try:
        pushed = push(client(args.endpoint, args.region), args.repository, args.tag, args.layer_seed, args.format)
    except ClientError as e:
        r = e.response
        print(json.dumps({"error": {"code": r["Error"].get("Code"), "message": r["Error"].get("Message"),
                                    "status": r["ResponseMetadata"].get("HTTPStatusCode"),
                                    "operation": e.operation_name}}))
        return 1
    print(json.dumps({"digest": pushed["imageId"]["imageDigest"], "repository": args.repository, "tag": args.tag,
                      "mediaType": image.media_type, "manifest": image.manifest}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
