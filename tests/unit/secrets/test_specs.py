"""What to read and what to call it (steps/secrets/specs.py): pure parsing, no I/O."""

from __future__ import annotations

import socket
import subprocess
from typing import Any

import pytest

from steps.core.secret import Secret
from steps.secrets.specs import SecretSpec, check_names, env_name_for, parse_specs, pick


@pytest.fixture(autouse=True)
def no_io(monkeypatch: pytest.MonkeyPatch) -> None:
    """Parsing must not talk to anything: a socket or a process here is a bug."""

    def refuse(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("parsing secret specs must do no I/O")

    monkeypatch.setattr(socket, "socket", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    monkeypatch.setattr(subprocess, "Popen", refuse)


def test_vault_action_lines_as_written_in_its_docs() -> None:
    specs = parse_specs(
        """
        secret/data/ci/aws accessKey | AWS_ACCESS_KEY_ID ;
        secret/ml/db password ;
        # a comment line is skipped
        /secret/ml/api/ * | API_
        secret/ml/api *
        """
    )
    assert specs == (
        SecretSpec("secret/data/ci/aws", "accessKey", "AWS_ACCESS_KEY_ID"),
        SecretSpec("secret/ml/db", "password", None),
        SecretSpec("secret/ml/api", "*", "API_"),
        SecretSpec("secret/ml/api", "*", None),
    )
    assert [s.wildcard for s in specs] == [False, False, True, True]


def test_one_line_of_several_requests_and_a_list_of_lines_read_the_same() -> None:
    text = "secret/a user | A_USER; secret/a password | A_PW"
    assert parse_specs(text) == parse_specs(["secret/a user | A_USER", "secret/a password | A_PW"])
    assert parse_specs(None) == () and parse_specs("  ;\n ; ") == ()


def test_quoted_keys_lose_their_quotes() -> None:
    # vault-action's docs quote keys with dots: secret/x "a.b" | NAME
    assert parse_specs('secret/x "a.b" | NAME')[0].key == "a.b"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("secret/ml/db", "'PATH KEY' or 'PATH KEY | ENV_NAME'"),
        ("secret/ml/db password extra", "'PATH KEY' or 'PATH KEY | ENV_NAME'"),
        ("secret/ml/db password |", "a name after '|'"),
        ("secret/ml/db password | 1BAD", "an environment variable name"),
        ("secret/ml/db password | BAD-NAME", "an environment variable name"),
        ("secret/ml/db - ", "a name ('| ENV_NAME')"),
    ],
)
def test_lines_that_do_not_parse_say_the_expected_form(text: str, message: str) -> None:
    with pytest.raises(ValueError) as caught:
        parse_specs(text)
    assert message in str(caught.value)


def test_the_yaml_list_form() -> None:
    specs = parse_specs(
        [
            {"path": "secret/ml/db", "key": "password", "env": "DB_PW", "version": 3},
            {"path": "/secret/ml/extra/", "key": "token", "optional": True},
            {"path": "secret/ml/api", "key": "*", "env": "API_"},
            {"path": "secret/ml/db", "key": "user", "version": "2"},
        ]
    )
    assert specs == (
        SecretSpec("secret/ml/db", "password", "DB_PW", 3),
        SecretSpec("secret/ml/extra", "token", None, None, True),
        SecretSpec("secret/ml/api", "*", "API_"),
        SecretSpec("secret/ml/db", "user", None, 2),
    )
    assert specs[0].describe() == "secret/ml/db password (version 3)"


@pytest.mark.parametrize(
    ("item", "message"),
    [
        ("not a mapping", "item 2: a mapping"),
        ({"path": "secret/x"}, "item 2: both path and key"),
        ({"key": "k"}, "item 2: both path and key"),
        ({"path": " ", "key": "k"}, "item 2: both path and key"),
        ({"path": "secret/x", "key": "k", "version": 0}, "version as a positive whole number"),
        ({"path": "secret/x", "key": "k", "version": -1}, "version as a positive whole number"),
        ({"path": "secret/x", "key": "k", "version": "latest"}, "positive whole number"),
        ({"path": "secret/x", "key": "k", "version": True}, "positive whole number"),
        ({"path": "secret/x", "key": "k", "optional": "yes"}, "optional as true or false"),
        ({"path": "secret/x", "key": "k", "mount": "kv"}, "only the keys path, key, env"),
        ({"path": "secret/x", "key": "k", "env": "no spaces"}, "an environment variable name"),
    ],
)
def test_list_items_that_do_not_parse_name_the_item(item: Any, message: str) -> None:
    with pytest.raises(ValueError) as caught:
        parse_specs([{"path": "secret/ok", "key": "k", "env": "OK"}, item])
    assert message in str(caught.value)


