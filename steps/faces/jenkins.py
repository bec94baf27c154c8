"""vars/<var>.groovy's ``Map defaultConfig = [ … ]`` (its keys, their defaults and one-line
comments) and the list of keys in vars/<var>.txt. The rest of both files is written by hand.
"""

from __future__ import annotations

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


def render_groovy(var: str, step: str, text: str) -> str:
    missing = f"vars/{var}.groovy: expected {OPEN.strip()} … ] in call()"
    return replace_between(text, OPEN, CLOSE, default_config(step), missing)


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
