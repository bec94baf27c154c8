"""examples/quickstart/traffic.py, the client the quickstart's canary is judged on, against a
small real HTTP server: what it sends, what it counts as failed, and that it stops on SIGTERM
with its count. (The examples' e2e tests run it against a deployed endpoint: 0 failed.)"""

from __future__ import annotations

import json
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from tests.services import free_port

pytestmark = pytest.mark.faces

TRAFFIC = Path(__file__).resolve().parents[2] / "examples" / "quickstart" / "traffic.py"


class Server(ThreadingHTTPServer):
    fail_every = 0  # every n-th request answers 500 (0: none)
    bodies: list[Any]


class Handler(BaseHTTPRequestHandler):
    server: Server

    def do_POST(self) -> None:  # noqa: N802 (the http.server hook's name)
        sent = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        self.server.bodies.append((self.path, self.headers["Content-Type"], sent))
        failing = self.server.fail_every and len(self.server.bodies) % self.server.fail_every == 0
        raw = b'{"predictions": [1]}'
        self.send_response(500 if failing else 200)
        self.send_header("Content-Length", str(len(raw)))
        self.end_headers()
        self.wfile.write(raw)

    def log_message(self, *_: Any) -> None:
        pass


@pytest.fixture
def server() -> Iterator[Server]:
    made = Server(("127.0.0.1", 0), Handler)
    made.bodies = []
    thread = threading.Thread(target=made.serve_forever, daemon=True)
    thread.start()
    yield made
    made.shutdown()
    made.server_close()


def run_traffic(url: str, seconds: float) -> str:
    process = subprocess.Popen(
        [sys.executable, str(TRAFFIC), url, "--rate", "40"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    time.sleep(seconds)
    process.send_signal(signal.SIGTERM)
    out, err = process.communicate(timeout=20)
    assert process.returncode == 0, err
    return out


def test_sends_rows_of_the_data_set_shape_and_counts_none_failed(server: Server) -> None:
    out = run_traffic(f"http://127.0.0.1:{server.server_port}", 1.5)
    counted = re.fullmatch(r"traffic: (\d+) requests, 0 failed\n", out)
    assert counted is not None, out
    assert int(counted[1]) == len(server.bodies) >= 30  # about 40 a second
    path, content_type, sent = server.bodies[0]
    assert (path, content_type) == ("/invocations", "application/json")
    split = sent["dataframe_split"]
    assert len(split["columns"]) == 30 and split["columns"][0] == "mean radius"
    assert len(split["data"]) == 4 and all(len(row) == 30 for row in split["data"])
    assert all(value >= 0 for row in split["data"] for value in row)


def test_counts_error_answers_as_failed(server: Server) -> None:
    server.fail_every = 5
    out = run_traffic(f"http://127.0.0.1:{server.server_port}", 1.5)
    counted = re.fullmatch(r"traffic: (\d+) requests, (\d+) failed \((\d+) 500\)\n", out)
    assert counted is not None, out
    assert int(counted[2]) == int(counted[3]) == int(counted[1]) // 5


def test_refusals_before_the_endpoint_first_answers_are_not_counted_but_said() -> None:
    # Nothing listens there: on a first deploy the proxy starts during the run.
    url = f"http://127.0.0.1:{free_port()}"
    out = run_traffic(url, 1.0)
    said = re.fullmatch(rf"traffic: {url}/invocations never answered \((\d+) requests sent\)\n",
                        out)  # fmt: skip
    assert said is not None and int(said[1]) > 0, out
