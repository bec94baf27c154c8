"""The option cascade and the config file's messages (steps/core/config_file.py, options.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

from steps.config_cmd import json_schema
from steps.core.config_file import find_config_file, load_config_file, resolve
from steps.core.errors import ConfigError
from steps.core.options import MLFLOW
from steps.core.text import redact_url
from steps.core.values import parse_duration, parse_size
from steps.registry import all_sections
from steps.train.options import SECTION as TRAIN


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "mlsteps.yaml"
    path.write_text(text)
    return path


def load(tmp_path: Path, text: str):  # type: ignore[no-untyped-def]
    return load_config_file(write(tmp_path, text), all_sections())


def test_precedence_flag_over_env_over_file_over_default(tmp_path: Path) -> None:
    cfg = load(tmp_path, "train:\n  image: from-file\n  pull: never\n  user: file-user\n")
    env = {"MLSTEPS_TRAIN_IMAGE": "from-env", "MLSTEPS_TRAIN_PULL": "always"}
    values = resolve(TRAIN, {"image": "from-flag"}, cfg, env)
    assert values["image"].value == "from-flag" and values["image"].source == "flag --image"
    assert values["pull"].value == "always" and values["pull"].source == "env MLSTEPS_TRAIN_PULL"
    assert values["user"].value == "file-user" and values["user"].source.endswith("mlsteps.yaml:4")
    assert values["backend"].value == "docker" and values["backend"].source == "default"


def test_empty_environment_variable_counts_as_unset(tmp_path: Path) -> None:
    # GitHub passes "" for every action input the user left out.
    cfg = load(tmp_path, "train:\n  image: from-file\n")
    values = resolve(TRAIN, {}, cfg, {"MLSTEPS_TRAIN_IMAGE": ""})
    assert values["image"].value == "from-file"


def test_env_lists_are_one_item_per_line_and_command_is_shell_words(tmp_path: Path) -> None:
    cfg = load(tmp_path, "")
    env = {
        "MLSTEPS_TRAIN_ENV": "A=1\n\nB=two words\n",
        "MLSTEPS_TRAIN_COMMAND": "python train.py --name 'a b'",
    }
    values = resolve(TRAIN, {}, cfg, env)
    assert values["env"].value == ["A=1", "B=two words"]
    assert values["command"].value == ["python", "train.py", "--name", "a b"]


def test_mlflow_tracking_uri_falls_back_to_the_standard_variable(tmp_path: Path) -> None:
    cfg = load(tmp_path, "")
    values = resolve(MLFLOW, {}, cfg, {"MLFLOW_TRACKING_URI": "http://127.0.0.1:1"})
    assert values["tracking-uri"].value == "http://127.0.0.1:1"
    assert values["tracking-uri"].source == "env MLFLOW_TRACKING_URI"
    both = {"MLFLOW_TRACKING_URI": "http://a", "MLSTEPS_MLFLOW_TRACKING_URI": "http://b"}
    assert resolve(MLFLOW, {}, cfg, both)["tracking-uri"].value == "http://b"


def test_relative_paths_in_the_file_are_relative_to_the_file(tmp_path: Path) -> None:
    (tmp_path / "data").mkdir()
    cfg = load(tmp_path, "train:\n  data-dir: data\n")
    assert resolve(TRAIN, {}, cfg, {})["data-dir"].value == str(tmp_path / "data")


def test_mount_host_paths_in_the_file_are_relative_to_the_file(tmp_path: Path) -> None:
    (tmp_path / "cache").mkdir()
    cfg = load(tmp_path, "train:\n  mount: ['cache:/root/.cache:ro']\n")
    (mount,) = resolve(TRAIN, {}, cfg, {})["mount"].value
    assert (mount.host, mount.container, mount.read_only) == (
        str(tmp_path / "cache"),
        "/root/.cache",
        True,
    )


def test_unknown_key_names_file_line_and_suggests(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as caught:
        load(tmp_path, "train:\n  image: x\n  shm_size: 1g\n")
    message = caught.value.message
    assert f"{tmp_path / 'mlsteps.yaml'}:3" in message
    assert "'shm_size'" in message and "Did you mean 'shm-size'?" in message
    assert caught.value.exit_code == 2


def test_unknown_section_suggests(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"mlsteps.yaml:2: unknown section 'trian'.*'train'"):
        load(tmp_path, "model: {name: m}\ntrian:\n  image: x\n")


def test_yaml_syntax_error_names_the_line(tmp_path: Path) -> None:
    with pytest.raises(
        ConfigError, match=r"mlsteps.yaml:4: not valid YAML .*flow sequence at line 3"
    ):
        load(tmp_path, "train:\n  image: x\n  command: [a, b\n")


def test_section_must_be_a_mapping(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"mlsteps.yaml:1: 'train' must be a mapping"):
        load(tmp_path, "train: python train.py\n")


def test_bad_value_names_the_source_and_the_expected_form(tmp_path: Path) -> None:
    cfg = load(tmp_path, "train:\n  gpus: lots\n")
    with pytest.raises(ConfigError) as caught:
        resolve(TRAIN, {}, cfg, {})
    assert "mlsteps.yaml:2: train.gpus 'lots' is not valid" in caught.value.message
    assert "device ids such as 0,2" in caught.value.message
    with pytest.raises(
        ConfigError, match=r"^--memory 'lots' is not valid: expected a positive size"
    ):
        resolve(TRAIN, {"memory": "lots"}, load(tmp_path, ""), {})
    with pytest.raises(ConfigError, match=r"^environment variable MLSTEPS_TRAIN_TIMEOUT 'soon'"):
        resolve(TRAIN, {}, load(tmp_path, ""), {"MLSTEPS_TRAIN_TIMEOUT": "soon"})


def test_numbers_and_structured_values_say_what_they_want(tmp_path: Path) -> None:
    from steps.gate.options import SECTION as GATE

    empty = load(tmp_path, "")
    with pytest.raises(
        ConfigError, match=r"^--resamples 'many' is not valid: expected an integer\.$"
    ):
        resolve(GATE, {"resamples": "many"}, empty, {})
    with pytest.raises(
        ConfigError, match=r"^--confidence 'high' is not valid: expected a number\.$"
    ):
        resolve(GATE, {"confidence": "high"}, empty, {})
    # a structured option's parser names the key itself: no "expected" in front of it
    with pytest.raises(
        ConfigError,
        match=r"^--metrics '\{f1: \{min: x\}\}' is not valid: f1.min: 'x' is not a number\.$",
    ):
        resolve(GATE, {"metrics": "{f1: {min: x}}"}, empty, {})


def test_under_github_actions_the_message_names_the_action_input(tmp_path: Path) -> None:
    env = {"GITHUB_ACTIONS": "true", "MLSTEPS_TRAIN_GPUS": "lots"}
    with pytest.raises(
        ConfigError, match=r"^input 'gpus' \(env MLSTEPS_TRAIN_GPUS\) 'lots' is not"
    ):
        resolve(TRAIN, {}, load(tmp_path, ""), env)


def test_list_item_errors_show_the_item(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"^--mount '/tmp:relative' is not valid"):
        resolve(TRAIN, {"mount": ("/tmp:/ok", "/tmp:relative")}, load(tmp_path, ""), {})


def test_explicit_config_that_does_not_exist(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"--config .*nope.yaml: no such file"):
        find_config_file(str(tmp_path / "nope.yaml"))
    assert find_config_file(None, cwd=tmp_path) is None
    write(tmp_path, "")
    assert find_config_file(None, cwd=tmp_path) == tmp_path / "mlsteps.yaml"


@pytest.mark.parametrize(
    ("text", "seconds"), [("90", 90), ("90s", 90), ("30m", 1800), ("1.5h", 5400), ("250ms", 0.25)]
)
def test_durations(text: str, seconds: float) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize(
    ("text", "size"), [("64m", 64 << 20), ("2g", 2 << 30), ("1GiB", 1 << 30), ("512", 512)]
)
def test_sizes(text: str, size: int) -> None:
    assert parse_size(text) == size


@pytest.mark.parametrize("text", ["", "-1m", "0", "lots", "1x"])
def test_bad_sizes_and_durations(text: str) -> None:
    with pytest.raises(ValueError):
        parse_size(text)
    with pytest.raises(ValueError):
        parse_duration(text)


def test_credentials_in_urls_are_redacted() -> None:
    assert redact_url("https://user:s3cret@mlflow.example/x") == "https://***@mlflow.example/x"
    assert redact_url("http://127.0.0.1:5000") == "http://127.0.0.1:5000"
    # The user part ends at the last @ before the path: a password may hold an @ of its own.
    assert (
        redact_url("http://user:p@ss@w0rd@vault:8200/v1?x=a@b") == "http://***@vault:8200/v1?x=a@b"
    )
    assert redact_url("https://tok@host") == "https://***@host"
    assert (
        redact_url("see http://a:b@c/d and https://e:f@g@h")
        == "see http://***@c/d and https://***@h"
    )


def test_schema_accepts_the_quickstart_file_and_rejects_unknown_keys() -> None:
    jsonschema = pytest.importorskip("jsonschema")
    import yaml

    schema = json_schema(all_sections())
    quickstart = Path(__file__).parents[3] / "examples" / "quickstart" / "mlsteps.yaml"
    jsonschema.validate(yaml.safe_load(quickstart.read_text()), schema)
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate({"train": {"shm_size": "1g"}}, schema)


def test_number_ranges_are_said_in_help_and_schema() -> None:
    from steps.core.runtime import _click_option

    cpus = TRAIN.option("cpus")
    assert "Range: from 0.01 to 4096." in (_click_option("train", cpus).help or "")
    schema = json_schema(all_sections())["properties"]["train"]["properties"]["cpus"]
    assert (schema["minimum"], schema["maximum"]) == (0.01, 4096)
