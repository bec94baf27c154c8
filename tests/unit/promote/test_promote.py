"""promote's options and plans (steps/promote/options.py, plan.py): pure logic, no
service. The runs themselves are in tests/integration/test_promote.py."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from steps.core.errors import ConfigError
from steps.core.runtime import Runtime
from steps.promote.options import PromoteConfig, load_config
from steps.promote.plan import build_plan, build_rollback_plan

URI = "http://127.0.0.1:5000"
DIGEST = "sha256:" + "5e" * 32  # the gate step's report-digest output


@pytest.fixture(autouse=True)
def in_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)  # no ./mlsteps.yaml unless a test writes one


def config(
    *, rollback: bool = False, env: dict[str, str] | None = None, **flags: Any
) -> PromoteConfig:
    given = {"tracking-uri": URI, "name": "churn"}
    given.update({k.replace("_", "-"): v for k, v in flags.items()})
    if not rollback:
        given.setdefault("version", "9")
        given.setdefault("gate-report-digest", DIGEST)
    given = {k: v for k, v in given.items() if v is not None}
    runtime = Runtime(environ={"XDG_CACHE_HOME": "/cache", **(env or {})})
    return load_config(runtime, given, rollback=rollback)


def refused(**kwargs: Any) -> str:
    with pytest.raises(ConfigError) as caught:
        config(**kwargs)
    return caught.value.message


def test_defaults() -> None:
    found = config()
    assert (found.alias, found.previous_alias) == ("champion", "previous-champion")
    assert found.lock == "file" and found.lock_path == "/cache/mlsteps/locks/churn.lock"
    assert (found.lock_ttl, found.lock_timeout) == (300.0, 120.0)
    assert found.require_gate and not found.require_approval
    assert found.expected_champion is None  # read from the gate's report at run time
    assert found.gate_report_digest == DIGEST


def test_environment_and_file_feed_the_same_options(tmp_path: Path) -> None:
    (tmp_path / "mlsteps.yaml").write_text(
        "promote:\n  alias: prod\n  lock: dynamodb\n  lock-path: locks\n  lock-ttl: 10m\n"
    )
    found = config(env={"MLSTEPS_PROMOTE_EXPECTED_CHAMPION": "NONE"})
    assert (found.alias, found.lock, found.lock_path) == ("prod", "dynamodb", "locks")
    assert found.lock_ttl == 600.0 and found.expected_champion == "none"


def test_a_vault_token_in_the_file_is_refused(tmp_path: Path) -> None:
    (tmp_path / "mlsteps.yaml").write_text("promote:\n  vault-token: s.abc\n")
    assert "does not belong in a file that is committed" in refused()


@pytest.mark.parametrize(
    ("flags", "expected"),
    [
        ({"version": None}, "promote needs the version to promote: give --version N"),
        ({"version": "v3"}, "--version 'v3' is not valid: expected a model version number"),
        ({"name": None}, "needs the registered model: give --name"),
        ({"tracking_uri": "sqlite:///m.db"}, "over HTTP; give its http(s) URL"),
        ({"tracking_uri": None}, "give --tracking-uri"),
        ({"alias": "latest"}, "expected an MLflow alias"),
        ({"previous_alias": "champion"}, "--alias and --previous-alias are both 'champion'"),
        ({"expected_champion": "seven"}, "a version number, none (no champion) or any"),
        ({"lock": "redis"}, "one of file, vault, dynamodb"),
        ({"lock": "vault", "lock_path": "secret/l"}, "--lock vault needs the server"),
        ({"lock": "dynamodb"}, "--lock dynamodb needs --lock-path"),
        ({"lock_ttl": "10s"}, "--lock-ttl 10s is too short"),
        ({"require_approval": "true"}, "give --approved-by NAME"),
        (
            {"gate_report_digest": None},
            "--require-gate true needs --gate-report-digest (env "
            "MLSTEPS_PROMOTE_GATE_REPORT_DIGEST): the gate step's report-digest output",
        ),
        (
            {"gate_report_digest": "sha256:ABC"},
            "--gate-report-digest 'sha256:ABC' is not valid: expected sha256:<64 lowercase hex "
            "digits>, the gate step's report-digest output",
        ),
        (
            {"gate_report_digest": None, "require_gate": "false"},
            "--require-gate false without --gate-report-digest: there is no gate report to "
            "read the champion it compared against from. Give --expected-champion N",
        ),
    ],
)
def test_bad_input_names_the_option_and_the_fix(flags: dict[str, Any], expected: str) -> None:
    assert expected in refused(**flags)


def test_vault_lock_needs_a_token_from_the_environment() -> None:
    kwargs: dict[str, Any] = {"lock": "vault", "lock_path": "secret/l"}
    assert "VAULT_TOKEN" in refused(env={"VAULT_ADDR": "http://v:8200"}, **kwargs)
    found = config(env={"VAULT_ADDR": "http://v:8200/", "VAULT_TOKEN": "s.token"}, **kwargs)
    assert found.vault_url == "http://v:8200" and "s.token" not in repr(found)
    assert found.vault_token is not None and found.vault_token.reveal() == "s.token"


def test_github_approval_needs_the_token() -> None:
    github = {"GITHUB_ACTIONS": "true", "GITHUB_REPOSITORY": "a/b", "GITHUB_RUN_ID": "5"}
    assert "GITHUB_TOKEN" in refused(require_approval="true", env=github)
    with_token = {**github, "GITHUB_TOKEN": "ghs_x"}
    assert "give --approval-environment NAME" in refused(require_approval="true", env=with_token)
    found = config(require_approval="true", approval_environment="prod", env=with_token)
    plan = build_plan(found, {**github, "GITHUB_API_URL": "https://ghe.example/api/v3"})
    lines = "\n".join(plan.lines())
    assert "https://ghe.example/api/v3/repos/a/b/actions/runs/5/approvals" in lines
    assert "must have approved environment 'prod' (--approval-environment" in lines


def test_promote_plan_names_the_lock_and_where_the_expected_champion_comes_from() -> None:
    lines = "\n".join(build_plan(config(), {}).lines())
    assert "read from the verified gate report" in lines
    assert f"mlsteps/gate/report.json) must hash to {DIGEST} (--gate-report-digest)" in lines
    assert "take the file lock /cache/mlsteps/locks/churn.lock" in lines
    assert "older than 5m, is taken over; wait up to 2m" in lines
    explicit = "\n".join(build_plan(config(expected_champion="4"), {}).lines())
    assert "it must be version 4 (--expected-champion)" in explicit
    assert "approval" not in lines  # not required, none given: no approval action


def test_rollback_takes_no_candidate_and_refuses_none() -> None:
    found = config(rollback=True)
    assert found.version is None and not found.require_gate
    kinds = [a.kind for a in build_rollback_plan(found).actions]
    assert kinds == [
        "mlflow.read-model", "lock.acquire", "alias.compare", "alias.set",
        "alias.delete-previous", "version.tag", "lock.release",
    ]  # fmt: skip
    assert "a rollback needs a champion" in refused(rollback=True, expected_champion="none")


# ----- --sagemaker-model-package-group ------------------------------------------------------


def test_sagemaker_group_is_unset_by_default_and_read_from_flag_env_and_file(
    tmp_path: Path,
) -> None:
    assert config().sagemaker_model_package_group is None
    assert config(rollback=True).sagemaker_model_package_group is None
    kinds = [a.kind for a in build_plan(config(), {}).actions]
    assert not [k for k in kinds if k.startswith("sagemaker.")]
    (tmp_path / "mlsteps.yaml").write_text("promote:\n  sagemaker-model-package-group: f-1\n")
    assert config().sagemaker_model_package_group == "f-1"
    env = {"MLSTEPS_PROMOTE_SAGEMAKER_MODEL_PACKAGE_GROUP": "e-2"}
    assert config(env=env).sagemaker_model_package_group == "e-2"  # env outranks the file
    found = config(env=env, sagemaker_model_package_group="churn-models")  # the flag, both
    assert found.sagemaker_model_package_group == "churn-models"
    rollback = config(rollback=True, env=env)
    assert rollback.sagemaker_model_package_group == "e-2"


@pytest.mark.parametrize(
    "bad",
    [
        "-churn", "churn-", "churn_models", "a" * 64, "arn:aws:x", "",
        "a" + "-" * 62 + "b",  # the pattern takes it; AWS's separate length limit of 63 does not
    ],
)  # fmt: skip
def test_a_bad_sagemaker_group_names_the_option_and_the_form(bad: str) -> None:
    message = refused(sagemaker_model_package_group=bad)
    assert f"--sagemaker-model-package-group '{bad}' is not valid" in message
    assert "up to 63 letters, digits and hyphens" in message and "or none (no sync)" in message


def test_a_63_character_group_is_taken() -> None:
    name = "a" + "-" * 61 + "b"
    assert config(sagemaker_model_package_group=name).sagemaker_model_package_group == name


def test_none_turns_the_sync_off_over_the_file_and_the_environment(tmp_path: Path) -> None:
    (tmp_path / "mlsteps.yaml").write_text("promote:\n  sagemaker-model-package-group: f-1\n")
    env = {"MLSTEPS_PROMOTE_SAGEMAKER_MODEL_PACKAGE_GROUP": "e-2"}
    for off in ("none", "None", "NONE"):
        found = config(env=env, sagemaker_model_package_group=off)  # the flag, over both
        assert found.sagemaker_model_package_group is None
        kinds = [a.kind for a in build_plan(found, {}).actions]
        assert not [k for k in kinds if k.startswith("sagemaker.")]
        environ = {"MLSTEPS_PROMOTE_SAGEMAKER_MODEL_PACKAGE_GROUP": off}  # the env, over the file
        assert config(env=environ).sagemaker_model_package_group is None
        assert config(rollback=True, env=environ).sagemaker_model_package_group is None
    assert config().sagemaker_model_package_group == "f-1"


def test_the_plans_name_the_sagemaker_group_and_keep_the_writes_after_the_checks() -> None:
    found = config(sagemaker_model_package_group="churn-models")
    plan = build_plan(found, {})
    kinds = [a.kind for a in plan.actions]
    # Found or registered under the lock, once the champion is known, before any alias moves
    # (bad input stops there); approved last.
    assert kinds == [
        "mlflow.read-candidate", "lock.acquire", "alias.compare", "sagemaker.package",
        "alias.set-previous", "alias.set", "version.tag", "sagemaker.approve", "lock.release",
    ]  # fmt: skip
    approve = plan.actions[kinds.index("sagemaker.approve")]
    assert approve.data == {"group": "churn-models", "approve": "9"}
    assert "the replaced champion's model package (if Approved) to Rejected" in approve.line
    assert "version 9 in SageMaker group churn-models to Approved" in approve.line
    assert "Already the champion: its package is still approved" in "\n".join(plan.lines())
    rollback = build_rollback_plan(config(rollback=True, sagemaker_model_package_group="g"))
    assert [a.kind for a in rollback.actions] == [
        "mlflow.read-model", "lock.acquire", "alias.compare", "sagemaker.package", "alias.set",
        "alias.delete-previous", "version.tag", "sagemaker.approve", "lock.release",
    ]  # fmt: skip
    assert "to Rejected and the restored version's to Approved" in "\n".join(rollback.lines())


def test_approval_descriptions_say_the_evidence_in_one_line_without_credentials() -> None:
    from steps.promote.sync import (
        promotion_description,
        replaced_description,
        rollback_descriptions,
        standing_description,
    )
    from steps.services.sagemaker import one_line

    said = promotion_description(
        model="churn", alias="champion", version="7", previous="6", approver="ana\nlead",
        report_digest="sha256:ab", ci_run_url="https://bot:pa55@ci.example/job/7/",
        commit="c0ffee", at="2025-01-01T00:00:00+00:00",
    )  # fmt: skip
    assert said == (
        "promoted to @champion of MLflow model churn version 7 (previous champion version 6), "
        "approved by ana lead, gate report sha256:ab, CI run https://***@ci.example/job/7/, "
        "commit c0ffee, at 2025-01-01T00:00:00+00:00"
    )
    first = promotion_description(
        model="churn", alias="champion", version="1", previous=None, approver=None,
        report_digest="", ci_run_url="", commit="", at="T",
    )  # fmt: skip
    assert (
        first
        == "promoted to @champion of MLflow model churn version 1 (no previous champion), at T"
    )
    rejected, approved = rollback_descriptions(
        model="churn", alias="prod", restored="6", demoted="7", ci_run_url="", commit="c",
        at="T",
    )  # fmt: skip
    assert rejected == (
        "rolled back from @prod of MLflow model churn: version 7 replaced by version 6, "
        "commit c, at T"
    )
    assert approved == (
        "restored to @prod of MLflow model churn version 6 by a rollback from version 7, "
        "commit c, at T"
    )
    replaced = replaced_description(
        model="churn", alias="prod", version="7", previous="6", approver=None,
        ci_run_url="https://bot:pa55@ci.example/", commit="", at="T",
    )  # fmt: skip
    assert replaced == (
        "replaced as @prod of MLflow model churn by version 7 (was version 6), CI run "
        "https://***@ci.example/, at T"
    )
    standing = standing_description(
        model="churn", alias="prod", version="6", ci_run_url="", commit="c", at="T",
        tags={"mlsteps.promote.at": "S", "mlsteps.promote.approved-by": "ana"},
    )  # fmt: skip
    assert standing == (
        "@prod of MLflow model churn is version 6 (already when its package was approved), "
        "promoted at S, approved by ana, commit c, at T"
    )
    long = one_line("x" * 2000)
    assert len(long) == 1024 and long.endswith("…")


@pytest.mark.parametrize(
    ("code", "message", "absent"),
    [
        ("ValidationException", "ModelPackageGroup arn:...:model-package-group/g does not exist.",
         True),
        ("ValidationException", "Model package arn:...:model-package/g/1 not found", True),
        ("ResourceNotFound", "", True),
        ("ValidationException", "1 validation error detected: Value 'x' at 'modelPackageGroupName' "
         "failed to satisfy constraint: Member must have length less than or equal to 63", False),
        ("AccessDeniedException", "User is not authorized: resource not found in policy", False),
    ],
)  # fmt: skip
def test_only_a_not_found_answer_means_absent(code: str, message: str, absent: bool) -> None:
    from steps.services.sagemaker import says_absent

    assert says_absent(code, message) is absent
