"""Scoring the models of ``gate --data`` outside the gate's own process.

Loading an MLflow model runs code the model brought (a pickle, a ``loader_module``, its
``code_paths``), and the gate holds the job's credentials: the MLflow password, tokens, cloud
keys. So the gate downloads the model files itself, then starts child.py
as launch.py starts a model's code (an allow-listed environment with a fresh empty
HOME, namespaces of its own where allowed) to load and score them. Data goes to the child as a
pickle the gate wrote; answers come back as .npy files read without pickle and one JSON file,
every field checked: nothing the model's code wrote is unpickled or trusted. The child runs as
the same user, so this keeps secrets out of reach of the model's code, not the user's files.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import sys
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from steps.core.errors import ConfigError, StepFailed
from steps.services.model_code import launch as model_code
from steps.services.processes import run_process

if TYPE_CHECKING:
    from steps.ci import Face
    from steps.services.mlflow.model_source import Artifacts

_WHY = {
    "load": "cannot load the model {uri} ({error}). Is the model's flavor installed where the "
    "gate runs (pip install 'mlsteps[gate]' and the model's requirements)?",
    "predict": "the model {uri} failed to predict on --data ({error}). Do the data's columns "
    "and types match the model's signature?",
    "proba": "the model {uri} failed to give class probabilities on --data ({error}). Do the "
    "data's columns and types match the model's signature?",
    "answers": "the model {uri} gave answers the gate cannot read ({error}).",
}


@dataclass(frozen=True)
class Answers:
    predicted: Any  # numpy array, one answer per row
    proba: Any  # numpy array (rows × classes) or None
    classes: tuple[Any, ...] | None
    digest: str = ""  # of the model's files, as downloaded: "sha256:…"


def score(
    models: Sequence[tuple[str, str]], artifacts: Artifacts, features: Any, task: str,
    face: Face, environ: Mapping[str, str] | None = None,
) -> list[Answers]:  # fmt: skip
    """Each model's answers on ``features``; ``models`` holds (uri for messages, artifact URI)."""
    with tempfile.TemporaryDirectory(prefix="mlsteps-gate-") as name:
        work = Path(name)
        dirs, digests = [], []
        for index, (uri, artifact_uri) in enumerate(models):
            dest = work / "models" / str(index)
            dest.mkdir(parents=True)
            face.info(f"downloading {uri}")
            artifacts.download(artifact_uri, dest)
            dirs.append(str(dest))
            digests.append(tree_digest(dest))
        features.to_pickle(work / "features.pkl")
        request = {"task": task, "models": dirs}
        (work / "request.json").write_text(json.dumps(request), encoding="utf-8")
        (work / "home").mkdir()
        how = model_code.launch(
            [sys.executable, "-m", "steps.services.model_code.child", str(work)], work / "home",
            environ=environ,
        )  # fmt: skip
        alone = "" if how.isolated else f"; {model_code.WITHOUT_NAMESPACES}"
        face.info(
            f"scoring {' and '.join(u for u, _ in models)} on {len(features)} rows (in a "
            f"process without the job's credentials{alone})"
        )
        outcome = run_process(
            how.argv,
            env=how.env,
            cwd=str(work),
            timeout=None,
            on_line=lambda line: None,  # the model's own output: kept for a failure's message
        )
        results = _results(work, len(models), outcome.exit_code, outcome.log_tail)
        holes = {str(c): int(n) for c, n in features.isna().sum().items() if n}
        # A failure ends the child's list early: _answers raises at that entry.
        pairs = enumerate(zip(models, results, strict=False))
        found = [_answers(work, i, uri, entry, holes) for i, ((uri, _), entry) in pairs]
        return [dataclasses.replace(a, digest=d) for a, d in zip(found, digests, strict=True)]


def tree_digest(root: Path) -> str:
    """One digest of every file under root: its path and its bytes, in a fixed order."""
    sha = hashlib.sha256()
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        sha.update(path.relative_to(root).as_posix().encode() + b"\0")
        sha.update(hashlib.sha256(path.read_bytes()).digest())
    return "sha256:" + sha.hexdigest()


def _results(work: Path, count: int, code: int, tail: list[str]) -> list[dict[str, Any]]:
    try:
        results = json.loads((work / "result.json").read_text(encoding="utf-8"))
        if not isinstance(results, list) or not all(isinstance(r, dict) for r in results):
            raise ValueError("not a list of objects")
    except (OSError, ValueError) as exc:
        last = " | ".join(line[:200] for line in tail[-5:]) or "no output"
        raise StepFailed(
            f"the process scoring the models ended (exit {code}) without answers ({exc}); its "
            f"last output: {last}"
        ) from None
    for entry in results:
        if entry.get("status") != "ok":
            break
    else:
        if len(results) != count:
            raise StepFailed(f"the process scoring the models answered for {len(results)} of "
                             f"{count} models")  # fmt: skip
    return results


def _answers(
    work: Path, index: int, uri: str, entry: dict[str, Any], holes: Mapping[str, int]
) -> Answers:
    import numpy as np

    status = str(entry.get("status"))
    if status == "missing":
        missing, inputs = _names(entry.get("missing")), _names(entry.get("inputs"))
        raise ConfigError(
            f"--data: no column {', '.join(map(repr, missing))}, which the model {uri} "
            f"takes (its signature's inputs: {', '.join(inputs)}). Give evaluation data with "
            "every input column of the model."
        )
    if status != "ok":
        error = str(entry.get("error", ""))[:300]
        # Missing values the model cannot take are bad data (exit 2), not a broken model.
        taken = [c for c in _names(entry.get("inputs"), limit=10_000) if c in holes]
        if status in ("predict", "proba") and taken:
            raise ConfigError(
                "--data: missing values in "
                + ", ".join(f"column {c!r} ({holes[c]} rows)" for c in taken[:20])
                + f", which the model {uri} cannot predict on ({error}). Drop or fill those "
                "rows before the gate (or gate a model that takes missing values)."
            )
        why = _WHY.get(status, "the model {uri} could not be scored ({error}).")
        raise StepFailed(why.format(uri=uri, error=error))
    try:
        predicted = np.load(work / f"{index}-pred.npy", allow_pickle=False)
        proba = classes = None
        if entry.get("classes") is not None:
            classes = tuple(entry["classes"])
            if not all(isinstance(c, str | int | float | bool) for c in classes):
                raise ValueError("classes that are not numbers or text")
            proba = np.load(work / f"{index}-proba.npy", allow_pickle=False)
    except (OSError, ValueError) as exc:
        raise StepFailed(_WHY["answers"].format(uri=uri, error=str(exc)[:200])) from None
    if predicted.ndim == 2 and predicted.shape[1] == 1:
        predicted = predicted[:, 0]
    return Answers(predicted, proba, classes)


def _names(value: Any, limit: int = 20) -> list[str]:
    return [str(v)[:100] for v in value[:limit]] if isinstance(value, list) else []
