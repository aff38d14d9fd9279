"""docker-py (the Docker SDK for Python) container and volume calls against berthd.

Run with pytest as root: starts berthd (BERTHD, default target/debug/berthd; berth-shim
must sit next to it) on a private socket and data root, with a busybox image loaded.
"""

import os
import pathlib
import shutil
import subprocess
import tempfile
import time

import docker
import pytest

REPO = pathlib.Path(__file__).resolve().parents[2]
TARGET = pathlib.Path(os.environ.get("CARGO_TARGET_DIR", REPO / "target"))
BERTHD = os.environ.get("BERTHD", str(TARGET / "debug" / "berthd"))


@pytest.fixture(scope="module")
def work():
    d = tempfile.mkdtemp(prefix="docker-py-c-", dir="/var/tmp")
    yield pathlib.Path(d)
    out = subprocess.run(["awk", f'$2 ~ "^{d}/" {{print $2}}', "/proc/mounts"], capture_output=True, text=True).stdout
    for m in sorted(out.split(), reverse=True):
        subprocess.run(["umount", "-l", m])
    subprocess.run(["chmod", "-R", "u+rwx", d])
    shutil.rmtree(d, ignore_errors=True)


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
    rootfs = work / "rootfs"
    subprocess.run([REPO / "tests/make-rootfs.sh", rootfs], check=True, capture_output=True)
    archive = work / "busybox.tar"
    subprocess.run([REPO / "tests/make-image.py", work / "layout", "--layer", rootfs, "--config-json", '{"Cmd":["sh"]}',
                    "--docker-archive", archive, "--repo-tag", "busybox:latest"], check=True, capture_output=True)
    with open(archive, "rb") as f:
        c.images.load(f.read())
    yield c
    for container in c.containers.list(all=True):
        container.remove(force=True)
    proc.terminate()
    proc.wait(timeout=20)
    print((work / "berthd.log").read_text())


def test_run_returns_output_and_raises_on_failure(client):
    assert client.containers.run("busybox", ["echo", "hello"], remove=True) == b"hello\n"
    with pytest.raises(docker.errors.ContainerError) as e:
        client.containers.run("busybox", ["sh", "-c", "echo bad >&2; exit 3"], remove=True)
    assert e.value.exit_status == 3
    assert b"bad" in e.value.stderr
    assert client.containers.list(all=True) == []


def test_detached_lifecycle(client):
    c = client.containers.run("busybox", ["sh", "-c", "echo up; sleep 1000"], detach=True, name="pyweb",
                              labels={"app": "web"}, environment={"A": "1"})
    c.reload()
    assert c.status == "running"
    assert c.name == "pyweb"
    assert c.labels == {"app": "web"}
    assert [x.id for x in client.containers.list(filters={"label": "app=web"})] == [c.id]
    for _ in range(100):
        if c.logs() == b"up\n":
            break
        time.sleep(0.05)
    assert c.logs() == b"up\n"
    code, out = c.exec_run(["sh", "-c", "echo $A; exit 2"])
    assert (code, out) == (2, b"1\n")
    c.pause()
    c.reload()
    assert c.status == "paused"
    c.unpause()
    c.stop(timeout=1)
    c.reload()
    assert c.status == "exited"
    assert c.wait()["StatusCode"] == 137
    c.rename("pyweb2")
    c.reload()
    assert c.name == "pyweb2"
    c.remove()
    with pytest.raises(docker.errors.NotFound):
        client.containers.get("pyweb2")


def test_attach_socket_with_stdin(client):
    api = client.api
    c = api.create_container("busybox", ["sh", "-c", "read x; echo got $x"], stdin_open=True)
    sock = api.attach_socket(c["Id"], params={"stdin": 1, "stdout": 1, "stderr": 1, "stream": 1})
    api.start(c["Id"])
    sock._sock.sendall(b"abc\n")
    data = b""
    deadline = time.time() + 10
    while b"got abc" not in data and time.time() < deadline:
        chunk = sock._sock.recv(4096)
        if not chunk:
            break
        data += chunk
    assert b"got abc" in data
    assert api.wait(c["Id"])["StatusCode"] == 0
    api.remove_container(c["Id"])


