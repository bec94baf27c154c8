"""Benchmark for the package step, measured side by side in one run; prints ratios, never fails CI.

    .venv/bin/python tests/bench/bench_package.py [--quick] [--requests N]

One scikit-learn iris model (mlflow.sklearn.save_model with an input example) made into a
serving image two ways, FROM the same base image:
- anchor: `mlflow models build-docker -m DIR -n NAME --env-manager local` (local is the env
  manager that builds FROM python:X.Y.Z-slim, the model's Python; the default, virtualenv,
  switches to ubuntu and pyenv);
- mlsteps: `mlsteps package --model-uri DIR --base-image python:X.Y.Z-slim`.
The base is python:3.11-slim (tests/services.py builds it, no image can be pulled here) under
the name build-docker asks for, with PIP_CERT set (see shared_base: the anchor needs it behind
a proxy that re-signs TLS; it adds no byte).

1. First build from a cold cache (goal: mlsteps under 50% of the anchor). Both builds skip the
   engine's layer cache, so no image already on the engine (the test suite's) lends either a
   layer: mlsteps with --no-cache true, the anchor through a `docker` wrapper first on PATH that
   adds --no-cache to its `docker build`. mlsteps' time includes its smoke test.
2. Size added on top of the base image: image size minus base size (goal: under 40%).
3. Rebuild after a retrain, a model of another seed with the same requirements, each on the
   cache its first build left (goal: under 15%); mlsteps with --smoke-test false, as the anchor
   tests nothing.
4. Prediction latency, p50 and p99: the mlsteps image under `docker run`, reached at the
   container's bridge address (no docker-proxy in between), against `mlflow models serve -m DIR
   --env-manager local` on the host, both with one worker (goal: no slower). The body is the
   model's serving_input_example.json; 100 warm-up requests each, then blocks of 100
   alternating between the two so that drift in machine load hits both alike.

Both builds use the classic builder (DOCKER_BUILDKIT=0 for the anchor: the one the Docker SDK,
and so mlsteps, drives); mlsteps builds first, so a download either warms helps the anchor.
Each build's time is broken down by Dockerfile step, and each image's size by layer. Every
container and image made here goes at the end (python:3.11-slim and mlsteps-base stay).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
import warnings
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from tests import services  # noqa: E402  (the path is set just above)

BIN = Path(sys.executable).parent
OURS = "mlsteps-bench-package"
ANCHOR = "mlsteps-bench-build-docker"
LABEL = "mlsteps-bench.package"  # not io.mlsteps.*: mlsteps' sweeps and the tests' checks skip it
BASE = "python:3.11-slim"
MB = 1e6  # Docker's unit in `docker images`
STEP = re.compile(r"Step \d+/\d+ : (.*)")
# mlsteps' own phases, between the Dockerfile steps of its two builds.
PHASE = re.compile(r"(downloading the model files|building the dependencies image|building "
                   r"\S+:\S+$|smoke test of)")  # fmt: skip
# The classic builder's image of each step, and the container it runs a step in (a failed
# step's stays: `docker build` removes them only on success unless given --force-rm).
LAYER = re.compile(r"^ ---> ([0-9a-f]{12})$")
STEP_CONTAINER = re.compile(r"^ ---> Running in ([0-9a-f]{12})$")


@dataclass
class Made:
    """What the anchor's builds named in their output, for the cleanup."""

    images: set[str] = field(default_factory=set)
    containers: set[str] = field(default_factory=set)


@dataclass
class Build:
    seconds: float
    phases: list[tuple[str, float]]  # (phase, seconds), in order
    load: tuple[float, float]  # the machine's 1-minute load average at the start and the end


