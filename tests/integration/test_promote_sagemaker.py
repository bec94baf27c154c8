"""`mlsteps promote` and `mlsteps rollback --sagemaker-model-package-group` against a real
MLflow server and moto's SageMaker (an AWS emulator, the closest to SageMaker's model registry
that runs here): the decision becomes the approval status of the versions' model packages.

The helpers (a registered model of the test's own, the CLI run, the TCP relay that cuts a
connection) are test_promote.py's.
"""

from __future__ import annotations

import json
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

import pytest

from tests.integration.test_promote import (
    Model,
    Relay,
    _aws,
    base_env,
    file_is_free,
    outputs,
    run,
    start,
    wait_for,
)
from tests.services import MlflowServer, MotoServer

pytestmark = pytest.mark.services

ARN_TAG = "mlsteps.sagemaker.model-package-arn"
# What must never reach SageMaker: the tokens in the environment of the run.
VAULT_TOKEN = "hvs.never-in-sagemaker-" + uuid.uuid4().hex
GITHUB_TOKEN = "ghs_never_in_sagemaker_" + uuid.uuid4().hex
CI_PASSWORD = "ci-pass-" + uuid.uuid4().hex


class Group:
    """A model package group of this test's own in moto's SageMaker."""

    def __init__(self, moto: MotoServer, create: bool = True) -> None:
        import boto3

        self.client = boto3.client("sagemaker", endpoint_url=moto.url, **_aws(moto))
        self.name = f"it-promote-{uuid.uuid4().hex[:8]}"
        if create:
            self.client.create_model_package_group(ModelPackageGroupName=self.name)

    def packages(self) -> list[dict[str, Any]]:
        found: list[dict[str, Any]] = self.client.list_model_packages(
            ModelPackageGroupName=self.name
        )["ModelPackageSummaryList"]
        return found

    def all_packages(self) -> int:
        """Every model package of the (shared) moto server, page by page: one page holds at
        most 100, and the session's tests together make more."""
        pages = self.client.get_paginator("list_model_packages").paginate(ModelPackageType="Both")
        return sum(len(page["ModelPackageSummaryList"]) for page in pages)

    def package(self, arn: str) -> dict[str, Any]:
        found: dict[str, Any] = self.client.describe_model_package(ModelPackageName=arn)
        return found

    def option(self) -> list[str]:
        return ["--sagemaker-model-package-group", self.name]


def image(moto: MotoServer, version: int) -> str:
    return f"{moto.account_id}.dkr.ecr.us-east-1.amazonaws.com/churn:v{version}"


def packaged(model: Model, moto: MotoServer, version: int) -> None:
    """Tag a version as `mlsteps package` does: its serving image and digest."""
    for key, value in (
        ("mlsteps.image.tag", image(moto, version)),
        ("mlsteps.image.digest", f"sha256:{version:064x}"),
    ):
        model._post(
            "model-versions/set-tag",
            {"name": model.name, "version": str(version), "key": key, "value": value},
        )


def sagemaker_env(tmp_path: Path, moto: MotoServer, **extra: str) -> dict[str, str]:
    return base_env(
        tmp_path,
        **moto.env(),
        AWS_EC2_METADATA_DISABLED="true",
        VAULT_TOKEN=VAULT_TOKEN,
        GITHUB_TOKEN=GITHUB_TOKEN,
        BUILD_URL=f"https://robot:{CI_PASSWORD}@ci.example/job/7/",
        GITHUB_SHA="c" * 40,
        **extra,
    )


def assert_no_secret(text: str) -> None:
    for secret in (VAULT_TOKEN, GITHUB_TOKEN, CI_PASSWORD, "testing"):  # "testing": moto's keys
        assert secret not in text


@pytest.fixture()
def model(mlflow_server: MlflowServer) -> Model:
    return Model(mlflow_server, 3)


@pytest.fixture()
def group(moto_server: MotoServer) -> Group:
    return Group(moto_server)


# ----- the decision in SageMaker ---------------------------------------------------------------


