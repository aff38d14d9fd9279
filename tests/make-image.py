#!/usr/bin/env python3
"""make-image.py: writes a test image as an OCI image layout (Python stdlib only).

    tests/make-image.py OUT_DIR --layer DIR_OR_TAR [--layer ...]
        [--compression gzip|zstd|none] [--config-json '{"Cmd":["sh"]}']
        [--platform linux/amd64] [--tag latest]
        [--docker-archive FILE [--repo-tag NAME:TAG]]
    tests/make-image.py OUT_DIR --index linux/amd64=DIR_OR_TAR linux/arm64/v8=DIR_OR_TAR ...

OUT_DIR gets oci-layout, index.json and blobs/sha256/*. Each --layer becomes one layer: a
directory is tarred in sorted order with numeric owners and its files' mtimes; a tar file
is taken as it is (a gzip-compressed one is decompressed first). The config carries
rootfs.diff_ids, one history entry per layer and the --config-json object as "config".
With --index, each PLATFORM=DIR_OR_TAR makes a one-layer image for that platform and the
tag names an OCI image index over them. --docker-archive also writes the single image as
a `docker save` tarball (manifest.json, repositories, <id>.json, <layer>/layer.tar).

The top-level digest (manifest or index) is printed on stdout. index.json tags it with
--tag (org.opencontainers.image.ref.name), so a registry gets it with skopeo:

    skopeo copy --dest-tls-verify=false --preserve-digests [--all] \\
        oci:OUT_DIR:latest docker://127.0.0.1:PORT/name:latest

(--all for an index; add --format v2s2 for Docker media types, gzip layers only).
zstd compression runs the zstd program (Debian package zstd).
"""

import argparse
import gzip
import hashlib
import io
import json
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile

CREATED = "2024-01-01T00:00:00Z"
LAYER_TYPES = {
    "none": "application/vnd.oci.image.layer.v1.tar",
    "gzip": "application/vnd.oci.image.layer.v1.tar+gzip",
    "zstd": "application/vnd.oci.image.layer.v1.tar+zstd",
}
MANIFEST_TYPE = "application/vnd.oci.image.manifest.v1+json"
INDEX_TYPE = "application/vnd.oci.image.index.v1+json"
CONFIG_TYPE = "application/vnd.oci.image.config.v1+json"


def fail(msg):
    print(f"make-image: {msg}", file=sys.stderr)
    sys.exit(1)


def sha256(data):
    return "sha256:" + hashlib.sha256(data).hexdigest()


def tar_directory(path):
    """Tars a directory reproducibly: sorted names, numeric owners, no user/group names."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for root, dirs, files in os.walk(path):
            dirs.sort()
            for name in sorted(dirs + files):
                full = os.path.join(root, name)
                info = tar.gettarinfo(full, arcname=os.path.relpath(full, path))
                info.uname = info.gname = ""
                if info.isreg():
                    with open(full, "rb") as f:
                        tar.addfile(info, f)
                else:
                    tar.addfile(info)
    return buf.getvalue()


def read_layer(spec):
    """Returns the uncompressed tar bytes of a layer given as a directory or a tar file."""
    if os.path.isdir(spec):
        return tar_directory(spec)
    if not os.path.isfile(spec):
        fail(f"layer {spec!r} is neither a directory nor a file")
    with open(spec, "rb") as f:
        data = f.read()
    if data[:2] == b"\x1f\x8b":
        data = gzip.decompress(data)
    try:
        tarfile.open(fileobj=io.BytesIO(data)).close()
    except tarfile.TarError as e:
        fail(f"layer {spec!r} is not a tar file: {e}")
    return data


def compress(data, compression):
    if compression == "none":
        return data
    if compression == "gzip":
        return gzip.compress(data, mtime=0)
    if shutil.which("zstd") is None:
        fail("zstd compression needs the zstd program (apt-get install zstd)")
    return subprocess.run(["zstd", "-q", "-c", "-3"], input=data, stdout=subprocess.PIPE, check=True).stdout


def parse_platform(text):
    parts = text.split("/")
    if len(parts) not in (2, 3) or not all(parts):
        fail(f"platform {text!r} is not os/arch[/variant]")
    platform = {"architecture": parts[1], "os": parts[0]}
    if len(parts) == 3:
        platform["variant"] = parts[2]
    return platform


class Layout:
    def __init__(self, out):
        self.out = out
        self.blobs = os.path.join(out, "blobs", "sha256")
        os.makedirs(self.blobs, exist_ok=True)

    def add_blob(self, data):
        digest = sha256(data)
        path = os.path.join(self.blobs, digest.split(":", 1)[1])
        if not os.path.exists(path):
            tmp = path + ".tmp"
            with open(tmp, "wb") as f:
                f.write(data)
            os.rename(tmp, path)
        return digest

    def add_json(self, obj):
        data = json.dumps(obj, separators=(",", ":"), sort_keys=True).encode()
        return self.add_blob(data), len(data)

    def write_index(self, descriptor, tag):
        descriptor = dict(descriptor, annotations={"org.opencontainers.image.ref.name": tag})
        index = {"schemaVersion": 2, "mediaType": INDEX_TYPE, "manifests": [descriptor]}
        with open(os.path.join(self.out, "oci-layout"), "w") as f:
            json.dump({"imageLayoutVersion": "1.0.0"}, f)
        with open(os.path.join(self.out, "index.json"), "w") as f:
            json.dump(index, f)


def build_image(layout, layer_specs, compression, config, platform):
    """Adds one image's layers, config and manifest; returns (descriptor, config, tars)."""
    layers, diff_ids, history, tars = [], [], [], []
    for i, spec in enumerate(layer_specs):
        tar = read_layer(spec)
        tars.append(tar)
        blob = compress(tar, compression)
        layers.append({"mediaType": LAYER_TYPES[compression], "digest": layout.add_blob(blob), "size": len(blob)})
        diff_ids.append(sha256(tar))
        history.append({"created": CREATED, "created_by": f"make-image.py layer {i}: {os.path.basename(spec)}"})
    image_config = dict(platform)
    image_config.update({
        "created": CREATED,
        "config": config,
        "rootfs": {"type": "layers", "diff_ids": diff_ids},
        "history": history,
    })
    config_digest, config_size = layout.add_json(image_config)
    manifest = {
        "schemaVersion": 2,
        "mediaType": MANIFEST_TYPE,
        "config": {"mediaType": CONFIG_TYPE, "digest": config_digest, "size": config_size},
        "layers": layers,
    }
    digest, size = layout.add_json(manifest)
    descriptor = {"mediaType": MANIFEST_TYPE, "digest": digest, "size": size}
    return descriptor, image_config, tars


