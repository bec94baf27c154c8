"""deploy's report: markdown (the CI summary too), JSON, and a PNG per metric showing its
confidence interval over time against its margin, the traffic steps marked.

Built from the rollout state alone (steps/deploy/state.py), so a resumed or re-run rollout
reports the same looks. The charts need matplotlib (pip extra `deploy`); without it the
markdown and JSON are written and one warning says how to get the charts.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from steps.deploy.options import DeployConfig
from steps.deploy.state import RolloutState

UNITS = {
    "errors": "error-rate ratio (candidate / champion)",
    "latency": "latency change (candidate vs champion, geometric mean)",
    "disagreement": "share of mirrored requests answered differently",
}


def _number(value: Any) -> str:
    if not isinstance(value, (int, float)) or isinstance(value, bool) or not math.isfinite(value):
        return "–"
    return f"{value:.4g}"


def metric_rows(looks: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """Each metric's last look: what the report's table shows."""
    last: dict[str, dict[str, Any]] = {}
    for look in looks:
        for metric in look.get("metrics", ()):
            last[metric["name"]] = metric
    return list(last.values())


def markdown(config: DeployConfig, state: RolloutState) -> str:
    steps = " → ".join("mirror" if s.mirror else f"{s.weight}%" for s in config.schedule)
    lines = [
        f"## mlsteps deploy: {state.decision or state.phase}",
        "",
        f"- candidate: `{config.image}` on endpoint `{config.endpoint}` ({config.target})",
        f"- strategy: {config.strategy} ({steps}); looks: {len(state.looks)}",
        f"- reason: {state.reason or '–'}",
        "",
    ]
    rows = metric_rows(state.looks)
    if rows:
        lines += [
            "| metric | verdict | estimate | interval | margin | candidate n | champion n |",
            "| --- | --- | --- | --- | --- | --- | --- |",
        ]
        for m in rows:
            lines.append(
                f"| {m['name']} | {m['verdict']} | {_number(m.get('estimate'))} | "
                f"[{_number(m.get('lower'))}, {_number(m.get('upper'))}] | "
                f"{_number(m.get('margin'))} | {m.get('candidate_n', 0)} | "
                f"{m.get('champion_n', 0)} |"
            )
        lines.append("")
        lines += [f"- {m['reason']}" for m in rows if m.get("reason")]
        lines.append("")
    lines.append(
        f"Intervals are anytime-valid at alpha {config.alpha:g}: they hold at every look at "
        "once, so looking often does not raise the false-rollback rate."
    )
    return "\n".join(lines) + "\n"


def write(config: DeployConfig, state: RolloutState, warn: Callable[[str], None]) -> str:
    """Write report.md, report.json and the PNGs to --report-dir; returns report.md's path."""
    directory = Path(config.report_dir)
    directory.mkdir(parents=True, exist_ok=True)
    document = {
        "decision": state.decision,
        "reason": state.reason,
        "endpoint": config.endpoint,
        "target": config.target,
        "candidate": config.image,
        "strategy": config.strategy,
        "steps": [{"weight": s.weight, "mirror": s.mirror} for s in config.schedule],
        "alpha": config.alpha,
        "looks": state.looks,
    }
    (directory / "report.json").write_text(json.dumps(document, indent=2) + "\n")
    md = directory / "report.md"
    md.write_text(markdown(config, state))
    names = [m["name"] for m in metric_rows(state.looks)]
    if names:
        try:
            draw = _charts()
        except ImportError:
            warn(
                "the report has no charts: matplotlib is not installed (pip install "
                "'mlsteps[deploy]')"
            )
        else:
            for name in names:
                draw(name, state.looks, directory / f"{name}.png")
    return str(md)


def _charts() -> Callable[[str, Sequence[dict[str, Any]], Path], None]:
    import matplotlib

    matplotlib.use("Agg")  # no display: CI runners have none
    from matplotlib import pyplot

    def draw(name: str, looks: Sequence[dict[str, Any]], path: Path) -> None:
        start = looks[0]["time"] if looks else 0.0
        xs, lows, highs, margin = [], [], [], None
        steps: list[tuple[float, str]] = []
        last_step = None
        for look in looks:
            minute = (look["time"] - start) / 60
            if look.get("step") != last_step:
                last_step = look.get("step")
                steps.append((minute, "mirror" if look.get("mirror") else f"{look.get('weight')}%"))
            for m in look.get("metrics", ()):
                if m["name"] == name and m.get("lower") is not None and m.get("upper") is not None:
                    xs.append(minute)
                    lows.append(m["lower"])
                    highs.append(m["upper"])
                    margin = m.get("margin")
        figure, axes = pyplot.subplots(figsize=(7, 3.2), dpi=100)
        if xs:
            axes.fill_between(xs, lows, highs, alpha=0.3, label="confidence sequence")
        if margin is not None:
            axes.axhline(margin, color="tab:red", linestyle="--", label="margin")
        for minute, label in steps:
            axes.axvline(minute, color="grey", linewidth=0.8)
            axes.annotate(
                label, (minute, 1), xycoords=("data", "axes fraction"), fontsize=8, va="top"
            )
        axes.set_xlabel("minutes since the first look")
        axes.set_ylabel(UNITS.get(name, name))
        axes.set_title(f"deploy: {name}")
        axes.legend(loc="upper right", fontsize=8)
        figure.tight_layout()
        figure.savefig(path)
        pyplot.close(figure)

    return draw
