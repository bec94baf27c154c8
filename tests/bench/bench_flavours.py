"""Benchmark of the package step over every model flavour, side by side with the anchor in one
run; prints a table, never fails for slowness.

    .venv/bin/python tests/bench/bench_flavours.py [--only NAME[,NAME]] [--skip-anchor]

Each flavour's model (the CI matrix's, tests/flavour_models.py, and the benchmark tier's
CatBoost, PyTorch and TensorFlow, tests/bench/large_flavours.py) made into a serving image two
ways FROM the same base, python:3.11-slim (under the name build-docker asks for, as
bench_package.py does), each build cold (no layer of the engine's cache):
- mlsteps: `mlsteps package --model-uri DIR --base-image BASE --no-cache true`; packaged when
  it exits 0, which includes its smoke test (served predictions equal to the model's own);
- anchor: `mlflow models build-docker -m DIR -n NAME --env-manager local`; packaged when the
  image builds AND serves: run, /ping answers, and the answer to the model's
  serving_input_example.json (or to unseen rows, for a model without an example) equals
  pyfunc's prediction of the same input made on this machine.
For each: packaged yes/no, first build seconds, size added over the base, ratios mlsteps/anchor.

The benchmark tier's libraries are big and stay out of the project's venv: the models are
saved in a venv of this bench's own (same Python, same MLflow), made once and kept under
~/.cache/mlsteps-bench/. Every container and image made here goes after each flavour (the
images of PyTorch weigh GBs); the machine's load average is printed beside each build.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import subprocess
import sys
import tempfile
import time
import uuid
import warnings
from dataclasses import dataclass
from importlib.metadata import version
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from steps.package.smoke import SERVER_FILE, _reference_of, same_predictions  # noqa: E402
from tests import services  # noqa: E402
from tests.bench import large_flavours  # noqa: E402
from tests.bench.bench_package import (  # noqa: E402
    BIN,
    LABEL,
    MB,
    Build,
    Made,
    all_tags,
    cleanup,
    docker_wrapper,
    image_size,
    shared_base,
    timed_build,
    wait_for,
)
from tests.flavour_models import FLAVOURS  # noqa: E402

OURS = "mlsteps-bench-flavours"
ANCHOR = "mlsteps-bench-flavours-anchor"
LARGE = tuple(large_flavours.SAVERS)
CACHE = Path.home() / ".cache" / "mlsteps-bench"
# The models' libraries talk a lot while saving (MLflow's hints, TensorFlow's CUDA probing):
# quiet here, so that the table and the failures stand out.
QUIET = {**services.QUIET_ENV, "PYTHONWARNINGS": "ignore", "TF_CPP_MIN_LOG_LEVEL": "3"}


@dataclass
class Outcome:
    packaged: bool
    seconds: float
    added_mb: float | None  # None: no image
    why: str = ""  # why not packaged
    load: tuple[float, float] = (0.0, 0.0)

    def cells(self) -> str:
        size = "-" if self.added_mb is None else f"{self.added_mb:,.0f}"
        return f"{'yes' if self.packaged else 'NO':<4}{self.seconds:7.0f}{size:>8}"


def bench_python() -> Path:
    """The venv the benchmark tier's models are saved in, made on first use: this Python's
    version, this venv's MLflow, and the libraries of large_flavours.py."""
    mlflow_version = version("mlflow")
    minor = f"{sys.version_info.major}.{sys.version_info.minor}"
    venv = CACHE / f"flavours-py{minor}-mlflow{mlflow_version}"
    python = venv / "bin" / "python"
    probe = f"import mlflow, {', '.join(large_flavours.LIBRARIES)}\n"
    probe += f"assert mlflow.__version__ == {mlflow_version!r}"
    if (
        python.exists()
        and subprocess.run([python, "-c", probe], capture_output=True).returncode == 0
    ):
        return python
    print(f"making the benchmark tier's venv in {venv} (GBs, minutes) ...", flush=True)
    subprocess.run([sys.executable, "-m", "venv", "--clear", venv], check=True)
    subprocess.run(
        [python, "-m", "pip", "install", "-q", f"mlflow=={mlflow_version}",
         *large_flavours.LIBRARIES],
        check=True,
    )  # fmt: skip
    return python