def test_promote_approves_then_rollback_rejects_and_reapproves_on_moto(
    model: Model, group: Group, moto_server: MotoServer, tmp_path: Path
) -> None:
    env = sagemaker_env(tmp_path, moto_server)
    for version in (1, 2):
        packaged(model, moto_server, version)
    model.gate(1, champion="none")
    model.gate(2, champion="1")

    first = outputs(
        run(
            ["promote", *model.args("--version", "1", "--approved-by", "ana", *group.option())],
            env,
            tmp_path,
        )
    )
    arn1 = first["sagemaker-model-package-arn"]
    assert arn1.startswith(f"arn:aws:sagemaker:us-east-1:{moto_server.account_id}:model-package/")
    assert model.tags(1)[ARN_TAG] == arn1
    one = group.package(arn1)
    assert one["ModelPackageGroupName"] == group.name
    assert one["ModelApprovalStatus"] == "Approved"
    assert one["InferenceSpecification"] == {
        "Containers": [{"Image": image(moto_server, 1), "ImageDigest": f"sha256:{1:064x}"}],
        "SupportedContentTypes": ["application/json"],
        "SupportedResponseMIMETypes": ["application/json"],
    }
    description = one["ApprovalDescription"]
    assert description.startswith(
        f"promoted to @champion of MLflow model {model.name} version 1 (no previous champion), "
        f"approved by ana, gate report sha256:{1:064x}, CI run "
        f"https://***@ci.example/job/7/, commit {'c' * 40}, at "
    )
    assert_no_secret(description)

    second = run(
        ["promote", *model.args("--version", "2", "--approved-by", "bo", *group.option())],
        env,
        tmp_path,
    )
    arn2 = outputs(second)["sagemaker-model-package-arn"]
    assert arn2 not in ("", arn1) and model.tags(2)[ARN_TAG] == arn2
    two = group.package(arn2)
    assert two["ModelApprovalStatus"] == "Approved"
    assert "version 2 (previous champion version 1), approved by bo" in (two["ApprovalDescription"])
    assert "is Approved" in second.stderr and arn2 in second.stderr

    back = outputs(run(["rollback", *model.args(*group.option())], env, tmp_path))
    assert back == {
        "champion-version": "1",
        "previous-version": "2",
        "decision": "rolled-back",
        "sagemaker-model-package-arn": arn1,  # reused: no new package
    }
    two = group.package(arn2)
    assert two["ModelApprovalStatus"] == "Rejected"
    assert two["ApprovalDescription"].startswith(
        f"rolled back from @champion of MLflow model {model.name}: version 2 replaced by "
        "version 1, CI run https://***@ci.example/job/7/"
    )
    one = group.package(arn1)
    assert one["ModelApprovalStatus"] == "Approved"
    assert one["ApprovalDescription"].startswith(
        f"restored to @champion of MLflow model {model.name} version 1 by a rollback from version 2"
    )

    # Promoted again, version 2 reuses its package: still two in the group.
    again = outputs(run(["promote", *model.args("--version", "2", *group.option())], env, tmp_path))
    assert again["sagemaker-model-package-arn"] == arn2
    assert group.package(arn2)["ModelApprovalStatus"] == "Approved"
    assert sorted(p["ModelPackageArn"] for p in group.packages()) == sorted([arn1, arn2])
    for arn in (arn1, arn2):
        assert_no_secret(group.package(arn)["ApprovalDescription"])


def test_without_the_option_sagemaker_is_not_touched(
    model: Model, moto_server: MotoServer, tmp_path: Path
) -> None:
    # The AWS endpoint is moto's, yet nothing is asked of it: no package appears anywhere.
    group = Group(moto_server)
    before = group.all_packages()
    packaged(model, moto_server, 1)
    model.gate(1)
    done = outputs(
        run(
            ["promote", *model.args("--version", "1")],
            sagemaker_env(tmp_path, moto_server),
            tmp_path,
        )
    )
    assert done["sagemaker-model-package-arn"] == "" and ARN_TAG not in model.tags(1)
    assert group.all_packages() == before


def test_dry_run_plans_the_sync_asks_nothing_of_aws_and_runs_the_same_actions_on_moto(
    model: Model, group: Group, moto_server: MotoServer, tmp_path: Path
) -> None:
    env = sagemaker_env(tmp_path, moto_server)
    for version in (1, 2):
        packaged(model, moto_server, version)
    model.gate(1)
    model.gate(2, champion="1")
    outputs(run(["promote", *model.args("--version", "1", *group.option())], env, tmp_path))
    for command, extra in (("promote", ["--version", "2"]), ("rollback", [])):
        args = [command, *model.args(*extra, *group.option())]
        # An AWS endpoint where nothing listens: the dry run would fail if it asked AWS.
        dry = run(["--dry-run", *args], {**env, "AWS_ENDPOINT_URL": "http://127.0.0.1:9"}, tmp_path)
        assert dry.returncode == 0, dry.stderr
        plan = json.loads(dry.stdout)["plan"]
        (approve,) = [a for a in plan if a["kind"] == "sagemaker.approve"]
        assert approve["group"] == group.name and group.name in approve["line"]
        assert len(group.packages()) == 1 + (command == "rollback")
        done = run(args, env, tmp_path)
        assert json.loads(done.stdout)["applied"] == [a["kind"] for a in plan], done.stderr


