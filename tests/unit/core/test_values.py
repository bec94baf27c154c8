"""Hostile YAML and oversized values (steps/core/values.py): refused fast, with a short message,
wherever YAML is read — mlsteps.yaml, an environment variable behind an action input, a
nested --metrics flag, a model's MLmodel file."""

from __future__ import annotations

from pathlib import Path

import pytest

from steps.core.values import MAX_YAML_NODES, YamlRefused, check_path, check_text, clip, load_yaml
from tests.unit.run_cli import base_env, run

# Nine times nine … : 9**8 (43 million) strings once expanded, 250 characters written.
BOMB = "a: &a [x,x,x,x,x,x,x,x,x]\n" + "".join(
    f"{n}: &{n} [{','.join(['*' + p] * 9)}]\n" for p, n in zip("abcdefg", "bcdefgh", strict=True)
)
# The same bomb where gate's --metrics rules read it: the rule's value is the expanded list.
METRICS_BOMB = BOMB + "accuracy: {min: *h}\n"
DEEP = "[" * 2000 + "]" * 2000
ATTACKS = {
    "alias bomb": (BOMB, "more than 20,000 values"),
    "recursive alias": ("&a [*a]", "refers to a node that contains it"),
    "deep nesting": (DEEP, "nested deeper than 50 levels"),
    "python tag": ("!!python/object/apply:os.system [echo hi]", "tag !!python/object/apply"),
    "binary tag": ("!!binary aGk=", "tag !!binary is not allowed"),
    "local tag": ("!secret x", "tag !secret is not allowed"),
    "complex key": ("? [a, b]\n: 1\n", "mapping key must be a plain value"),
    "flow complex key": ("{[a]: 1}", "mapping key must be a plain value"),
    "huge": ("x" * 5_000_000, "1,000,000"),
}

ERRORS_AT_MOST = 600  # characters of a one-paragraph message, whatever the value's size


@pytest.mark.parametrize("name", list(ATTACKS))
def test_load_yaml_refuses_each_attack(name: str) -> None:
    text, reason = ATTACKS[name]
    with pytest.raises(YamlRefused) as caught:
        load_yaml(text)
    assert reason in caught.value.problem


def test_plain_yaml_still_loads_anchors_and_merge_keys_included() -> None:
    text = "base: &b {min: 0.9}\nacc: *b\nf1:\n  <<: *b\n  max: 1\nwhen: 2024-01-02\n"
    loaded = load_yaml(text)
    assert loaded["acc"] == {"min": 0.9} and loaded["f1"] == {"min": 0.9, "max": 1}
    assert str(loaded["when"]) == "2024-01-02"
    assert load_yaml(b"- a\n- 1\n") == ["a", 1]
    assert load_yaml("") is None


def test_the_node_limit_counts_aliases_expanded() -> None:
    under = "a: &a [" + ",".join(["x"] * 100) + "]\nb: [" + ",".join(["*a"] * 150) + "]\n"
    assert len(load_yaml(under)["b"]) == 150  # 15,000 nodes expanded: allowed
    over = under.replace("* 150", "").replace(",".join(["*a"] * 150), ",".join(["*a"] * 250))
    with pytest.raises(YamlRefused, match=f"more than {MAX_YAML_NODES:,} values"):
        load_yaml(over)


def test_bytes_that_are_not_utf8_are_refused() -> None:
    with pytest.raises(YamlRefused, match="not UTF-8 text"):
        load_yaml(b"a: \xff\n")


def test_clip_says_the_length_of_what_it_cut() -> None:
    assert clip("short") == "'short'"
    long = clip("x" * 100_000)
    assert len(long) < 200 and "(100,002 characters)" in long
    assert clip("/a/b", plain=True) == "/a/b"


def test_check_text_and_path() -> None:
    assert check_text("fine") == "fine"
    for bad, why in (
        ("a\x00b", "NUL"),
        ("x" * 70_000, "at most 65,536 characters"),
        ("\udcff", "UTF-8"),
    ):
        with pytest.raises(ValueError, match=why):
            check_text(bad)
    assert check_path("/tmp/" + "n" * 255) == "/tmp/" + "n" * 255
    with pytest.raises(ValueError, match="at most 255 bytes each"):
        check_path("/tmp/" + "n" * 256)
    with pytest.raises(ValueError, match="shorter than 4096 bytes"):
        check_path("/a" * 2048)


# ----- through the CLI: every place YAML reaches, under a second, a short message -----------


