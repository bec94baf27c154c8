"""The environment a model's code gets (the namespaces are shown against real model code in
tests/integration: test_package.py and test_gate.py's credential tests)."""

from __future__ import annotations

from pathlib import Path

from steps.services.model_code import launch as model_code


def test_only_allowed_names_pass_and_home_is_its_own(tmp_path: Path) -> None:
    environ = {
        "PATH": "/usr/bin", "LC_ALL": "C.UTF-8", "OMP_NUM_THREADS": "2",
        "MLSTEPS_PACKAGE_REGISTRY_PASSWORD": "pw", "AWS_SECRET_ACCESS_KEY": "k",
        "MY_DEPLOY_KEY": "no-deny-list-names-this", "HOME": "/root", "TMPDIR": "/secret-tmp",
    }  # fmt: skip
    env = model_code.environment(environ, tmp_path)
    assert {k: env[k] for k in ("PATH", "LC_ALL", "OMP_NUM_THREADS")} == {
        "PATH": "/usr/bin", "LC_ALL": "C.UTF-8", "OMP_NUM_THREADS": "2",
    }  # fmt: skip
    assert not {
        "MLSTEPS_PACKAGE_REGISTRY_PASSWORD",
        "AWS_SECRET_ACCESS_KEY",
        "MY_DEPLOY_KEY",
    } & set(env)
    assert {env[k] for k in ("HOME", "TMPDIR", "TMP", "TEMP")} == {str(tmp_path)}


def test_launch_adds_the_callers_values_and_says_whether_it_is_isolated(tmp_path: Path) -> None:
    how = model_code.launch(["python", "x.py"], tmp_path, {"MLSTEPS_MODEL_DIR": "/m"}, {})
    assert how.argv == [*model_code.isolation(), "python", "x.py"]
    assert how.isolated == bool(model_code.isolation())
    assert how.env["MLSTEPS_MODEL_DIR"] == "/m" and "PATH" not in how.env
