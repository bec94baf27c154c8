"""Applying a promote or rollback plan (steps/promote/) against MLflow's REST API, under the
lock. Imported only by a real run: it loads requests (and hvac or boto3 for those locks).
The services it calls: the model registry (steps/services/mlflow/model_registry.py), GitHub's
approvals (steps/services/github.py), the lock (steps/promote/lock.py); the SageMaker model
registry (--sagemaker-model-package-group) through steps/promote/sync.py.
"""

from __future__ import annotations

import datetime
from collections.abc import Callable, Mapping

from steps.core import signals
from steps.core.errors import ConfigError, MlstepsError, StepFailed
from steps.core.plan import Action, Plan
from steps.core.runtime import Runtime, StepResult
from steps.promote.candidate import as_version, read_candidate, shown
from steps.promote.lock import make_lock
from steps.promote.options import ANY_CHAMPION, NO_CHAMPION, PromoteConfig
from steps.promote.plan import (
    EVIDENCE_TAGS,
    ROLLED_BACK_AT_TAG,
    ROLLED_BACK_TO_TAG,
    github_run,
    summary_line,
)
from steps.promote.sync import Decision, SageMakerSync
from steps.services.github import github_approvers
from steps.services.lineage import ci_run_url, git_commit
from steps.services.mlflow.model_registry import Registry


def _now() -> str:
    return datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")