def timed_build(argv: list[str], env: dict[str, str], made: Made) -> Build:
    """Run a build command to its end; its output gives the time each step took, and the
    intermediate images and containers the classic builder names in it go into `made`."""
    load = os.getloadavg()[0]
    started = time.perf_counter()
    marks: list[tuple[str, float]] = [("start (CLI, model, context)", 0.0)]
    tail: deque[str] = deque(maxlen=40)
    process = subprocess.Popen(
        argv, cwd=ROOT, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT, text=True, errors="replace",
    )  # fmt: skip
    assert process.stdout is not None
    for line in process.stdout:
        now = time.perf_counter() - started
        line = line.rstrip()
        tail.append(line)
        if match := STEP.search(line):
            marks.append((match.group(1), now))
        elif match := PHASE.search(line.strip()):
            marks.append((line.strip(), now))
        if match := LAYER.match(line):
            made.images.add(match.group(1))
        elif match := STEP_CONTAINER.match(line):
            made.containers.add(match.group(1))
    code = process.wait()
    elapsed = time.perf_counter() - started
    if code != 0:
        raise SystemExit(f"{' '.join(argv)} failed ({code}):\n" + "\n".join(tail))
    ends = [t for _, t in marks[1:]] + [elapsed]
    phases = [(mark, end - t) for (mark, t), end in zip(marks, ends, strict=True)]
    return Build(elapsed, phases, (load, os.getloadavg()[0]))


def save_models(root: Path) -> tuple[Path, Path]:
    """The iris model twice, trained with two seeds: the same requirements, other files."""
    import mlflow.sklearn
    from sklearn.datasets import load_iris
    from sklearn.ensemble import RandomForestClassifier

    features, labels = load_iris(return_X_y=True, as_frame=True)
    dirs = []
    for seed in (1, 2):
        model = RandomForestClassifier(n_estimators=50, random_state=seed).fit(features, labels)
        path = root / f"model-seed{seed}"
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=".*integer column", category=UserWarning)
            # skops refuses the trees' node storage unless told: we trained it just above.
            mlflow.sklearn.save_model(
                model, str(path), input_example=features.head(5),
                skops_trusted_types=["sklearn.tree._tree.Tree"],
            )  # fmt: skip
        dirs.append(path)
    first, second = dirs
    if (first / "requirements.txt").read_text() != (second / "requirements.txt").read_text():
        raise SystemExit("the two models' requirements differ: the rebuild would not compare")
    return first, second


def docker_wrapper(root: Path) -> Path:
    """A directory whose `docker` adds --no-cache to `docker build` and passes the rest on."""
    real = shutil.which("docker")
    if not real:
        raise SystemExit("no docker CLI on PATH: `mlflow models build-docker` runs it")
    wrapper = root / "no-cache-docker"
    wrapper.mkdir()
    script = wrapper / "docker"
    script.write_text(
        "#!/bin/sh\n"
        f'if [ "$1" = build ]; then shift; exec {real} build --no-cache "$@"; fi\n'
        f'exec {real} "$@"\n'
    )
    script.chmod(0o755)
    return wrapper


def shared_base(client: Any, model: Path) -> str:
    """The base both builds start FROM: python:3.11-slim and one setting, under the name
    build-docker writes into its Dockerfile (python:X.Y.Z-slim, the model's full Python version).

    The setting: build-docker's pip installs pip==X from the index over the base's, and that pip
    trusts only its own CA bundle (certifi), not the system's, which holds the CA of a proxy
    that re-signs TLS; PIP_CERT points it at the system's. It adds no layer, no byte."""
    import io

    import yaml
    from docker.errors import ImageNotFound

    version = yaml.safe_load((model / "python_env.yaml").read_text())["python"]
    name = f"python:{version}-slim"
    with contextlib.suppress(ImageNotFound):
        if LABEL not in (client.images.get(name).labels or {}):
            raise SystemExit(f"{name} is here and not this benchmark's: remove it or run elsewhere")
    dockerfile = (
        f"FROM {BASE}\nLABEL {LABEL}=base\nENV PIP_CERT=/etc/ssl/certs/ca-certificates.crt\n"
    )
    client.images.build(fileobj=io.BytesIO(dockerfile.encode()), tag=name, rm=True, pull=False)
    return name


def image_size(client: Any, ref: str) -> int:
    return int(client.images.get(ref).attrs["Size"])


