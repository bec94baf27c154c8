"""Syncing promote's and rollback's decision to the SageMaker model registry
(--sagemaker-model-package-group): the approval status of the versions' model packages.

An MLflow model version maps to one model package of the group through its tag
mlsteps.sagemaker.model-package-arn. A version with no package is registered once, as
PendingManualApproval (it approves nothing yet), from the serving image `mlsteps package`
tagged on it; a later promote of that version reuses the package. The decision itself
(Approved, Rejected) is written after the alias moved; the statuses this run changed are
recorded, so that a failure puts them back with the aliases (steps/promote_run.py).

Imported by a real run only; boto3 is imported inside the functions that call AWS. The
endpoint, region and credentials come from boto3's usual chain: AWS_ENDPOINT_URL(_SAGEMAKER),
AWS_REGION or AWS_DEFAULT_REGION, AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, AWS_PROFILE, a role.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from steps.config import redact_url
from steps.errors import ConfigError, StepFailed
from steps.promote import SAGEMAKER_ARN_TAG as ARN_TAG
from steps.promote_services import Registry

IMAGE_TAG = "mlsteps.image.tag"  # written by `mlsteps package` (steps/model_versions.py)
DIGEST_TAG = "mlsteps.image.digest"
CONTENT_TYPES = ["application/json"]  # what the mlsteps model server takes and answers
DESCRIPTION_LIMIT = 1024  # SageMaker's limit on ApprovalDescription and ModelPackageDescription
# What SageMaker answers when a group or package does not exist (moto and AWS both say
# ValidationException "... does not exist" / "not found"; some APIs say ResourceNotFound).
ABSENT = ("ValidationException", "ResourceNotFound", "ResourceNotFoundException")
REFUSED_CREDENTIALS = (
    "AccessDeniedException", "UnrecognizedClientException", "InvalidClientTokenId",
    "ExpiredTokenException", "InvalidSignatureException",
)  # fmt: skip
PERMISSIONS = (
    "sagemaker:DescribeModelPackageGroup, DescribeModelPackage, CreateModelPackage and "
    "UpdateModelPackage on the group"
)


@dataclass(frozen=True)
class Package:
    arn: str
    group: str
    status: str  # ModelApprovalStatus
    description: str  # ApprovalDescription, "" when none


class _Absent(Exception):
    """SageMaker says the thing asked about does not exist."""


def one_line(text: str, limit: int = DESCRIPTION_LIMIT) -> str:
    """A description SageMaker takes: one line (its pattern is .*), at most limit characters."""
    text = re.sub(r"\s+", " ", text).strip()
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _joined(parts: list[str]) -> str:
    return one_line(", ".join(p for p in parts if p))


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
            f"CI run {redact_url(ci_run_url)}" if ci_run_url else "",
            f"commit {commit}" if commit else "",
            f"at {at}",
        ]
    )


def rollback_descriptions(
    *, model: str, alias: str, restored: str, demoted: str | None, ci_run_url: str,
    commit: str, at: str,
) -> tuple[str, str]:  # fmt: skip
    """The ApprovalDescriptions of a rollback: (the demoted version's, the restored one's);
    demoted is None when the alias was unset (then nothing is rejected)."""
    ci = [
        f"CI run {redact_url(ci_run_url)}" if ci_run_url else "",
        f"commit {commit}" if commit else "",
        f"at {at}",
    ]
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


class SageMaker:
    """The four model-registry calls, each failure told in the user's terms."""

    def __init__(self, group: str) -> None:
        self.group = group
        self._client: Any = None

    def client(self) -> Any:
        if self._client is None:
            import boto3
            from botocore.config import Config
            from botocore.exceptions import NoRegionError

            config = Config(
                connect_timeout=10, read_timeout=20, retries={"mode": "standard", "max_attempts": 3}
            )
            try:
                self._client = boto3.client("sagemaker", config=config)
            except NoRegionError:
                raise ConfigError(
                    f"--sagemaker-model-package-group {self.group}: no AWS region is set. Set "
                    "AWS_REGION (or AWS_DEFAULT_REGION, or a region in the AWS profile) to the "
                    "region of the model package group."
                ) from None
        return self._client

    def _call(self, doing: str, operation: str, *, absent: bool = False, **kwargs: Any) -> Any:
        from botocore.exceptions import BotoCoreError, ClientError, NoCredentialsError

        try:
            return getattr(self.client(), operation)(**kwargs)
        except ClientError as exc:
            error = exc.response.get("Error", {})
            code, message = error.get("Code", ""), str(error.get("Message", ""))
            if absent and code in ABSENT:
                raise _Absent(message) from None
            hint = f" The credentials need {PERMISSIONS}." if code in REFUSED_CREDENTIALS else ""
            raise StepFailed(f"SageMaker refused {doing}: {code} {message[:300]}.{hint}") from None
        except NoCredentialsError:
            raise StepFailed(
                f"no AWS credentials for SageMaker ({doing}): give them the usual way "
                "(AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, AWS_PROFILE, or a role), or "
                "give --sagemaker-model-package-group none to run without SageMaker."
            ) from None
        except BotoCoreError as exc:
            raise StepFailed(
                f"cannot reach SageMaker ({doing}): {exc}. Check the network, AWS_REGION and "
                "AWS_ENDPOINT_URL(_SAGEMAKER) if one is set."
            ) from None

    def check_group(self) -> None:
        try:
            self._call(
                f"reading model package group {self.group}",
                "describe_model_package_group",
                absent=True,
                ModelPackageGroupName=self.group,
            )
        except _Absent:
            raise ConfigError(
                f"--sagemaker-model-package-group {self.group}: no such model package group in "
                "this AWS account and region. Create it once (aws sagemaker "
                f"create-model-package-group --model-package-group-name {self.group}), or check "
                "the name, AWS_REGION and the account of the credentials."
            ) from None

    def package(self, arn: str) -> Package | None:
        """The model package, or None when SageMaker has none of that ARN."""
        try:
            found = self._call(
                f"reading model package {arn}", "describe_model_package", absent=True,
                ModelPackageName=arn,
            )  # fmt: skip
        except _Absent:
            return None
        return Package(
            arn=str(found.get("ModelPackageArn", arn)),
            group=str(found.get("ModelPackageGroupName", "")),
            status=str(found.get("ModelApprovalStatus", "")),
            description=str(found.get("ApprovalDescription", "")),
        )

    def register(self, model: str, version: str, image: str, digest: str | None) -> str:
        container: dict[str, Any] = {"Image": image}
        if digest and re.fullmatch(r"sha256:[0-9a-fA-F]{64}", digest):
            container["ImageDigest"] = digest
        try:
            created = self._call(
                f"registering version {version} of '{model}' in {self.group}",
                "create_model_package",
                absent=True,
                ModelPackageGroupName=self.group,
                ModelPackageDescription=one_line(
                    f"MLflow model {model} version {version}, image {image}"
                ),
                InferenceSpecification={
                    "Containers": [container],
                    "SupportedContentTypes": CONTENT_TYPES,
                    "SupportedResponseMIMETypes": CONTENT_TYPES,
                },
                ModelApprovalStatus="PendingManualApproval",
            )
        except _Absent as exc:  # ValidationException: the input, i.e. the image
            raise ConfigError(
                f"SageMaker refused to register version {version} of '{model}' from image "
                f"{image} (tag {IMAGE_TAG}): {str(exc)[:300]}. SageMaker serves images from "
                "ECR: package the version with --registry set to an ECR repository, or give "
                "--sagemaker-model-package-group none to run without SageMaker."
            ) from None
        return str(created["ModelPackageArn"])

    def set_status(self, arn: str, status: str, description: str) -> None:
        self._call(
            f"setting model package {arn} to {status}",
            "update_model_package",
            ModelPackageArn=arn,
            ModelApprovalStatus=status,
            ApprovalDescription=one_line(description),
        )


