"""Benchmark for the gate step, measured side by side in one run; prints ratios, never fails CI.

    .venv/bin/python tests/bench/bench_gate.py [--repeat 3] [--profile]

Evaluation data of 100,000 rows × 20 numeric features with a binary label (fixed seed), and two
scikit-learn logistic regressions that differ a little (the champion fitted on 20,000 training
rows, the candidate with stronger regularisation on 16,000 of them), logged to a real MLflow
server started here and registered as versions 1 (alias champion) and 2 of one model. Each
contender runs in a fresh process, so both pay their imports:
- mlsteps: `mlsteps gate --model-uri models:/M/2 --name M --data eval.csv --target y
  --resamples 1000 --metrics RULES --log-report true`: both models scored on the same rows,
  accuracy, roc_auc and f1 with 1,000 paired bootstrap resamples (intervals of each model and
  of the delta), the report as markdown, JSON and PNG, logged to the candidate's run and
  tagged on the run and the version;
- the MLflow pair (the anchor): `mlflow.models.evaluate` of the candidate and of the champion
  (the baseline), each in its own run, with the default evaluator and its default artifacts,
  then `mlflow.validate_evaluation_results`. Point values only, no intervals. MetricThreshold's
  `min_absolute_change` must be positive (an improvement required), so "at most 0.01 below the
  champion" is written as a value `threshold` of the baseline's value − 0.01.
Goal: the gate under the MLflow pair's time (ratio < 1.0). After one untimed run of each (the
page cache), the two alternate REPEAT times so that drift in machine load hits both alike; the
medians are compared. --profile runs the gate once more under cProfile and prints where its
time goes.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
NAME = "bench-gate"
ROWS, FEATURES, TRAIN_ROWS, SEED = 100_000, 20, 20_000, 7
RESAMPLES = 1000
# The gate's thresholds; the MLflow pair's are derived from the same numbers.
RULES: dict[str, dict[str, float]] = {
    "accuracy": {"min-delta": -0.01},
    "roc_auc": {"min-delta": -0.01},
    "f1": {"min": 0.5, "min-delta": -0.01},
}
MLFLOW_METRIC = {"accuracy": "accuracy_score", "roc_auc": "roc_auc", "f1": "f1_score"}
PAIR_FLAG = "--mlflow-pair"  # the child mode: this file run as the anchor's process


def make_table(rows: int, seed: int) -> Any:
    import numpy as np
    import pandas as pd

    rng = np.random.default_rng(seed)
    features = rng.normal(size=(rows, FEATURES))
    # Half the features carry signal, with falling weights; the rest are noise.
    weights = np.zeros(FEATURES)
    weights[: FEATURES // 2] = np.linspace(1.2, 0.1, FEATURES // 2)
    logit = features @ weights - 0.3
    table = pd.DataFrame(features, columns=[f"x{i:02d}" for i in range(FEATURES)])
    table["y"] = (rng.random(rows) < 1 / (1 + np.exp(-logit))).astype(int)
    return table


def register_models(uri: str, folder: Path) -> Path:
    """Versions 1 (@champion) and 2 of NAME on the server at uri; the evaluation CSV."""
    import mlflow
    import numpy as np
    import requests
    from sklearn.linear_model import LogisticRegression  # type: ignore[import-untyped]

    train = make_table(TRAIN_ROWS, SEED)
    x, y = train.drop(columns=["y"]), train["y"]
    subset = np.random.default_rng(SEED + 1).random(len(train)) < 0.8
    models = {
        "champion": LogisticRegression(max_iter=500).fit(x, y),
        "candidate": LogisticRegression(C=0.002, max_iter=500).fit(x[subset], y[subset]),
    }
    mlflow.set_tracking_uri(uri)
    for role, model in models.items():
        with mlflow.start_run(run_name=f"bench-gate-{role}"):
            info = mlflow.sklearn.log_model(model, name="model", input_example=x.head(5))
            mlflow.register_model(info.model_uri, NAME)
    requests.post(
        f"{uri}/api/2.0/mlflow/registered-models/alias",
        json={"name": NAME, "alias": "champion", "version": "1"},
        timeout=10,
    ).raise_for_status()
    data = folder / "eval.csv"
    make_table(ROWS, SEED + 2).to_csv(data, index=False, float_format="%.6f")
    return data


def mlflow_pair(uri: str, data: str) -> None:
    """The anchor, in its own process: evaluate both, validate, print what it found as JSON."""
    started = time.perf_counter()
    marks: list[tuple[str, float]] = []

    def mark(what: str) -> None:
        marks.append((what, time.perf_counter() - started))

    import mlflow
    import pandas as pd
    from mlflow.models import MetricThreshold
    from mlflow.models.evaluation.validation import ModelValidationFailedException

    mark("import mlflow, pandas")
    mlflow.set_tracking_uri(uri)
    table = pd.read_csv(data)
    mark("read the CSV")
    results = {}
    for role, version in (("candidate", 2), ("baseline", 1)):
        with mlflow.start_run(run_name=f"mlflow-evaluate-{role}"):
            results[role] = mlflow.models.evaluate(  # type: ignore[no-untyped-call]
                f"models:/{NAME}/{version}", table, targets="y", model_type="classifier"
            )
        mark(f"evaluate the {role}")
    thresholds = {}
    for ours, theirs in MLFLOW_METRIC.items():
        rule = RULES[ours]
        floor = results["baseline"].metrics[theirs] + rule["min-delta"]
        thresholds[theirs] = MetricThreshold(  # type: ignore[no-untyped-call]
            threshold=max(floor, rule.get("min", floor)), greater_is_better=True
        )
    try:
        mlflow.validate_evaluation_results(thresholds, results["candidate"], results["baseline"])
        verdict = "pass"
    except ModelValidationFailedException:
        verdict = "rejected"
    mark("validate")
    found = {
        "verdict": verdict,
        "metrics": len(results["candidate"].metrics),
        "values": {
            ours: [results[role].metrics[theirs] for role in ("candidate", "baseline")]
            for ours, theirs in MLFLOW_METRIC.items()
        },
        "artifacts": sorted(results["candidate"].artifacts),
        "marks": marks,
    }
    print("\n" + json.dumps(found), flush=True)


@dataclass
class Timed:
    seconds: float
    lines: list[tuple[float, str]]  # (seconds since the start, line) of its stderr and stdout
    code: int


def timed(argv: list[str], env: dict[str, str], cwd: Path, ok: tuple[int, ...]) -> Timed:
    started = time.perf_counter()
    lines: list[tuple[float, str]] = []
    process = subprocess.Popen(
        argv, cwd=cwd, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT, text=True, errors="replace",
    )  # fmt: skip
    assert process.stdout is not None
    for line in process.stdout:
        lines.append((time.perf_counter() - started, line.rstrip()))
    code = process.wait()
    elapsed = time.perf_counter() - started
    if code not in ok:
        tail = "\n".join(line for _, line in lines[-40:])
        raise SystemExit(f"{' '.join(argv[:4])} … failed ({code}):\n{tail}")
    return Timed(elapsed, lines, code)


# The gate's progress lines, in order, and what ran before each (since the one before). The
# models are loaded and scored in a child process started after the "scoring" line.
GATE_PHASES = (
    (re.compile(r"^candidate: "), "Python, imports, CLI, options; find the candidate"),
    (re.compile(r"^champion: "), "find the champion (alias)"),
    (re.compile(r"^downloading "), "read and hash the CSV, look for a stored schema"),
    (re.compile(r"^scoring "), "download and hash both models' files"),
    (
        re.compile(r"^bootstrap: "),
        "child process: import mlflow, load both models, predict; read the answers",
    ),
    (re.compile(r"^report: "), "bootstrap, judge, write the report (md, json, png)"),
    (re.compile(r"^gate (passed|rejected)"), "log the report to MLflow, tag run and version"),
)


def gate_phases(run: Timed) -> list[tuple[str, float]]:
    """Seconds of each phase, from the times its progress lines came out (matched in order)."""
    phases, last, want = [], 0.0, 0
    for at, line in run.lines:
        if want < len(GATE_PHASES) and GATE_PHASES[want][0].search(line):
            phases.append((GATE_PHASES[want][1], at - last))
            last, want = at, want + 1
    phases.append(("verdict, outputs, exit", run.seconds - last))
    return phases


def pair_phases(run: Timed) -> tuple[dict[str, Any], list[tuple[str, float]]]:
    # The last JSON line: MLflow may log after it (at exit).
    line = next(text for _, text in reversed(run.lines) if text.startswith('{"verdict"'))
    found: dict[str, Any] = json.loads(line)
    phases: list[tuple[str, float]] = []
    last = 0.0
    for what, at in found["marks"]:
        phases.append((what, at - last))
        last = at
    # The child's clock starts once the interpreter is up and stops before it exits.
    phases.insert(0, ("Python start and exit", run.seconds - last))
    return found, phases


def profile_gate(argv: list[str], env: dict[str, str], cwd: Path, top: int) -> None:
    import pstats

    out = cwd / "gate.prof"
    profiled = [sys.executable, "-m", "cProfile", "-o", str(out), *argv]
    done = timed(profiled, env, cwd, ok=(0, 3))
    print(f"\nthe gate under cProfile: {done.seconds:.1f} s; by cumulative time, top {top}:")
    stats = pstats.Stats(str(out))
    stats.sort_stats("cumulative").print_stats(top)
    print(f"by own time, top {top}:")
    stats.sort_stats("tottime").print_stats(top)


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--repeat", type=int, default=3, help="timed runs of each, alternating")
    parser.add_argument("--profile", action="store_true", help="then profile one gate run")
    parser.add_argument("--top", type=int, default=30, help="lines of the profile to print")
    args = parser.parse_args()
    sys.path.insert(0, str(ROOT))
    from tests import services

    os.environ.update(services.QUIET_ENV)  # for the MLflow this process logs the models with
    env = {
        k: v for k, v in os.environ.items() if not k.startswith(("MLFLOW_", "MLSTEPS_"))
    } | services.QUIET_ENV
    with tempfile.TemporaryDirectory(prefix="mlsteps-bench-gate-") as tmp:
        root = Path(tmp)
        (root / "server").mkdir()
        server = services.start_mlflow(root / "server")
        try:
            uri = server.uri
            print(f"models and {ROWS:,} rows × {FEATURES} features ...", flush=True)
            data = register_models(uri, root)
            gate = [
                str(BIN / "mlsteps"), "--ci", "local", "gate", "--tracking-uri", uri,
                "--model-uri", f"models:/{NAME}/2", "--name", NAME, "--data", str(data),
                "--target", "y", "--resamples", str(RESAMPLES), "--metrics", json.dumps(RULES),
                "--log-report", "true", "--report-dir", str(root / "report"),
            ]  # fmt: skip
            pair = [sys.executable, str(Path(__file__).resolve()), PAIR_FLAG, uri, str(data)]
            contenders = {
                "mlsteps gate": (gate, (0, 3)),
                "MLflow evaluate ×2 + validate": (pair, (0,)),
            }
            runs: dict[str, list[Timed]] = {name: [] for name in contenders}
            load = [os.getloadavg()[0]]
            print("one untimed run of each (page cache) ...", flush=True)
            for argv, ok in contenders.values():
                timed(argv, env, root, ok)
            for i in range(args.repeat):
                for name, (argv, ok) in contenders.items():
                    runs[name].append(timed(argv, env, root, ok))
                    print(f"  {i + 1}. {name}: {runs[name][-1].seconds:.1f} s", flush=True)
            load.append(os.getloadavg()[0])
            report = json.loads((root / "report" / "report.json").read_text())
            if args.profile:
                profile_gate(gate, env, root, args.top)
        finally:
            server.server.stop()
    print_results(runs, report, args.repeat, load)


def print_results(
    runs: dict[str, list[Timed]], report: dict[str, Any], repeat: int, load: list[float]
) -> None:
    gate_name, pair_name = runs
    medians = {name: statistics.median(r.seconds for r in done) for name, done in runs.items()}
    ratio = medians[gate_name] / medians[pair_name]
    print(
        f"\ngate on {ROWS:,} rows × {FEATURES} features, candidate against champion (median of "
        f"{repeat}, anchor: the MLflow pair = {medians[pair_name]:.1f} s)"
    )
    for name, seconds in medians.items():
        each = ", ".join(f"{r.seconds:.1f}" for r in runs[name])
        print(f"  {name:<32} {seconds:7.1f} s  {seconds / medians[pair_name]:7.1%}   ({each})")
    print(f"  ratio {ratio:.2f}: goal < 1.00 {'met' if ratio < 1 else 'NOT MET'}")
    print(f"  (load average {load[0]:.1f} at the start, {load[1]:.1f} at the end)")

    # What each computed, from the last timed run of each.
    last_gate = min(runs[gate_name], key=lambda r: abs(r.seconds - medians[gate_name]))
    last_pair = min(runs[pair_name], key=lambda r: abs(r.seconds - medians[pair_name]))
    found, pair_steps = pair_phases(last_pair)
    print(
        f"\n{gate_name}: verdict {report['verdict']}, {len(report['metrics'])} metrics × "
        f"{report['evaluation']['resamples']} paired resamples (intervals of each model and of "
        f"the delta), report.md/.json/.png logged and tagged"
    )
    for metric, values in report["metrics"].items():
        low, high = values["delta_interval"] or (float("nan"), float("nan"))
        print(
            f"  {metric:<9} candidate {values['candidate']:.4f}  champion "
            f"{values['champion']:.4f}  delta 95% [{low:+.4f}, {high:+.4f}]"
        )
    for what, seconds in gate_phases(last_gate):
        print(f"  {seconds:6.2f} s  {what}")
    print(
        f"\n{pair_name}: verdict {found['verdict']}, {found['metrics']} point metrics per "
        f"model, no intervals; artifacts per model: {', '.join(found['artifacts'])}"
    )
    for metric, (cand, base) in found["values"].items():
        print(f"  {metric:<9} candidate {cand:.4f}  champion {base:.4f}")
    for what, seconds in pair_steps:
        print(f"  {seconds:6.2f} s  {what}")


if __name__ == "__main__":
    if len(sys.argv) == 4 and sys.argv[1] == PAIR_FLAG:
        mlflow_pair(sys.argv[2], sys.argv[3])
    else:
        main()