def test_attach_with_logs(client, work):
    """logs=1 replays what the container wrote before the live stream goes on. Spoken
    over a plain socket: docker-py's response parsing may swallow bytes sent right after
    the headers."""
    import socket

    api = client.api
    c = api.create_container("busybox", ["sh", "-c", "echo before; echo oops >&2; read x; echo after $x"],
                             stdin_open=True)
    api.start(c["Id"])
    deadline = time.time() + 10
    while b"oops" not in api.logs(c["Id"]) and time.time() < deadline:
        time.sleep(0.05)
    sock = socket.socket(socket.AF_UNIX)
    sock.connect(str(work / "berth.sock"))
    sock.sendall(f"POST /v1.41/containers/{c['Id']}/attach?logs=1&stdin=1&stdout=1&stream=1 HTTP/1.1\r\n"
                 "Host: localhost\r\nConnection: Upgrade\r\nUpgrade: tcp\r\n\r\n".encode())
    data = b""
    while b"\r\n\r\n" not in data:
        data += sock.recv(4096)
    head, data = data.split(b"\r\n\r\n", 1)
    assert head.startswith(b"HTTP/1.1 101"), head
    sock.sendall(b"z\n")
    while chunk := sock.recv(4096):
        data += chunk
    # Multiplexed frames, stdout only, the past first.
    assert data == b"\x01\0\0\0\0\0\0\x07before\n\x01\0\0\0\0\0\0\x08after z\n"
    assert api.wait(c["Id"])["StatusCode"] == 0
    api.remove_container(c["Id"])


def test_attach_over_websocket(client, work):
    """GET /containers/{id}/attach/ws, as docker serves it: binary messages, stdout and
    stderr not multiplexed, client messages to stdin."""
    import socket
    import websocket

    api = client.api
    c = api.create_container("busybox", ["sh", "-c", "read x; echo got $x; echo err >&2"], stdin_open=True)
    unix = socket.socket(socket.AF_UNIX)
    unix.connect(str(work / "berth.sock"))
    ws = websocket.create_connection(
        f"ws://localhost/v1.41/containers/{c['Id']}/attach/ws?stream=1&stdin=1&stdout=1&stderr=1",
        socket=unix, timeout=10)
    api.start(c["Id"])
    ws.send_binary(b"abc\n")
    data = b""
    while True:
        opcode, frame = ws.recv_data(control_frame=False)
        if opcode == websocket.ABNF.OPCODE_CLOSE:
            break
        assert opcode == websocket.ABNF.OPCODE_BINARY
        data += frame
    assert data == b"got abc\nerr\n"
    ws.close()
    assert api.wait(c["Id"])["StatusCode"] == 0

    # logs=1 without stream: the past output, then the socket closes.
    unix = socket.socket(socket.AF_UNIX)
    unix.connect(str(work / "berth.sock"))
    ws = websocket.create_connection(
        f"ws://localhost/v1.41/containers/{c['Id']}/attach/ws?logs=1&stdout=1", socket=unix, timeout=10)
    assert ws.recv() == b"got abc\n"
    opcode, _ = ws.recv_data(control_frame=True)
    assert opcode == websocket.ABNF.OPCODE_CLOSE

    # Unknown containers fail before the upgrade, with docker's message.
    unix = socket.socket(socket.AF_UNIX)
    unix.connect(str(work / "berth.sock"))
    with pytest.raises(websocket.WebSocketBadStatusException) as e:
        websocket.create_connection("ws://localhost/v1.41/containers/nosuch/attach/ws?stream=1&stdout=1", socket=unix)
    assert e.value.status_code == 404
    api.remove_container(c["Id"])


def test_volumes(client):
    v = client.volumes.create("pydata", labels={"k": "v"})
    assert v.name == "pydata"
    client.containers.run("busybox", ["sh", "-c", "echo kept > /d/f"], volumes={"pydata": {"bind": "/d", "mode": "rw"}}, remove=True)
    out = client.containers.run("busybox", ["cat", "/d/f"], volumes={"pydata": {"bind": "/d", "mode": "ro"}}, remove=True)
    assert out == b"kept\n"
    assert [x.name for x in client.volumes.list(filters={"label": "k=v"})] == ["pydata"]
    v.remove()
    with pytest.raises(docker.errors.NotFound):
        client.volumes.get("pydata")


def test_errors(client):
    client.containers.create("busybox", name="pytaken")
    with pytest.raises(docker.errors.APIError) as e:
        client.containers.create("busybox", name="pytaken")
    assert e.value.status_code == 409
    with pytest.raises(docker.errors.ImageNotFound):
        client.containers.create("127.0.0.1:9/nosuch:1")
    with pytest.raises(docker.errors.NotFound):
        client.containers.get("nosuchcontainer")
    client.containers.get("pytaken").remove()