# ----- bad input: nothing moves -----------------------------------------------------------------


def test_missing_group_is_exit_2_and_nothing_moves_on_moto(
    model: Model, moto_server: MotoServer, tmp_path: Path
) -> None:
    missing = Group(moto_server, create=False)
    before = missing.all_packages()
    packaged(model, moto_server, 2)
    model.set_alias("champion", 1)
    model.gate(2, champion="1")
    lock = tmp_path / "p.lock"
    done = run(
        [
            "promote",
            *model.args("--version", "2", "--lock-path", str(lock), *missing.option()),
        ],
        sagemaker_env(tmp_path, moto_server),
        tmp_path,
    )
    assert done.returncode == 2
    assert (
        f"--sagemaker-model-package-group {missing.name}: no such model package group"
        in done.stderr
    )
    assert "create-model-package-group" in done.stderr and "Traceback" not in done.stderr
    assert model.alias("champion") == "1" and model.alias("previous-champion") is None
    assert model.evidence(2) == {} and ARN_TAG not in model.tags(2)
    assert missing.all_packages() == before
    assert not lock.exists() or file_is_free(lock)


def test_version_without_a_serving_image_is_exit_2_and_nothing_moves_on_moto(
    model: Model, group: Group, moto_server: MotoServer, tmp_path: Path
) -> None:
    model.gate(1)  # gated, but never packaged: no mlsteps.image.tag
    lock = tmp_path / "p.lock"
    done = run(
        ["promote", *model.args("--version", "1", "--lock-path", str(lock), *group.option())],
        sagemaker_env(tmp_path, moto_server),
        tmp_path,
    )
    assert done.returncode == 2
    assert "version 1 of" in done.stderr and "no serving image" in done.stderr
    assert "Package it first with `mlsteps package`" in done.stderr
    assert model.alias("champion") is None and model.evidence(1) == {}
    assert group.packages() == []
    assert not lock.exists() or file_is_free(lock)


def test_a_rollback_to_a_version_without_a_serving_image_is_exit_2_on_moto(
    model: Model, group: Group, moto_server: MotoServer, tmp_path: Path
) -> None:
    # Version 1 was the champion before SageMaker was synced, and was never packaged.
    packaged(model, moto_server, 2)
    model.set_alias("champion", 1)
    model.gate(2, champion="1")
    env = sagemaker_env(tmp_path, moto_server)
    outputs(run(["promote", *model.args("--version", "2", *group.option())], env, tmp_path))
    done = run(["rollback", *model.args(*group.option())], env, tmp_path)
    assert done.returncode == 2 and "no serving image" in done.stderr
    assert model.alias("champion") == "2" and model.alias("previous-champion") == "1"
    (only,) = group.packages()
    assert only["ModelApprovalStatus"] == "Approved"  # version 2's, not rejected


def test_aws_unreachable_or_without_credentials_is_exit_1_and_nothing_moves(
    model: Model, tmp_path: Path
) -> None:
    model.gate(1)
    args = ["promote", *model.args("--version", "1", "--sagemaker-model-package-group", "g1")]
    nowhere = {
        "AWS_CONFIG_FILE": str(tmp_path / "none"),
        "AWS_SHARED_CREDENTIALS_FILE": str(tmp_path / "none"),
        "AWS_EC2_METADATA_DISABLED": "true",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_ENDPOINT_URL": "http://127.0.0.1:9",  # the discard port: nothing listens
    }
    unreachable = run(
        args,
        base_env(tmp_path, **nowhere, AWS_ACCESS_KEY_ID="a", AWS_SECRET_ACCESS_KEY="b"),
        tmp_path,
    )
    assert unreachable.returncode == 1
    assert "cannot reach SageMaker (reading model package group g1)" in unreachable.stderr
    no_credentials = run(args, base_env(tmp_path, **nowhere), tmp_path)
    assert no_credentials.returncode == 1
    assert "no AWS credentials for SageMaker" in no_credentials.stderr
    assert "or give --sagemaker-model-package-group none" in no_credentials.stderr
    no_region = {k: v for k, v in nowhere.items() if k != "AWS_DEFAULT_REGION"}
    region = run(args, base_env(tmp_path, **no_region), tmp_path)
    assert region.returncode == 2 and "no AWS region is set" in region.stderr
    assert model.alias("champion") is None and model.evidence(1) == {}


# ----- a failure after the alias moved ----------------------------------------------------------


