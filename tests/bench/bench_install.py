"""Benchmark for issue 17, measured side by side in one run; prints ratios, never fails CI.

    .venv/bin/python tests/bench/bench_install.py [--repeat N] [--extras gate]

The actions' install (actions/install.sh, the first step of every mlsteps action) of mlsteps
from a copy of this checkout, each case from empty pip and uv caches (fresh XDG_CACHE_HOME,
PIP_CACHE_DIR and UV_CACHE_DIR) and a fresh $RUNNER_TEMP:
- anchor: the install before uv (install.sh at 87d5211: python3 -m venv, then pip install);
- the first install of a job on a runner with uv on PATH (setup-uv, a self-hosted runner's);
- the first install of a job on a runner without uv (install.sh bootstraps it with pip);
- a later mlsteps action of the same job (the job's venv is reused);
- the first install of a new job on a runner that shares its tool cache (the cached venv).
Goals: a first install under 25% of the anchor's time, a later step under 1 s. The runner's pip
configuration, the same for all: by default a hosted runner's, no pip configuration at all but
the CA bundle of the system (PIP_CERT; this machine's network re-signs TLS); with
`--pip-config machine`, this machine's own (its pip.conf adds two local indexes, a find-links
directory and a constraints file, which uv then asks too, as it must to install what pip would).
Runs alternate between the contenders so that drift in machine load hits all alike.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import uv

ROOT = Path(__file__).resolve().parents[2]
BEFORE_UV = "87d5211"  # the last commit whose install.sh used pip only
PATH = "/usr/local/bin:/usr/bin:/bin"  # the runner's, without this venv's uv


def copy_checkout(dest: Path) -> Path:
    """The files of this checkout (tracked or not, not ignored), as an action's checkout."""
    listed = subprocess.run(
        ["git", "-C", str(ROOT), "ls-files", "-z", "-co", "--exclude-standard"],
        capture_output=True,
        check=True,
    ).stdout
    for name in filter(None, listed.decode().split("\0")):
        source = ROOT / name
        if source.is_file():
            (dest / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, dest / name)
    return dest


class Runner:
    """A runner's state: its tool cache, and fresh caches and temp dirs per job."""

    def __init__(self, root: Path, checkout: Path, extras: list[str], machine_pip: bool) -> None:
        self.root, self.checkout, self.extras = root, checkout, extras
        self.machine_pip = machine_pip
        self.tool_cache = Path(tempfile.mkdtemp(prefix="tool-", dir=root))

    def job(self) -> Path:
        return Path(tempfile.mkdtemp(prefix="job-", dir=self.root))

    def install(self, script: Path, job: Path, uv_dir: Path | None = None) -> float:
        caches = Path(tempfile.mkdtemp(prefix="caches-", dir=self.root))
        skipped = ("GITHUB_", "RUNNER_", "UV_") + (() if self.machine_pip else ("PIP_",))
        env = {k: v for k, v in os.environ.items() if not k.startswith(skipped)}
        if not self.machine_pip:
            env.update(PIP_CONFIG_FILE=os.devnull, PIP_CERT="/etc/ssl/certs/ca-certificates.crt")
        env.update(
            PATH=f"{uv_dir}:{PATH}" if uv_dir else PATH,
            GITHUB_ACTION_PATH=str(self.checkout / "actions" / "gate"),
            GITHUB_OUTPUT=str(job / "github-output"),
            RUNNER_TEMP=str(job),
            RUNNER_TOOL_CACHE=str(self.tool_cache),
            MLSTEPS_INSTALL_CACHE="shared",  # a runner that shares its tool cache across jobs
            XDG_CACHE_HOME=str(caches / "xdg"),
            PIP_CACHE_DIR=str(caches / "pip"),
            UV_CACHE_DIR=str(caches / "uv"),
        )
        started = time.perf_counter()
        done = subprocess.run(
            ["bash", str(script), *self.extras], env=env, capture_output=True, text=True
        )
        elapsed = time.perf_counter() - started
        if done.returncode != 0:
            raise SystemExit(f"{script} failed ({done.returncode}): {done.stdout[-500:]!r}")
        shutil.rmtree(caches)
        return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--extras", nargs="*", default=[], help="e.g. gate (the largest)")
    parser.add_argument("--pip-config", choices=("runner", "machine"), default="runner")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="mlsteps-bench-install-") as tmp:
        root = Path(tmp)
        checkout = copy_checkout(root / "mlsteps")
        before = root / "install-before-uv.sh"
        before.write_text(
            subprocess.run(
                ["git", "-C", str(ROOT), "show", f"{BEFORE_UV}:actions/install.sh"],
                capture_output=True,
                text=True,
                check=True,
            ).stdout
        )
        now = checkout / "actions" / "install.sh"
        uv_dir = root / "uv-bin"
        uv_dir.mkdir()
        (uv_dir / "uv").symlink_to(uv.find_uv_bin())

        def first_with_uv_on_path() -> dict[str, float]:
            runner = Runner(root, checkout, args.extras, args.pip_config == "machine")
            job = runner.job()
            first = runner.install(now, job, uv_dir)
            later = runner.install(now, job, uv_dir)
            new_job = runner.install(now, runner.job(), uv_dir)
            return {
                "first install, uv on PATH": first,
                "later step of the job": later,
                "new job, tool cache kept": new_job,
            }

        def contenders() -> dict[str, float]:
            anchor = Runner(root, checkout, args.extras, args.pip_config == "machine")
            times = {"pip, before uv (anchor)": anchor.install(before, anchor.job())}
            times.update(first_with_uv_on_path())
            bootstrap = Runner(root, checkout, args.extras, args.pip_config == "machine")
            times["first install, uv bootstrapped"] = bootstrap.install(now, bootstrap.job())
            return times

        samples: dict[str, list[float]] = {}
        for _ in range(args.repeat):
            for name, elapsed in contenders().items():
                samples.setdefault(name, []).append(elapsed)
    anchor_name = next(iter(samples))
    base = statistics.median(samples[anchor_name])
    spec = f"mlsteps[{','.join(args.extras)}]" if args.extras else "mlsteps"
    print(
        f"install {spec} for an action, empty pip/uv caches, {args.pip_config}'s pip configuration"
        f" (median of {args.repeat}, anchor: {anchor_name} = {base:.2f} s)"
    )
    goals = {"first": (lambda t: t < 0.25 * base, "< 25%"), "later": (lambda t: t < 1, "< 1 s")}
    for name, times in samples.items():
        median = statistics.median(times)
        kind = "later" if name.startswith("later") else "first"
        met, goal = goals[kind]
        verdict = (
            "" if name == anchor_name else f"  goal {goal}: {'met' if met(median) else 'MISSED'}"
        )
        print(f"  {name:<34} {median:8.2f} s  {median / base:7.1%} of anchor{verdict}")


if __name__ == "__main__":
    sys.exit(main())