class PromoteRun:
    def __init__(self, config: PromoteConfig, runtime: Runtime, *, rollback: bool) -> None:
        self.config = config
        self.runtime = runtime
        self.face = runtime.get_face()
        self.rollback = rollback
        name, version = config.model_name, config.version
        purpose = (
            f"mlsteps rollback of '{name}'"
            if rollback
            else f"mlsteps promote of version {version} of '{name}'"
        )
        if run_url := ci_run_url(runtime.environ):
            purpose += f" ({run_url})"
        self.lock = make_lock(config, runtime, purpose)
        # Every registry write (the aliases, the tags, their undo) is checked against the lease
        # right before it starts, and its request timeout bounded by what is left of it.
        self.registry = Registry(config.tracking_uri, name, self.lock.write_timeout)
        self.sync = (
            SageMakerSync(
                config.sagemaker_model_package_group,
                self.registry,
                say=self.face.info,
                warn=self.face.warning,
            )
            if config.sagemaker_model_package_group
            else None
        )
        self.expected: str | None = config.expected_champion  # else from the gate's report
        self.digest: str | None = None  # of the gate's report, verified
        self.approver: str | None = config.approved_by
        # What the aliases were when read under the lock, to put back on a failure.
        self.champion: str | None = None
        self.previous: str | None = None
        self.target: str | None = None  # the version the alias moves to
        self.moved = False  # an alias write was attempted
        self.tagged: list[tuple[str, str]] = []  # (version, key) this run wrote
        self.stop = False  # the alias is already where it should be
        self.applied: list[str] = []
        self.evidence: dict[str, str] = {}  # what promote tags on the version
        self.synced = False  # the SageMaker statuses are set: the run's last write is done

    # ----- the walk ---------------------------------------------------------------------------
    def run(self, plan: Plan) -> StepResult:
        try:
            plan.apply(self.handlers())
        except BaseException:
            with signals.shielded(deliver=False):
                if note := self.undo():
                    self.face.warning(note)
            raise
        finally:
            with signals.shielded(deliver=False):
                self._release()
        return StepResult(self.outputs(), self.summary(), applied=tuple(self.applied))

    def handlers(self) -> Mapping[str, Callable[[Action], None]]:
        def did(kind: str, work: Callable[[], None]) -> Callable[[Action], None]:
            def handler(action: Action) -> None:
                # Already the champion: no alias moves, but its SageMaker package is approved.
                if self.stop and kind not in ("lock.release", *SAGEMAKER):
                    return
                work()
                self.applied.append(kind)

            return handler

        return {
            "mlflow.read-candidate": did("mlflow.read-candidate", self.read_candidate),
            "mlflow.read-model": did("mlflow.read-model", self.read_model),
            "approval.check": did("approval.check", self.check_approval),
            "lock.acquire": did("lock.acquire", self.lock.acquire),
            "alias.compare": did("alias.compare", self.compare),
            "alias.set-previous": did("alias.set-previous", self.set_previous),
            "alias.set": did("alias.set", self.set_alias),
            "alias.delete-previous": did("alias.delete-previous", self.delete_previous),
            "version.tag": did("version.tag", self.tag),
            "sagemaker.package": did("sagemaker.package", self.sagemaker_package),
            "sagemaker.approve": did("sagemaker.approve", self.sagemaker_approve),
            "lock.release": did("lock.release", self._release),
        }

    # ----- promote ----------------------------------------------------------------------------
    def read_candidate(self) -> None:
        config = self.config
        candidate = read_candidate(config, self.registry)
        self.digest = candidate.digest
        compared = candidate.champion
        if self.expected is None:
            assert compared is not None, "load_config asks --expected-champion without a report"
            self.expected = compared
        elif compared is not None and compared != self.expected:
            self.face.warning(
                f"the gate compared version {config.version} against "
                f"{shown(as_version(compared))}, but --expected-champion is {self.expected}: the "
                f"move is conditional on {self.expected}, which the gate's verdict is not about."
            )

    def check_approval(self) -> None:
        if self.approver:
            return
        run = github_run(self.runtime.environ)
        token = self.config.github_token
        environment = self.config.approval_environment
        assert run is not None and token is not None and environment, "load_config checked"
        self.face.mask(token.reveal())
        approvers = github_approvers(*run, token, environment)
        if not approvers:
            _, repo, run_id = run
            raise ConfigError(
                f"--require-approval true, but nobody approved environment '{environment}' "
                f"(--approval-environment) in GitHub run {run_id} of {repo}: run this job in "
                "that environment with required reviewers (Settings → Environments → Required "
                "reviewers, and `environment: NAME` on the job; approvals of other environments "
                "do not count), or give --approved-by."
            )
        self.approver = ", ".join(approvers)

    def compare(self) -> None:
        config, alias = self.config, self.config.alias
        self.champion = self.registry.alias(alias)
        self.previous = self.registry.alias(config.previous_alias)
        if self.rollback:
            self._compare_rollback()
            return
        if self.champion == config.version:
            self.stop = True
            self.face.info(
                f"version {config.version} is already the {alias} of '{config.model_name}': "
                + ("the aliases stay; its SageMaker model package is checked." if self.sync
                   else "nothing to change.")
            )  # fmt: skip
            return
        expected = self.expected
        if expected == ANY_CHAMPION or as_version(expected) == self.champion:
            return
        name, version = config.model_name, config.version
        if config.expected_champion is None:
            against = f"the gate of version {version} compared against"
            fix = (
                f"re-run the gate of version {version} against {shown(self.champion)}, then "
                "promote it"
            )
        else:
            against = "--expected-champion says"
            fix = "check what changed, then give the right --expected-champion"
        raise StepFailed(
            f"{alias} of '{name}' is {shown(self.champion)}, not {shown(as_version(expected))} "
            f"that {against}: another promotion won; {fix}. Nothing was changed."
        )

    def set_previous(self) -> None:
        self.moved = True
        self.registry.set_alias(self.config.previous_alias, self.champion)

    def set_alias(self) -> None:
        self.moved = True
        self.target = self.config.version if not self.rollback else self.previous
        self.registry.set_alias(self.config.alias, self.target)

    def tag(self) -> None:
        if self.rollback:
            if not self.champion:  # the alias was unset: no version was demoted
                return
            assert self.target
            tags = {ROLLED_BACK_AT_TAG: _now(), ROLLED_BACK_TO_TAG: self.target}
            version = self.champion
        else:
            assert self.config.version
            version = self.config.version
            self.evidence = {
                "report-digest": self.digest or "",
                "ci-run-url": ci_run_url(self.runtime.environ),
                "commit": git_commit(self.runtime.environ),
                "approved-by": self.approver or "",
                "previous-version": self.champion or NO_CHAMPION,
                "at": _now(),
            }
            # Unknown evidence (no CI run, no approver) is left out rather than written empty.
            tags = {EVIDENCE_TAGS[k]: v for k, v in self.evidence.items() if v}
        for key, value in tags.items():
            self.tagged.append((version, key))
            self.registry.set_tag(version, key, value)

    # ----- SageMaker (--sagemaker-model-package-group) ----------------------------------------
    def sagemaker_package(self) -> None:
        """Under the lock, with the champion known, before any alias moves: find or register
        the package to approve, and find the one to reject. Bad input stops the run here."""
        assert self.sync is not None
        if self.rollback:
            assert self.previous, "compare stops a rollback with nothing to restore"
            self.sync.prepare(approve=self.previous, reject=self.champion)
        else:
            assert self.config.version
            replaced = None if self.stop else self.champion
            self.sync.prepare(approve=self.config.version, reject=replaced)

    def sagemaker_approve(self) -> None:
        assert self.sync is not None
        config, environ = self.config, self.runtime.environ
        kind = self.decision()
        try:
            self.sync.apply(
                Decision(
                    kind=kind, model=config.model_name, alias=config.alias,
                    version=(self.target if self.rollback else config.version) or "",
                    replaced=None if kind == "unchanged" else self.champion,
                    approver=self.approver,
                    report_digest=self.evidence.get("report-digest", ""),
                    ci_run_url=ci_run_url(environ), commit=git_commit(environ),
                    at=self.evidence.get("at") or _now(),
                )
            )  # fmt: skip
        except MlstepsError as exc:
            # Failing here, after the alias moved, means undoing the move: the registry and
            # SageMaker must not disagree about which version is approved.
            moved, cancelled = self.moved, None
            try:
                # A signal during the undo waits for its end, then ends the run (exit 130/143).
                with signals.shielded():
                    note = self.undo()
            except signals.Cancelled as signal:
                cancelled = signal
            if self.synced:  # the approval whose answer was lost was applied: all is done
                if cancelled is not None:
                    raise cancelled from None
                return
            said = (
                f"syncing the decision to SageMaker group {config.sagemaker_model_package_group} "
                f"failed{' after the alias moved' if moved else ''} ({exc.message.rstrip('.')}); "
                + (note or "no alias moved.")
            )
            if cancelled is not None:
                self.face.warning(said)
                raise cancelled from None
            raise StepFailed(said) from None
        self.synced = True

    # ----- rollback ---------------------------------------------------------------------------
    def read_model(self) -> None:
        self.registry.model()  # an unknown model is exit 2 before any lock is taken

    def _compare_rollback(self) -> None:
        config, name = self.config, self.config.model_name
        if config.expected_champion and self.champion != config.expected_champion:
            raise StepFailed(
                f"{config.alias} of '{name}' is {shown(self.champion)}, not version "
                f"{config.expected_champion} (--expected-champion): it moved since; check what "
                "changed before rolling back. Nothing was changed."
            )
        if self.previous is None:
            raise ConfigError(
                f"nothing to roll back: '{name}' has no '{config.previous_alias}' alias "
                "(rollback undoes one promotion; the last one was rolled back already, or "
                f"there was none). To choose the {config.alias} yourself: mlsteps promote "
                f"--version N --require-gate false --expected-champion "
                f"{self.champion or NO_CHAMPION}."
            )

    def delete_previous(self) -> None:
        self.registry.set_alias(self.config.previous_alias, None)

    # ----- endings ----------------------------------------------------------------------------
    def undo(self) -> str | None:
        """Put the SageMaker statuses and the aliases back as they were when read under the
        lock, remove our tags; what became of the aliases, in words (None: nothing moved).
        A model package this run registered stays, PendingManualApproval and recorded on its
        version: it approves nothing, and the next run reuses it. Once the champion's package
        is Approved (the last write), the run is complete: nothing is undone."""
        if self.sync is not None:
            if self.synced or self.sync.landed():
                self.synced = True
                return (
                    f"the {self.decision()} run was complete when it stopped: nothing is undone "
                    f"('{self.config.alias}' and SageMaker's Approved package agree)."
                )
            self.sync.undo()
        if not self.moved:
            return None
        self.moved = False
        config = self.config
        try:
            self.registry.set_alias(config.alias, self.champion)
            self.registry.set_alias(config.previous_alias, self.previous)
            for version, key in self.tagged:
                self.registry.delete_tag(version, key)
        except MlstepsError as exc:
            return (
                f"could not put the aliases of '{config.model_name}' back ({exc.message}). Before "
                f"this run '{config.alias}' was {shown(self.champion)} and "
                f"'{config.previous_alias}' was {shown(self.previous)}: set them so again, "
                "e.g. with mlflow's MlflowClient.set_registered_model_alias."
            )
        self.tagged.clear()
        return (
            f"put the aliases of '{config.model_name}' back: '{config.alias}' is "
            f"{shown(self.champion)} again."
        )

    def _release(self) -> None:
        try:
            self.lock.release()
        except MlstepsError as exc:
            # The lock expires by itself; what the run did (or did not) stands.
            self.face.warning(
                f"could not release the lock {self.lock.where}: {exc.message} It expires by "
                f"itself after --lock-ttl ({self.config.lock_ttl:g}s)."
            )

    def decision(self) -> str:
        return "rolled-back" if self.rollback else "unchanged" if self.stop else "promoted"

    def outputs(self) -> dict[str, str]:
        if self.rollback:
            champion, previous = self.target, self.champion
        else:
            champion, previous = self.config.version, None if self.stop else self.champion
        arn = self.sync.approve_arn if self.sync is not None and self.synced else None
        return {
            "champion-version": champion or "",
            "previous-version": previous or "",
            "decision": self.decision(),
            "sagemaker-model-package-arn": arn or "",
        }

    def summary(self) -> str:
        name = self.config.model_name
        rejected = self.sync.rejected if self.sync is not None else []
        line = summary_line(self.config, self.outputs(), self.approver, rejected)
        self.face.info(f"{name}: {line}")
        return f"### mlsteps {'rollback' if self.rollback else 'promote'}: {name}\n\n{line}\n"


SAGEMAKER = ("sagemaker.package", "sagemaker.approve")