def test_sagemaker_gone_after_the_move_puts_the_aliases_back_on_moto(
    model: Model, group: Group, moto_server: MotoServer, tmp_path: Path
) -> None:
    """A real failure: promote reaches moto through a relay; it registers version 2's package
    before the lock, the relay is cut while it waits for the lock, so setting the approval after
    the aliases moved fails. The aliases are put back, the evidence removed, the lock freed; the
    package stays PendingManualApproval, recorded on the version, and the next promote uses it."""
    import fcntl

    for version in (1, 2):
        packaged(model, moto_server, version)
    model.gate(1)
    model.gate(2, champion="1")
    lock = tmp_path / "p.lock"
    env = sagemaker_env(tmp_path, moto_server)
    args = ["promote", *model.args("--lock-path", str(lock), *group.option())]
    outputs(run([*args, "--version", "1"], env, tmp_path))
    arn1 = model.tags(1)[ARN_TAG]
    evidence1 = model.evidence(1)

    relay = Relay(moto_server.url)
    handle = lock.open("w")
    fcntl.flock(handle, fcntl.LOCK_EX)  # held by this test: promote waits
    try:
        proc = start([*args, "--version", "2"], {**env, "AWS_ENDPOINT_URL": relay.url}, tmp_path)
        wait_for(proc, "waiting for the lock")
        relay.close()  # SageMaker is unreachable for this process from now on
    finally:
        handle.close()  # frees the flock
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 1, err
    assert (
        f"syncing the decision to SageMaker group {group.name} failed after the alias moved" in err
    )
    assert "cannot reach SageMaker" in err
    assert f"put the aliases of '{model.name}' back: 'champion' is version 1 again" in err
    assert model.alias("champion") == "1" and model.alias("previous-champion") is None
    assert model.evidence(2) == {} and model.evidence(1) == evidence1
    assert file_is_free(lock)
    arn2 = model.tags(2)[ARN_TAG]
    assert group.package(arn2)["ModelApprovalStatus"] == "PendingManualApproval"
    assert group.package(arn1)["ModelApprovalStatus"] == "Approved"
    assert_no_secret(out + err)

    retried = outputs(run([*args, "--version", "2"], env, tmp_path))
    assert retried["sagemaker-model-package-arn"] == arn2 and len(group.packages()) == 2
    assert group.package(arn2)["ModelApprovalStatus"] == "Approved"


FAULT = """
import sys

import boto3
from botocore.exceptions import ClientError

real_client = boto3.client
failed = []


def fail_first_approval(params, **_):
    if params.get("ModelApprovalStatus") == "Approved" and not failed:
        failed.append(1)
        raise ClientError(
            {"Error": {"Code": "ThrottlingException", "Message": "injected by the test"}},
            "UpdateModelPackage",
        )


def client(*args, **kwargs):
    made = real_client(*args, **kwargs)
    if args[:1] == ("sagemaker",):
        made.meta.events.register(
            "before-parameter-build.sagemaker.UpdateModelPackage", fail_first_approval
        )
    return made


boto3.client = client
from steps.cli import main

main(sys.argv[1:])
"""


def test_rollback_failing_halfway_in_sagemaker_puts_statuses_and_aliases_back_on_moto(
    model: Model, group: Group, moto_server: MotoServer, tmp_path: Path
) -> None:
    """Fault injection, beside the real failure of the same path above (relay cut, after the
    move): moto cannot be made to refuse one UpdateModelPackage of two in one run, so a botocore
    event hook in the mlsteps process fails the rollback's Approved call (the restored version's)
    after the demoted version's package was set to Rejected. Both statuses and both aliases are
    put back; everything else (MLflow, moto, the CLI) is real."""
    env = sagemaker_env(tmp_path, moto_server)
    for version in (1, 2):
        packaged(model, moto_server, version)
    model.gate(1)
    model.gate(2, champion="1")
    for version in ("1", "2"):
        outputs(run(["promote", *model.args("--version", version, *group.option())], env, tmp_path))
    arn1, arn2 = model.tags(1)[ARN_TAG], model.tags(2)[ARN_TAG]
    before = {arn: group.package(arn)["ApprovalDescription"] for arn in (arn1, arn2)}

    done = subprocess.run(
        [sys.executable, "-c", FAULT, "--json", "rollback", *model.args(*group.option())],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
        timeout=180,
    )
    assert done.returncode == 1, done.stderr
    assert "ThrottlingException injected by the test" in done.stderr
    assert "'champion' is version 2 again" in done.stderr
    assert model.alias("champion") == "2" and model.alias("previous-champion") == "1"
    assert "mlsteps.promote.rolled-back-to" not in model.tags(2)
    for arn in (arn1, arn2):
        found = group.package(arn)
        assert found["ModelApprovalStatus"] == "Approved"
        assert found["ApprovalDescription"] == before[arn]
