"""docker-py (the Docker SDK for Python) image calls against berthd.

Run with pytest as root: starts berthd (BERTHD, default target/debug/berthd) on a private
socket and data root, and Debian's reference registry through tests/registry.sh.
"""

import io
import json
import os
import pathlib
import shutil
import subprocess
import tarfile
import tempfile
import time

import docker
import pytest

REPO = pathlib.Path(__file__).resolve().parents[2]
TARGET = pathlib.Path(os.environ.get("CARGO_TARGET_DIR", REPO / "target"))
BERTHD = os.environ.get("BERTHD", str(TARGET / "debug" / "berthd"))


@pytest.fixture(scope="module")
def work():
    d = tempfile.mkdtemp(prefix="docker-py-", dir="/var/tmp")
    yield pathlib.Path(d)
    subprocess.run(["chmod", "-R", "u+rwx", d])
    shutil.rmtree(d, ignore_errors=True)


@pytest.fixture(scope="module")
def registry(work):
    out = subprocess.run([REPO / "tests/registry.sh", "start", work / "registry"], check=True, capture_output=True, text=True)
    yield out.stdout.strip()
    subprocess.run([REPO / "tests/registry.sh", "stop", work / "registry"])


@pytest.fixture(scope="module")
def client(work):
    sock = work / "berth.sock"
    (work / "daemon.json").write_text("{}")
    log = open(work / "berthd.log", "w")
    proc = subprocess.Popen(
        [BERTHD, "--config-file", work / "daemon.json", "--data-root", work / "data", "--exec-root", work / "exec",
         "--pidfile", work / "berthd.pid", "-H", f"unix://{sock}"],
        stdout=log, stderr=log)
    for _ in range(200):
        if sock.exists():
            break
        time.sleep(0.05)
    c = docker.DockerClient(base_url=f"unix://{sock}", version="auto")
    yield c
    proc.terminate()
    proc.wait(timeout=20)
    print((work / "berthd.log").read_text())


@pytest.fixture(scope="module")
def pushed(work, registry):
    """A two-layer busybox image in the registry; returns (name, digest)."""
    rootfs = work / "rootfs"
    subprocess.run([REPO / "tests/make-rootfs.sh", rootfs], check=True)
    extra = work / "extra"
    (extra / "etc").mkdir(parents=True)
    (extra / "etc/motd").write_text("hi\n")
    layout = work / "layout"
    digest = subprocess.run([REPO / "tests/make-image.py", layout, "--layer", rootfs, "--layer", extra,
                             "--config-json", '{"Cmd":["sh"],"Labels":{"suite":"docker-py"}}'],
                            check=True, capture_output=True, text=True).stdout.strip()
    name = f"{registry}/py/busybox"
    subprocess.run(["skopeo", "copy", "-q", "--dest-tls-verify=false", "--preserve-digests",
                    f"oci:{layout}:latest", f"docker://{name}:latest"], check=True)
    return name, digest


def test_version_and_ping(client):
    assert client.ping()
    v = client.version()
    assert v["ApiVersion"] == "1.45"
    assert client.info()["Driver"] == "overlay2"


def test_pull_list_inspect(client, pushed):
    name, digest = pushed
    image = client.images.pull(name, tag="latest")
    assert f"{name}:latest" in image.tags
    assert image.labels == {"suite": "docker-py"}
    assert any(d.endswith(digest) for d in image.attrs["RepoDigests"])
    assert len(image.attrs["RootFS"]["Layers"]) == 2
    assert image.id in [i.id for i in client.images.list()]
    assert [i.id for i in client.images.list(filters={"label": "suite=docker-py"})] == [image.id]
    assert len(image.history()) == 2
    # Streamed low-level pull yields docker's progress messages.
    lines = list(client.api.pull(name, tag="latest", stream=True, decode=True))
    assert any("Image is up to date" in l.get("status", "") for l in lines)


def test_tag_remove(client, pushed):
    name, _ = pushed
    image = client.images.get(f"{name}:latest")
    assert image.tag("py-copy", "v1")
    assert "py-copy:v1" in client.images.get("py-copy:v1").tags
    out = client.api.remove_image("py-copy:v1")
    assert out == [{"Untagged": "py-copy:v1"}]
    with pytest.raises(docker.errors.ImageNotFound):
        client.images.get("py-copy:v1")


def test_errors(client, registry):
    with pytest.raises(docker.errors.NotFound):
        client.images.pull(f"{registry}/does/not-exist", tag="1")
    with pytest.raises(docker.errors.ImageNotFound):
        client.images.get("nothing-here:1")
    with pytest.raises(docker.errors.APIError):
        client.api.tag("nothing-here:1", "x")


def test_save_load(client, pushed):
    name, _ = pushed
    image = client.images.get(f"{name}:latest")
    data = b"".join(image.save(named=True))
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        names = tar.getnames()
    assert "manifest.json" in names
    client.images.remove(image.id, force=True)
    loaded = client.images.load(data)
    assert [i.id for i in loaded] == [image.id]


def test_push(client, pushed, registry):
    name, _ = pushed
    client.images.get(f"{name}:latest").tag(f"{registry}/py/pushed", "v2")
    lines = list(client.images.push(f"{registry}/py/pushed", tag="v2", stream=True, decode=True))
    assert not [l for l in lines if "error" in l], lines
    aux = [l["aux"] for l in lines if "aux" in l]
    assert aux and aux[0]["Tag"] == "v2"
    out = subprocess.run(["skopeo", "inspect", "--tls-verify=false", f"docker://{registry}/py/pushed:v2"],
                         check=True, capture_output=True, text=True).stdout
    assert json.loads(out)["Digest"] == aux[0]["Digest"]


def test_prune_and_df(client):
    df = client.df()
    assert "LayersSize" in df and "Images" in df
    client.images.prune(filters={"dangling": False})
    assert client.images.list() == []
    assert client.df()["LayersSize"] == 0
