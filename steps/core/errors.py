"""The failures a user can see, each with the exit code CI uses to tell them apart.

0 done · 1 the step failed · 2 bad input or configuration · 3 a gate said no ·
130 interrupted (SIGINT) · 143 terminated (SIGTERM), see ``steps.core.signals``.
"""

from __future__ import annotations


class MlstepsError(Exception):
    """Base of every failure mlsteps reports to the user (message only, no traceback)."""

    exit_code = 1

    def __init__(self, message: str, *, summary: str = "") -> None:
        super().__init__(message)
        self.message = message
        self.summary = summary  # markdown for the CI summary page, e.g. a gate's report


class StepFailed(MlstepsError):
    """The step could not do its work: a service refused, training failed (exit 1)."""

    exit_code = 1


class ConfigError(MlstepsError):
    """Bad input or configuration (exit 2). The message names the option, the value and the fix."""

    exit_code = 2


class GateRejected(MlstepsError):
    """A gate judged the model and said no (exit 3)."""

    exit_code = 3