def assert_refused(ran, *names: str) -> None:  # type: ignore[no-untyped-def]
    assert ran.code == 2, ran
    assert "Traceback" not in ran.err and "unexpected error" not in ran.err
    assert len(ran.err) < ERRORS_AT_MOST, ran.err[:1000]
    assert ran.cpu_seconds < 1 and ran.seconds < 15, ran
    for name in names:
        assert name in ran.err, ran.err


@pytest.mark.parametrize("name", list(ATTACKS))
def test_mlsteps_yaml_attacks_exit_2_fast(tmp_path: Path, name: str) -> None:
    text, reason = ATTACKS[name]
    (tmp_path / "mlsteps.yaml").write_text(text)
    ran = run(["--dry-run", "train", "--image", "x", "--", "t"], cwd=tmp_path)
    assert_refused(ran, "mlsteps.yaml", reason)


@pytest.mark.parametrize("name", ["alias bomb", "python tag", "deep nesting", "complex key"])
def test_attacks_inside_an_option_of_the_file_exit_2(tmp_path: Path, name: str) -> None:
    text, reason = ATTACKS[name]
    indented = "\n".join("    " + line for line in text.splitlines())
    (tmp_path / "mlsteps.yaml").write_text(f"gate:\n  metrics:\n{indented}\n")
    ran = run(["--dry-run", "gate", "--name", "m"], cwd=tmp_path)
    assert_refused(ran, "mlsteps.yaml", reason)


def test_metrics_bomb_in_an_action_input_exits_2_fast(tmp_path: Path) -> None:
    env = {**base_env(), "GITHUB_ACTIONS": "true", "MLSTEPS_GATE_METRICS": METRICS_BOMB}
    ran = run(["--ci", "local", "--dry-run", "gate", "--name", "m"], cwd=tmp_path, env=env)
    assert_refused(ran, "input 'metrics' (env MLSTEPS_GATE_METRICS)", "more than 20,000 values")


def test_metrics_bomb_as_a_repeated_flag_exits_2_fast(tmp_path: Path) -> None:
    ran = run(
        ["--dry-run", "gate", "--name", "m", "--metrics", "f1: {min: 0.5}"]
        + ["--metrics", METRICS_BOMB],
        cwd=tmp_path,
    )
    assert_refused(ran, "--metrics", "more than 20,000 values")


def test_secrets_list_form_bomb_exits_2_fast(tmp_path: Path) -> None:
    key_list = "&k [" + ",".join(["x"] * 150) + "]"
    bomb = f"[{{path: secret/a, key: {key_list}}}, {{path: [{','.join(['*k'] * 150)}]}}]"
    env = {**base_env(), "MLSTEPS_SECRETS_SECRETS": bomb}
    ran = run(["--dry-run", "secrets", "fetch"], cwd=tmp_path, env=env)
    assert_refused(ran, "MLSTEPS_SECRETS_SECRETS")


def test_a_100k_character_value_gives_a_short_message(tmp_path: Path) -> None:
    ran = run(["--dry-run", "train", "--image", "x", "--gpus", "g" * 100_000], cwd=tmp_path)
    assert_refused(ran, "--gpus 'ggg", "(100,002 characters)")


def test_a_5mb_value_is_refused_by_its_length_at_once(tmp_path: Path) -> None:
    env = {**base_env(), "MLSTEPS_GATE_METRICS": "a: " + "x" * 5_000_000}
    ran = run(["--dry-run", "gate", "--name", "m"], cwd=tmp_path, env=env)
    assert_refused(ran, "MLSTEPS_GATE_METRICS", "at most 65,536 characters")


@pytest.mark.parametrize("name", ["alias bomb", "python tag", "deep nesting"])
def test_a_hostile_mlmodel_file_is_bad_input(tmp_path: Path, name: str) -> None:
    # A model's files are written by whoever trained it: read with the same limits.
    from steps.core.errors import ConfigError
    from steps.services.images.model_facts import read_facts
    from steps.services.mlflow.model_source import Artifacts, ModelRef

    text, reason = ATTACKS[name]
    (tmp_path / "MLmodel").write_text(text)
    ref = ModelRef(uri=str(tmp_path), kind="path", artifact_uri=str(tmp_path))
    with pytest.raises(ConfigError, match="its MLmodel or environment files cannot be read") as e:
        read_facts(ref, Artifacts(None))
    assert reason in e.value.message
