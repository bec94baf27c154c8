"""`mlsteps promote` and `mlsteps rollback --sagemaker-model-package-group` against a real
MLflow server and moto's SageMaker (an AWS emulator, the closest to SageMaker's model registry
that runs here): the decision becomes the approval status of the versions' model packages.

The helpers (a registered model of the test's own, the CLI run, the lock file) are
test_promote.py's; the relay that the network goes away behind is here.
"""

from __future__ import annotations

import contextlib
import json
import socket
import subprocess
import sys
import threading
import uuid
from pathlib import Path
from typing import Any

import pytest
import requests

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

    def packages(self, status: str | None = None) -> list[dict[str, Any]]:
        """The group's packages (those of one approval status when given)."""
        found: list[dict[str, Any]] = self.client.list_model_packages(
            ModelPackageGroupName=self.name, **({"ModelApprovalStatus": status} if status else {})
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
        f"approved by ana, gate report {model.digests['1']}, CI run "
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
    # The replaced champion's package is Rejected: one Approved package per champion, so that
    # what takes the group's newest Approved package serves MLflow's champion.
    one = group.package(arn1)
    assert one["ModelApprovalStatus"] == "Rejected"
    assert one["ApprovalDescription"].startswith(
        f"replaced as @champion of MLflow model {model.name} by version 2 (was version 1), "
        "approved by bo, CI run https://***@ci.example/job/7/"
    )
    assert f"and {arn1} Rejected" in second.stderr
    assert [p["ModelPackageArn"] for p in group.packages("Approved")] == [arn2]

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

    assert [p["ModelPackageArn"] for p in group.packages("Approved")] == [arn1]

    # Promoted again, version 2 reuses its package: still two in the group.
    again = outputs(run(["promote", *model.args("--version", "2", *group.option())], env, tmp_path))
    assert again["sagemaker-model-package-arn"] == arn2
    assert group.package(arn2)["ModelApprovalStatus"] == "Approved"
    assert group.package(arn1)["ModelApprovalStatus"] == "Rejected"
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


# ----- under the lock ----------------------------------------------------------------------------


def test_promoting_the_champion_again_approves_its_package_on_moto(
    model: Model, group: Group, moto_server: MotoServer, tmp_path: Path
) -> None:
    """Version 1 became the champion before the sync was turned on: promoting it again with the
    option changes no alias, but its package is registered and Approved (the ARN is an output);
    once more, nothing is written at all."""
    env = sagemaker_env(tmp_path, moto_server)
    packaged(model, moto_server, 1)
    model.gate(1)
    outputs(run(["promote", *model.args("--version", "1", "--approved-by", "ana")], env, tmp_path))
    evidence = model.evidence(1)

    done = run(["promote", *model.args("--version", "1", *group.option())], env, tmp_path)
    found = outputs(done)
    assert found["decision"] == "unchanged" and found["champion-version"] == "1"
    arn = found["sagemaker-model-package-arn"]
    assert arn and model.tags(1)[ARN_TAG] == arn
    package = group.package(arn)
    assert package["ModelApprovalStatus"] == "Approved"
    assert package["ApprovalDescription"].startswith(
        f"@champion of MLflow model {model.name} is version 1 (already when its package was "
        f"approved), promoted at {evidence['mlsteps.promote.at']}, approved by ana, gate report "
        f"{model.digests['1']}, CI run https://***@ci.example/job/7/"
    )
    assert "nothing changed" not in done.stderr and f"{arn} is Approved" in done.stderr
    assert model.alias("champion") == "1" and model.evidence(1) == evidence

    again = outputs(run(["promote", *model.args("--version", "1", *group.option())], env, tmp_path))
    assert again["decision"] == "unchanged" and again["sagemaker-model-package-arn"] == arn
    assert group.package(arn)["ApprovalDescription"] == package["ApprovalDescription"]
    assert len(group.packages()) == 1


def test_when_another_promotion_won_nothing_is_registered_on_moto(
    model: Model, group: Group, moto_server: MotoServer, tmp_path: Path
) -> None:
    packaged(model, moto_server, 2)
    model.gate(2, champion="1")
    model.set_alias("champion", 3)  # version 3 won since the gate compared against 1
    done = run(
        ["promote", *model.args("--version", "2", *group.option())],
        sagemaker_env(tmp_path, moto_server),
        tmp_path,
    )
    assert done.returncode == 1 and "another promotion won" in done.stderr
    assert "Nothing was changed." in done.stderr
    assert group.packages() == [] and ARN_TAG not in model.tags(2)
    assert model.alias("champion") == "3"


def test_two_promotes_of_one_version_at_once_register_one_package_on_moto(
    model: Model, group: Group, moto_server: MotoServer, tmp_path: Path
) -> None:
    """Both wait for the lock this test holds, then run one after the other: the first
    registers and approves the package, the second finds version 1 the champion and its
    package, read again under the lock, Approved."""
    import fcntl

    packaged(model, moto_server, 1)
    model.gate(1)
    lock = tmp_path / "p.lock"
    env = sagemaker_env(tmp_path, moto_server)
    args = ["promote", *model.args("--version", "1", "--lock-path", str(lock), *group.option())]
    handle = lock.open("w")
    fcntl.flock(handle, fcntl.LOCK_EX)
    try:
        procs = [start(args, env, tmp_path) for _ in range(2)]
        for proc in procs:
            wait_for(proc, "waiting for the lock")
    finally:
        handle.close()
    done = []
    for proc in procs:
        out, err = proc.communicate(timeout=120)
        done.append(outputs(subprocess.CompletedProcess(proc.args, proc.returncode, out, err)))
    assert sorted(d["decision"] for d in done) == ["promoted", "unchanged"]
    (only,) = group.packages()
    assert {d["sagemaker-model-package-arn"] for d in done} == {only["ModelPackageArn"]}
    assert only["ModelApprovalStatus"] == "Approved"
    assert model.tags(1)[ARN_TAG] == only["ModelPackageArn"]


def test_packages_in_another_group_are_left_alone_on_moto(
    model: Model, moto_server: MotoServer, tmp_path: Path
) -> None:
    """The group changed between runs: the replaced or demoted version's package is in the old
    group, which this run does not speak for; it is named in a warning, not rejected."""
    env = sagemaker_env(tmp_path, moto_server)
    first, second = Group(moto_server), Group(moto_server)
    for version in (1, 2):
        packaged(model, moto_server, version)
    model.gate(1)
    model.gate(2, champion="1")
    outputs(run(["promote", *model.args("--version", "1", *first.option())], env, tmp_path))
    arn1 = model.tags(1)[ARN_TAG]

    promoted = run(["promote", *model.args("--version", "2", *second.option())], env, tmp_path)
    arn2 = outputs(promoted)["sagemaker-model-package-arn"]
    assert f"{arn1}, in group {first.name}, not {second.name}: it is left as it is" in (
        promoted.stderr
    )
    assert first.package(arn1)["ModelApprovalStatus"] == "Approved"

    back = run(["rollback", *model.args(*first.option())], env, tmp_path)
    assert outputs(back)["sagemaker-model-package-arn"] == arn1
    assert f"{arn2}, in group {second.name}, not {first.name}: it is left as it is" in back.stderr
    assert second.package(arn2)["ModelApprovalStatus"] == "Approved"
    assert first.package(arn1)["ModelApprovalStatus"] == "Approved"
    assert model.alias("champion") == "1"


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
        # The discard port: nothing listens. A proxy's credentials in the URL stay hidden.
        "AWS_ENDPOINT_URL": f"http://robot:{CI_PASSWORD}@127.0.0.1:9",
    }
    unreachable = run(
        args,
        base_env(tmp_path, **nowhere, AWS_ACCESS_KEY_ID="a", AWS_SECRET_ACCESS_KEY="b"),
        tmp_path,
    )
    assert unreachable.returncode == 1
    assert "cannot reach SageMaker (reading model package group g1)" in unreachable.stderr
    assert "http://***@127.0.0.1:9" in unreachable.stderr
    assert_no_secret(unreachable.stdout + unreachable.stderr)
    no_credentials = run(args, base_env(tmp_path, **nowhere), tmp_path)
    assert no_credentials.returncode == 1
    assert "no AWS credentials for SageMaker" in no_credentials.stderr
    assert "or give --sagemaker-model-package-group none" in no_credentials.stderr
    no_region = {k: v for k, v in nowhere.items() if k != "AWS_DEFAULT_REGION"}
    region = run(args, base_env(tmp_path, **no_region), tmp_path)
    assert region.returncode == 2 and "no AWS region is set" in region.stderr
    assert model.alias("champion") is None and model.evidence(1) == {}