def check_on_base(client: Any, ref: str, base_layers: list[str]) -> None:
    layers = client.images.get(ref).attrs["RootFS"]["Layers"]
    if layers[: len(base_layers)] != base_layers:
        raise SystemExit(f"{ref} is not built on {BASE}: its size on top of it means nothing")


def big_layers(client: Any, ref: str, base_depth: int, least: float = 5 * MB) -> list[str]:
    """The layers an image adds to its base (the newest entries of its history, above the
    base's `base_depth`) that weigh at least `least`, largest first."""
    history = client.images.get(ref).history()
    rows = []
    for entry in history[: len(history) - base_depth]:
        if entry.get("Size", 0) >= least:
            command = " ".join(str(entry.get("CreatedBy", "")).split())
            command = command.replace("/bin/sh -c ", "").replace("#(nop) ", "")
            rows.append((entry["Size"], command))
    return [f"{size / MB:7.0f} MB  {command[:90]}" for size, command in sorted(rows)[::-1]]


def wait_for(url: str, what: str, timeout: float, alive: Any, log: Any) -> None:
    deadline = time.monotonic() + timeout
    while not services.http_ok(url):
        if not alive():
            raise SystemExit(f"{what} stopped while starting; its log:\n{log()}")
        if time.monotonic() > deadline:
            raise SystemExit(f"{what} did not answer {url} within {timeout:.0f} s:\n{log()}")
        time.sleep(0.25)


def latencies(
    targets: dict[str, str], body: bytes, count: int, warm: int, block: int = 100
) -> dict[str, list[float]]:
    """Seconds per POST /invocations, in blocks alternating between the targets."""
    import requests

    sessions = {name: requests.Session() for name in targets}
    headers = {"Content-Type": "application/json"}
    answers = {}
    for name, url in targets.items():  # warm-up, untimed; and both must answer alike
        for _ in range(warm):
            answer = sessions[name].post(url, data=body, headers=headers, timeout=30)
            answer.raise_for_status()
        answers[name] = answer.json()
    if len({json.dumps(a, sort_keys=True) for a in answers.values()}) != 1:
        raise SystemExit(f"the servers answer differently: {answers}")
    times: dict[str, list[float]] = {name: [] for name in targets}
    while len(times[next(iter(times))]) < count:
        for name, url in targets.items():
            session, samples = sessions[name], times[name]
            for _ in range(min(block, count - len(samples))):
                started = time.perf_counter()
                answer = session.post(url, data=body, headers=headers, timeout=30)
                samples.append(time.perf_counter() - started)
                if answer.status_code != 200:
                    raise SystemExit(f"{name}: {answer.status_code} {answer.text[:300]}")
    for session in sessions.values():
        session.close()
    return times


def p99(samples: list[float]) -> float:
    return statistics.quantiles(samples, n=100, method="inclusive")[98]


def all_tags(client: Any) -> dict[str, str]:
    return {tag: image.id for image in client.images.list() for tag in image.tags}


def cleanup(
    client: Any, made: Made, before: dict[str, str], repositories: tuple[str, ...] = (OURS, ANCHOR)
) -> list[str]:
    """Remove this benchmark's containers, then its images (those of `repositories`), then the
    anchor's intermediate containers and images its output named (a failed build leaves them).
    Another tag on one of our images (an engine-wide cache name) goes too if it is new, or goes
    back to the image it named before the run. Returns what could not go."""
    from docker.errors import APIError, NotFound

    left = []
    for container in client.containers.list(all=True, filters={"label": LABEL}):
        with contextlib.suppress(NotFound):
            container.remove(force=True)
    for name in made.containers:
        with contextlib.suppress(NotFound, APIError):
            client.api.remove_container(name, force=True)
    ours = {i.id for repository in repositories for i in client.images.list(name=repository)}
    tags = [tag for tag, image_id in all_tags(client).items() if image_id in ours]
    for tag in tags:
        if (was := before.get(tag)) and was not in ours:
            with contextlib.suppress(NotFound):
                repository, _, name = tag.rpartition(":")
                client.images.get(was).tag(repository, name)
    # Model images before the deps image they are built on; removing the last tag of an image
    # removes its untagged parents (the classic builder's intermediates) with it.
    tags = [tag for tag, image_id in all_tags(client).items() if image_id in ours]
    for tag in sorted(tags, key=lambda t: ":deps-" in t or not t.startswith(repositories)):
        try:
            client.images.remove(tag)
        except NotFound:
            pass
        except APIError as exc:
            left.append(f"{tag}: {exc.explanation}")
    for image in made.images:  # a leaf goes with its untagged parents; a parent fails, leave it
        with contextlib.suppress(NotFound, APIError):
            client.images.remove(image)
    return left


