"""The smoke test of a built serving image, before anything is pushed.

Start the image on a loopback port, wait for /ping, send the model's serving input example to
/invocations, and compare the answer with the model's own prediction of the same example:
``model.predict`` on the example as MLflow loads it, with no HTTP and no request parsing
(``server.py reference``). That reference is computed on this machine when its Python has
MLflow and the versions the model pins -- then a wrong library in the image (the mlflow-skinny
swap, a different scikit-learn) shows as a mismatch; otherwise in the image itself, which still
checks the whole HTTP path (parsing, schema enforcement, encoding), and the result says so.
Any failure is exit 1 with the server's log tail; the container is removed on every path.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from steps.core.errors import StepFailed
from steps.services.model_code import launch as model_code

SERVER_FILE = Path(__file__).parents[1] / "serve" / "server.py"
REFERENCE_MARKER = "MLSTEPS_REFERENCE="


@dataclass(frozen=True)
class SmokeResult:
    checked_predictions: bool
    rows: int
    seconds_to_ready: float
    reference: str  # where the reference came from, for the summary


def same_predictions(served: Any, reference: Any, rel: float = 1e-6) -> bool:
    """Equal JSON trees, numbers within a relative tolerance (and NaN equal to NaN)."""
    if isinstance(served, bool) or isinstance(reference, bool):  # True is not 1 here
        return type(served) is type(reference) and served == reference
    if isinstance(served, int | float) and isinstance(reference, int | float):
        if math.isnan(served) and math.isnan(reference):
            return True
        return math.isclose(served, reference, rel_tol=rel, abs_tol=1e-12)
    if isinstance(served, list) and isinstance(reference, list):
        return len(served) == len(reference) and all(
            same_predictions(a, b, rel) for a, b in zip(served, reference, strict=True)
        )
    if isinstance(served, dict) and isinstance(reference, dict):
        return served.keys() == reference.keys() and all(
            same_predictions(served[k], reference[k], rel) for k in served
        )
    return bool(served == reference)


def _log_tail(container: Any, lines: int = 25) -> str:
    try:
        text = container.logs(tail=lines).decode(errors="replace").rstrip()
    except Exception:  # noqa: BLE001 - the tail only decorates the real error
        return "(no log)"
    return "\n".join("    " + line for line in text.splitlines()) or "    (empty log)"


def _pins_met(requirements: Sequence[str]) -> str:
    """'' when this Python has every ``name==version`` the model pins, else the first miss."""
    from importlib.metadata import PackageNotFoundError, version

    for line in requirements:
        match = re.fullmatch(r"([A-Za-z0-9_.-]+)\s*==\s*([^\s;]+)", line.strip())
        if not match:
            continue
        name, pinned = match.groups()
        if name.lower() in ("mlflow", "mlflow-skinny"):
            name = "mlflow" if name.lower() == "mlflow-skinny" else name  # either serves
        try:
            have = version(name)
        except PackageNotFoundError:
            try:
                have = version("mlflow-skinny") if name == "mlflow" else ""
            except PackageNotFoundError:
                have = ""
        if have != pinned:
            return f"{name} {have or 'missing'} here, {pinned} in the model"
    return ""


class HostReference:
    """The reference computed on this machine, in a process started at once so that it runs
    while the container starts; ``result()`` is (the answer or None, why it is None). The
    process runs the model's code as steps/services/model_code/ starts it, in a directory of its own
    beside the model's (``isolated`` says whether it had namespaces)."""

    def __init__(self, model_dir: Path, requirements: Sequence[str]) -> None:
        self.why_not = _pins_met(requirements)
        if self.why_not:
            self.why_not = f"this machine's Python differs from the model's pins ({self.why_not})"
        self.proc: subprocess.Popen[str] | None = None
        self.isolated = False
        if not self.why_not:
            home = model_dir.parent / "reference-home"
            home.mkdir(mode=0o700, exist_ok=True)
            how = model_code.launch(
                [sys.executable, str(SERVER_FILE), "reference"],
                home,
                {"MLSTEPS_MODEL_DIR": str(model_dir)},
            )
            self.isolated = how.isolated
            self.proc = subprocess.Popen(
                how.argv,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
                cwd=home,
                start_new_session=True,  # one group, killed whole by stop()
                env=how.env,
            )

    def result(self) -> tuple[Any, str]:
        if self.proc is None:
            return None, self.why_not
        out, err = self.proc.communicate(timeout=600)
        if self.proc.returncode != 0:
            last = (err.strip().splitlines() or ["no output"])[-1]
            return None, f"this machine could not load the model ({last[:200]})"
        try:
            return _reference_of(out), ""
        except ValueError:
            return None, "this machine's reference printed no answer"

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            # Its whole group: in namespaces, the model's process is unshare's child.
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()