def save_model(name: str, directory: Path) -> tuple[Path, Any]:
    """Save NAME's model in `directory`; returns the Python that loads it and the unseen rows
    (None for the benchmark tier's, whose examples are used)."""
    if name in FLAVOURS:
        return Path(sys.executable), FLAVOURS[name](directory).unseen
    python = bench_python()
    script = Path(large_flavours.__file__)
    subprocess.run([python, script, name, directory], check=True, env={**os.environ, **QUIET})
    return python, None


def request_and_reference(python: Path, model: Path, unseen: Any) -> tuple[bytes, Any]:
    """The body to POST and pyfunc's answer to it, computed on this machine: the model's
    serving input example with server.py's own `reference`, or unseen rows without one."""
    example = model / "serving_input_example.json"
    if example.exists():
        done = subprocess.run(
            [python, SERVER_FILE, "reference"], capture_output=True, text=True, check=True,
            env={**os.environ, **QUIET, "MLSTEPS_MODEL_DIR": str(model)},
        )  # fmt: skip
        return example.read_bytes(), _reference_of(done.stdout)
    from io import StringIO

    import mlflow.pyfunc
    from mlflow.pyfunc import scoring_server

    rows = unseen.head(5)
    answer = StringIO()
    scoring_server.predictions_to_json(mlflow.pyfunc.load_model(str(model)).predict(rows), answer)
    body = {"dataframe_split": json.loads(rows.to_json(orient="split", index=False))}
    return json.dumps(body).encode(), json.loads(answer.getvalue())


def serves(client: Any, ref: str, body: bytes, reference: Any) -> str:
    """'' when the image's server answers `body` with `reference`, else what went wrong."""
    import requests

    container = client.containers.run(
        ref, detach=True, labels={LABEL: "serve"}, name=f"{ANCHOR}-{uuid.uuid4().hex[:8]}"
    )
    try:
        container.reload()
        url = f"http://{container.attrs['NetworkSettings']['IPAddress']}:8080"
        logs = lambda: container.logs(tail=15).decode(errors="replace")  # noqa: E731
        try:
            wait_for(
                f"{url}/ping", "the server", 300,
                lambda: (container.reload() or container.status) == "running", logs,
            )  # fmt: skip
        except SystemExit as stopped:
            return str(stopped)
        answer = requests.post(
            f"{url}/invocations", data=body, headers={"Content-Type": "application/json"},
            timeout=300,
        )  # fmt: skip
        if answer.status_code != 200:
            return f"/invocations answered {answer.status_code}: {answer.text[:300]}"
        if not same_predictions(answer.json(), reference):
            return f"served {answer.text[:200]}, pyfunc {json.dumps(reference)[:200]}"
        return ""
    finally:
        container.remove(force=True)


def build(argv: list[str], env: dict[str, str], made: Made) -> tuple[Build, str]:
    """The build, and why it failed ('' when it did not); a failed one's time is to its end."""
    started, load = time.perf_counter(), os.getloadavg()[0]
    try:
        return timed_build(argv, env, made), ""
    except SystemExit as failed:
        elapsed = time.perf_counter() - started
        return Build(elapsed, [], (load, os.getloadavg()[0])), str(failed).strip()


