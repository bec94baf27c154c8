"""SageMaker's model registry as promote and rollback use it (--sagemaker-model-package-group):
the few calls, each failure told in the user's terms. What the runs do with them (which
package to approve or reject, and how a failure is undone) is steps/promote/sync.py.

Imported by a real run only; boto3 is imported inside the functions that call AWS. The
endpoint, region and credentials come from boto3's usual chain: AWS_ENDPOINT_URL(_SAGEMAKER),
AWS_REGION or AWS_DEFAULT_REGION, AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, AWS_PROFILE, a role.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from steps.core.errors import ConfigError, StepFailed
from steps.core.text import redact_url

# SageMaker's rule for the names of endpoints, variants, models, configs and model package
# groups: 1-63 letters, digits and hyphens, not starting or ending with a hyphen (the {0,62}
# bounds the length: the pattern alone lets hyphens run longer). Nothing in it leaves a quote.
_NAME = re.compile(r"[A-Za-z0-9](-*[A-Za-z0-9]){0,62}")


def is_sagemaker_name(text: str) -> bool:
    return len(text) <= 63 and _NAME.fullmatch(text) is not None


IMAGE_TAG = "mlsteps.image.tag"  # written by `mlsteps package` (mlflow/model_versions.py)
CONTENT_TYPES = ["application/json"]  # what the mlsteps model server takes and answers
DESCRIPTION_LIMIT = 1024  # SageMaker's limit on ApprovalDescription and ModelPackageDescription
# What SageMaker answers when a group or package does not exist: moto and AWS both say
# ValidationException "... does not exist" / "... not found"; some APIs say ResourceNotFound.
# A ValidationException that says neither is input SageMaker refused, not a missing thing.
NOT_FOUND = ("ResourceNotFound", "ResourceNotFoundException")
ABSENT_WORDS = re.compile(r"does not exist|not found|cannot be found|could not find", re.I)
REFUSED_CREDENTIALS = (
    "AccessDeniedException", "UnrecognizedClientException", "InvalidClientTokenId",
    "ExpiredTokenException", "InvalidSignatureException",
)  # fmt: skip
PERMISSIONS = (
    "sagemaker:DescribeModelPackageGroup, DescribeModelPackage, CreateModelPackage and "
    "UpdateModelPackage on the group"
)
WITHOUT = "give --sagemaker-model-package-group none to run without SageMaker"


@dataclass(frozen=True)
class Package:
    arn: str
    group: str
    status: str  # ModelApprovalStatus
    description: str  # ApprovalDescription, "" when none
    made_for: str  # ModelPackageDescription, fixed when it was made: see registered_for()


class Absent(Exception):
    """SageMaker says the thing asked about does not exist."""


def says_absent(code: str, message: str) -> bool:
    return code in NOT_FOUND or (
        code == "ValidationException" and bool(ABSENT_WORDS.search(message))
    )


def one_line(text: str, limit: int = DESCRIPTION_LIMIT) -> str:
    """A description SageMaker takes: one line (its pattern is .*), at most limit characters."""
    text = re.sub(r"\s+", " ", text).strip()
    return text if len(text) <= limit else text[: limit - 1] + "…"


def registered_for(model: str, version: str) -> str:
    """How the package mlsteps registers for a version starts its description. The version's
    ARN tag can be rewritten by anyone with the MLflow credentials (the training among them);
    this description is written once, by whoever holds the AWS ones."""
    return one_line(f"MLflow model {model} version {version},")


def call(
    client: Any,
    doing: str,
    operation: str,
    *,
    permissions: str,
    without: str,
    service: str = "SageMaker",
    absent: bool = False,
    invalid: str = "",
    **kwargs: Any,
) -> Any:
    """One call of boto3's `client`, each failure told in the user's terms: absent: raise
    Absent when the service says the thing does not exist; invalid: what to do about input it
    refuses (a ValidationException, exit 2); permissions: what the credentials need; without:
    how to run with no AWS at all. Used for SageMaker's model registry and endpoints, and for
    CloudWatch's metrics of those endpoints (service names it in the messages)."""
    from botocore.exceptions import BotoCoreError, ClientError, NoCredentialsError

    try:
        return getattr(client, operation)(**kwargs)
    except ClientError as exc:
        error = exc.response.get("Error", {})
        code, message = error.get("Code", ""), str(error.get("Message", ""))
        if absent and says_absent(code, message):
            raise Absent(message) from None
        refused = f"{service} refused {doing}: {code} {redact_url(message)[:300].rstrip('.')}."
        if code == "ValidationException":
            raise ConfigError(refused + (f" {invalid}" if invalid else "")) from None
        hint = f" The credentials need {permissions}." if code in REFUSED_CREDENTIALS else ""
        raise StepFailed(refused + hint) from None
    except NoCredentialsError:
        raise StepFailed(
            f"no AWS credentials for {service} ({doing}): give them the usual way "
            f"(AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, AWS_PROFILE, or a role), or {without}."
        ) from None
    except BotoCoreError as exc:
        # Its text holds the endpoint URL, and with it any credentials written in it.
        said = redact_url(str(exc)).rstrip(".")
        raise StepFailed(
            f"cannot reach {service} ({doing}): {said}. Check the network, AWS_REGION and "
            f"AWS_ENDPOINT_URL(_{service.upper()}) if one is set."
        ) from None