# ----- a failure after the alias moved ----------------------------------------------------------


class CutAfter(Relay):
    """A TCP relay to moto that the network goes away behind: the process's SageMaker calls
    pass until the answer to the call named `after` (an X-Amz-Target such as
    CreateModelPackage) has come back; the next request finds every connection closed and no
    new one taken. The point is chosen by what crosses the wire, not by timing."""

    def __init__(self, target: str, after: str) -> None:
        # Set before the relay starts accepting (Relay.__init__ starts its thread).
        self.marker = f"SageMaker.{after}".encode()
        self.state = "open"  # → asked (the call went up) → answered → cut
        self.guard = threading.Lock()
        super().__init__(target)

    def _relay(self, client: socket.socket, upstream: socket.socket) -> None:
        threading.Thread(target=self._up, args=(client, upstream), daemon=True).start()
        threading.Thread(target=self._down, args=(upstream, client), daemon=True).start()

    def _up(self, client: socket.socket, upstream: socket.socket) -> None:
        with contextlib.suppress(OSError):
            while data := client.recv(65536):
                with self.guard:
                    if self.state == "answered":
                        self.state = "cut"
                    if self.marker in data and self.state == "open":
                        self.state = "asked"
                if self.state == "cut":
                    self.close()
                    return
                upstream.sendall(data)

    def _down(self, upstream: socket.socket, client: socket.socket) -> None:
        with contextlib.suppress(OSError):
            while data := upstream.recv(65536):
                client.sendall(data)
                with self.guard:
                    if self.state == "asked":
                        self.state = "answered"


