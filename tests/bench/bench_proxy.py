"""Benchmark for issue 18: what the docker target's nginx adds to a request, side by side in one
run; prints ratios, never fails CI.

    .venv/bin/python tests/bench/bench_proxy.py --image IMAGE [--requests 2000]

IMAGE is a `mlsteps package` serving image (the tests build `it-serving:model-…` from the iris
model; any package image answers /ping). The benchmark starts it as a docker-target endpoint
(DockerTarget.ensure_champion: a container behind a real nginx on loopback), then sends the
same requests one at a time over a session that keeps connections alive where the server
does (the container; nginx closes each, see steps/deploy/proxy.py) either straight to the
container's port or through nginx, alternating batches so that drift in machine load hits
both alike.
Goal: under 1 ms added at p50.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

import requests  # noqa: E402  (the path is set just above)

from steps.deploy.targets.docker import DockerTarget  # noqa: E402

IRIS = {
    "dataframe_split": {
        "columns": ["sepal length (cm)", "sepal width (cm)", "petal length (cm)",
                    "petal width (cm)"],
        "data": [[5.1, 3.5, 1.4, 0.2]],
    }
}  # fmt: skip


def timed(session: requests.Session, url: str, body: object | None) -> float:
    started = time.perf_counter()
    answer = session.post(url, json=body) if body is not None else session.get(url)
    elapsed = time.perf_counter() - started
    if answer.status_code != 200:
        raise SystemExit(f"{url} answered {answer.status_code}: {answer.text[:300]}")
    return elapsed


def percentile(values: list[float], q: int) -> float:
    return statistics.quantiles(values, n=100, method="inclusive")[q - 1]


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--image", required=True, help="a `mlsteps package` serving image")
    parser.add_argument("--requests", type=int, default=2000, help="per path and route")
    parser.add_argument("--batch", type=int, default=50)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="mlsteps-bench-proxy-") as root:
        target = DockerTarget("bench-proxy", Path(root), say=print)
        try:
            endpoint = target.ensure_champion(args.image)
            state = target._load()
            assert state is not None
            routes = {
                "direct": f"http://127.0.0.1:{state['champion']['port']}",
                "nginx": endpoint.url,
            }
            paths: dict[str, object | None] = {"/ping": None}
            if requests.post(f"{routes['direct']}/invocations", json=IRIS).status_code == 200:
                paths["/invocations"] = IRIS
            rows = []
            for path, body in paths.items():
                times: dict[str, list[float]] = {name: [] for name in routes}
                sessions = {name: requests.Session() for name in routes}
                for name, url in routes.items():  # warm-up: connections, the model's caches
                    for _ in range(50):
                        timed(sessions[name], url + path, body)
                while len(times["direct"]) < args.requests:
                    for name, url in routes.items():
                        for _ in range(args.batch):
                            times[name].append(timed(sessions[name], url + path, body))
                rows.append((path, times))
        finally:
            target.tear_down()
    print(f"\n{args.requests} sequential requests per route, alternating batches")
    print(f"{'path':<14} {'route':<7} {'p50 ms':>8} {'p99 ms':>8}  {'p50 ×':>6} {'added p50':>10}")
    for path, times in rows:
        direct50 = percentile(times["direct"], 50)
        for name, values in times.items():
            p50, p99 = percentile(values, 50), percentile(values, 99)
            print(
                f"{path:<14} {name:<7} {p50 * 1e3:8.3f} {p99 * 1e3:8.3f}  {p50 / direct50:6.2f} "
                f"{(p50 - direct50) * 1e3:+9.3f}ms"
            )


if __name__ == "__main__":
    main()