def _reference_of(stdout: str) -> Any:
    # The answer is the last line that carries the marker: a model library may print too.
    lines = [x for x in stdout.splitlines() if x.startswith(REFERENCE_MARKER)]
    if not lines:
        raise ValueError("no reference line in the output")
    return json.loads(lines[-1].removeprefix(REFERENCE_MARKER))


def _failed(what: str, container: Any) -> StepFailed:
    return StepFailed(f"smoke test: {what}. The end of the server's log:\n{_log_tail(container)}")


def run(
    client: Any,
    image: str,
    serving_example: bytes | None,
    reference: HostReference | None,
    labels: Mapping[str, str],
    timeout: float,
    say: Callable[[str], None],
) -> SmokeResult:
    """Serve IMAGE and check it. Without a host reference (or when it could not be computed
    here) the image computes the reference itself."""
    import requests

    container = None
    try:
        # Created inside the try: a cancel right after the create still finds it to remove
        # (and the run's cleanup removes every container of its invocation besides).
        container = client.containers.run(
            image,
            detach=True,
            ports={"8080/tcp": ("127.0.0.1", None)},
            labels=dict(labels),
            name=f"mlsteps-smoke-{labels.get('io.mlsteps.invocation', '')[:12] or 'test'}",
        )
        start = time.monotonic()
        url = ""
        while True:
            container.reload()
            if container.status in ("exited", "dead"):
                code = container.attrs["State"]["ExitCode"]
                raise _failed(
                    f"the server in {image} exited (code {code}) before answering", container
                )
            ports = container.ports.get("8080/tcp") or []
            url = url or (f"http://127.0.0.1:{ports[0]['HostPort']}" if ports else "")
            try:
                if url and requests.get(f"{url}/ping", timeout=2).status_code == 200:
                    break
            except requests.RequestException:
                pass
            if time.monotonic() - start > timeout:
                raise _failed(
                    f"the server in {image} did not answer /ping within {timeout:g}s (raise "
                    "--smoke-timeout if the model loads slowly)",
                    container,
                )
            time.sleep(0.5)
        ready = time.monotonic() - start
        say(f"  server ready after {ready:.1f}s")
        if serving_example is None:
            return SmokeResult(False, 0, ready, "")
        try:
            answer = requests.post(
                f"{url}/invocations",
                data=serving_example,
                headers={"Content-Type": "application/json"},
                timeout=max(timeout, 30),
            )
        except requests.RequestException as exc:
            raise _failed(
                f"/invocations gave no answer to the model's input example ({type(exc).__name__})",
                container,
            ) from None
        if answer.status_code != 200:
            raise _failed(
                f"/invocations answered the model's input example with HTTP "
                f"{answer.status_code}: {answer.text[:500]}",
                container,
            )
        try:
            served = answer.json()
        except ValueError:
            raise _failed(
                f"/invocations answered with no JSON: {answer.text[:300]}", container
            ) from None
        expected, why_not_here = (
            reference.result() if reference else (None, "no reference on this machine")
        )
        where = "computed on this machine"
        if reference is not None and not reference.isolated:
            where += f" ({model_code.WITHOUT_NAMESPACES})"
        if expected is None:
            where = f"computed in the image: {why_not_here}"
            code, output = container.exec_run(
                ["/opt/venv/bin/python", "/opt/mlsteps/server.py", "reference"], demux=True
            )
            stdout, stderr = output
            try:
                if code != 0:
                    raise ValueError((stderr or b"").decode(errors="replace")[-1500:])
                expected = _reference_of((stdout or b"").decode(errors="replace"))
            except ValueError as exc:
                raise _failed(
                    f"the model's own prediction of its input example failed in the image: {exc}",
                    container,
                ) from None
        if not same_predictions(served, expected):
            raise StepFailed(
                "smoke test: the served predictions differ from the model's own prediction of "
                f"its input example ({where}).\n  served:    {json.dumps(served)[:400]}\n  "
                f"reference: {json.dumps(expected)[:400]}"
            )
        rows = len(served.get("predictions", [])) if isinstance(served, dict) else 0
        return SmokeResult(True, rows, ready, where)
    finally:
        from steps.core import signals

        if reference is not None:
            reference.stop()
        if container is not None:
            with signals.shielded(deliver=False):
                try:
                    container.remove(force=True)
                except Exception:  # noqa: BLE001 - the run's cleanup tries again by label
                    say(f"  could not remove the smoke-test container {container.name}")
