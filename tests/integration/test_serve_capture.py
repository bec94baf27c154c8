"""The model server's data capture serving real requests: the server on this machine's Python
with a real model (deploy's `good`), and once in its image with a mounted directory, as deploy
runs it. The pieces (settings, sampling, the line, the writer) are tests/unit/serve's."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import requests

from steps.package.smoke import SERVER_FILE
from steps.serve.server import sampled
from tests import deploy_models
from tests.integration.test_package import serve
from tests.services import free_port

pytestmark = pytest.mark.services

SECRET = "s3cr3t-Tok%en"
LAYOUT = re.compile(r"(?P<variant>[^/]+)/\d{4}/\d\d/\d\d/\d\d/\d{8}T\d{6}-(?P<pid>\d+)\.jsonl")


def lines_under(root: Path) -> list[dict[str, Any]]:
    found = []
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        assert LAYOUT.fullmatch(path.relative_to(root).as_posix()), path
        found += [json.loads(line) for line in path.read_text().splitlines()]
    return found


def by_id(lines: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {line["eventMetadata"]["eventId"]: line for line in lines}


def start_server(model: Path, home: Path, **env: str) -> tuple[subprocess.Popen[str], str]:
    port = free_port()
    server = subprocess.Popen(
        [sys.executable, str(SERVER_FILE), "serve"],
        env={"PATH": "/usr/bin:/bin", "HOME": str(home), "PORT": str(port),
             "MLSTEPS_MODEL_DIR": str(model), **env},
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 90
    while True:
        try:
            if requests.get(f"{url}/ping", timeout=2).status_code == 200:
                return server, url
        except requests.RequestException:
            if time.monotonic() > deadline or server.poll() is not None:
                server.kill()
                raise AssertionError(server.communicate()[0][-3000:]) from None
            time.sleep(0.3)


@pytest.fixture(scope="module")
def good_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return deploy_models.save("good", tmp_path_factory.mktemp("capture-model"))


def test_every_request_gets_a_line_and_the_sampled_ones_their_bodies(
    good_model: Path, tmp_path: Path
) -> None:
    capture = tmp_path / "capture"
    capture.mkdir()
    server, url = start_server(
        good_model, tmp_path, MLSTEPS_CAPTURE_DIR=str(capture), MLSTEPS_VARIANT="champion",
        MLSTEPS_CAPTURE_SAMPLE="0.5", MLSTEPS_SERVE_MAX_BODY_BYTES="4000",
        MLSTEPS_CAPTURE_MAX_BYTES="2000",
    )  # fmt: skip
    try:
        sent: dict[str, tuple[bytes, requests.Response]] = {}
        for n in range(40):
            rid = f"{n:032x}"
            data = deploy_models.body([(n / 4, 1.0)])
            sent[rid] = data, requests.post(
                f"{url}/invocations", data=data, timeout=30,
                headers={"Content-Type": "application/json", "X-Request-ID": rid,
                         "Authorization": f"Bearer {SECRET}", "Cookie": f"session={SECRET}"},
            )  # fmt: skip
        assert all(answer.status_code == 200 for _, answer in sent.values())
        answer = sent[f"{3:032x}"][1]
        assert answer.json() == {"predictions": [deploy_models.expected(0.75, 1.0)]}
        bodies = {
            "big": deploy_models.body([(0.5, 0.5)] * 250),  # over the capture's cap
            "huge": b"[" + b" " * 5000 + b"]",  # over the server's limit: 413, never read
            "broken": b'{"dataframe_split": ',  # 400
        }
        assert 2000 < len(bodies["big"]) < 4000  # the premise: between the two limits
        statuses = {}
        for rid, data in bodies.items():
            statuses[rid] = requests.post(
                f"{url}/invocations", data=data, timeout=30,
                headers={"Content-Type": "application/json", "X-Request-ID": rid},
            ).status_code  # fmt: skip
        assert statuses == {"big": 200, "huge": 413, "broken": 400}
        requests.post(f"{url}/invocations", data=bodies["broken"], timeout=30)  # no id given
        requests.get(f"{url}/ping", timeout=5)  # not a request for the model: no line
        time.sleep(1.5)
        # Written within the second, the server still running.
        assert len(lines_under(capture)) == 44
        for rid in ("last-0", "last-1"):  # then stopped at once: written at shutdown
            requests.post(
                f"{url}/invocations", data=deploy_models.body([(1.0, 1.0)]), timeout=30,
                headers={"Content-Type": "application/json", "X-Request-ID": rid},
            )  # fmt: skip
    finally:
        server.send_signal(signal.SIGTERM)
        out = server.communicate(timeout=30)[0]
    # uvicorn shuts down gracefully, then dies of the signal it caught (as its own exit code).
    assert server.returncode in (0, -signal.SIGTERM), out[-2000:]
    assert "Application shutdown complete" in out
    assert "data capture into" in out and "Traceback" not in out

    lines = lines_under(capture)
    assert len(lines) == 46
    written = "".join(p.read_text() for p in capture.rglob("*.jsonl"))
    assert SECRET not in written and "Bearer" not in written  # headers are never captured
    assert {p.parts[len(capture.parts)] for p in capture.rglob("*.jsonl")} == {"champion"}
    seen = by_id(lines)
    for rid, (data, answer) in sent.items():
        line = seen[rid]
        meta = line["eventMetadata"]
        assert meta["status"] == 200 and 0 < meta["latencyMs"] < 30000
        assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", meta["inferenceTime"])
        assert line["eventVersion"] == "0"
        if sampled(rid, 0.5):
            got = line["captureData"]
            assert got["endpointInput"] == {"observedContentType": "application/json",
                                            "mode": "INPUT", "data": data.decode(),
                                            "encoding": "JSON"}  # fmt: skip
            assert got["endpointOutput"]["data"] == answer.text
            assert got["endpointOutput"]["mode"] == "OUTPUT"
        else:
            assert "captureData" not in line
    assert 8 < sum(sampled(rid, 0.5) for rid in sent) < 32  # the premise: both kinds above
    assert [seen[rid]["eventMetadata"]["status"] for rid in bodies] == [200, 413, 400]
    assert sampled("big", 0.5) and sampled("huge", 0.5)  # the premise
    assert list(seen["big"]["captureData"]) == ["endpointOutput"]
    assert "over MLSTEPS_CAPTURE_MAX_BYTES (2000)" in str(seen["big"]["eventMetadata"])
    assert list(seen["huge"]["captureData"]) == ["endpointOutput"]  # the 413's answer
    assert seen["huge"]["eventMetadata"]["notCaptured"]["endpointInput"] == "the body was not read"
    assert seen["last-1"]["eventMetadata"]["status"] == 200
    generated = set(seen) - set(sent) - set(bodies) - {"last-0", "last-1"}
    assert len(generated) == 1 and re.fullmatch(r"[0-9a-f-]{36}", generated.pop())


@pytest.mark.parametrize(
    ("variable", "value", "says"),
    [
        ("MLSTEPS_CAPTURE_SAMPLE", "all", "MLSTEPS_CAPTURE_SAMPLE='all' is not a share from 0"),
        ("MLSTEPS_VARIANT", "../x", "MLSTEPS_VARIANT='../x' is not a variant name"),
        ("MLSTEPS_CAPTURE_DIR", "/no/such", "MLSTEPS_CAPTURE_DIR='/no/such' is not a directory"),
    ],
)
def test_a_bad_capture_setting_stops_the_server_at_start_naming_it(
    variable: str, value: str, says: str, good_model: Path, tmp_path: Path
) -> None:
    env = {"MLSTEPS_CAPTURE_DIR": str(tmp_path), variable: value}
    done = subprocess.run(
        [sys.executable, str(SERVER_FILE), "serve"],
        env={"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "PORT": str(free_port()),
             "MLSTEPS_MODEL_DIR": str(good_model), **env},
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert done.returncode == 2, done.stderr
    assert f"mlsteps serve: {says}" in done.stderr
    assert "Traceback" not in done.stderr
    assert [p for p in tmp_path.rglob("*") if p.is_file()] == []


def test_the_image_captures_into_a_mounted_directory_as_deploy_runs_it(
    docker_client: Any, deploy_images: dict[str, deploy_models.DeployImage], tmp_path: Path
) -> None:
    """As deploy runs it: a host directory mounted, the variant named; the image's user (not
    root) writes there, and `docker stop` (SIGTERM) flushes what is left. A directory that
    user cannot write stops the container at start, naming the variable."""
    image = deploy_images["good"].image
    closed = tmp_path / "closed"
    closed.mkdir(mode=0o755)  # root's: the image's user cannot write it
    container = docker_client.containers.run(
        image, detach=True, environment={"MLSTEPS_CAPTURE_DIR": "/capture"},
        volumes={str(closed): {"bind": "/capture", "mode": "rw"}},
    )  # fmt: skip
    try:
        assert container.wait(timeout=90)["StatusCode"] == 2
        log = container.logs().decode()
        says = "MLSTEPS_CAPTURE_DIR='/capture' is not a directory this server (uid 10001) can "
        assert says in log
        assert "Traceback" not in log
    finally:
        container.remove(force=True)

    capture = tmp_path / "capture"
    capture.mkdir()
    os.chmod(capture, 0o777)  # deploy makes it writable by the image's user
    env = {"MLSTEPS_CAPTURE_DIR": "/capture", "MLSTEPS_VARIANT": "candidate"}
    mount = {str(capture): {"bind": "/capture", "mode": "rw"}}
    container, url = serve(docker_client, image, env, mount)
    try:
        ids = [f"req-{n}" for n in range(20)]
        for n, rid in enumerate(ids):
            answer = requests.post(
                f"{url}/invocations", data=deploy_models.body([(float(n), 2.0)]), timeout=30,
                headers={"Content-Type": "application/json", "X-Request-ID": rid},
            )  # fmt: skip
            assert answer.status_code == 200, answer.text
        container.stop(timeout=30)
        log = container.logs().decode()
    finally:
        container.remove(force=True)
    assert "data capture into /capture/candidate/" in log, log[-2000:]
    seen = by_id(lines_under(capture))
    assert list(seen) == ids
    for n, rid in enumerate(ids):
        output = json.loads(seen[rid]["captureData"]["endpointOutput"]["data"])
        assert output == {"predictions": [deploy_models.expected(float(n), 2.0)]}
    files = list(capture.rglob("*.jsonl"))
    assert [p.stat().st_uid for p in files] == [10001]  # the image's user, never root


def test_each_worker_process_writes_files_of_its_own(good_model: Path, tmp_path: Path) -> None:
    """MLSTEPS_SERVE_WORKERS processes append to files named by their pid: no two write one
    file, and none loses its lines at shutdown."""
    capture = tmp_path / "capture"
    capture.mkdir()
    server, url = start_server(
        good_model, tmp_path, MLSTEPS_CAPTURE_DIR=str(capture), MLSTEPS_SERVE_WORKERS="2"
    )
    try:
        with requests.Session() as one, requests.Session() as other:  # two connections
            for n in range(30):
                (one if n % 2 else other).post(
                    f"{url}/invocations", data=deploy_models.body([(float(n), 0.0)]),
                    headers={"Content-Type": "application/json", "X-Request-ID": f"w{n}"},
                    timeout=30,
                )  # fmt: skip
    finally:
        server.send_signal(signal.SIGTERM)
        out = server.communicate(timeout=60)[0]
    assert sorted(by_id(lines_under(capture))) == sorted(f"w{n}" for n in range(30)), out[-2000:]
    paths = [p.relative_to(capture).as_posix() for p in capture.rglob("*.jsonl")]
    pids = [match["pid"] for p in paths if (match := LAYOUT.fullmatch(p))]
    assert len(pids) == len(set(pids)) == len(paths) >= 1
    assert str(server.pid) not in pids  # the supervisor serves nothing: its workers write