def test_sagemaker_gone_after_the_move_puts_the_aliases_back_on_moto(
    model: Model, group: Group, moto_server: MotoServer, tmp_path: Path
) -> None:
    """A real failure: promote reaches moto through a relay that goes away right after version
    2's package is registered (under the lock, before any alias moves), so the first SageMaker
    call after the move fails. The aliases are put back, the evidence removed, the lock freed;
    version 1's package stays Approved, version 2's stays PendingManualApproval (it was never
    approved, so nothing has to be taken back), recorded on the version, and the next promote
    uses it."""
    for version in (1, 2):
        packaged(model, moto_server, version)
    model.gate(1)
    model.gate(2, champion="1")
    lock = tmp_path / "p.lock"
    env = sagemaker_env(tmp_path, moto_server)
    args = ["promote", *model.args("--lock-path", str(lock), *group.option())]
    one, two = (["--version", v, "--gate-report-digest", model.digests[v]] for v in ("1", "2"))
    outputs(run([*args, *one], env, tmp_path))
    arn1 = model.tags(1)[ARN_TAG]
    evidence1 = model.evidence(1)

    relay = CutAfter(moto_server.url, "CreateModelPackage")
    try:
        done = run([*args, *two], {**env, "AWS_ENDPOINT_URL": relay.url}, tmp_path)
    finally:
        relay.close()
    assert relay.state == "cut"
    assert done.returncode == 1, done.stderr
    assert (
        f"syncing the decision to SageMaker group {group.name} failed after the alias moved"
        in done.stderr
    )
    assert "cannot reach SageMaker" in done.stderr
    assert f"put the aliases of '{model.name}' back: 'champion' is version 1 again" in done.stderr
    assert model.alias("champion") == "1" and model.alias("previous-champion") is None
    assert model.evidence(2) == {} and model.evidence(1) == evidence1
    assert file_is_free(lock)
    arn2 = model.tags(2)[ARN_TAG]
    assert group.package(arn2)["ModelApprovalStatus"] == "PendingManualApproval"
    assert group.package(arn1)["ModelApprovalStatus"] == "Approved"
    assert_no_secret(done.stdout + done.stderr)

    retried = outputs(run([*args, *two], env, tmp_path))
    assert retried["sagemaker-model-package-arn"] == arn2 and len(group.packages()) == 2
    assert group.package(arn2)["ModelApprovalStatus"] == "Approved"
    assert group.package(arn1)["ModelApprovalStatus"] == "Rejected"


