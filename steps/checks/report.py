"""The gate's report in its three forms: a markdown table (the CI summary), JSON (machines and
the digest promote records) and a PNG chart of the compared metrics with their intervals.

The JSON holds no time and no absolute path, so the same models, data and seed give the same
report and the same digest.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from steps.checks.thresholds import fmt, fmt_interval

ICONS = {"pass": "✅", "fail": "❌", "warn": "⚠️"}


def canonical_json(report: Mapping[str, Any]) -> str:
    # NaN and infinities are not JSON: they become null (the report's notes say which metric
    # was infinite), so every tool can read the report.
    return (
        json.dumps(_finite_or_none(report), indent=2, sort_keys=True, allow_nan=False, default=str)
        + "\n"
    )


def _finite_or_none(value: Any) -> Any:
    """A metric undefined on the rows (NaN) or infinite as null, at any depth."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, Mapping):
        return {k: _finite_or_none(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_finite_or_none(v) for v in value]
    return value


def infinite(metrics: Mapping[str, Mapping[str, Any]]) -> list[str]:
    """A note per metric value that is infinite (null in the JSON), e.g. a logged mape."""
    notes = []
    for name, found in metrics.items():
        for side in ("candidate", "champion"):
            value = found.get(side)
            if isinstance(value, float) and math.isinf(value):
                notes.append(f"{name}: the {side}'s value is {value} (null in report.json).")
    return notes


def digest(report: Mapping[str, Any]) -> str:
    return "sha256:" + hashlib.sha256(canonical_json(report).encode()).hexdigest()


def _cell(value: Any) -> str:
    if value is None:
        return "—"
    if isinstance(value, float):
        return fmt(value)
    return str(value).replace("|", "\\|").replace("\n", " ")


def _side(part: Mapping[str, Any] | None) -> str:
    if not part:
        return "none"
    return f"version {part['version']}" if part.get("version") else part.get("uri", "?")


def _compared(report: Mapping[str, Any]) -> str:
    candidate = f"candidate {_side(report['candidate'])}"
    if not report.get("champion"):
        return f"{candidate} (no champion compared)"
    return f"{candidate} against champion {_side(report['champion'])}"


# Failures first: a reader of a rejected gate's summary should not scroll past the passes.
_ORDER = {"fail": 0, "warn": 1, "pass": 2}


def markdown(report: Mapping[str, Any]) -> str:
    verdict = report["verdict"]
    head = "✅ pass" if verdict == "pass" else "❌ rejected"
    lines = [
        f"### mlsteps gate: {head}",
        "",
        f"Model **{report.get('model') or report['candidate']['uri']}**: {_compared(report)}; "
        f"{report['evaluation']['summary']}.",
        "",
    ]
    failed = [c for c in report["checks"] if c["status"] == "fail"]
    if failed:
        lines += ["Rejected by: " + "; ".join(reason(c) for c in failed) + ".", ""]
    if report["checks"]:
        lines += _checks_table(report)
        judged = {c["name"] for c in report["checks"] if c["kind"] in ("metric", "change")}
        shown = {k: v for k, v in report.get("metrics", {}).items() if k not in judged}
        if shown:  # metrics with no check (no threshold and no interval): still in the summary
            lines += ["", "Shown, not judged:", "", *_metrics_table(shown)]
    else:
        lines.append("No checks ran.")
        if report.get("metrics"):  # a gate that only shows the logged metrics
            lines += ["", *_metrics_table(report["metrics"])]
    if report.get("notes"):
        lines += ["", *(f"- {note}" for note in report["notes"])]
    lines += ["", f"Report digest `{digest(report)}`."]
    return "\n".join(lines) + "\n"


def _row(cells: Sequence[str]) -> str:
    return "| " + " | ".join(cells) + " |"


def _checks_table(report: Mapping[str, Any]) -> list[str]:
    confidence = report["evaluation"].get("confidence")
    interval = f"interval ({confidence * 100:g}%)" if confidence else "interval"
    columns = ["check", "candidate", "champion", "delta", interval, "threshold", "verdict"]
    lines = [_row(columns), _row(["---"] * len(columns))]
    checks = sorted(report["checks"], key=lambda c: _ORDER[c["status"]])  # stable: keeps order
    for c in checks:
        lines.append(
            _row(
                [
                    _cell(f"{c['kind']}: {c['name']}"),
                    _cell(c["candidate"]),
                    _cell(c["champion"]),
                    _cell(c["delta"]),
                    fmt_interval(tuple(c["interval"]) if c["interval"] else None),
                    _cell(c["threshold"]),
                    f"{ICONS[c['status']]} {c['status']}"
                    + (f" — {_cell(c['detail'])}" if c["detail"] else ""),
                ]
            )
        )
    if any(c["interval"] for c in checks):
        # The column mixes two kinds of interval; say which is which.
        lines += ["", "Interval: of Δ for change checks, of the candidate's value otherwise."]
    return lines


def _metrics_table(metrics: Mapping[str, Mapping[str, Any]]) -> list[str]:
    lines = [_row(["metric", "candidate", "champion", "delta"]), _row(["---"] * 4)]
    for name, m in metrics.items():
        candidate, champion = m.get("candidate"), m.get("champion")
        delta = None if candidate is None or champion is None else candidate - champion
        lines.append(_row([_cell(name), _cell(candidate), _cell(champion), _cell(delta)]))
    return lines


def reason(check: Mapping[str, Any]) -> str:
    """One failing check in words: the name, the number, the threshold."""
    if check["kind"] == "change":  # the detail holds the change (relative or not) or its interval
        return f"change {check['name']}: {check['detail']}, needs {check['threshold']}"
    detail = f" ({check['detail']})" if check["detail"] else ""
    return f"{check['kind']} {check['name']} = {_cell(check['candidate'])}, needs " + (
        f"{check['threshold']}{detail}"
    )


def chart(report: Mapping[str, Any], path: Path) -> bool:
    """Candidate and champion per compared metric, with their intervals. False when there is
    nothing to draw (no metric was compared) or no matplotlib to draw with."""
    metrics: Mapping[str, Mapping[str, Any]] = report.get("metrics", {})
    if not metrics:
        return False
    try:
        import matplotlib
    except ImportError:  # a gate on logged metrics runs without the gate extra
        return False
    matplotlib.use("Agg")  # files only: no display on CI machines
    import matplotlib.pyplot as plt

    names = list(metrics)
    fig, axes = plt.subplots(len(names), 1, figsize=(7, 1.1 + 0.9 * len(names)), squeeze=False)
    for ax, name in zip(axes[:, 0], names, strict=True):
        m = metrics[name]
        rows: list[tuple[str, float, Sequence[float] | None, str]] = [
            ("candidate", m["candidate"], m.get("candidate_interval"), "tab:blue")
        ]
        if m.get("champion") is not None:
            rows.append(("champion", m["champion"], m.get("champion_interval"), "tab:gray"))
        for y, (label, value, interval, color) in enumerate(rows):
            err = None
            if interval and all(v == v for v in interval):  # no NaN
                err = [[value - interval[0]], [interval[1] - value]]
            ax.errorbar([value], [y], xerr=err, fmt="o", color=color, capsize=4, label=label)
        ax.set_yticks(range(len(rows)), [r[0] for r in rows])
        ax.set_ylim(-0.7, len(rows) - 0.3)
        better = "higher" if m.get("higher_is_better", True) else "lower"
        ax.set_title(f"{name} ({better} is better)", fontsize=9, loc="left")
        ax.grid(axis="x", alpha=0.3)
    fig.suptitle(f"mlsteps gate: {report['verdict']}", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return True


def write(report: Mapping[str, Any], directory: Path) -> dict[str, Path]:
    """report.md, report.json and (when a metric was compared) report.png in ``directory``."""
    # Both texts first: a report that cannot be written leaves no directory for CI to archive.
    texts = {"json": canonical_json(report), "md": markdown(report)}
    directory.mkdir(parents=True, exist_ok=True)
    paths = {"md": directory / "report.md", "json": directory / "report.json"}
    for form, text in texts.items():
        paths[form].write_text(text, encoding="utf-8")
    png = directory / "report.png"
    if chart(report, png):
        paths["png"] = png
    else:
        png.unlink(missing_ok=True)  # a chart from an earlier run would not belong to this one
    return paths
