"""The rollout controller: drives a target through the plan's steps, asks the judge at every
look, and rolls back on harm, an error, a signal or an undecided bake. Imported only by a real
run (steps/deploy/command.py).

Every move is written to the state file (steps/deploy/state.py) before the next: a controller
killed with -9 and re-run with the same arguments picks up where it was, and the targets'
methods are idempotent, so repeating the step it was in has no second effect. A rollback always
moves all traffic to the champion before it removes the candidate.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable

from steps.core import signals
from steps.core.errors import GateRejected, MlstepsError, StepFailed
from steps.core.plan import Plan
from steps.core.runtime import Runtime, StepResult
from steps.deploy import report
from steps.deploy.judge import Judge, JudgeSettings, Look, MetricLook
from steps.deploy.observations import CANDIDATE, Observations
from steps.deploy.options import DeployConfig, Step
from steps.deploy.state import RolloutState, StateFile, rollout_key
from steps.deploy.targets.base import Endpoint, Target
from steps.deploy.tracking import ReportLog


def make_target(config: DeployConfig, say: Callable[[str], None]) -> Target:
    """The target of --target, built from the config; its module is imported only here."""
    if config.target == "docker":
        from steps.deploy.targets.docker import DockerTarget

        return DockerTarget.from_config(config, say)
    from steps.deploy.targets.sagemaker import SageMakerTarget

    return SageMakerTarget.from_config(config, say)


class RolledBack(Exception):
    """The judge (or --on-inconclusive) sent the candidate back; the reason is the message."""


class Held(Exception):
    """--on-inconclusive hold left the candidate at its share; the message says why."""


class DeployRun:
    def __init__(self, config: DeployConfig, runtime: Runtime, plan: Plan) -> None:
        self.config = config
        self.runtime = runtime
        self.face = runtime.get_face()
        self.plan = plan
        self.files = StateFile(config.state_dir)
        self.target = make_target(config, self.face.info)
        metrics = ("errors", "client-errors", "latency") + (
            ("disagreement",) if config.mirrors else ()
        )
        self.settings = JudgeSettings(
            alpha=config.alpha,
            error_margin=config.error_margin,
            error_rate_floor=config.error_floor,
            latency_margin=config.latency_margin,
            latency_tolerance=config.latency_tolerance,
            disagreement_tolerance=config.disagreement_tolerance,
            metrics=metrics,
            # A stratum spans at least one look (and 10 s, so each holds requests of both arms).
            bucket_seconds=max(10.0, config.look_every),
        )
        self.judge = Judge(self.settings)
        self.state = RolloutState(key=rollout_key(config))
        self.applied: list[str] = []
        self.report_path = ""  # report.md once written
        self.report_log = (
            ReportLog(config.tracking_uri, config.model_name, config.version)
            if config.tracking_uri and config.model_name and config.version
            else None
        )

    # ----- the rollout ----------------------------------------------------------------------
    def run(self) -> StepResult:
        if self.report_log is not None:
            self.report_log.check()  # before any traffic moves: exit 2 on a wrong --version
        with self.files.locked():
            previous = self.files.read()
            retried = (
                previous is not None
                and previous.phase == "done"
                and previous.decision in ("rolled-back", "passed")
                and self.config.retry
            )
            if previous is not None and previous.key == self.state.key and not retried:
                if previous.step >= len(self.config.schedule):  # edited: never skip a step
                    raise StepFailed(
                        f"the rollout state {self.files.path} is damaged (step "
                        f"{previous.step + 1} of a {len(self.config.schedule)}-step schedule). "
                        "Look at what the endpoint serves, then remove the file to start afresh."
                    )
                self.state = previous
                if previous.phase == "done" and previous.decision != "held":
                    again = (
                        " (--retry true rolls it out again)"
                        if previous.decision in ("rolled-back", "passed")
                        else ""
                    )
                    self.face.info(
                        f"this rollout was decided already: {previous.decision} "
                        f"({previous.reason}); nothing changes{again}"
                    )
                    return self._result(self.target.current())
                self._resume()
            elif previous is not None and previous.phase not in ("done",):
                self._abandon(previous)
            try:
                self._drive()
            except RolledBack as exc:
                return self._roll_back(str(exc))
            except Held as exc:
                raise GateRejected(str(exc), summary=self.summary()) from None
            except signals.Cancelled as exc:
                with signals.shielded(deliver=False):
                    self._roll_back(f"cancelled by {exc}", raise_rejected=False)
                raise
            except MlstepsError as exc:
                if self.state.phase in ("starting",) and not self.applied_candidate:
                    raise
                self._roll_back(f"the rollout failed: {exc.message}", raise_rejected=False)
                raise StepFailed(
                    f"{exc.message} The candidate was rolled back: all traffic is on the champion.",
                    summary=exc.summary,
                ) from None
            except Exception as exc:
                self._roll_back(f"the rollout failed: {exc}", raise_rejected=False)
                raise
        return self._result(self.target.current())

    @property
    def applied_candidate(self) -> bool:
        return "candidate.start" in self.applied

    def _resume(self) -> None:
        state = self.state
        if state.judge:
            try:
                self.judge = Judge.from_state(self.settings, state.judge)
            except ValueError as exc:
                raise StepFailed(
                    f"the rollout state {self.files.path} is damaged (the judge's part: {exc}). "
                    "Look at what the endpoint serves, then remove the file to start afresh."
                ) from None
        if state.decision == "held":
            # A re-run after --on-inconclusive hold: a new bake window for the same step.
            state.decision, state.reason, state.phase = "", "", "stepping"
            state.step_started = time.time()
        self.face.info(
            f"resuming the rollout to {self.config.endpoint}: {state.phase}, step "
            f"{state.step + 1} of {len(self.config.schedule)}"
        )

    def _abandon(self, other: RolloutState) -> None:
        """A different rollout to this endpoint was interrupted (its controller died): its
        candidate may still take traffic. Take it out before this rollout starts."""
        self.face.warning(
            "an earlier rollout to this endpoint did not finish (another image or schedule); "
            "rolling its candidate back before this one starts"
        )
        self.target.remove_candidate()
        other.phase, other.decision = "done", "rolled-back"
        other.reason = "abandoned: a later deploy to the endpoint rolled it back"
        self.files.write(other)

    def _save(self) -> None:
        self.files.write(self.state)

    def _drive(self) -> None:
        state, config = self.state, self.config
        if state.phase == "starting":
            if self.target.current() is None and not config.champion_image:
                self._first_champion()
                return
            self.target.ensure_champion(config.champion_image)
            self.applied.append("endpoint.ensure")
            state.started = time.time()
            self.target.start_candidate(config.image, capture=True)
            self.applied.append("candidate.start")
            state.phase, state.step, state.step_started = "stepping", 0, time.time()
            self._save()
        elif state.phase == "stepping":
            self.applied.append("candidate.start")  # it is there: the resume may roll it back
        if state.phase == "rolling-back":
            raise RolledBack(state.reason or "a rollback was under way when the controller died")
        if state.phase == "stepping":
            while state.step < len(config.schedule):
                step = config.schedule[state.step]
                if not step.judged:
                    break
                self._bake(step)
                if state.step + 1 < len(config.schedule):
                    state.step += 1
                    state.step_started = time.time()
                    state.step_base_requests = self._candidate_requests()
                    self._save()
                else:
                    break
            state.phase = "finishing"
            self._save()
        if state.phase == "finishing":
            self._finish()

    def _first_champion(self) -> None:
        config = self.config
        self.face.info(
            f"nothing serves at endpoint {config.endpoint} and no --champion-image was given: "
            f"{config.image} becomes its first champion (nothing to compare it with)"
        )
        self.target.ensure_champion(config.image)
        self.applied.append("endpoint.ensure")
        self._decide("rolled-out", "first deploy: the endpoint had no champion to compare with")

    def _bake(self, step: Step) -> None:
        config, state = self.config, self.state
        self.target.set_weights(step.weight, mirror=step.mirror)
        self.applied.append("traffic.step")
        self.face.info(self._weights_line(step))
        while True:
            time.sleep(config.look_every)
            observations, cursor = self.target.observe(state.cursor)
            observations = since(observations, state.started)
            self.judge.add(observations, step=state.step)
            look = self.judge.look()
            state.cursor, state.judge = cursor, self.judge.to_state()
            elapsed = time.time() - state.step_started
            requests = look.candidate_requests - state.step_base_requests
            state.looks.append(
                {
                    "time": time.time(),
                    "step": state.step,
                    "weight": step.weight,
                    "mirror": step.mirror,
                    "source_error": observations.source_error,
                    **look.to_json(),
                }
            )
            self._save()
            self.face.progress("deploy", self._look_line(step, look, elapsed, requests), final=True)
            if look.verdict == "rollback":
                raise RolledBack(look.reason)
            self._check_parts()
            if observations.source_error:
                self.face.warning(
                    f"the metrics source did not answer ({observations.source_error}): this "
                    "look is inconclusive"
                )
            elif (
                look.verdict == "continue"
                and elapsed >= config.min_bake
                and requests >= config.min_requests
            ):
                return
            if elapsed >= config.max_bake:
                self._undecided(look, requests)
                return

    def _check_parts(self) -> None:
        """A candidate that stopped running is rolled back now (the proxy sends its share to
        the champion, so its few failed tries leave the judge undecided until --max-bake); a
        dead proxy or champion is started again, as the next deploy would."""
        endpoint = self.target.current()
        down = endpoint.down.split(", ") if endpoint and endpoint.down else []
        if CANDIDATE in down:
            raise RolledBack(f"the candidate {self.config.image} stopped running")
        if down:
            self.face.warning(f"the endpoint's {endpoint and endpoint.down} is not running")
            self.target.ensure_champion(None)

    def _undecided(self, look: Look, requests: int) -> None:
        config = self.config
        why = (
            f"undecided after {elapsed_text(config.max_bake)} at step {self.state.step + 1} "
            f"({requests} candidate requests in the step): {look.reason}; {look.ruled_out()}"
        )
        if config.on_inconclusive == "rollback":
            raise RolledBack(why + " (--on-inconclusive rollback)")
        if config.on_inconclusive == "hold":
            self.state.decision, self.state.reason = "held", why + " (--on-inconclusive hold)"
            self._save()
            self._write_report()
            self.runtime.partial_outputs = self.outputs(self.target.current())
            raise Held(
                f"deploy held the candidate at its share: {self.state.reason}. Re-run the same "
                "deploy to bake it again, or roll it back by deploying the champion."
            )
        self.face.warning(f"{why}: going on (--on-inconclusive promote)")

    def _finish(self) -> None:
        config = self.config
        if config.strategy == "shadow":
            self.target.remove_candidate()
            self.applied.append("candidate.remove")
            self._decide("passed", "shadow: the candidate's answers were judged, never served")
            return
        self.target.set_weights(100)
        self.target.finish()
        self.applied.append("traffic.step")
        self._decide("rolled-out", "every judged step passed; the candidate serves all traffic")

    def _decide(self, decision: str, reason: str) -> None:
        self.state.phase, self.state.decision, self.state.reason = "done", decision, reason
        self._save()
        self._write_report()
        self.face.info(f"deploy: {decision}: {reason}")

    def _roll_back(self, reason: str, *, raise_rejected: bool = True) -> StepResult:
        """All traffic to the champion, then the candidate removed; the state says so at each
        stage, so a controller killed here finishes the rollback when re-run."""
        state = self.state
        # Shielded: a signal here (CI cancels a job whose deploy is rolling back) would stop it
        # with the harmful candidate still serving. It is raised once the champion serves all.
        with signals.shielded():
            state.phase, state.reason = "rolling-back", reason
            self._save()
            self.face.warning(f"rolling back: {reason}")
            self.target.remove_candidate()
            self.applied.append("candidate.remove")
            self._decide("rolled-back", reason)
            endpoint = self.target.current()
            self.runtime.partial_outputs = self.outputs(endpoint)
        if raise_rejected:
            raise GateRejected(
                f"deploy rolled the candidate back: {reason}. All traffic is on the champion.",
                summary=self.summary(),
            )
        return StepResult({})

    # ----- results --------------------------------------------------------------------------
    def _candidate_requests(self) -> int:
        return self.judge.look().candidate_requests

    def _write_report(self) -> None:
        self.report_path = report.write(self.config, self.state, self.face.warning)
        if self.report_log is not None:
            current = self.target.current()
            self.report_log.log(
                self.config.report_dir,
                self.state.decision,
                current.url if current else "",
                self.face.warning,
            )

    def summary(self) -> str:
        return report.markdown(self.config, self.state)

    def outputs(self, endpoint: Endpoint | None) -> dict[str, str]:
        weight = endpoint.candidate_weight if endpoint else 0
        weights = (
            f"champion={100 - weight},candidate={weight}"
            if endpoint and endpoint.candidate
            else "champion=100"
        )
        return {
            "decision": self.state.decision,
            "report": self.report_path,
            "endpoint": endpoint.url if endpoint else "",
            "variant-weights": weights,
        }

    def _result(self, endpoint: Endpoint | None) -> StepResult:
        outputs = self.outputs(endpoint)
        if self.state.decision in ("rolled-back", "held"):
            self.runtime.partial_outputs = outputs
            raise GateRejected(
                f"deploy: {self.state.decision}: {self.state.reason}", summary=self.summary()
            )
        return StepResult(outputs, summary=self.summary(), applied=tuple(self.applied))

    def _weights_line(self, step: Step) -> str:
        share = "mirror" if step.mirror else f"{step.weight}%"
        return f"step {self.state.step + 1} of {len(self.config.schedule)}: candidate at {share}"

    def _look_line(self, step: Step, look: Look, elapsed: float, requests: int) -> str:
        def bounds(m: MetricLook) -> str:
            # An interval open on a side (no errors yet: the ratio may be anything) says
            # nothing a person can read on one line: the verdict alone is shown then.
            if m.lower is None or m.upper is None or not math.isfinite(m.upper - m.lower):
                return ""
            return f" [{m.lower:.3g}, {m.upper:.3g}] margin {m.margin:.3g}"

        metrics = "; ".join(f"{m.name} {m.verdict}{bounds(m)}" for m in look.metrics)
        share = "mirror" if step.mirror else f"{step.weight}%"
        return (
            f"deploy: step {self.state.step + 1}/{len(self.config.schedule)} {share}, "
            f"{elapsed_text(elapsed)}, {requests} candidate requests: {look.verdict} ({metrics})"
        )


def since(observations: Observations, started: float) -> Observations:
    """What was observed from ``started`` on. A new rollout's cursor starts at the beginning
    of the target's logs, where earlier rollouts' candidates are logged at the same role."""
    return Observations(
        requests=[r for r in observations.requests if r.time >= started],
        pairs=[p for p in observations.pairs if p.time >= started],
        summaries=[s for s in observations.summaries if s.start + s.seconds > started],
        source_error=observations.source_error,
    )


def elapsed_text(seconds: float) -> str:
    minutes, secs = divmod(int(seconds), 60)
    return f"{minutes}m{secs:02d}s" if minutes else f"{secs}s"
