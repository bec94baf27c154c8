"""The version promote moves the alias to, and the gate's verdict on it, read so that the
training cannot forge it.

The training holds the same MLflow credentials as the gate: it can tag its run and its version
`mlsteps.gate.verdict=pass` and log a report of its own. So no tag is read for the verdict.
What the training cannot write is the gate step's report-digest output, which the runner hands
from the gate step to promote (--gate-report-digest). promote reads the gate's report from the
version's own run (its artifact_uri from MLflow, at the fixed path the gate logs it to — not
the report-uri tag, which the training could point anywhere), hashes its bytes (the gate writes
canonical JSON, so the file's sha256 is the digest), and checks that it is about this version.
The verdict and the champion compared against come from that report only.

Used by the run and by the dry run, which reads (never writes) to show what the run would find.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from steps.checks.verdict import REPORT_ARTIFACT_DIR
from steps.core.errors import ConfigError, GateRejected, StepFailed
from steps.core.plan import Plan
from steps.core.text import redact_url
from steps.promote.options import ANY_CHAMPION, NO_CHAMPION, PromoteConfig
from steps.services.mlflow.model_registry import Registry

REPORT_PATH = f"{REPORT_ARTIFACT_DIR}/report.json"
# A gate's report is kilobytes; anyone with the MLflow credentials can put gigabytes there.
REPORT_LIMIT = 16 * 1024 * 1024


def shown(version: str | None) -> str:
    return f"version {version}" if version else "no champion"


def as_version(expected: str | None) -> str | None:
    """The gate's "none" (no champion) as None, a version as itself."""
    return None if expected in (None, NO_CHAMPION) else expected


@dataclass(frozen=True)
class Candidate:
    version: str
    run_id: str | None
    verdict: str | None  # from the verified report; None when no digest was given
    champion: str | None  # the version the gate compared against, "none"; None without report
    digest: str | None  # the verified report's digest


def read_candidate(config: PromoteConfig, registry: Registry) -> Candidate:
    """The version (exit 2 when it does not exist) and, with --gate-report-digest, the
    verified gate report's verdict and champion. Exit 3 when the gate rejected it and
    --require-gate is on; exit 2 when the report is missing, altered or about another model."""
    version = config.version
    assert version is not None
    found = registry.version(version)
    run_id = found.get("run_id") or None
    digest = config.gate_report_digest
    if digest is None:  # --require-gate false (load_config refuses it otherwise)
        return Candidate(version, run_id, None, None, None)
    report = _verified_report(config, registry, found, digest)
    verdict = str(report.get("verdict"))
    if verdict != "pass" and config.require_gate:
        if verdict == "rejected":
            raise GateRejected(
                f"gate rejected version {version} of '{config.model_name}' (its report "
                f"{digest} says rejected): it is not promoted. The gate's report says why."
            )
        raise ConfigError(
            f"--gate-report-digest {digest}: the gate report of version {version} has verdict "
            f"'{verdict[:40]}', not pass. Gate the version again with `mlsteps gate`."
        )
    champion = report.get("champion")
    compared = NO_CHAMPION
    if isinstance(champion, Mapping) and champion.get("version"):
        compared = str(champion["version"])
    return Candidate(version, run_id, verdict, compared, digest)


def _verified_report(
    config: PromoteConfig, registry: Registry, found: Mapping[str, Any], digest: str
) -> dict[str, Any]:
    from steps.services.mlflow.model_source import Artifacts

    name, version = config.model_name, config.version
    run_id = found.get("run_id")
    refuse = f"--gate-report-digest {digest}: version {version} of '{name}' "
    again = f" Gate version {version} with `mlsteps gate` and hand its report-digest output on."
    if not run_id:
        raise ConfigError(
            refuse + "has no MLflow run, so it has no gate report (the gate logs it to the "
            "candidate's run)." + again
        )
    artifact_uri = registry.run_artifact_uri(run_id)
    body = Artifacts(config.tracking_uri).read(artifact_uri, REPORT_PATH, limit=REPORT_LIMIT)
    where = f"{redact_url(artifact_uri)}/{REPORT_PATH}"
    if body is None:
        raise ConfigError(refuse + f"was never gated: there is no {where}." + again)
    if len(body) > REPORT_LIMIT:
        raise ConfigError(
            refuse + f"has a {where} over {REPORT_LIMIT >> 20} MiB: not a report the gate "
            "wrote (they are kilobytes), so it was replaced since." + again
        )
    got = "sha256:" + hashlib.sha256(body).hexdigest()
    if got != digest:
        raise ConfigError(
            refuse + f"has a gate report ({where}) whose digest is {got}, not this one: it is "
            "not the report of the gate step that gave this digest (the wrong digest was handed "
            "on, or the report was replaced since — a later gate, or a write by someone else)."
            + again
        )
    try:
        report = json.loads(body, object_pairs_hook=_unique, parse_constant=_finite)
    except ValueError:
        report = None
    if not isinstance(report, dict):
        raise ConfigError(
            refuse + f"has no gate report in {where}: it is not the JSON the gate writes (no "
            "repeated keys, no NaN or Infinity)." + again
        )
    if problem := _not_about(report, name, version, found):
        raise ConfigError(
            refuse + f"is not what the gate report with this digest judged: {problem}." + again
        )
    return report


