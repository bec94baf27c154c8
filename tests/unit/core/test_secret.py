"""The Secret type redacts itself wherever a value could be printed or serialised."""

from __future__ import annotations

import base64
import io
import json
import logging
import pickle

import pytest

from steps.ci.base import Face
from steps.core.secret import REDACTED, Secret, encoded_forms, json_default, mask_lines

VALUE = 'line one\n{"k": "v%$\\\\"}\nünï'


def test_every_way_of_showing_it_is_redacted() -> None:
    secret = Secret(VALUE)
    shown = [str(secret), repr(secret), f"{secret}", f"{secret!r}", "%s" % secret, f"{secret:>40}"]  # noqa: UP031
    for text in shown:
        assert VALUE not in text and "line one" not in text
        assert REDACTED in text
    assert json.dumps({"a": [secret]}, default=json_default) == '{"a": ["<redacted>"]}'
    assert secret.reveal() == VALUE


def test_json_without_the_hook_refuses_rather_than_leaks() -> None:
    with pytest.raises(TypeError):
        json.dumps(Secret(VALUE))


def test_logging_and_exceptions_show_only_the_placeholder() -> None:
    stream = io.StringIO()
    logger = logging.getLogger("test_secret")
    handler = logging.StreamHandler(stream)
    logger.addHandler(handler)
    try:
        logger.warning("value is %s", Secret(VALUE))
    finally:
        logger.removeHandler(handler)
    assert "line one" not in stream.getvalue() and REDACTED in stream.getvalue()
    error = ValueError(f"bad {Secret(VALUE)}")
    assert "line one" not in str(error)


def test_cannot_be_pickled() -> None:
    with pytest.raises(TypeError, match="cannot be pickled"):
        pickle.dumps(Secret(VALUE))


def test_equality_compares_values_without_showing_them() -> None:
    assert Secret("a") == Secret("a") and Secret("a") != Secret("b")
    assert len({Secret("a"), Secret("a")}) == 1
    assert not Secret("") and Secret("x")
    with pytest.raises(TypeError):
        Secret(b"bytes")  # type: ignore[arg-type]


def test_mask_lines_are_the_lines_that_hold_something() -> None:
    pretty = '{\n  "user": "ml",\n  "password": "p@ss"\n},\n[\n]'
    assert Secret(pretty).mask_lines() == ['"user": "ml",', '"password": "p@ss"']
    assert Secret("key-one\n\n  \nkey-two").mask_lines() == ["key-one", "key-two"]
    assert Secret("!@#$%\nab\nxyz").mask_lines() == ["!@#$%", "xyz"]  # punctuation is a secret
    assert Secret("ab").mask_lines() == ["ab"]  # a single-line value, however short
    assert Secret("single\n").mask_lines() == ["single"]
    assert Secret("   ").mask_lines() == []


def test_mask_lines_add_the_trimmed_and_the_uncoloured_forms() -> None:
    assert mask_lines("  spaced value \t") == ["  spaced value \t", "spaced value"]
    coloured = "\x1b[1;31mred-secret\x1b[0m"
    assert mask_lines(coloured) == [coloured, "red-secret"]
    # an OSC title and a lone escape too; a multi-line value's lines alike
    assert mask_lines("\x1b]0;title\x07ab\x1bMcd") == ["\x1b]0;title\x07ab\x1bMcd", "abcd"]
    assert mask_lines("key\n  \x1b[32m  green-line \x1b[0m\n}") == [
        "key",
        "\x1b[32m  green-line \x1b[0m",
        "  green-line ",
        "green-line",
    ]
    assert mask_lines("\x1b[0m") == ["\x1b[0m"]  # nothing left once stripped: no empty mask


def test_a_secret_holding_another_is_masked_whole_whatever_the_order() -> None:
    for order in (["abc123", "PREFIX-abc123-SUFFIX"], ["PREFIX-abc123-SUFFIX", "abc123"]):
        face = Face({}, out=io.StringIO())
        for value in order:
            face.mask(value)
        assert face.scrub("x PREFIX-abc123-SUFFIX y abc123") == "x *** y ***"
    face = Face({}, out=io.StringIO())
    face.mask("  spaced value  ")
    face.mask("\x1b[31mred-secret\x1b[0m")
    assert face.scrub("got spaced value and red-secret") == "got *** and ***"


def test_faces_register_the_same_lines(capsys: pytest.CaptureFixture[str]) -> None:
    from steps.ci.github import GitHubFace

    value = '{\n  "password": "p@ss%"\n}'
    face = GitHubFace({}, out=io.StringIO())
    face.mask(value)
    assert face.out.getvalue() == '::add-mask::"password": "p@ss%25"\n'  # type: ignore[attr-defined]
    assert face.scrub('x {"password": "p@ss%"} y') == "x {***} y"
    assert face.scrub("a { brace") == "a { brace"


def test_faces_print_secret_outputs_redacted_and_json_results_redacted(
    capsys: pytest.CaptureFixture[str],
) -> None:
    out = io.StringIO()
    face = Face({}, out=out)
    face.set_outputs("secrets", {"DB": Secret(VALUE), "names": "DB"})
    assert "line one" not in out.getvalue() and f"DB: {REDACTED}" in out.getvalue()
    json_face = Face({}, json_mode=True, out=io.StringIO())
    json_face.result("secrets", exit_code=0, outputs={"DB": Secret(VALUE)}, error=None)
    document = json.loads(capsys.readouterr().out)
    assert document["outputs"] == {"DB": REDACTED}


def test_encoded_forms_are_how_programs_print_a_value() -> None:
    value = 'pässwörd "q" \\ it\'s'
    forms = encoded_forms(value)
    assert json.dumps(value)[1:-1] in forms  # \u00e4 …, \" and \\
    assert json.dumps(value, ensure_ascii=False)[1:-1] in forms
    assert repr(value)[1:-1] in forms
    assert any(f.startswith("p%C3%A4ssw%C3%B6rd%20%22q%22") for f in forms)  # quote
    assert base64.b64encode(value.encode()).decode().rstrip("=") in forms
    assert any(f.startswith("p%C3%A4ssw%C3%B6rd+%22q%22") for f in forms)  # quote_plus
    assert encoded_forms("plain-value") == ["cGxhaW4tdmFsdWU"]  # only what differs from it
    assert encoded_forms("abc") == []  # too short to tell from ordinary text