class LosesAnswers(CutAfter):
    """A relay to moto that loses the answers to one call (`to`, an X-Amz-Target): the
    request reaches moto and is applied, then the connection drops before the answer comes
    back; every other call passes."""

    def __init__(self, target: str, to: str) -> None:
        self.lost = 0
        super().__init__(target, to)

    def _relay(self, client: socket.socket, upstream: socket.socket) -> None:
        asked: list[bool] = []  # this connection carried the call
        threading.Thread(target=self._ask, args=(client, upstream, asked), daemon=True).start()
        threading.Thread(target=self._answer, args=(upstream, client, asked), daemon=True).start()

    def _ask(self, client: socket.socket, upstream: socket.socket, asked: list[bool]) -> None:
        with contextlib.suppress(OSError):
            while data := client.recv(65536):
                if self.marker in data:
                    asked.append(True)
                upstream.sendall(data)

    def _answer(self, upstream: socket.socket, client: socket.socket, asked: list[bool]) -> None:
        with contextlib.suppress(OSError):
            while data := upstream.recv(65536):
                if asked:
                    self.lost += 1
                    for sock in (client, upstream):
                        sock.shutdown(socket.SHUT_RDWR)
                    return
                client.sendall(data)


def test_an_approval_whose_answer_is_lost_but_applied_completes_the_promotion_on_moto(
    model: Model, group: Group, moto_server: MotoServer, tmp_path: Path
) -> None:
    """Every answer to UpdateModelPackage is lost on the way back, though moto applied the
    call: promote reads the package, finds it Approved with its description, and is done (the
    aliases stay moved: SageMaker has no way back to PendingManualApproval to undo to)."""
    packaged(model, moto_server, 1)
    model.gate(1)
    relay = LosesAnswers(moto_server.url, "UpdateModelPackage")
    try:
        done = run(
            ["promote", *model.args("--version", "1", *group.option())],
            {**sagemaker_env(tmp_path, moto_server), "AWS_ENDPOINT_URL": relay.url},
            tmp_path,
        )
    finally:
        relay.close()
    assert relay.lost >= 1
    found = outputs(done)
    assert found["decision"] == "promoted" and found["sagemaker-model-package-arn"]
    assert group.package(found["sagemaker-model-package-arn"])["ModelApprovalStatus"] == "Approved"
    assert model.alias("champion") == "1" and model.evidence(1)


# A fault moto cannot be made to show, injected in the mlsteps process through a botocore event
# hook (TEST_FAULT, JSON): the nth call of `operation` whose parameters match `when` fails with
# `code` and `message`; with `signal_at`, the call of that number sends SIGTERM to the process
# itself instead (the signal lands while that call is made). Everything else is real.
FAULT = """
import json
import os
import signal
import sys

import boto3
from botocore.exceptions import ClientError

fault = json.loads(os.environ.pop("TEST_FAULT"))
real_client = boto3.client
calls = []


def inject(params, model, **_):
    if model.name != fault["operation"]:
        return
    if any(params.get(key) != value for key, value in fault.get("when", {}).items()):
        return
    calls.append(model.name)
    if len(calls) == fault.get("signal_at"):
        os.kill(os.getpid(), signal.SIGTERM)
    if len(calls) == fault.get("fail_at", 1):
        raise ClientError(
            {"Error": {"Code": fault["code"], "Message": fault["message"]}}, model.name
        )


def client(*args, **kwargs):
    made = real_client(*args, **kwargs)
    if args[:1] == ("sagemaker",):
        made.meta.events.register("before-parameter-build.sagemaker", inject)
    return made


boto3.client = client
from steps.cli import main

main(sys.argv[1:])
"""


def run_with_fault(
    args: list[str], env: dict[str, str], cwd: Path, **fault: Any
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", FAULT, "--json", *args],
        capture_output=True,
        text=True,
        env={**env, "TEST_FAULT": json.dumps(fault)},
        cwd=cwd,
        timeout=180,
    )