def test_neither_text_nor_list_is_refused() -> None:
    with pytest.raises(ValueError, match="vault-action lines"):
        parse_specs(42)


@pytest.mark.parametrize(
    ("key", "name"),
    [
        ("password", "PASSWORD"),
        ("api-key", "APIKEY"),
        ("db.password", "DB__PASSWORD"),
        ("Mixed Case!", "MIXEDCASE"),
        ("pässwort", "PSSWORT"),
    ],
)
def test_names_from_keys_follow_vault_action(key: str, name: str) -> None:
    assert env_name_for(key) == name


def test_two_requests_for_one_name_are_refused_up_front() -> None:
    check_names(parse_specs("secret/a password | A; secret/b password | B; secret/c *"))
    with pytest.raises(ValueError) as caught:
        check_names(parse_specs("secret/a password; secret/b password"))
    assert "PASSWORD is given to both secret/a password and secret/b password" in str(caught.value)
    with pytest.raises(ValueError, match="DB_PW"):
        check_names(parse_specs("secret/a user | DB_PW; secret/a password | DB_PW"))


def reveal(picked: dict[str, Secret] | None) -> dict[str, str] | None:
    return None if picked is None else {name: v.reveal() for name, v in picked.items()}


def test_pick_a_key_a_dotted_path_and_a_key_that_has_a_dot() -> None:
    data = {"password": "pw", "conf": {"db": {"port": 5432}}, "a.b": "whole", "a": {"b": "path"}}
    assert reveal(pick(SecretSpec("s/x", "password", None), data)) == {"PASSWORD": "pw"}
    assert reveal(pick(SecretSpec("s/x", "conf.db.port", "PORT"), data)) == {"PORT": "5432"}
    # A key holding a dot is taken whole before it is read as a path.
    assert reveal(pick(SecretSpec("s/x", "a.b", "AB"), data)) == {"AB": "whole"}
    assert pick(SecretSpec("s/x", "nope", None), data) is None
    assert pick(SecretSpec("s/x", "conf.db.user", None), data) is None
    assert pick(SecretSpec("s/x", "password.deeper", None), data) is None


def test_pick_hands_non_strings_on_as_json() -> None:
    data = {"n": 1, "flag": True, "list": [1, "a"], "map": {"k": None}}
    assert reveal(pick(SecretSpec("s/x", "*", None), data)) == {
        "N": "1",
        "FLAG": "true",
        "LIST": '[1,"a"]',
        "MAP": '{"k":null}',
    }


def test_pick_every_key_with_a_prefix_and_values_stay_secret() -> None:
    picked = pick(SecretSpec("s/x", "*", "API_"), {"token": "t0k", "base-url": "https://x"})
    assert picked is not None
    assert sorted(picked) == ["API_BASEURL", "API_TOKEN"]
    assert all(isinstance(v, Secret) for v in picked.values())
    assert "t0k" not in repr(picked) and "t0k" not in str(picked)


def test_a_key_of_star_that_makes_no_name_is_named_in_the_error() -> None:
    with pytest.raises(ValueError) as caught:
        pick(SecretSpec("s/x", "*", None), {"ok": "1", "9lives": "secret-value"})
    message = str(caught.value)
    assert "the key '9lives' makes no variable name ('9LIVES')" in message
    assert "secret-value" not in message
    with pytest.raises(ValueError, match="makes no variable name"):
        pick(SecretSpec("s/x", "*", None), {"ü": "v"})
    # A prefix makes it a name.
    assert reveal(pick(SecretSpec("s/x", "*", "P_"), {"9lives": "v"})) == {"P_9LIVES": "v"}


def test_the_list_form_in_a_flag_or_an_environment_variable() -> None:
    # What an action input or a Jenkins key carries when it needs version or optional.
    text = (
        "[{path: secret/ml/db, key: password, env: DB_PW, version: 2},"
        ' {"path": "kv/x", "key": "t", "optional": true}]'
    )
    assert parse_specs(text) == (
        SecretSpec("secret/ml/db", "password", "DB_PW", 2),
        SecretSpec("kv/x", "t", None, None, True),
    )
    with pytest.raises(ValueError, match="starts with '\\[' but does not parse"):
        parse_specs("[{path: secret/ml/db")
    with pytest.raises(ValueError, match="a list of"):
        parse_specs("[1, 2]")