@dataclass
class Row:
    label: str
    unit: str
    ours: float
    anchor: float
    goal: float  # the ratio mlsteps/anchor must stay under (at most, for 1.0)

    @property
    def ratio(self) -> float:
        return self.ours / self.anchor

    def line(self) -> str:
        met = self.ratio <= self.goal if self.goal >= 1 else self.ratio < self.goal
        goal = "no slower" if self.goal == 1 else f"< {self.goal:.0%}"
        return (
            f"  {self.label:<30} {self.ours:9.1f} {self.unit:<2} {self.anchor:9.1f} "
            f"{self.unit:<2} {self.ratio:7.1%}   {goal:<10} {'met' if met else 'NOT MET'}"
        )


def main() -> None:
    from docker.errors import APIError

    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=2000, help="timed requests per server")
    parser.add_argument("--warm-up", type=int, default=100, help="untimed requests first")
    parser.add_argument("--quick", action="store_true", help="200 requests, 20 to warm up")
    args = parser.parse_args()
    if args.quick:
        args.requests, args.warm_up = 200, 20
    os.environ.update(services.QUIET_ENV)  # for the MLflow this process saves the models with
    client = services.connect_docker()
    services.ensure_python_slim_image(client, "3.11")
    env = {**os.environ, "DOCKER_BUILDKIT": "0"}
    mlsteps, mlflow = str(BIN / "mlsteps"), str(BIN / "mlflow")
    made = Made()
    before = all_tags(client)
    cleanup(client, made, before)  # an earlier run's leftovers: the cold builds start clean
    builds: dict[str, Build] = {}
    serving: services.Server | None = None
    base_name: str | None = None

    def build(key: str, argv: list[str], build_env: dict[str, str]) -> None:
        builds[key] = timed_build(argv, build_env, made)
        print(f"  {key}: {builds[key].seconds:.1f} s", flush=True)

    try:
        with tempfile.TemporaryDirectory(prefix="mlsteps-bench-package-") as tmp:
            root = Path(tmp)
            first, second = save_models(root)
            base_name = shared_base(client, first)
            base = client.images.get(base_name)
            cold_env = {**env, "PATH": f"{docker_wrapper(root)}:{env.get('PATH', '')}"}

            def ours(model: Path, tag: str, *extra: str) -> list[str]:
                return [
                    mlsteps, "--ci", "local", "package", "--model-uri", str(model),
                    "--repository", OURS, "--tag", tag, "--base-image", str(base_name), *extra,
                ]  # fmt: skip

            def anchor(model: Path, tag: str) -> list[str]:
                return [
                    mlflow, "models", "build-docker", "-m", str(model), "-n", f"{ANCHOR}:{tag}",
                    "--env-manager", "local",
                ]  # fmt: skip

            print(f"1. first builds, cold, FROM {base_name} (minutes) ...", flush=True)
            build("mlsteps first", ours(first, "first", "--no-cache", "true"), env)
            build("build-docker first", anchor(first, "first"), cold_env)
            for ref in (f"{OURS}:first", f"{ANCHOR}:first"):
                check_on_base(client, ref, base.attrs["RootFS"]["Layers"])
            print("3. rebuilds after a retrain ...", flush=True)
            build("mlsteps rebuild", ours(second, "retrain", "--smoke-test", "false"), env)
            build("build-docker rebuild", anchor(second, "retrain"), env)

            print(f"4. latency, {args.requests} requests each ...", flush=True)
            container = client.containers.run(
                f"{OURS}:first", detach=True, labels={LABEL: "serve"},
                name=f"{OURS}-{uuid.uuid4().hex[:8]}",
            )  # fmt: skip
            container.reload()
            address = container.attrs["NetworkSettings"]["IPAddress"]
            ours_url = f"http://{address}:8080"
            wait_for(
                f"{ours_url}/ping", "the mlsteps image", 120,
                lambda: (container.reload() or container.status) == "running",
                lambda: container.logs(tail=30).decode(errors="replace"),
            )  # fmt: skip
            port = services.free_port()
            serving = services.Server.start(
                "mlflow models serve",
                [mlflow, "models", "serve", "-m", str(first), "--env-manager", "local",
                 "-h", "127.0.0.1", "-p", str(port)],
                # uvicorn, which it execs, from this venv
                root / "serve.log", ROOT, {**env, "PATH": f"{BIN}:{env.get('PATH', '')}"},
            )  # fmt: skip
            anchor_url = f"http://127.0.0.1:{port}"
            wait_for(
                f"{anchor_url}/ping", "mlflow models serve", 120,
                lambda: serving is not None and serving.process.poll() is None,
                lambda: services.log_tail(root / "serve.log"),
            )  # fmt: skip
            body = (first / "serving_input_example.json").read_bytes()
            times = latencies(
                {"ours": f"{ours_url}/invocations", "anchor": f"{anchor_url}/invocations"},
                body, args.requests, args.warm_up,
            )  # fmt: skip
            base_size = int(base.attrs["Size"])
            sizes = {
                "ours": image_size(client, f"{OURS}:first") - base_size,
                "anchor": image_size(client, f"{ANCHOR}:first") - base_size,
            }
            base_depth = len(base.history())
            breakdown = {
                "mlsteps": big_layers(client, f"{OURS}:first", base_depth),
                "build-docker": big_layers(client, f"{ANCHOR}:first", base_depth),
            }
    finally:
        if serving is not None:
            serving.stop()
        left = cleanup(client, made, before)
        if base_name:
            with contextlib.suppress(APIError):
                client.images.remove(base_name)

    rows = [
        Row("1. first build, cold", "s", builds["mlsteps first"].seconds,
            builds["build-docker first"].seconds, 0.50),
        Row("2. size added to the base", "MB", sizes["ours"] / MB, sizes["anchor"] / MB, 0.40),
        Row("3. rebuild after a retrain", "s", builds["mlsteps rebuild"].seconds,
            builds["build-docker rebuild"].seconds, 0.15),
        Row("4. latency p50", "ms", statistics.median(times["ours"]) * 1e3,
            statistics.median(times["anchor"]) * 1e3, 1.0),
        Row("   latency p99", "ms", p99(times["ours"]) * 1e3, p99(times["anchor"]) * 1e3, 1.0),
    ]  # fmt: skip
    print(
        f"\nmlsteps package against mlflow models build-docker (anchor): one iris model, FROM "
        f"{BASE} as {base_name} ({base_size / MB:.0f} MB); latency over {args.requests} "
        "requests each"
    )
    print(f"  {'':<30} {'mlsteps':>12} {'anchor':>12} {'ratio':>7}   goal")
    for row in rows:
        print(row.line())
    for name, done in builds.items():
        print(
            f"\n{name}: {done.seconds:.1f} s (load average {done.load[0]:.1f} at the start, "
            f"{done.load[1]:.1f} at the end); the steps over 2% of it"
        )
        for phase, seconds in done.phases:
            if seconds >= 0.02 * done.seconds:
                print(f"  {seconds:7.1f} s  {' '.join(phase.split())[:90]}")
    for name, lines in breakdown.items():
        print(f"\n{name} image: the layers over 5 MB it adds to {BASE}")
        for line in lines:
            print("  " + line)
    if left:
        print("\nnot removed: " + "; ".join(left))


if __name__ == "__main__":
    main()