THROTTLED = {"code": "ThrottlingException", "message": "injected by the test"}
# The run's first Approved is the champion's approval (its last write): that one fails. The
# second is the undo's, setting the package it rejected back to Approved.
FAIL_APPROVAL = {"operation": "UpdateModelPackage", "when": {"ModelApprovalStatus": "Approved"}}


@pytest.mark.parametrize("command", ["promote", "rollback"])
def test_failing_halfway_in_sagemaker_puts_statuses_and_aliases_back_on_moto(
    command: str, model: Model, group: Group, moto_server: MotoServer, tmp_path: Path
) -> None:
    """Fault injection, beside the real failure of the same path above (the relay gone, after
    the move): moto cannot be made to refuse one UpdateModelPackage of two in one run, so the
    approval fails after the other version's package was set to Rejected (promote: the replaced
    champion's; rollback: the demoted one's). It is Approved again with its description, the
    aliases are back; the package whose approval failed keeps its status."""
    env = sagemaker_env(tmp_path, moto_server)
    for version in (1, 2):
        packaged(model, moto_server, version)
    model.gate(1)
    model.gate(2, champion="1")
    outputs(run(["promote", *model.args("--version", "1", *group.option())], env, tmp_path))
    if command == "rollback":
        outputs(run(["promote", *model.args("--version", "2", *group.option())], env, tmp_path))
        args = ["rollback", *model.args(*group.option())]
        rejected, failed, champion = "2", "1", ("2", "1")
    else:
        # Version 2's package exists (PendingManualApproval) from an earlier promote.
        relay = CutAfter(moto_server.url, "CreateModelPackage")
        try:
            cut = run(
                ["promote", *model.args("--version", "2", *group.option())],
                {**env, "AWS_ENDPOINT_URL": relay.url},
                tmp_path,
            )
        finally:
            relay.close()
        assert cut.returncode == 1
        args = ["promote", *model.args("--version", "2", *group.option())]
        rejected, failed, champion = "1", "2", ("1", None)
    arns = {v: model.tags(v)[ARN_TAG] for v in ("1", "2")}
    before = {v: group.package(arns[v]) for v in ("1", "2")}
    tags = {v: model.tags(v) for v in ("1", "2")}

    done = run_with_fault(args, env, tmp_path, **FAIL_APPROVAL, **THROTTLED)
    assert done.returncode == 1, done.stderr
    assert "ThrottlingException injected by the test" in done.stderr
    assert f"'champion' is version {champion[0]} again" in done.stderr
    assert (model.alias("champion"), model.alias("previous-champion")) == champion
    assert {v: model.tags(v) for v in ("1", "2")} == tags  # no evidence, no rolled-back-to
    assert before[rejected]["ModelApprovalStatus"] == "Approved"
    assert before[failed]["ModelApprovalStatus"] != "Approved"
    for version in (rejected, failed):
        found = group.package(arns[version])
        assert found["ModelApprovalStatus"] == before[version]["ModelApprovalStatus"]
        assert found.get("ApprovalDescription") == before[version].get("ApprovalDescription")


def test_a_signal_during_the_undo_is_delivered_after_it_on_moto(
    model: Model, group: Group, moto_server: MotoServer, tmp_path: Path
) -> None:
    """As above (rollback), and SIGTERM arrives while the undo sets the demoted version's
    package back to Approved: the undo finishes (statuses and aliases back), then the signal
    ends the run as a cancel, exit 143, not as the sync's failure."""
    env = sagemaker_env(tmp_path, moto_server)
    for version in (1, 2):
        packaged(model, moto_server, version)
    model.gate(1)
    model.gate(2, champion="1")
    for version in ("1", "2"):
        outputs(run(["promote", *model.args("--version", version, *group.option())], env, tmp_path))
    arn1, arn2 = model.tags(1)[ARN_TAG], model.tags(2)[ARN_TAG]
    before = {arn: group.package(arn) for arn in (arn1, arn2)}
    assert [before[arn]["ModelApprovalStatus"] for arn in (arn1, arn2)] == ["Rejected", "Approved"]

    done = run_with_fault(
        ["rollback", *model.args(*group.option())],
        env,
        tmp_path,
        **FAIL_APPROVAL,
        **THROTTLED,
        signal_at=2,  # the undo's: the demoted version's package back to Approved
    )
    assert done.returncode == 143, done.stderr
    assert "ThrottlingException injected by the test" in done.stderr
    assert "'champion' is version 2 again" in done.stderr
    assert model.alias("champion") == "2" and model.alias("previous-champion") == "1"
    for arn in (arn1, arn2):
        found = group.package(arn)
        assert found["ModelApprovalStatus"] == before[arn]["ModelApprovalStatus"]
        assert found["ApprovalDescription"] == before[arn]["ApprovalDescription"]


