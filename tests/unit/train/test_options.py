"""train's option parsers (steps/train/options.py), its plan (steps/train/plan.py) and the data
digest: no services."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from steps.core.errors import ConfigError
from steps.core.runtime import Runtime
from steps.services.lineage import data_digest
from steps.train.options import GpuRequest, TrainConfig, load_config, parse_gpus, parse_mount
from steps.train.plan import build_plan, container_network


@pytest.mark.parametrize(
    ("spec", "requests"),
    [
        ("none", []),
        ("0", []),
        ("auto", []),
        ("all", [{"driver": "", "capabilities": [["gpu"]], "count": -1}]),
        ("2", [{"driver": "", "capabilities": [["gpu"]], "count": 2}]),
        ("0,2", [{"driver": "", "capabilities": [["gpu"]], "device_ids": ["0", "2"]}]),
        ("GPU-3f2a-11", [{"driver": "", "capabilities": [["gpu"]], "device_ids": ["GPU-3f2a-11"]}]),
    ],
)
def test_gpus_become_docker_device_requests(spec: str, requests: list[dict[str, object]]) -> None:
    assert parse_gpus(spec).device_requests() == requests


@pytest.mark.parametrize("spec", ["lots", "-1", "0,,2", "gpu0", "all,1"])
def test_bad_gpu_specs(spec: str) -> None:
    with pytest.raises(ValueError, match="device ids"):
        parse_gpus(spec)


def test_mounts() -> None:
    mount = parse_mount("/tmp:/work:ro")
    assert (mount.host, mount.container, mount.read_only) == ("/tmp", "/work", True)
    assert not parse_mount("/tmp:/work").read_only
    for bad in ["/tmp", "/tmp:work", "/tmp:/work:rx", ":/work"]:
        with pytest.raises(ValueError):
            parse_mount(bad)


def config(
    tmp_path: Path, *args: str, environ: dict[str, str] | None = None, **flags: object
) -> TrainConfig:
    runtime = Runtime(config=None, environ=environ or {})
    runtime._config_file = None
    import os

    cwd = os.getcwd()
    os.chdir(tmp_path)  # no ./mlsteps.yaml here
    try:
        return load_config(runtime, flags, list(args))
    finally:
        os.chdir(cwd)


def test_plan_lists_image_command_mounts_gpus_and_env_names_never_secret_values(
    tmp_path: Path,
) -> None:
    cfg = config(
        tmp_path,
        "python",
        "train.py",
        environ={"DB_PASSWORD": "hunter2-secret-value"},
        image="trainer:1",
        gpus="0,2",
        mount=(f"{tmp_path}:/work:ro",),
        env=("EPOCHS=3",),
        **{"secret-env": ("DB_PASSWORD",), "tracking-uri": "http://u:pw@127.0.0.1:5000"},
    )
    plan = build_plan(cfg)
    kinds = [a.kind for a in plan.actions]
    assert kinds == [
        "containers.sweep",
        "image.ensure",
        "mlflow.start-run",
        "secrets.write",
        "container.run",
        "mlflow.end-run",
    ]
    run = plan.to_json()["actions"][4]
    assert run["image"] == "trainer:1" and run["command"] == ["python", "train.py"]
    assert run["mounts"] == [f"{tmp_path}:/work:ro"]
    assert run["device_requests"] == [
        {"Driver": "", "Capabilities": [["gpu"]], "DeviceIDs": ["0", "2"]}
    ]
    assert run["env_names"] == ["EPOCHS"] and run["secret_env_names"] == ["DB_PASSWORD"]
    text = str(plan) + "\n".join(plan.lines())
    assert "hunter2-secret-value" not in text and ":pw@" not in text


def test_plan_without_tracking_has_no_mlflow_actions(tmp_path: Path) -> None:
    plan = build_plan(config(tmp_path, "true", image="x"))
    assert [a.kind for a in plan.actions] == ["containers.sweep", "image.ensure", "container.run"]


def test_local_backend_plans_a_process(tmp_path: Path) -> None:
    plan = build_plan(config(tmp_path, "python", "t.py", backend="local"))
    assert [a.kind for a in plan.actions] == ["process.run"]


@pytest.mark.parametrize(
    ("flags", "environ", "message"),
    [
        ({}, {}, "train needs an image: give --image IMAGE"),
        ({"backend": "local"}, {}, "--backend local needs the command"),
        ({"image": "x", "secret-env": ("NOT_SET_HERE",)}, {}, "--secret-env NOT_SET_HERE: not set"),
        ({"image": "x", "run-id": "abc"}, {}, "--run-id abc needs a tracking server"),
        (
            {"image": "x", "tracking-uri": "sqlite:///m.db"},
            {},
            "only reach an MLflow server over http",
        ),
        (
            {"image": "x", "mount": ("/no/such/dir:/x",)},
            {},
            "the host path /no/such/dir does not exist",
        ),
        (
            {"image": "x", "data-dir": "/no/such/data"},
            {},
            "--data-dir /no/such/data: no such directory",
        ),
        (
            {"backend": "local", "workdir": "/no/such/dir", "command": ("true",)},
            {},
            "--workdir /no/such/dir: no such directory",
        ),
        (
            {"backend": "local", "image": "x", "memory": "1g", "command": ("true",)},
            {},
            "--image, --memory: container options, but --backend local",
        ),
    ],
)
def test_cross_option_errors(
    tmp_path: Path, flags: dict[str, object], environ: dict[str, str], message: str
) -> None:
    with pytest.raises(ConfigError) as caught:
        config(tmp_path, environ=environ, **flags)
    assert message in caught.value.message


def test_loopback_tracking_uses_host_network_or_host_gateway(tmp_path: Path) -> None:
    loopback = config(tmp_path, image="x", **{"tracking-uri": "http://127.0.0.1:5000"})
    assert container_network(loopback) == ("host", "http://127.0.0.1:5000", None)
    bridged = config(
        tmp_path, image="x", network="bridge", **{"tracking-uri": "http://localhost:5000/"}
    )
    assert container_network(bridged) == (
        "bridge",
        "http://host.docker.internal:5000/",
        {"host.docker.internal": "host-gateway"},
    )
    remote = config(tmp_path, image="x", **{"tracking-uri": "https://mlflow.example"})
    assert container_network(remote) == (None, "https://mlflow.example", None)


def test_data_digest_matches_the_documented_coreutils_pipeline(tmp_path: Path) -> None:
    if not shutil.which("sha256sum"):
        pytest.skip("coreutils sha256sum not installed")
    (tmp_path / "b").mkdir()
    (tmp_path / "a.csv").write_text("x,y\n1,2\n")
    (tmp_path / "b" / "z.bin").write_bytes(bytes(range(256)) * 10)
    (tmp_path / "B.txt").write_text("upper case sorts first in C locale\n")
    (tmp_path / "link.csv").symlink_to(tmp_path / "a.csv")  # not followed, as with find -type f
    pipeline = (
        "(cd \"$0\" && find . -type f -printf '%P\\n' | LC_ALL=C sort | "
        'while IFS= read -r f; do sha256sum "$f"; done) | sha256sum'
    )
    shell = subprocess.run(
        ["bash", "-c", pipeline, str(tmp_path)], capture_output=True, text=True, check=True
    )
    assert data_digest(str(tmp_path)) == "sha256:" + shell.stdout.split()[0]
    before = data_digest(str(tmp_path))
    (tmp_path / "a.csv").rename(tmp_path / "c.csv")
    assert data_digest(str(tmp_path)) != before


def test_gpu_request_text() -> None:
    assert [str(parse_gpus(s)) for s in ("all", "2", "0,2", "none")] == ["all", "2", "0,2", "none"]
    assert GpuRequest("auto").device_requests() == []


SECRETS = {"DB_PASSWORD": "hunter2-secret-value", "HF_TOKEN": "hf_secret_token_value"}


def test_plan_writes_secret_files_before_the_run_naming_never_showing_them(
    tmp_path: Path,
) -> None:
    cfg = config(
        tmp_path,
        "true",
        environ=SECRETS,
        image="trainer:1",
        **{"secret-env": ("DB_PASSWORD", "HF_TOKEN"), "tracking-uri": "http://127.0.0.1:5000"},
    )
    plan = build_plan(cfg)
    assert [a.kind for a in plan.actions] == [
        "containers.sweep",
        "image.ensure",
        "mlflow.start-run",
        "secrets.write",
        "container.run",
        "mlflow.end-run",
    ]
    write = plan.to_json()["actions"][3]
    assert write["names"] == ["DB_PASSWORD", "HF_TOKEN"]
    assert write["file_env_names"] == ["DB_PASSWORD_FILE", "HF_TOKEN_FILE"]
    assert write["container_dir"] == "/run/secrets"
    assert write["base"] == "/dev/shm" and write["tmpfs"] is True  # this machine has one
    assert write["line"].startswith(
        "write 2 secret file(s) (DB_PASSWORD, HF_TOKEN) to a private directory under "
        "/dev/shm (tmpfs), mounted read-only at /run/secrets"
    )
    run = plan.to_json()["actions"][4]
    assert run["secrets_as"] == "files"
    assert run["line"].endswith("; secrets DB_PASSWORD, HF_TOKEN as files in /run/secrets")
    text = str(plan) + "\n".join(plan.lines())
    assert not any(value in text for value in SECRETS.values())


def test_secrets_as_env_plans_no_files_and_says_docker_inspect_shows_them(tmp_path: Path) -> None:
    cfg = config(
        tmp_path,
        "true",
        environ=SECRETS,
        image="trainer:1",
        **{"secret-env": ("HF_TOKEN",), "secrets-as-env": "true"},
    )
    assert cfg.secrets_as_env is True
    plan = build_plan(cfg)
    assert [a.kind for a in plan.actions] == ["containers.sweep", "image.ensure", "container.run"]
    run = plan.to_json()["actions"][2]
    assert run["secrets_as"] == "env"
    assert run["line"].endswith(
        "; secrets HF_TOKEN as environment variables (docker inspect shows them)"
    )


def test_local_backend_plans_secret_files_on_the_host(tmp_path: Path) -> None:
    cfg = config(
        tmp_path,
        "python",
        "t.py",
        environ=SECRETS,
        backend="local",
        **{"secret-env": ("HF_TOKEN",)},
    )
    plan = build_plan(cfg)
    assert [a.kind for a in plan.actions] == ["secrets.write", "process.run"]
    write = plan.to_json()["actions"][0]
    assert write["container_dir"] is None and "mounted" not in write["line"]
    assert plan.actions[1].line.endswith("; secrets HF_TOKEN as files")


def test_no_secrets_no_secret_action(tmp_path: Path) -> None:
    plan = build_plan(config(tmp_path, "true", image="x", **{"secrets-as-env": "false"}))
    assert "secrets.write" not in [a.kind for a in plan.actions]
    assert "secrets" not in plan.actions[-1].line


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (
            {"env": ("HF_TOKEN_FILE=/x",)},
            "--env HF_TOKEN_FILE: that variable carries a --secret-env secret",
        ),
        ({"env": ("HF_TOKEN",)}, "--env HF_TOKEN: that variable carries a --secret-env secret"),
        (
            {"mount": ("/tmp:/run/secrets:ro",)},
            "--mount /tmp:/run/secrets:ro: /run/secrets holds the --secret-env files",
        ),
        ({"secrets-as-env": "maybe"}, "--secrets-as-env 'maybe' is not valid: expected true"),
    ],
)
def test_secret_option_clashes(tmp_path: Path, flags: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigError) as caught:
        config(
            tmp_path, "true", environ=SECRETS, image="x", **{"secret-env": ("HF_TOKEN",)}, **flags
        )
    assert message in caught.value.message


def test_secret_file_name_clash_is_fine_when_secrets_go_as_env(tmp_path: Path) -> None:
    cfg = config(
        tmp_path,
        "true",
        environ=SECRETS,
        image="x",
        env=("HF_TOKEN_FILE=/x",),
        mount=("/tmp:/run/secrets",),
        **{"secret-env": ("HF_TOKEN",), "secrets-as-env": "yes"},
    )
    assert cfg.secrets_as_env


def test_the_ci_run_url_recorded_as_evidence_hides_credentials() -> None:
    from steps.services.lineage import ci_run_url

    jenkins = {"BUILD_URL": "https://bot:s3cret-token@ci.example/job/ml/7/"}
    assert ci_run_url(jenkins) == "https://***@ci.example/job/ml/7/"
    github = {"GITHUB_RUN_ID": "42", "GITHUB_REPOSITORY": "org/repo"}
    assert ci_run_url(github) == "https://github.com/org/repo/actions/runs/42"
    assert ci_run_url({}) == ""
