"""The smoke test of a built serving image, before anything is pushed.

Start the image on a loopback port, wait for /ping, send the model's serving input example to
/invocations, and compare the answer with the model's own prediction of the same example: the
image's server.py computes it inside the running container (``server.py reference``), straight
through ``model.predict`` on the example as MLflow loads it -- so the comparison needs no model
library on this machine, uses the exact versions the image pinned, and checks the whole HTTP
path (request parsing, schema enforcement, encoding). The container is removed on every path.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from steps.errors import StepFailed


@dataclass(frozen=True)
class SmokeResult:
    checked_predictions: bool
    rows: int
    seconds_to_ready: float


def same_predictions(served: Any, reference: Any, rel: float = 1e-6) -> bool:
    """Equal JSON trees, numbers within a relative tolerance (and NaN equal to NaN)."""
    if isinstance(served, bool) or isinstance(reference, bool):
        return bool(served == reference)
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


def run(
    client: Any,
    image: str,
    serving_example: bytes | None,
    labels: Mapping[str, str],
    timeout: float,
    say: Callable[[str], None],
) -> SmokeResult:
    import requests

    container = client.containers.run(
        image,
        detach=True,
        ports={"8080/tcp": ("127.0.0.1", None)},
        labels=dict(labels),
        name=f"mlsteps-smoke-{labels.get('io.mlsteps.invocation', '')[:12] or 'test'}",
    )
    try:
        container.reload()
        port = container.ports["8080/tcp"][0]["HostPort"]
        url = f"http://127.0.0.1:{port}"
        start = time.monotonic()
        while True:
            container.reload()
            if container.status in ("exited", "dead"):
                code = container.attrs["State"]["ExitCode"]
                raise StepFailed(
                    f"smoke test: the server in {image} exited (code {code}) before answering "
                    f"/ping. The end of its log:\n{_log_tail(container)}"
                )
            try:
                if requests.get(f"{url}/ping", timeout=2).status_code == 200:
                    break
            except requests.RequestException:
                pass
            if time.monotonic() - start > timeout:
                raise StepFailed(
                    f"smoke test: the server in {image} did not answer /ping within "
                    f"{timeout:g}s (raise --smoke-timeout if the model loads slowly). The end of "
                    f"its log:\n{_log_tail(container)}"
                )
            time.sleep(0.5)
        ready = time.monotonic() - start
        say(f"  server ready after {ready:.1f}s")
        if serving_example is None:
            return SmokeResult(False, 0, ready)
        answer = requests.post(
            f"{url}/invocations",
            data=serving_example,
            headers={"Content-Type": "application/json"},
            timeout=max(timeout, 30),
        )
        if answer.status_code != 200:
            raise StepFailed(
                f"smoke test: /invocations answered the model's input example with HTTP "
                f"{answer.status_code}: {answer.text[:500]}\nThe end of the server's log:\n"
                f"{_log_tail(container)}"
            )
        served = answer.json()
        code, output = container.exec_run(
            ["/opt/venv/bin/python", "/opt/mlsteps/server.py", "reference"], demux=True
        )
        stdout, stderr = output
        if code != 0:
            raise StepFailed(
                "smoke test: the model's own prediction of its input example failed in the "
                f"image:\n{(stderr or b'').decode(errors='replace')[-1500:]}"
            )
        reference = json.loads(stdout)
        if not same_predictions(served, reference):
            raise StepFailed(
                "smoke test: the served predictions differ from the model's own prediction of "
                f"its input example.\n  served:    {json.dumps(served)[:400]}\n  "
                f"reference: {json.dumps(reference)[:400]}"
            )
        rows = len(served.get("predictions", [])) if isinstance(served, dict) else 0
        return SmokeResult(True, rows, ready)
    finally:
        from steps import signals

        with signals.shielded():
            try:
                container.remove(force=True)
            except Exception:  # noqa: BLE001 - the sweep of the next run removes it
                say(f"  could not remove the smoke-test container {container.name}")
