"""``python -m steps.faces [--check] [--root DIR]``: write every generated face, or with
--check exit 1 and print a diff when one is stale."""

from __future__ import annotations

import argparse
import difflib
import sys
from collections.abc import Callable, Iterator, Sequence
from functools import partial
from pathlib import Path

from steps.faces import actions, jenkins, readme, table, text

ROOT = Path(__file__).resolve().parents[2]


def files(root: Path) -> Iterator[tuple[Path, Callable[[str], str]]]:
    """Each generated file and how its new text is made from its current one."""
    for step, var in table.JENKINS_VARS.items():
        yield root / "actions" / step / "action.yml", partial(actions.render, step)
        yield root / "actions" / step / "README.md", partial(actions.render_readme, step)
        yield root / "vars" / f"{var}.groovy", partial(jenkins.render_groovy, var, step)
        yield root / "vars" / f"{var}.txt", partial(jenkins.render_page, var, step)
    yield root / "README.md", readme.render


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m steps.faces", description=__doc__)
    parser.add_argument("--check", action="store_true", help="fail with a diff when stale")
    parser.add_argument("--root", type=Path, default=ROOT, help="the checkout (default: this)")
    args = parser.parse_args(argv)
    stale = []
    for path, render in files(args.root):
        current = path.read_text(encoding="utf-8")
        try:
            wanted = render(current)
        except text.Unmarked as exc:
            print(exc, file=sys.stderr)
            stale.append(path)
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
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