class SageMaker:
    """The four model-registry calls."""

    def __init__(self, group: str) -> None:
        self.group = group
        self._client: Any = None

    def client(self) -> Any:
        if self._client is None:
            from steps.services import aws

            self._client = aws.client(
                "sagemaker",
                read_timeout=20,
                attempts=3,
                no_region=f"--sagemaker-model-package-group {self.group}: no AWS region is set. "
                "Set AWS_REGION (or AWS_DEFAULT_REGION, or a region in the AWS profile) to the "
                "region of the model package group.",
            )
        return self._client

    def _call(
        self, doing: str, operation: str, *, absent: bool = False, invalid: str = "", **kwargs: Any
    ) -> Any:
        return call(
            self.client(), doing, operation, absent=absent, invalid=invalid,
            permissions=PERMISSIONS, without=WITHOUT, **kwargs,
        )  # fmt: skip

    def _no_group(self) -> ConfigError:
        return ConfigError(
            f"--sagemaker-model-package-group {self.group}: no such model package group in "
            "this AWS account and region. Create it once (aws sagemaker "
            f"create-model-package-group --model-package-group-name {self.group}), or check "
            f"the name, AWS_REGION and the account of the credentials; or {WITHOUT}."
        )

    def check_group(self) -> None:
        try:
            self._call(
                f"reading model package group {self.group}",
                "describe_model_package_group",
                absent=True,
                ModelPackageGroupName=self.group,
            )
        except Absent:
            raise self._no_group() from None

    def package(self, arn: str) -> Package | None:
        """The model package, or None when SageMaker has none of that ARN."""
        try:
            found = self._call(
                f"reading model package {arn}", "describe_model_package", absent=True,
                ModelPackageName=arn,
            )  # fmt: skip
        except Absent:
            return None
        return Package(
            arn=str(found.get("ModelPackageArn", arn)),
            group=str(found.get("ModelPackageGroupName", "")),
            status=str(found.get("ModelApprovalStatus", "")),
            description=str(found.get("ApprovalDescription", "")),
            made_for=str(found.get("ModelPackageDescription", "")),
        )

    def register(self, model: str, version: str, image: str, digest: str | None) -> str:
        container: dict[str, Any] = {"Image": image}
        if digest and re.fullmatch(r"sha256:[0-9a-fA-F]{64}", digest):
            container["ImageDigest"] = digest
        try:
            created = self._call(
                f"registering version {version} of '{model}' from image {image} (tag "
                f"{IMAGE_TAG}) in {self.group}",
                "create_model_package",
                absent=True,  # the group, deleted since it was checked
                invalid="SageMaker serves images from ECR: package the version with --registry "
                f"set to an ECR repository, or {WITHOUT}.",
                ModelPackageGroupName=self.group,
                ModelPackageDescription=one_line(f"{registered_for(model, version)} image {image}"),
                InferenceSpecification={
                    "Containers": [container],
                    "SupportedContentTypes": CONTENT_TYPES,
                    "SupportedResponseMIMETypes": CONTENT_TYPES,
                },
                ModelApprovalStatus="PendingManualApproval",
            )
        except Absent:
            raise self._no_group() from None
        return str(created["ModelPackageArn"])

    def set_status(self, arn: str, status: str, description: str) -> None:
        self._call(
            f"setting model package {arn} to {status}",
            "update_model_package",
            ModelPackageArn=arn,
            ModelApprovalStatus=status,
            ApprovalDescription=one_line(description),
        )
