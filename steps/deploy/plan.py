"""What ``mlsteps deploy`` will do, as a ``Plan`` (``--dry-run`` prints it): the endpoint, the
candidate, each traffic step with its bake and the schedule's shortest and longest duration.
Light: it imports no heavy library and never the run (steps/deploy/run.py).
"""

from __future__ import annotations

from steps.core.plan import Plan
from steps.deploy.options import DeployConfig, Step
from steps.locks import duration

# Seconds a weight change, a health check or a removal may add to a step, for the worst case:
# the proxy's reload and drain (docker) or SageMaker's update (minutes).
OVERHEAD = {"docker": 30.0, "sagemaker": 900.0}


def bounds(config: DeployConfig) -> tuple[float, float]:
    """The rollout's shortest and longest duration in seconds: each judged step between its
    minimum and maximum bake, plus the target's overhead per traffic change."""
    judged = sum(1 for step in config.schedule if step.judged)
    overhead = OVERHEAD[config.target] * (len(config.schedule) + 2)
    return judged * config.min_bake, judged * config.max_bake + overhead


def describe_step(config: DeployConfig, index: int, step: Step) -> str:
    where = f"step {index + 1} of {len(config.schedule)}: "
    if not step.judged:
        return where + "the candidate takes all traffic; the old champion is removed once idle"
    share = (
        "a mirrored copy of every request to the candidate (clients get only the champion's "
        "answers)"
        if step.mirror
        else f"{step.weight}% of requests to the candidate"
    )
    return (
        f"{where}{share}; bake {duration(config.min_bake)} to {duration(config.max_bake)} and "
        f"at least {config.min_requests} candidate requests, judged every "
        f"{duration(config.look_every)}: roll back on harm, go on once every metric is within "
        f"its margin, at {duration(config.max_bake)} undecided: {config.on_inconclusive}"
    )


def describe_target(config: DeployConfig) -> str:
    if config.target == "docker":
        return (
            f"make sure endpoint {config.endpoint} serves: nginx on 127.0.0.1:{config.listen} "
            f"(state in "
            f"{config.state_dir}) in front of the champion's container; "
        )
    return f"make sure SageMaker endpoint {config.endpoint} serves its champion variant; "


def describe_metrics(config: DeployConfig) -> str:
    parts = [
        f"errors (5xx, timeouts, refused; safe below {config.error_margin:g}x the champion's, or "
        f"below {config.error_floor:.1%} outright)",
        "client errors (4xx, the same test: a model that raises answers 400)",
        f"latency (harm above +{config.latency_tolerance:.1%}, safe below "
        f"+{config.latency_margin:.1%})",
    ]
    if config.mirrors:
        parts.append(
            f"disagreement on mirrored requests (safe below {config.disagreement_tolerance:.1%}"
            f", predictions within {config.prediction_tolerance:g})"
        )
    return "judge " + ", ".join(parts) + f" with anytime-valid tests at alpha {config.alpha:g}"


def build_plan(config: DeployConfig) -> Plan:
    plan = Plan("deploy")
    low, high = bounds(config)
    weights = "→".join("mirror" if step.mirror else f"{step.weight}%" for step in config.schedule)
    plan.add(
        "rollout.schedule",
        f"{config.strategy} {weights}: between {duration(low)} and {duration(high)} (each "
        f"judged step between --min-bake and --max-bake, plus the {config.target} target's "
        "traffic changes)",
        strategy=config.strategy,
        steps=[{"weight": s.weight, "mirror": s.mirror} for s in config.schedule],
        min_seconds=low,
        max_seconds=high,
    )
    first = (
        f"start {config.champion_image} as its champion if nothing serves yet"
        if config.champion_image
        else "if nothing serves yet, the candidate becomes its first champion once it answers "
        "(nothing to compare with) and the rollout ends there"
    )
    plan.add("endpoint.ensure", describe_target(config) + first, endpoint=config.endpoint)
    plan.add(
        "candidate.start",
        f"start the candidate {config.image} beside the champion at 0% with data capture on, "
        "and wait for its health check",
        image=config.image,
    )
    plan.add("judge.metrics", describe_metrics(config))
    for index, step in enumerate(config.schedule):
        plan.add(
            "traffic.step",
            describe_step(config, index, step),
            weight=step.weight,
            mirror=step.mirror,
        )
    if config.strategy == "shadow":
        plan.add(
            "candidate.remove",
            "remove the candidate (shadow: it never served a client); the champion keeps all "
            "traffic",
        )
    plan.add(
        "report.write",
        f"write report.md, report.json and a PNG per metric to {config.report_dir}; on a "
        "failed judgement, an error, a signal or a timeout: all traffic to the champion first, "
        "then the candidate removed (exit 3 on a rollback)",
        report_dir=config.report_dir,
    )
    return plan
