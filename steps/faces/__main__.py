"""``python -m steps.faces [--check] [--root DIR]``: write every generated face, or with
--check exit 1 and print a diff when one is stale. A registered step's missing face files (a new
step's) are first written from templates (steps/faces/templates.py); --check counts them stale."""

from __future__ import annotations

import argparse
import difflib
import sys
from collections.abc import Callable, Iterator, Sequence
from functools import partial
from pathlib import Path

from steps.faces import actions, jenkins, readme, table, templates, text

ROOT = Path(__file__).resolve().parents[2]


# A face file: where it is, how its new text is made from its current one, and its first text
# (a template) when it is missing.
Face = tuple[Path, Callable[[str], str], Callable[[], str]]


def files(root: Path) -> Iterator[Face]:
    """Each generated file, every step's then README's."""
    for step, var in table.jenkins_vars().items():
        action = root / "actions" / step
        yield (
            action / "action.yml",
            partial(actions.render, step),
            partial(templates.action_yml, step),
        )
        yield (
            action / "README.md",
            partial(actions.render_readme, step),
            partial(templates.action_readme, step),
        )
        yield (
            root / "vars" / f"{var}.groovy",
            partial(jenkins.render_groovy, var, step),
            partial(templates.groovy, step),
        )
        yield (
            root / "vars" / f"{var}.txt",
            partial(jenkins.render_page, var, step),
            partial(templates.page, step),
        )
    yield root / "README.md", readme.render, _no_template


def _no_template() -> str:
    raise text.Unmarked("README.md is missing")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m steps.faces", description=__doc__)
    parser.add_argument("--check", action="store_true", help="fail with a diff when stale")
    parser.add_argument("--root", type=Path, help="the checkout (default: the one holding this)")
    args = parser.parse_args(argv)
    if args.root is None:
        # Installed from a wheel, ROOT is site-packages' parent: refuse rather than write face
        # files into the venv. (The install script knows a checkout by the same line.)
        project = ROOT / "pyproject.toml"
        if not project.is_file() or 'name = "mlsteps"' not in project.read_text("utf-8"):
            print(
                f"python -m steps.faces: {ROOT} is not an mlsteps checkout (no pyproject.toml "
                "naming mlsteps), so its faces are not here to write: run it from a checkout's "
                ".venv, or give the checkout with --root DIR.",
                file=sys.stderr,
            )
            return 2
        args.root = ROOT
    stale, unmarked = [], []
    for path, render, first in files(args.root):
        try:
            if not path.exists():
                if args.check:
                    print(f"{path}: missing; python -m steps.faces writes it", file=sys.stderr)
                    stale.append(path)
                    continue
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_text(first(), encoding="utf-8")
                print(f"wrote {path.relative_to(args.root)} from its template")
            current = path.read_text(encoding="utf-8")
            wanted = render(current)
        except text.Unmarked as exc:
            print(exc, file=sys.stderr)
            unmarked.append(path)
            continue
        if wanted == current:
            continue
        stale.append(path)
        if args.check:
            sys.stderr.writelines(
                difflib.unified_diff(
                    current.splitlines(keepends=True),
                    wanted.splitlines(keepends=True),
                    fromfile=f"{path} (committed)",
                    tofile=f"{path} (generated)",
                )
            )
        else:
            path.write_text(wanted, encoding="utf-8")
            print(f"wrote {path.relative_to(args.root)}")
    if stale and args.check:
        print(
            f"{len(stale)} generated file(s) out of date with the option tables: "
            "run python -m steps.faces",
            file=sys.stderr,
        )
    # A file that lacks a place for its generated part fails writing too (its message said so).
    return 1 if unmarked or (stale and args.check) else 0


if __name__ == "__main__":
    sys.exit(main())
