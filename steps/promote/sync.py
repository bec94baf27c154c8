"""What promote and rollback do in the SageMaker model registry (--sagemaker-model-package-group):
the approval status of the versions' model packages follows the champion alias.

An MLflow model version maps to one model package of the group through its tag
mlsteps.sagemaker.model-package-arn. A version with no package is registered once, as
PendingManualApproval (it approves nothing yet), from the serving image `mlsteps package`
tagged on it; a later run reuses the package. Under the lock, once the champion is known and
before any alias moves, the packages are found (or registered); after the move, the replaced
(promote) or demoted (rollback) version's package, when Approved, is set to Rejected, and then
the champion's to Approved: one Approved package per champion, so that a consumer taking the
group's newest Approved package serves MLflow's champion.

What AWS allows: UpdateModelPackage takes Approved, Rejected or PendingManualApproval (SageMaker
API Reference, UpdateModelPackage) and writes down no transition rules; the developer guide's
"Update the Approval Status of a Model" (awsdocs/amazon-sagemaker-developer-guide,
doc_source/model-registry-approve.md) lists the valid transitions as PendingManualApproval to
Approved or Rejected, Rejected to Approved, and Approved to Rejected ("initiates CI/CD to deploy
the latest model version with an Approved status": the move this design makes). None leads back
to PendingManualApproval, so no undo here needs one: the approval of the champion's package is
the last write of a run (a package this run registered was never approved and stays
PendingManualApproval); what an undo puts back is only ever Approved (a package this run set
to Rejected, or re-approved with a new description).

Imported by a real run only (steps/promote/run.py); boto3 loads in steps/services/sagemaker.py.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

from steps.core.errors import ConfigError, MlstepsError, StepFailed
from steps.core.text import redact_url
from steps.promote.plan import EVIDENCE_TAGS
from steps.promote.plan import SAGEMAKER_ARN_TAG as ARN_TAG
from steps.services.mlflow.model_registry import Registry
from steps.services.sagemaker import (
    IMAGE_TAG,
    WITHOUT,
    Package,
    SageMaker,
    one_line,
    registered_for,
)

DIGEST_TAG = "mlsteps.image.digest"


def _joined(parts: list[str]) -> str:
    return one_line(", ".join(p for p in parts if p))


def _ci(ci_run_url: str, commit: str, at: str) -> list[str]:
    return [
        f"CI run {redact_url(ci_run_url)}" if ci_run_url else "",
        f"commit {commit}" if commit else "",
        f"at {at}",
    ]


def promotion_description(
    *, model: str, alias: str, version: str, previous: str | None, approver: str | None,
    report_digest: str, ci_run_url: str, commit: str, at: str,
) -> str:  # fmt: skip
    """The ApprovalDescription of a promoted version: the evidence promote tags on it (no
    token or credential ever is; a URL's userinfo is hidden)."""
    return _joined(
        [
            f"promoted to @{alias} of MLflow model {model} version {version} "
            + (f"(previous champion version {previous})" if previous else "(no previous champion)"),
            f"approved by {approver}" if approver else "",
            f"gate report {report_digest}" if report_digest else "",
            *_ci(ci_run_url, commit, at),
        ]
    )


def replaced_description(
    *, model: str, alias: str, version: str, previous: str, approver: str | None,
    ci_run_url: str, commit: str, at: str,
) -> str:  # fmt: skip
    """The ApprovalDescription of the champion a promotion replaced (Rejected)."""
    return _joined(
        [
            f"replaced as @{alias} of MLflow model {model} by version {version} (was version "
            f"{previous})",
            f"approved by {approver}" if approver else "",
            *_ci(ci_run_url, commit, at),
        ]
    )


def standing_description(
    *, model: str, alias: str, version: str, tags: Mapping[str, str], ci_run_url: str,
    commit: str, at: str,
) -> str:  # fmt: skip
    """The ApprovalDescription of a version that already was the champion when its package was
    approved (the sync turned on later): the evidence its promotion tagged on it, if any."""
    evidence = {key: tags.get(tag, "") for key, tag in EVIDENCE_TAGS.items()}
    return _joined(
        [
            f"@{alias} of MLflow model {model} is version {version} (already when its package "
            "was approved)",
            f"promoted at {evidence['at']}" if evidence["at"] else "",
            f"approved by {evidence['approved-by']}" if evidence["approved-by"] else "",
            f"gate report {evidence['report-digest']}" if evidence["report-digest"] else "",
            *_ci(ci_run_url, commit, at),
        ]
    )


def rollback_descriptions(
    *, model: str, alias: str, restored: str, demoted: str | None, ci_run_url: str,
    commit: str, at: str,
) -> tuple[str, str]:  # fmt: skip
    """The ApprovalDescriptions of a rollback: (the demoted version's, the restored one's);
    demoted is None when the alias was unset (then nothing is rejected)."""
    ci = _ci(ci_run_url, commit, at)
    return (
        _joined(
            [
                f"rolled back from @{alias} of MLflow model {model}: version {demoted} "
                f"replaced by version {restored}",
                *ci,
            ]
        ),
        _joined(
            [
                f"restored to @{alias} of MLflow model {model} version {restored} by a rollback"
                + (f" from version {demoted}" if demoted else ""),
                *ci,
            ]
        ),
    )


@dataclass(frozen=True, kw_only=True)
class Decision:
    """What a run decided, for the packages' approval descriptions."""

    kind: str  # promoted, unchanged or rolled-back (the decision output)
    model: str
    alias: str
    version: str  # the champion now: promoted, restored, or the one that already was
    replaced: str | None  # the champion before: replaced (promote) or demoted (rollback)
    approver: str | None = None
    report_digest: str = ""
    ci_run_url: str = ""
    commit: str = ""
    at: str


class SageMakerSync:
    """The packages of one run: found or registered before the alias moves (bad input stops
    the run there), their statuses set after it, put back on a failure."""

    def __init__(
        self, group: str, mlflow: Registry, say: Callable[[str], None], warn: Callable[[str], None]
    ) -> None:
        self.sagemaker = SageMaker(group)
        self.group = group
        self.mlflow = mlflow
        self.say = say
        self.warn = warn
        self.approve_arn: str | None = None  # the champion's package
        self.reject_arn: str | None = None  # the replaced or demoted version's, in the group
        self.rejected: list[str] = []  # set to Rejected by this run
        self.changed: list[Package] = []  # Approved before this run changed them, to put back
        self.approving: tuple[str, str] | None = None  # (arn, description) while in flight

    # ----- before the move --------------------------------------------------------------------
    def prepare(self, approve: str, reject: str | None) -> None:
        """Find the package of the version to approve (registered now if it has none) and of
        the one to reject (if it has one). Every check comes before the one write (the
        package, then its ARN on the version). The tags are read here, under the lock: a run
        that waited for it sees the package the run before registered."""
        self.sagemaker.check_group()
        if reject:
            self.reject_arn = self.existing(reject)
        self.approve_arn = self.find_or_register(approve)

    def find_or_register(self, version: str) -> str:
        model, group = self.mlflow.name, self.group
        tags = self.tags_of(version)
        arn = tags.get(ARN_TAG)
        if arn:
            found = self.sagemaker.package(arn)
            if found is None:
                raise ConfigError(
                    f"--sagemaker-model-package-group {group}: version {version} of '{model}' "
                    f"names model package {arn} (tag {ARN_TAG}), which SageMaker does not have. "
                    f"Remove the tag from the version (MlflowClient.delete_model_version_tag) "
                    "and mlsteps registers the version again."
                )
            if found.group != group:
                raise ConfigError(
                    f"--sagemaker-model-package-group {group}: version {version} of '{model}' "
                    f"is registered in group {found.group} ({arn}, tag {ARN_TAG}), not in "
                    f"{group}. Give --sagemaker-model-package-group {found.group}, or remove "
                    "the tag to register the version in this group."
                )
            if not found.made_for.startswith(registered_for(model, version)):
                raise ConfigError(
                    f"--sagemaker-model-package-group {group}: version {version} of '{model}' "
                    f"names model package {arn} (tag {ARN_TAG}), which was not registered for "
                    f"it (its description: '{one_line(found.made_for, 200)}'): the tag was "
                    "rewritten, and approving that package would serve another model. Remove "
                    "the tag from the version (MlflowClient.delete_model_version_tag) and "
                    "mlsteps registers the version again."
                )
            return arn
        image = tags.get(IMAGE_TAG)
        if not image:
            raise ConfigError(
                f"--sagemaker-model-package-group {group}: version {version} of '{model}' has "
                f"no model package in SageMaker (tag {ARN_TAG}) and no serving image to register "
                f"one from (tag {IMAGE_TAG}). Package it first with `mlsteps package`, or "
                f"{WITHOUT}."
            )
        arn = self.sagemaker.register(model, version, image, tags.get(DIGEST_TAG))
        # Kept on every way out: the package approves nothing yet, and the next run reuses it.
        self.mlflow.set_tag(version, ARN_TAG, arn)
        self.say(f"registered version {version} of '{model}' in SageMaker as {arn}")
        return arn

    def existing(self, version: str) -> str | None:
        """The version's model package in this group when it has one (a version to reject need
        not); a package SageMaker lost or one in another group is named and left alone."""
        arn = self.tags_of(version).get(ARN_TAG)
        if not arn:
            return None
        found = self.sagemaker.package(arn)
        if found is None:
            self.warn(
                f"version {version} of '{self.mlflow.name}' names model package {arn} (tag "
                f"{ARN_TAG}), which SageMaker does not have: it is not rejected."
            )
            return None
        if found.group != self.group:
            self.warn(
                f"version {version} of '{self.mlflow.name}' has model package {arn}, in group "
                f"{found.group}, not {self.group}: it is left as it is."
            )
            return None
        if not found.made_for.startswith(registered_for(self.mlflow.name, version)):
            self.warn(
                f"version {version} of '{self.mlflow.name}' names model package {arn} (tag "
                f"{ARN_TAG}), which was not registered for it: it is left as it is."
            )
            return None
        return arn

    def tags_of(self, version: str) -> dict[str, str]:
        return self.mlflow.tags_of(self.mlflow.version(version))

    # ----- after the move ---------------------------------------------------------------------
    def apply(self, decision: Decision) -> None:
        """Reject the package to reject (only an Approved one: nothing else is served), then
        approve the champion's, the last write. Unchanged: a package already Approved is left
        as it is."""
        assert self.approve_arn
        where = {"model": decision.model, "alias": decision.alias}
        ci = {"ci_run_url": decision.ci_run_url, "commit": decision.commit, "at": decision.at}
        version, replaced, approver = decision.version, decision.replaced, decision.approver
        if decision.kind == "rolled-back":
            rejected, approved = rollback_descriptions(
                **where, **ci, restored=version, demoted=replaced
            )
        elif decision.kind == "unchanged":
            tags = self.tags_of(version)
            rejected, approved = "", standing_description(**where, **ci, version=version, tags=tags)
        else:
            rejected = replaced_description(
                **where, **ci, version=version, previous=replaced or "", approver=approver
            )
            approved = promotion_description(
                **where, **ci, version=version, previous=replaced, approver=approver,
                report_digest=decision.report_digest,
            )  # fmt: skip
        if self.reject_arn:
            self.reject(self.reject_arn, rejected)
        self.approve(self.approve_arn, approved, keep=decision.kind == "unchanged")

    def _read(self, arn: str) -> Package:
        found = self.sagemaker.package(arn)
        if found is None:
            raise StepFailed(f"model package {arn} is gone from SageMaker: deleted meanwhile.")
        return found

    def reject(self, arn: str, description: str) -> None:
        before = self._read(arn)
        if before.status != "Approved":
            self.say(f"SageMaker model package {arn} is {before.status}: left as it is")
            return
        self.changed.append(before)  # before the call: a lost answer may still have applied
        self.sagemaker.set_status(arn, "Rejected", description)
        self.rejected.append(arn)
        self.say(f"SageMaker model package {arn} is Rejected")

    def approve(self, arn: str, description: str, *, keep: bool = False) -> None:
        before = self._read(arn)
        if before.status == "Approved":
            if keep:
                self.say(f"SageMaker model package {arn} is Approved")
                return
            self.changed.append(before)  # its description is put back on a failure
        self.approving = (arn, one_line(description))
        try:
            self.sagemaker.set_status(arn, "Approved", description)
        except MlstepsError:
            if not self.landed():
                raise
        self.approving = None
        self.say(f"SageMaker model package {arn} is Approved")

    def landed(self) -> bool:
        """Whether the approval in flight when a call failed (or a signal came) was applied
        all the same: then the run's last write is done and nothing is to be undone."""
        if self.approving is None:
            return False
        arn, description = self.approving
        try:
            found = self.sagemaker.package(arn)
        except MlstepsError:
            return False
        if found is not None and (found.status, found.description) == ("Approved", description):
            self.approving = None
            return True
        self.approving = None  # it was not applied: nothing uncertain is left
        return False

    def undo(self) -> None:
        """Put back what this run set, newest first: only Approved statuses (see the module's
        docstring); warn for each that cannot be, and for an approval of unknown fate."""
        if self.approving is not None:
            arn, _ = self.approving
            self.approving = None
            self.warn(
                f"the answer to approving SageMaker model package {arn} was lost, and its status "
                "cannot be read: if it is Approved, run this step again to finish it, or set "
                "the package to Rejected."
            )
        while self.changed:
            before = self.changed.pop()
            try:
                self.sagemaker.set_status(before.arn, before.status, before.description)
            except MlstepsError as exc:
                self.warn(
                    f"could not put SageMaker model package {before.arn} back to "
                    f"{before.status} ({exc.message}): set its approval status so again."
                )
            else:
                if before.arn in self.rejected:
                    self.rejected.remove(before.arn)