def _unique(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """An object whose keys are unique: with a key twice, which verdict is read would depend
    on the reader (json keeps the last, others the first). The gate never writes one."""
    keys = [key for key, _ in pairs]
    if len(set(keys)) != len(keys):
        raise ValueError("a key twice")
    return dict(pairs)


def _finite(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")  # the gate writes null for NaN, refuses infinity


def _not_about(
    report: Mapping[str, Any], name: str, version: str | None, found: Mapping[str, Any]
) -> str | None:
    """Why the report is not about this version of this model (None when it is)."""
    candidate = report.get("candidate")
    if not isinstance(candidate, Mapping):
        return "it names no candidate"
    model = report.get("model")
    if model is not None and model != name:
        return f"it is about model '{str(model)[:200]}'"
    if candidate.get("run_id") != found.get("run_id"):
        return (
            f"its candidate is of run {str(candidate.get('run_id'))[:40]}, the version's of run "
            f"{found.get('run_id')}"
        )
    judged = candidate.get("version")
    if judged is not None:
        if str(judged) != version:
            return f"it judged version {str(judged)[:40]}"
        uri = str(candidate.get("uri") or "")
        if model is None and not uri.startswith((f"models:/{name}/", f"models:/{name}@")):
            return f"it judged {uri[:200]}, not a version of '{name}'"
        return None
    # Gated before it was registered (train → gate → package): the gate judged the logged
    # model the version was registered from (MLflow 3: its id, which MLflow's REST answer
    # gives only in the version's source, models:/ID; MLflow 2: the same runs:/ URI).
    source = str(found.get("source") or "")
    model_id = found.get("model_id") or (
        source.removeprefix("models:/") if re.fullmatch(r"models:/m-[0-9a-f]{32}", source) else None
    )
    same_model = model_id is not None and candidate.get("model_id") == model_id
    same_uri = source.startswith("runs:/") and candidate.get("uri") == source
    if not (same_model or same_uri):
        return (
            f"it judged {str(candidate.get('uri'))[:200]}, not the logged model version "
            f"{version} was registered from"
        )
    return None


def read_for_dry_run(config: PromoteConfig, plan: Plan, warn: Callable[[str], None]) -> Plan:
    """The plan with what the run would find now: the version, the verified verdict and the
    champion. Reads only (no lock, no write). Bad input stops the dry run as it would the run
    (exit 2 or 3); an MLflow that cannot be reached leaves the plan as it is, with a warning."""
    registry = Registry(config.tracking_uri, config.model_name)
    try:
        candidate = read_candidate(config, registry)
        champion = registry.alias(config.alias)
    except StepFailed as exc:
        warn(f"dry run: could not read MLflow to show what the run would find: {exc.message}")
        return plan
    found = f"version {candidate.version} exists (run {candidate.run_id or 'none'})"
    if candidate.digest:
        found += (
            f"; its gate report checks out: verdict {candidate.verdict}, compared against "
            f"{shown(as_version(candidate.champion))}"
        )
    expected = config.expected_champion or candidate.champion
    if champion == candidate.version:
        outcome = "already the champion: nothing would move"
    elif expected == ANY_CHAMPION or as_version(expected) == champion:
        outcome = "as expected: the move would go ahead"
    else:
        outcome = f"not {shown(as_version(expected))}: the run would exit 1 (another promotion won)"
    now = {
        "mlflow.read-candidate": (found, {"verdict": candidate.verdict}),
        "alias.compare": (
            f"'{config.alias}' is {shown(champion)}, {outcome}",
            {"champion": champion},
        ),
    }
    actions = []
    for action in plan.actions:
        if action.kind in now:
            words, data = now[action.kind]
            action = dataclasses.replace(
                action, line=f"{action.line} [read now: {words}]", data={**action.data, **data}
            )
        actions.append(action)
    return Plan(plan.step, actions)
