"""One description, said in each face's words.

A description is plain text in which `backticks` mark code and ``--flag`` names another option
of the step: the action says the input (`data`), Jenkins the key (`trainingData`), the CLI and
README the flag. Each face adds what only it needs: how a list is written there, the variables
read when the option is unset, and the default mlsteps applies.
"""

from __future__ import annotations

import html
import re
from collections.abc import Mapping

from steps.faces.table import ACTION, JENKINS, Entry


class Unmarked(ValueError):
    """The hand-written file lacks the place the generated part goes."""


def replace_between(text: str, start: str, end: str, body: str, missing: str) -> str:
    """``text`` with what lies between the markers ``start`` and ``end`` replaced by ``body``
    (its own lines); ``missing`` is the message when a marker is not there."""
    head, found_start, rest = text.partition(start)
    _, found_end, tail = rest.partition(end)
    if not found_start or not found_end:
        raise Unmarked(missing)
    return f"{head}{start}{body}{end}{tail}"


CODE = re.compile(r"`([^`]+)`")
FLAG = re.compile(r"(?<![\w`-])--([a-z][a-z0-9]*(?:-[a-z0-9]+)*)(?: `([^`]+)`)?")
# A sentence ends at a full stop followed by a capital or code (not "e.g. 2g").
SENTENCE_END = re.compile(r"(?<!e\.g)(?<!i\.e)\.\s+(?=[A-Z`'])")
CLAUSE_END = re.compile(r"[;:,]\s|\s\(")


def _names(text: str, face: str, keys: Mapping[str, str]) -> str:
    """``--name`` and ``--name `value``` in the face's words: `name: value` in an action's
    ``with:``, `key: 'value'` in a Jenkins call."""

    def name(match: re.Match[str]) -> str:
        option, value = match.group(1), match.group(2)
        if option not in keys:
            return match.group(0)
        said = option if face == ACTION else keys[option]
        if value is None:
            return f"`{said}`"
        literal = value in ("true", "false") or value.replace(".", "", 1).isdigit()
        if face == JENKINS and not literal:
            value = f"'{value}'"
        return f"`{said}: {value}`"

    return text if face not in (ACTION, JENKINS) else FLAG.sub(name, text)


def _list_form(entry: Entry, face: str) -> str:
    """How a list (or a structured value) is written in the face, unless the option says it in
    the face's own words."""
    option = entry.option
    if option is None or face in dict(entry.face_help):
        return ""
    if option.kind == "structured":
        return {ACTION: "As YAML.", JENKINS: "A Map, or the same as YAML text."}.get(face, "")
    if option.kind != "list":
        return ""
    if face == ACTION:
        return "One string of shell words." if option.env_format == "shell" else "One per line."
    if face == JENKINS:
        if option.env_format == "shell":
            return "A List, or one String of shell words."
        return (
            "A List, or a Map (its items become `KEY=VALUE`)." if option.jenkins_map else "A List."
        )
    return ""


def default_text(entry: Entry) -> str:
    option = entry.option
    if option is None or option.default in (None, (), []):
        return ""
    return option.shown_default


def describe(entry: Entry, face: str, keys: Mapping[str, str]) -> str:
    """The whole description in ``face``'s words, `code` still marked."""
    parts = [_names(entry.text(face), face, keys), _list_form(entry, face)]
    option = entry.option
    if option is not None and option.choices:
        # --help says the choices itself; a face says them unless the text already does.
        said = set(CODE.findall(entry.text(face)))
        if not said.issuperset(option.choices):
            parts.append("One of: " + ", ".join(f"`{c}`" for c in option.choices) + ".")
    if option is not None and option.env_fallbacks and face in (ACTION, JENKINS):
        names = " or ".join(f"`{n}`" for n in option.env_fallbacks)
        parts.append(f"Unset: {names} from the environment.")  # when the input or key is unset
    if (default := default_text(entry)) and face in (ACTION, JENKINS):
        parts.append(
            f"mlsteps default: `{default}`." if face == ACTION else f"Default: `{default}`."
        )
    return " ".join(p for p in parts if p)


def summary(entry: Entry, keys: Mapping[str, str], width: int) -> str:
    """One line for the Jenkins key's comment: the first sentence, how a list is written, the
    default. What does not fit in ``width`` goes, in that order: the default, then the end of
    the sentence after its last clause that fits (the .txt page has the whole text)."""
    first = SENTENCE_END.split(_names(entry.text(JENKINS), JENKINS, keys), maxsplit=1)[0]
    head = plain(first).rstrip(".")
    form = ""
    option = entry.option
    if option is not None and _list_form(entry, JENKINS):  # (not when said in its own words)
        if option.kind == "structured":
            form = "; a Map or YAML"
        else:
            form = "; a List" + (" or a Map" if option.jenkins_map else "")
            form += " or a String of shell words" if option.env_format == "shell" else ""
    default = f" (mlsteps: {d})" if (d := default_text(entry)) else ""
    budget = width - len(form)
    if len(head) + len(default) <= budget:
        return head + form + default
    if len(head) > budget:
        clauses = [
            m.start()
            for m in CLAUSE_END.finditer(head)
            if m.start() <= budget and _balanced(head[: m.start()])
        ]
        head = head[: clauses[-1]] if clauses else head[: budget - 1].rsplit(" ", 1)[0] + "…"
    return head + form


def _balanced(text: str) -> bool:
    return all(text.count(a) == text.count(b) for a, b in ("()", "[]", "{}"))


def plain(text: str) -> str:
    return CODE.sub(r"\1", text)


def html_text(text: str) -> str:
    return CODE.sub(r"<code>\1</code>", html.escape(text, quote=False))