def measure(client: Any, name: str, root: Path, args: argparse.Namespace) -> dict[str, Outcome]:
    model = root / name
    python, unseen = save_model(name, model)
    body, reference = request_and_reference(python, model, unseen)
    base_name = shared_base(client, model)
    base_size = image_size(client, base_name)
    env = {**os.environ, **services.QUIET_ENV, "DOCKER_BUILDKIT": "0"}
    cold_env = {**env, "PATH": f"{root / 'no-cache-docker'}:{env.get('PATH', '')}"}
    made, outcomes = Made(), {}
    ours = [
        str(BIN / "mlsteps"), "--ci", "local", "package", "--model-uri", str(model),
        "--repository", OURS, "--tag", name, "--base-image", base_name, "--no-cache", "true",
    ]  # fmt: skip
    anchor = [
        str(BIN / "mlflow"), "models", "build-docker", "-m", str(model), "-n", f"{ANCHOR}:{name}",
        "--env-manager", "local",
    ]  # fmt: skip
    try:
        done, why = build(ours, env, made)
        added = None if why else (image_size(client, f"{OURS}:{name}") - base_size) / MB
        outcomes["mlsteps"] = Outcome(not why, done.seconds, added, why, done.load)
        print(f"  {name} mlsteps: {outcomes['mlsteps'].cells()}", flush=True)
        if not args.skip_anchor:
            done, why = build(anchor, cold_env, made)
            added = None
            if not why:  # built: it counts only if it serves pyfunc's answer
                added = (image_size(client, f"{ANCHOR}:{name}") - base_size) / MB
                why = serves(client, f"{ANCHOR}:{name}", body, reference)
            outcomes["anchor"] = Outcome(not why, done.seconds, added, why, done.load)
            print(f"  {name} anchor:  {outcomes['anchor'].cells()}", flush=True)
    finally:
        left = cleanup(client, made, args.before, (OURS, ANCHOR))
        if left:
            print("  not removed: " + "; ".join(left), flush=True)
    return outcomes


def ratio(ours: Outcome, anchor: Outcome | None, field: str) -> str:
    if anchor is None or not (ours.packaged and anchor.added_mb is not None):
        return "-"
    mine, theirs = getattr(ours, field), getattr(anchor, field)
    return f"{mine / theirs:.0%}" if theirs else "-"


def report(results: dict[str, dict[str, Outcome]]) -> None:
    print(
        "\nmlsteps package against mlflow models build-docker --env-manager local (anchor), "
        "each FROM python:3.11-slim, cold; seconds of the first build, MB added to the base"
    )
    head = f"  {'flavour':<20} {'mlsteps  s      MB':<20}{'anchor   s      MB':<20}"
    print(f"{head}{'time':>6}{'size':>6}")
    for name, outcome in results.items():
        ours, anchor = outcome.get("mlsteps"), outcome.get("anchor")
        if ours is None:
            continue
        print(
            f"  {name:<20} {ours.cells():<20}{anchor.cells() if anchor else '':<20}"
            f"{ratio(ours, anchor, 'seconds'):>6}{ratio(ours, anchor, 'added_mb'):>6}"
        )
    print("\nload average (1 min) at the start and the end of each build; why a build is no")
    for name, outcome in results.items():
        for who, one in outcome.items():
            print(f"  {name} {who}: load {one.load[0]:.1f} -> {one.load[1]:.1f}")
            if one.why:
                print("    " + "\n    ".join(one.why.splitlines()[-12:]))


def main() -> None:
    from docker.errors import APIError

    names = [*FLAVOURS, *LARGE]
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--only", help=f"comma-separated flavours, of: {', '.join(names)}")
    parser.add_argument("--skip-anchor", action="store_true", help="mlsteps' builds only")
    args = parser.parse_args()
    chosen = args.only.split(",") if args.only else names
    if unknown := [n for n in chosen if n not in names]:
        parser.error(
            f"--only {','.join(unknown)}: no such flavour; give some of {', '.join(names)}"
        )
    os.environ.update(services.QUIET_ENV)
    warnings.simplefilter("ignore")  # the same hints, from the CI matrix's models saved here
    client = services.connect_docker()
    services.ensure_python_slim_image(client, "3.11")
    args.before = all_tags(client)
    cleanup(client, Made(), args.before, (OURS, ANCHOR))  # an earlier run's leftovers
    results: dict[str, dict[str, Outcome]] = {}
    started = time.perf_counter()
    try:
        with tempfile.TemporaryDirectory(prefix="mlsteps-bench-flavours-") as tmp:
            root = Path(tmp)
            docker_wrapper(root)
            for name in chosen:
                print(f"{name} ...", flush=True)
                results[name] = measure(client, name, root, args)
    finally:
        for tag, image_id in all_tags(client).items():  # shared_base's, by its label
            if tag.startswith("python:") and LABEL in (client.images.get(image_id).labels or {}):
                with contextlib.suppress(APIError):
                    client.images.remove(tag)
        report(results)
        print(f"\nthe whole run: {(time.perf_counter() - started) / 60:.1f} min")


if __name__ == "__main__":
    main()