def test_sagemaker_refusing_the_input_is_its_own_message_not_a_missing_group_on_moto(
    model: Model, group: Group, moto_server: MotoServer, tmp_path: Path
) -> None:
    """Fault injection beside test_missing_group_is_exit_2_and_nothing_moves_on_moto (the real
    ValidationException of a group that does not exist): AWS also answers ValidationException
    for input it refuses, which moto does not check; that is not a missing group."""
    packaged(model, moto_server, 1)
    model.gate(1)
    message = (
        "1 validation error detected: Value at 'modelPackageGroupName' failed to satisfy "
        "constraint: Member must satisfy regular expression pattern"
    )
    done = run_with_fault(
        ["promote", *model.args("--version", "1", *group.option())],
        sagemaker_env(tmp_path, moto_server),
        tmp_path,
        operation="DescribeModelPackageGroup",
        code="ValidationException",
        message=message,
    )
    assert done.returncode == 2, done.stderr
    assert message in done.stderr and "reading model package group" in done.stderr
    assert "no such model package group" not in done.stderr
    assert "create-model-package-group" not in done.stderr
    assert model.alias("champion") is None and group.packages() == []


def test_an_arn_tag_the_training_rewrote_to_another_versions_package_is_refused_on_moto(
    model: Model, group: Group, moto_server: MotoServer, tmp_path: Path
) -> None:
    """The training holds the MLflow credentials, not the AWS ones: after its version passed
    the gate it points the version's ARN tag at the package registered for another version
    (one rolled back as bad). Approving it would serve that model: exit 2, nothing moves."""
    env = sagemaker_env(tmp_path, moto_server)
    for version in (1, 2):
        packaged(model, moto_server, version)
    model.gate(1)
    outputs(run(["promote", *model.args("--version", "1", *group.option())], env, tmp_path))
    image3 = image(moto_server, 3)
    bad = group.client.create_model_package(
        ModelPackageGroupName=group.name,
        ModelPackageDescription=f"MLflow model {model.name} version 3, image {image3}",
        InferenceSpecification={
            "Containers": [{"Image": image3}],
            "SupportedContentTypes": ["text/csv"],
            "SupportedResponseMIMETypes": ["text/csv"],
        },
        ModelApprovalStatus="Rejected",
    )["ModelPackageArn"]
    model._post(
        "model-versions/set-tag",
        {"name": model.name, "version": "2", "key": ARN_TAG, "value": bad},
    )
    model.gate(2, champion="1")
    done = run(["promote", *model.args("--version", "2", *group.option())], env, tmp_path)
    assert done.returncode == 2 and "Traceback" not in done.stderr
    assert f"names model package {bad}" in done.stderr and "not registered for it" in done.stderr
    assert group.package(bad)["ModelApprovalStatus"] == "Rejected"
    assert model.alias("champion") == "1" and model.evidence(2) == {}
    # The same tag on the champion, the package to reject: left as it is, with a warning.
    model._post(
        "model-versions/set-tag",
        {"name": model.name, "version": "1", "key": ARN_TAG, "value": bad},
    )
    requests.delete(
        f"{model.uri}/api/2.0/mlflow/model-versions/delete-tag",
        json={"name": model.name, "version": "2", "key": ARN_TAG},
        timeout=10,
    ).raise_for_status()
    done = run(["promote", *model.args("--version", "2", *group.option())], env, tmp_path)
    assert outputs(done)["decision"] == "promoted"
    assert "which was not registered for it: it is left as it is" in done.stderr
    assert group.package(bad)["ModelApprovalStatus"] == "Rejected"
