"""Benchmarks for issue 3, measured side by side in one run; prints ratios, never fails CI.

    .venv/bin/python tests/bench/bench_train.py [--repeat N] [--tracking-uri URI]

1. Cold start of `mlsteps --help`, `mlsteps train --help` and a `--dry-run` of the quickstart's
   train, each against `mlflow --help` (goal: under 5% of it).
2. Overhead of `mlsteps train` on a container that exits at once against plain
   `docker run --rm` of the same image and command (goal: under 1.5x). With --tracking-uri,
   a third line adds the MLflow run (create, tag, end, read back) for information.
Runs alternate between the contenders so that drift in machine load hits both alike.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
QUICKSTART = ROOT / "examples" / "quickstart"
BIN = Path(sys.executable).parent


def timed(argv: Sequence[str], cwd: Path = ROOT) -> float:
    started = time.perf_counter()
    done = subprocess.run(
        argv, cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True
    )
    elapsed = time.perf_counter() - started
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(argv)} failed ({done.returncode}): {done.stderr[-500:]}")
    return elapsed


def compare(
    label: str, contenders: dict[str, tuple[list[str], Path]], anchor: str, repeat: int
) -> None:
    times: dict[str, list[float]] = {name: [] for name in contenders}
    for argv, cwd in contenders.values():  # warm the page cache once, untimed
        timed(argv, cwd)
    for _ in range(repeat):
        for name, (argv, cwd) in contenders.items():
            times[name].append(timed(argv, cwd))
    base = statistics.median(times[anchor])
    print(f"\n{label} (median of {repeat}, anchor: {anchor} = {base:.3f} s)")
    for name, samples in times.items():
        median = statistics.median(samples)
        print(f"  {name:<44} {median:8.3f} s   {median / base:7.1%} of anchor")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeat", type=int, default=7)
    parser.add_argument("--image", default="mlsteps-base:bookworm")
    parser.add_argument("--tracking-uri", help="also time a tracked run against this server")
    args = parser.parse_args()
    mlsteps, mlflow = str(BIN / "mlsteps"), str(BIN / "mlflow")

    compare(
        "1. cold start",
        {
            "mlflow --help": ([mlflow, "--help"], ROOT),
            "mlsteps --help": ([mlsteps, "--help"], ROOT),
            "mlsteps train --help": ([mlsteps, "train", "--help"], ROOT),
            "mlsteps --dry-run train (quickstart)": ([mlsteps, "--dry-run", "train"], QUICKSTART),
        },
        anchor="mlflow --help",
        repeat=args.repeat,
    )

    docker = shutil.which("docker")
    if not docker:
        print("\n2. overhead: skipped, no docker CLI")
        return
    contenders = {
        "docker run --rm IMAGE true": ([docker, "run", "--rm", args.image, "true"], ROOT),
        "mlsteps train --image IMAGE -- true": (
            [mlsteps, "-q", "train", "--image", args.image, "--", "true"],
            ROOT,
        ),
    }
    compare(
        "2. overhead of a container that exits at once",
        contenders,
        "docker run --rm IMAGE true",
        args.repeat,
    )
    if args.tracking_uri:
        # A loopback tracking URI puts the container on the host network, which starts faster
        # than the default bridge: the anchor here uses the host network too.
        tracked = {
            "docker run --rm --network host IMAGE true": (
                [docker, "run", "--rm", "--network", "host", args.image, "true"],
                ROOT,
            ),
            "mlsteps train (with an MLflow run)": (
                [mlsteps, "-q", "train", "--image", args.image, "--tracking-uri", args.tracking_uri,
                 "--experiment", "bench", "--", "true"],
                ROOT,
            ),
        }  # fmt: skip
        compare(
            "3. the same with an MLflow run (create, tag, end, read back)",
            tracked,
            "docker run --rm --network host IMAGE true",
            args.repeat,
        )


if __name__ == "__main__":
    main()