def write_docker_archive(path, image_config, tars, repo_tag):
    """Writes the classic `docker save` format for one image."""
    config_bytes = json.dumps(image_config, separators=(",", ":"), sort_keys=True).encode()
    image_id = hashlib.sha256(config_bytes).hexdigest()
    entries = [(f"{image_id}.json", config_bytes)]
    layer_paths = []
    for tar in tars:
        layer_id = hashlib.sha256(tar).hexdigest()
        layer_paths.append(f"{layer_id}/layer.tar")
        entries += [(f"{layer_id}/VERSION", b"1.0"), (f"{layer_id}/json", json.dumps({"id": layer_id}).encode()),
                    (f"{layer_id}/layer.tar", tar)]
    manifest = [{"Config": f"{image_id}.json", "RepoTags": [repo_tag] if repo_tag else None, "Layers": layer_paths}]
    entries.append(("manifest.json", json.dumps(manifest).encode()))
    if repo_tag:
        name, tag = repo_tag.rsplit(":", 1)
        entries.append(("repositories", json.dumps({name: {tag: layer_paths[-1].split("/")[0]}}).encode()))
    tmp = path + ".tmp"
    with tarfile.open(tmp, "w", format=tarfile.PAX_FORMAT) as out:
        dirs = sorted({name.split("/")[0] for name, _ in entries if "/" in name})
        for d in dirs:
            info = tarfile.TarInfo(d)
            info.type, info.mode = tarfile.DIRTYPE, 0o755
            out.addfile(info)
        for name, data in entries:
            info = tarfile.TarInfo(name)
            info.size, info.mode = len(data), 0o644
            out.addfile(info, io.BytesIO(data))
    os.rename(tmp, path)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("out")
    ap.add_argument("--layer", action="append", default=[], help="a directory or tar file; repeat for more layers")
    ap.add_argument("--index", nargs="+", metavar="PLATFORM=DIR_OR_TAR", help="one image per platform under an index")
    ap.add_argument("--compression", choices=sorted(LAYER_TYPES), default="gzip")
    ap.add_argument("--config-json", default="{}", help="the image config's \"config\" object")
    ap.add_argument("--platform", default="linux/amd64")
    ap.add_argument("--tag", default="latest")
    ap.add_argument("--docker-archive", metavar="FILE")
    ap.add_argument("--repo-tag", metavar="NAME:TAG")
    args = ap.parse_args()

    if bool(args.layer) == bool(args.index):
        fail("give either --layer (one or more) or --index")
    if args.docker_archive and args.index:
        fail("--docker-archive writes a single image, not an index")
    try:
        config = json.loads(args.config_json)
    except json.JSONDecodeError as e:
        fail(f"--config-json is not JSON: {e}")
    if not isinstance(config, dict):
        fail("--config-json must be a JSON object")

    layout = Layout(args.out)
    if args.layer:
        descriptor, image_config, tars = build_image(
            layout, args.layer, args.compression, config, parse_platform(args.platform))
        if args.docker_archive:
            write_docker_archive(args.docker_archive, image_config, tars, args.repo_tag)
    else:
        manifests = []
        for item in args.index:
            plat_text, sep, spec = item.partition("=")
            if not sep or not spec:
                fail(f"--index entry {item!r} is not PLATFORM=DIR_OR_TAR")
            platform = parse_platform(plat_text)
            desc, _, _ = build_image(layout, [spec], args.compression, config, platform)
            manifests.append(dict(desc, platform=platform))
        index = {"schemaVersion": 2, "mediaType": INDEX_TYPE, "manifests": manifests}
        digest, size = layout.add_json(index)
        descriptor = {"mediaType": INDEX_TYPE, "digest": digest, "size": size}
    layout.write_index(descriptor, args.tag)
    print(descriptor["digest"])


if __name__ == "__main__":
    main()
