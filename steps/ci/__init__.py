"""Where a step runs decides how it talks: GitHub workflow commands, Jenkins files, a terminal.

A step never prints directly; it calls the face it is given (``steps.ci.base.Face``).
"""

from __future__ import annotations

from collections.abc import Mapping

from steps.ci.base import Face

KINDS = ("auto", "github", "jenkins", "local")


def detect(environ: Mapping[str, str]) -> str:
    """The CI system this process runs under, from the variables each one sets."""
    if environ.get("GITHUB_ACTIONS") == "true":
        return "github"
    if environ.get("JENKINS_URL") or environ.get("BUILD_ID") and environ.get("JOB_NAME"):
        return "jenkins"
    return "local"


def make_face(
    kind: str,
    environ: Mapping[str, str],
    *,
    json_mode: bool = False,
    verbose: bool = False,
    quiet: bool = False,
) -> Face:
    if kind == "auto":
        kind = detect(environ)
    if kind == "github":
        from steps.ci.github import GitHubFace

        return GitHubFace(environ, json_mode=json_mode, verbose=verbose, quiet=quiet)
    if kind == "jenkins":
        from steps.ci.jenkins import JenkinsFace

        return JenkinsFace(environ, json_mode=json_mode, verbose=verbose, quiet=quiet)
    from steps.ci.local import LocalFace

    return LocalFace(environ, json_mode=json_mode, verbose=verbose, quiet=quiet)


__all__ = ["KINDS", "Face", "detect", "make_face"]
