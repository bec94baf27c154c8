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

SHORT = {"errors": "error-rate ratio", "latency": "latency change", "disagreement": "disagreement"}
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
        scale, unit = (60.0, "minutes") if looks and looks[-1]["time"] - start > 120 else (
            1.0, "seconds")  # fmt: skip
        xs, lows, highs, estimates, margin = [], [], [], [], None
        steps: list[tuple[float, str]] = []
        last_step = None
        for look in looks:
            at = (look["time"] - start) / scale
            if look.get("step") != last_step:
                last_step = look.get("step")
                steps.append((at, "mirror" if look.get("mirror") else f"{look.get('weight')}%"))
            for m in look.get("metrics", ()):
                if m["name"] != name:
                    continue
                margin = m.get("margin")
                low, high = m.get("lower"), m.get("upper")
                # An unbounded side (no errors yet: the ratio may be anything) is not drawn.
                if (
                    isinstance(low, (int, float))
                    and isinstance(high, (int, float))
                    and (math.isfinite(low) and math.isfinite(high))
                ):
                    xs.append(at)
                    lows.append(low)
                    highs.append(high)
                    estimate = m.get("estimate")
                    estimates.append(estimate if isinstance(estimate, (int, float)) else None)
        figure, axes = pyplot.subplots(figsize=(7, 3.2), dpi=100)
        if xs:
            axes.fill_between(xs, lows, highs, alpha=0.3, label="confidence sequence")
            axes.plot(xs, [e if e is not None else math.nan for e in estimates], linewidth=1,
                      label="estimate")  # fmt: skip
        if margin is not None and math.isfinite(margin):
            axes.axhline(margin, color="tab:red", linestyle="--", label="margin")
        for at, label in steps:
            axes.axvline(at, color="grey", linewidth=0.8)
            axes.annotate(f" {label}", (at, 0.02), xycoords=("data", "axes fraction"),
                          fontsize=8)  # fmt: skip
        axes.set_xlabel(f"{unit} since the first look")
        axes.set_ylabel(SHORT.get(name, name))
        axes.set_title(f"deploy: {UNITS.get(name, name)}", fontsize=10)
        if axes.get_legend_handles_labels()[0]:
            axes.legend(loc="upper left", fontsize=8)
        if not xs:
            axes.text(0.5, 0.5, "no interval yet (too few observations)", ha="center",
                      transform=axes.transAxes)  # fmt: skip
        figure.tight_layout()
        figure.savefig(path)
        pyplot.close(figure)

    return draw