class SageMakerSync:
    """What promote and rollback do in SageMaker: find or register the packages before the
    alias moves (bad input stops the run there), set their statuses after, undo on failure."""

    def __init__(
        self, group: str, mlflow: Registry, say: Callable[[str], None], warn: Callable[[str], None]
    ) -> None:
        self.sagemaker = SageMaker(group)
        self.group = group
        self.mlflow = mlflow
        self.say = say
        self.warn = warn
        self.changed: list[Package] = []  # as they were before this run set them

    def prepare(self, version: str, tags: Mapping[str, str]) -> str:
        """The ARN of the version's model package in the group; registered now if it has none.
        Every check comes before the one write (the package, then its ARN on the version)."""
        self.sagemaker.check_group()
        model, group = self.mlflow.name, self.group
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
            return arn
        image = tags.get(IMAGE_TAG)
        if not image:
            raise ConfigError(
                f"--sagemaker-model-package-group {group}: version {version} of '{model}' has "
                f"no model package in SageMaker (tag {ARN_TAG}) and no serving image to register "
                f"one from (tag {IMAGE_TAG}). Package it first with `mlsteps package`, or give "
                "--sagemaker-model-package-group none to run without SageMaker."
            )
        arn = self.sagemaker.register(model, version, image, tags.get(DIGEST_TAG))
        # Kept on every way out: the package approves nothing yet, and the next run reuses it.
        self.mlflow.set_tag(version, ARN_TAG, arn)
        self.say(f"registered version {version} of '{model}' in SageMaker as {arn}")
        return arn

    def existing(self, version: str, tags: Mapping[str, str]) -> str | None:
        """The version's model package when it has one (a version to reject need not)."""
        arn = tags.get(ARN_TAG)
        if not arn:
            return None
        if self.sagemaker.package(arn) is None:
            self.warn(
                f"version {version} of '{self.mlflow.name}' names model package {arn} (tag "
                f"{ARN_TAG}), which SageMaker does not have: it is not rejected."
            )
            return None
        return arn

    def decide(self, arn: str, status: str, description: str) -> None:
        before = self.sagemaker.package(arn)
        if before is None:
            raise StepFailed(f"model package {arn} is gone from SageMaker: deleted meanwhile.")
        self.changed.append(before)  # before the call: a lost answer may still have applied
        self.sagemaker.set_status(arn, status, description)
        self.say(f"SageMaker model package {arn} is {status}")

    def undo(self) -> None:
        """Put the statuses this run set back, newest first; warn for each that cannot be."""
        while self.changed:
            before = self.changed.pop()
            try:
                self.sagemaker.set_status(before.arn, before.status, before.description)
            except (StepFailed, ConfigError) as exc:
                self.warn(
                    f"could not put SageMaker model package {before.arn} back to "
                    f"{before.status} ({exc.message}): set its approval status so again."
                )
