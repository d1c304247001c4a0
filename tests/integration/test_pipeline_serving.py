"""The served champion: ``glcf serve`` (``mlflow models serve``) on 127.0.0.1 with real PNG/JPEG requests.

Scores must equal the in-process detector on the same bundle and the pyfunc loaded in a clean,
offline subprocess; maps come at each image's size; the version is the registered one; every
malformed request gets a 4xx with a message and the server keeps answering.
"""

from __future__ import annotations

import base64
import contextlib
import io
import json
import os
import signal
import socket
import subprocess
import sys
import textwrap
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image
from pipeline_project import BIN, CATEGORY, TINY, TinyProject, shared_tiny_project
from servers import free_port

pytestmark = [pytest.mark.integration, pytest.mark.slow]

MODEL = f"glcf-{CATEGORY}"
OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # loopback: never through a proxy


@pytest.fixture(scope="session")
def tiny_project(tmp_path_factory: pytest.TempPathFactory) -> TinyProject:
    return shared_tiny_project(tmp_path_factory)


def post(url: str, body: Any, content_type: str = "application/json") -> tuple[int, Any]:
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    request = urllib.request.Request(url, data=data, headers={"Content-Type": content_type}, method="POST")
    try:
        with OPENER.open(request, timeout=120) as resp:
            status, text = resp.status, resp.read().decode()
    except urllib.error.HTTPError as exc:
        status, text = exc.code, exc.read().decode()
    try:
        return status, json.loads(text)
    except json.JSONDecodeError:
        return status, text


def frame(images: list[str], params: dict[str, Any] | None = None) -> dict[str, Any]:
    body: dict[str, Any] = {"dataframe_split": {"columns": ["image"], "data": [[b] for b in images]}}
    if params:
        body["params"] = params
    return body


