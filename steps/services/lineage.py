"""Where a model came from: the source commit, the CI run, and a digest of its data.

Shared by the steps that record lineage (train tags the MLflow run; package labels the image).
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from pathlib import Path


def data_digest(directory: str) -> str:
    """Content digest of a data directory, reproducible with coreutils:

        (cd DIR && find . -type f -printf '%P\\n' | LC_ALL=C sort |
         while IFS= read -r f; do sha256sum "$f"; done) | sha256sum

    i.e. sha256 over the lines "<sha256 of file>  <relative path>\\n" of every regular file,
    sorted by path bytes; symbolic links are not followed, as with find -type f. Renaming,
    adding, removing or editing any file changes it.
    """
    root = Path(directory)
    files = sorted(
        (p for p in root.rglob("*") if p.is_file() and not p.is_symlink()),
        key=lambda p: p.relative_to(root).as_posix().encode(),
    )
    outer = hashlib.sha256()
    for path in files:
        inner = hashlib.sha256()
        with path.open("rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                inner.update(block)
        outer.update(f"{inner.hexdigest()}  {path.relative_to(root).as_posix()}\n".encode())
    return "sha256:" + outer.hexdigest()


def git_commit(environ: Mapping[str, str]) -> str:
    for name in ("GITHUB_SHA", "GIT_COMMIT"):
        if environ.get(name):
            return environ[name]
    import subprocess  # only when CI did not say which commit this is

    try:
        done = subprocess.run(
            ["git", "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5, check=False
        )
    except (OSError, subprocess.TimeoutExpired):
        return ""
    return done.stdout.strip() if done.returncode == 0 else ""


def ci_run_url(environ: Mapping[str, str]) -> str:
    """The CI run's address, to record as evidence: credentials in it (a BUILD_URL of
    https://user:token@jenkins/…) are hidden, since tags and labels are read by many."""
    from steps.core.text import redact_url

    return redact_url(_ci_run_url(environ))


def _ci_run_url(environ: Mapping[str, str]) -> str:
    if environ.get("GITHUB_RUN_ID"):
        server = environ.get("GITHUB_SERVER_URL", "https://github.com")
        repository = environ.get("GITHUB_REPOSITORY", "")
        return f"{server}/{repository}/actions/runs/{environ['GITHUB_RUN_ID']}"
    return environ.get("BUILD_URL", "")
