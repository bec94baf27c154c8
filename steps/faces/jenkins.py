"""vars/<var>.groovy's ``Map defaultConfig = [ … ]`` (its keys, their defaults and one-line
comments) and the lists a var declares of them (``forms``, ``notFlags``, ``outputKeys``), and the
list of keys in vars/<var>.txt. The rest of both files is written by hand.
"""

from __future__ import annotations

import re
from collections.abc import Callable

from steps.faces import table
from steps.faces.actions import keys
from steps.faces.table import JENKINS
from steps.faces.text import describe, html_text, replace_between, summary

LONG_HEAD = 32
LINE = 120  # CodeNarc's line limit (npm-groovy-lint, tests/faces/test_linters.py)
INDENT = " " * 8
OPEN, CLOSE = "    Map defaultConfig = [\n", "\n    ]\n"


def default_config(step: str) -> str:
    """The lines between ``Map defaultConfig = [`` and ``]``: ``key: default,  // comment``,
    the comments aligned."""
    names = keys(step)
    entries = table.in_face(step, JENKINS)
    heads = [f"{e.jenkins_key}: {e.jenkins_default}," for e in entries]
    # One column for all comments, two spaces after the longest head; a head longer than
    # LONG_HEAD (sagemakerModelPackageGroup) keeps one space instead of pushing every comment.
    column = max(len(h) for h in heads if len(h) <= LONG_HEAD) + 2
    lines = []
    for head, entry in zip(heads, entries, strict=True):
        start = INDENT + head.ljust(column - 1) + " // "
        lines.append(start + summary(entry, names, LINE - len(start)))
    return "\n".join(lines)


# The form of a key's value (a form of src/mlsteps/jenkins/Cli.groovy) by its option's kind, unless
# the table names it (jenkins_form); keys not listed take one String or number.
FORMS = {"bool": "BOOLEAN", "list": "WORDS", "structured": "RULES"}


def forms(step: str) -> list[str]:
    """``key: Cli.FORM`` of each key whose value is not one String or number, for invalidKeys."""
    found = []
    for entry in table.in_face(step, JENKINS):
        option = entry.option
        form = entry.jenkins_form
        if form is None and option is not None:
            form = "PAIRS" if option.jenkins_map else FORMS.get(option.kind)
        if form is not None:
            found.append(f"{entry.jenkins_key}: Cli.{form}")
    return found


def not_flags(step: str) -> list[str]:
    """The keys that are no flag of the command: the faces' own, the options without one (a
    credential, train's command), and the MLflow keys (they travel as the environment:
    Cli.mlflowEnvironment)."""
    return [
        f"'{e.jenkins_key}'"
        for e in table.in_face(step, JENKINS)
        if e.option is None or not e.option.cli or (e.env or "").startswith("MLSTEPS_MLFLOW_")
    ]


def output_keys(step: str) -> list[str]:
    """The step's outputs, the keys of the Map the var returns."""
    return [f"'{o.name}'" for o in table.outputs(step)]


def secret_texts(step: str) -> list[str]:
    """``key: 'VARIABLE'`` of each credential the var binds as a Secret text one (a credential
    with a key of its own, jenkins_credential, is a Username with password one: the var's own)."""
    return [
        f"{e.jenkins_key}: '{e.env}'"
        for e in table.in_face(step, JENKINS)
        if e.option is not None
        and e.option.secret
        and not e.option.cli
        and e.option.jenkins_credential is None
    ]


# A declaration a var may hold, and its items: the generator rewrites its value wherever it is.
LISTS: dict[str, tuple[Callable[[str], list[str]], str]] = {
    "Map<String, String> forms": (forms, "[:]"),
    "List<String> notFlags": (not_flags, "[]"),
    "List<String> outputKeys": (output_keys, "[]"),
    "Map<String, String> credentials": (secret_texts, "[:]"),
}


def declaration(indent: str, name: str, items: list[str], empty: str) -> str:
    """``name = [a, b, …]``, folded before an item that would pass the line limit, the next
    lines aligned after the ``[``."""
    if not items:
        return f"{indent}{name} = {empty}"
    lines = [f"{indent}{name} = [{items[0]}"]
    pad = " " * len(f"{indent}{name} = [")
    for item in items[1:]:
        if len(lines[-1]) + len(f", {item}]") > LINE:
            lines[-1] += ","
            lines.append(pad + item)
        else:
            lines[-1] += f", {item}"
    return "\n".join(lines) + "]"


def render_groovy(var: str, step: str, text: str) -> str:
    missing = f"vars/{var}.groovy: expected {OPEN.strip()} … ] in call()"
    text = replace_between(text, OPEN, CLOSE, default_config(step), missing)
    for name, (items, empty) in LISTS.items():
        # The value ends at the first ] (no item holds one).
        pattern = re.compile(rf"^( *){re.escape(name)} = \[[^\]]*\]", re.MULTILINE)
        parts = pattern.split(text)  # text, indent, text, indent, …, text
        for at in range(1, len(parts), 2):
            parts[at] = declaration(parts[at], name, items(step), empty)
        text = "".join(parts)
    return text


def key_list(step: str) -> str:
    names = keys(step)
    rows = ["<dl>"]
    for entry in table.in_face(step, JENKINS):
        text = html_text(describe(entry, JENKINS, names))
        rows.append(f"  <dt><code>{entry.jenkins_key}</code></dt><dd>{text}</dd>")
    return "\n".join([*rows, "</dl>"])


def output_list(step: str) -> str:
    rows = ["<dl>"]
    for output in table.outputs(step):
        if output.name in {o.name for o in table.EXTRA_OUTPUTS.get(step, ())}:
            continue  # an action's own command's output
        rows.append(f"  <dt><code>{output.name}</code></dt><dd>{html_text(output.help)}</dd>")
    return "\n".join([*rows, "</dl>"])


def render_page(var: str, step: str, text: str) -> str:
    for marker, body in (("keys", key_list(step)), ("outputs", output_list(step))):
        start, end = f"<!-- {marker}:begin -->", f"<!-- {marker}:end -->"
        if marker == "outputs" and start not in text:
            continue  # a var that returns nothing (withVaultSecrets runs a body)
        missing = f"vars/{var}.txt: add the markers {start} and {end}"
        text = replace_between(text, start, end, f"\n{body}\n", missing)
    return text