def encode(img: Image.Image, fmt: str, **kwargs: Any) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format=fmt, **kwargs)
    return buf.getvalue()


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _descendants(pid: int) -> list[int]:
    """Process ids below ``pid`` (from /proc), to clean up exactly what this test started."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            ppid = int(stat.rsplit(")", 1)[1].split()[1])
            children.setdefault(ppid, []).append(int(entry.name))
    out, todo = [], [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            out.append(child)
            todo.append(child)
    return out


@dataclass
class Server:
    url: str
    port: int
    proc: subprocess.Popen
    log: Path
    startup_s: float


@pytest.fixture(scope="module")
def server(tiny_project: TinyProject, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """``glcf serve --category pushpins`` on a free port (ready when /ping answers)."""
    port = free_port()
    log = tmp_path_factory.mktemp("serve") / "serve.log"
    cmd = [str(BIN / "glcf"), "serve", "--category", CATEGORY, "--port", str(port)]
    t0 = time.monotonic()
    with log.open("w") as fh:
        proc = subprocess.Popen(cmd, cwd=tiny_project.root, env=tiny_project.env, stdout=fh, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        while True:
            if proc.poll() is not None:
                pytest.fail(f"glcf serve exited with {proc.returncode}:\n{log.read_text()[-4000:]}")
            try:
                with OPENER.open(f"{url}/ping", timeout=2):
                    break
            except OSError:
                if time.monotonic() - t0 > 240:
                    pytest.fail(f"the server did not answer /ping in 240 s:\n{log.read_text()[-4000:]}")
                time.sleep(0.5)
        yield Server(url, port, proc, log, round(time.monotonic() - t0, 1))
    finally:
        pids = _descendants(proc.pid)
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        for pid in pids:  # anything of ours left over (the test below checks there is nothing)
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)


@pytest.fixture(scope="module")
def images(tiny_project: TinyProject) -> dict[str, bytes]:
    """Real requests: PNG and JPEG, RGB and grayscale, odd sizes."""
    test = tiny_project.root / "data" / "raw" / CATEGORY / "test"
    logical = (test / "logical_anomalies" / "000.png").read_bytes()
    with Image.open(test / "good" / "000.png") as im:
        good = im.convert("RGB")
    with Image.open(test / "structural_anomalies" / "001.png") as im:
        structural = im.convert("RGB")
    return {
        "png_rgb": logical,  # the file as written by the data stage
        "jpeg_rgb": encode(good, "JPEG", quality=90),
        "png_gray_odd": encode(structural.convert("L").resize((101, 77)), "PNG"),
        "jpeg_gray_odd": encode(good.convert("L").resize((157, 113)), "JPEG", quality=85),
    }


@pytest.fixture(scope="module")
def reference(tiny_project: TinyProject, images: dict[str, bytes], tmp_path_factory: pytest.TempPathFactory) -> Any:
    """The champion's bundle in this process: glcf.inference.detector on the registry's artifacts."""
    from glcf.inference.detector import Detector

    local = tiny_project.download_model(MODEL, "champion", tmp_path_factory.mktemp("champion"))
    return Detector(local / "artifacts" / "bundle.pt")


def _decoded(images: dict[str, bytes]) -> list[np.ndarray]:
    from glcf.inference.detector import decode_image

    return [decode_image(data, name=name) for name, data in images.items()]


def test_scores_match_the_in_process_detector(server: Server, images: dict[str, bytes], reference: Any) -> None:
    status, answer = post(f"{server.url}/invocations", frame([b64(v) for v in images.values()]))
    assert status == 200, answer
    predictions = answer["predictions"]
    assert len(predictions) == len(images)
    expected = reference.score(_decoded(images))
    for name, got, want in zip(images, predictions, expected, strict=True):
        assert got["score"] == pytest.approx(want.score, rel=1e-5, abs=1e-5), name
        assert got["local_score"] == pytest.approx(want.local_score, rel=1e-5, abs=1e-5), name
        assert got["global_score"] == pytest.approx(want.global_score, rel=1e-5, abs=1e-5), name
        assert got["threshold"] == pytest.approx(reference.threshold, rel=1e-9)
        assert got["is_anomaly"] is (got["score"] > got["threshold"])
        assert "anomaly_map" not in got
    # the same request in the other accepted JSON shapes scores the same (batch of one: float32 sums differ)
    _, records = post(f"{server.url}/invocations", {"dataframe_records": [{"image": b64(images["png_rgb"])}]})
    _, inputs = post(f"{server.url}/invocations", {"inputs": {"image": [b64(images["png_rgb"])]}})
    assert records["predictions"][0]["score"] == pytest.approx(predictions[0]["score"], rel=1e-5)
    assert inputs["predictions"][0]["score"] == pytest.approx(predictions[0]["score"], rel=1e-5)


def test_maps_come_at_the_image_size(server: Server, images: dict[str, bytes], reference: Any) -> None:
    status, answer = post(f"{server.url}/invocations", frame([b64(v) for v in images.values()], {"return_map": True}))
    assert status == 200, answer
    decoded = _decoded(images)
    expected = reference.score(decoded, return_maps=True)
    for name, got, image, want in zip(images, answer["predictions"], decoded, expected, strict=True):
        amap = np.asarray(got["anomaly_map"], dtype=np.float32)
        assert amap.shape == image.shape[:2], name
        np.testing.assert_allclose(amap, want.anomaly_map, rtol=1e-4, atol=1e-4)
    status, answer = post(
        f"{server.url}/invocations", frame([b64(images["png_gray_odd"])], {"return_map": True, "map_size": "model"})
    )
    assert status == 200, answer
    size = TINY["model.image_size"]
    assert np.asarray(answer["predictions"][0]["anomaly_map"]).shape == (size, size)


def test_answers_carry_the_registered_version(tiny_project: TinyProject, server: Server, images: dict) -> None:
    registration = json.loads((tiny_project.root / "reports" / CATEGORY / "registration.json").read_text())
    champion = tiny_project.client().get_model_version_by_alias(MODEL, "champion")
    _, answer = post(f"{server.url}/invocations", frame([b64(images["jpeg_rgb"])]))
    row = answer["predictions"][0]
    assert row["model_version"] == str(champion.version) == registration["version"]
    assert row["category"] == CATEGORY


def _malformed(images: dict[str, bytes]) -> list[tuple[str, Any, str, str]]:
    """(case, body, content type, a phrase the message must hold)."""
    rng = np.random.default_rng(0)
    noise = encode(Image.fromarray(rng.integers(0, 256, (400, 400, 3), dtype=np.uint8)), "PNG")  # ~480 kB
    assert len(noise) > TINY["serve.max_image_bytes"]
    huge = encode(Image.new("RGB", (1100, 1000), (90, 120, 30)), "PNG")  # 1.1 Mpx in a few kB
    good = b64(images["png_rgb"])
    return [
        ("bad json", b'{"dataframe_split": {"columns": ["image"], ', "application/json", "valid JSON"),
        ("missing column", {"dataframe_split": {"columns": ["img"], "data": [[good]]}}, "", "missing inputs"),
        ("bad base64", frame(["this is *not* base64!"]), "", "not valid base64"),
        ("not an image", frame([b64(b"plain text, not an image")]), "", "not an image format Pillow can read"),
        ("truncated image", frame([b64(images["png_rgb"][:300])]), "", "unreadable or truncated image"),
        ("empty string", frame([""]), "", "expected a non-empty base64 string"),
        ("empty batch", {"dataframe_split": {"columns": ["image"], "data": []}}, "", "empty batch"),
        ("too many images", frame([good] * 5), "", "exceeds the limit of 4"),
        ("too many pixels", frame([b64(huge)]), "", "exceeds the limit of 1000000 pixels"),
        ("too many bytes", frame([b64(noise)]), "", "limit of 300000 bytes"),
        ("bad map_size", frame([good], {"map_size": "huge"}), "", "map_size"),
        ("wrong content type", b"image=abc", "text/plain", "content types"),
    ]


def test_malformed_requests_get_4xx_and_the_server_keeps_serving(server: Server, images: dict[str, bytes]) -> None:
    good = frame([b64(images["png_rgb"])])
    _, baseline = post(f"{server.url}/invocations", good)
    failures = []
    for case, body, content_type, phrase in _malformed(images):
        status, answer = post(f"{server.url}/invocations", body, content_type or "application/json")
        message = answer.get("message", "") if isinstance(answer, dict) else str(answer)
        if not (400 <= status < 500) or phrase not in message:
            failures.append(f"{case}: HTTP {status}, {message[:300]!r}")
        elif case not in ("bad json", "wrong content type") and len(message) > 6000:
            failures.append(f"{case}: a {len(message)}-character message")
        status, after = post(f"{server.url}/invocations", good)  # still serving, same answer
        if status != 200 or after["predictions"][0]["score"] != baseline["predictions"][0]["score"]:
            failures.append(f"after {case}: HTTP {status} {str(after)[:200]}")
    assert not failures, "\n".join(failures)
    assert server.proc.poll() is None


OFFLINE_SCRIPT = textwrap.dedent(
    """
    import json, socket, sys

    def refuse(*args, **kwargs):
        raise OSError("network access attempted while loading the model offline")

    class NoNetSocket(socket.socket):
        def connect(self, address):
            if self.family in (socket.AF_INET, socket.AF_INET6):
                refuse()
            return super().connect(address)

    socket.socket = NoNetSocket
    socket.create_connection = refuse

    import mlflow.pyfunc
    import pandas as pd

    model = mlflow.pyfunc.load_model(sys.argv[1])
    frame = pd.DataFrame({"image": json.loads(open(sys.argv[2]).read())})
    rows = model.predict(frame)
    import glcf
    print(json.dumps({"rows": rows, "glcf": glcf.__file__}))
    """
)


def test_pyfunc_loads_in_a_clean_offline_process(
    tiny_project: TinyProject, server: Server, images: dict[str, bytes], tmp_path: Path
) -> None:
    payload = [b64(v) for v in images.values()]
    (tmp_path / "payload.json").write_text(json.dumps(payload))
    (tmp_path / "load.py").write_text(OFFLINE_SCRIPT)
    env = {
        "PATH": os.environ["PATH"],
        "HOME": str(tmp_path),
        "MLFLOW_TRACKING_URI": tiny_project.tracking_uri,
        "HF_HUB_OFFLINE": "1",
        "NO_PROXY": "*",
    }
    proc = subprocess.run(
        [sys.executable, "load.py", f"models:/{MODEL}@champion", "payload.json"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr[-4000:]
    loaded = json.loads(proc.stdout.strip().splitlines()[-1])
    _, served = post(f"{server.url}/invocations", frame(payload))
    for got, want in zip(loaded["rows"], served["predictions"], strict=True):
        assert got["score"] == pytest.approx(want["score"], rel=1e-5, abs=1e-5)
        assert got["model_version"] == want["model_version"] == "1"


def test_serve_refuses_a_missing_alias(tiny_project: TinyProject) -> None:
    port = str(free_port())
    proc = tiny_project.run("glcf", "serve", "--category", CATEGORY, "--alias", "nope", "--port", port, check=False)
    assert proc.returncode == 2
    assert f"{MODEL!r} has no alias @nope" in proc.stderr


def _bindable(port: int) -> bool:
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def test_kill_9_of_glcf_serve_frees_the_port(tiny_project: TinyProject, tmp_path: Path) -> None:
    """No forwarding is possible: the server must still end with its parent; "serving" means answering."""
    port = free_port()
    log = tmp_path / "serve.log"
    cmd = [str(BIN / "glcf"), "serve", "--category", CATEGORY, "--port", str(port)]
    with log.open("w") as fh:
        proc = subprocess.Popen(cmd, cwd=tiny_project.root, env=tiny_project.env, stdout=fh, stderr=subprocess.STDOUT)
    pids: list[int] = []
    try:
        deadline = time.monotonic() + 240
        while "INFO glcf: serving models:/" not in log.read_text():
            assert proc.poll() is None, f"glcf serve exited with {proc.returncode}:\n{log.read_text()[-4000:]}"
            assert time.monotonic() < deadline, f"no serving line in 240 s:\n{log.read_text()[-4000:]}"
            time.sleep(0.1)
        with OPENER.open(f"http://127.0.0.1:{port}/ping", timeout=5) as resp:  # announced: it answers
            assert resp.status == 200
        pids = _descendants(proc.pid)
        assert pids, "the scoring server should run as child processes of glcf serve"
        environs = [Path(f"/proc/{pid}/environ").read_bytes().split(b"\0") for pid in pids]
        threads = {e.split(b"=", 1)[1] for env in environs for e in env if e.startswith(b"GLCF_THREADS=")}
        own_count = "from glcf.runtime import torch_threads; print(torch_threads())"  # in a fresh process
        expected = tiny_project.run(sys.executable, "-c", own_count).stdout.split()[-1]
        assert threads == {expected.encode()}  # one worker: torch's own count, passed to the server
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=10)
        killed = time.monotonic()
        while not _bindable(port) and time.monotonic() - killed < 5:
            time.sleep(0.05)
        assert _bindable(port), f"port {port} still held 5 s after kill -9 of glcf serve"
        alive = [pid for pid in pids if Path(f"/proc/{pid}").exists() and _state(pid) != "Z"]
        while alive and time.monotonic() - killed < 10:
            time.sleep(0.1)
            alive = [pid for pid in alive if Path(f"/proc/{pid}").exists() and _state(pid) != "Z"]
        assert not alive, f"left running after kill -9 of glcf serve: {alive}"
    finally:
        for pid in [proc.pid, *pids]:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        proc.wait()


def test_a_taken_port_fails_at_once_in_one_line(tiny_project: TinyProject) -> None:
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]
        t0 = time.monotonic()
        proc = tiny_project.run("glcf", "serve", "--category", CATEGORY, "--port", str(port), check=False, timeout=60)
        elapsed = time.monotonic() - t0
    assert proc.returncode == 2
    assert elapsed < 5, f"a taken port took {elapsed:.1f} s to fail"
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert f"cannot serve on 127.0.0.1:{port}: already in use" in lines[0]


def test_sigterm_stops_the_server_and_its_workers(server: Server) -> None:
    """Runs last in this module: ``glcf serve`` forwards SIGTERM to the scoring server's processes."""
    workers = _descendants(server.proc.pid)
    assert workers, "glcf serve should run the scoring server as child processes"
    server.proc.send_signal(signal.SIGTERM)
    server.proc.wait(timeout=60)
    deadline = time.monotonic() + 30
    alive = workers
    while alive and time.monotonic() < deadline:
        alive = [pid for pid in workers if Path(f"/proc/{pid}").exists() and _state(pid) != "Z"]
        time.sleep(0.2)
    assert not alive, f"left running after SIGTERM: {alive}"
    with pytest.raises(OSError):
        OPENER.open(f"{server.url}/ping", timeout=2)


def _state(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return "gone"
