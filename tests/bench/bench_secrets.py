"""Benchmark for issue 4, measured side by side in one run; prints ratios, never fails CI.

    .venv/bin/python tests/bench/bench_secrets.py [--repeat N] [--count 50]

Fetch COUNT secrets (one KV v2 path each) into the environment of a child process:
- anchor: the `bao` CLI reading them one `bao kv get -field=value` at a time in a shell script
  that then execs the child (what a pipeline without a secrets step does);
- mlsteps: `mlsteps secrets exec` with one AppRole login (included in the time), the reads
  done concurrently, and the revocation of its login token at the end.
Goal: mlsteps under 10% of the CLI's time. A dev OpenBao server on loopback serves both; runs
alternate between the contenders so that drift in machine load hits both alike.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from tests import services, vault_setup  # noqa: E402  (the path is set just above)


def timed(argv: list[str], env: dict[str, str]) -> float:
    started = time.perf_counter()
    done = subprocess.run(argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    elapsed = time.perf_counter() - started
    if done.returncode != 0:
        raise SystemExit(f"{argv[0]} failed ({done.returncode}): {done.stderr[-500:]!r}")
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--count", type=int, default=50)
    args = parser.parse_args()
    bin_dir = Path(sys.executable).parent
    with tempfile.TemporaryDirectory(prefix="mlsteps-bench-secrets-") as root:
        vault = services.start_vault(Path(root))
        try:
            names = [f"S{i:02d}" for i in range(args.count)]
            for name in names:
                vault_setup.put_kv(vault, "secret", f"bench/{name.lower()}", {"value": name * 8})
            policy = vault_setup.read_policy(vault, "bench", ["secret/data/bench/*"])
            role_id, secret_id = vault_setup.approle(vault, "bench", [policy])
            base = {k: v for k, v in os.environ.items() if not k.startswith("VAULT_")}
            anchor_env = {**base, "VAULT_ADDR": vault.addr, "VAULT_TOKEN": vault.root_token}
            script = (
                "".join(
                    f'export {n}="$(bao kv get -field=value secret/bench/{n.lower()})"\n'
                    for n in names
                )
                + "exec true\n"
            )
            anchor = ["sh", "-ec", script]
            anchor_env["PATH"] = f"{bin_dir}:{base.get('PATH', '')}"
            ours_env = {**base, "VAULT_ROLE_ID": role_id, "VAULT_SECRET_ID": secret_id}
            requests = ";".join(f"secret/bench/{n.lower()} value | {n}" for n in names)
            ours = [
                str(bin_dir / "mlsteps"), "-q", "--ci", "local", "secrets", "exec",
                "--url", vault.addr, "--method", "approle", "--secrets", requests, "--", "true",
            ]  # fmt: skip
            contenders = {
                f"bao kv get x{args.count}, then exec": (anchor, anchor_env),
                f"mlsteps secrets exec ({args.count}, login incl.)": (ours, ours_env),
            }
            times: dict[str, list[float]] = {name: [] for name in contenders}
            for argv, env in contenders.values():  # warm the page cache once, untimed
                timed(argv, env)
            for _ in range(args.repeat):
                for name, (argv, env) in contenders.items():
                    times[name].append(timed(argv, env))
        finally:
            vault.server.stop()
    anchor_name = next(iter(times))
    base_time = statistics.median(times[anchor_name])
    print(
        f"fetch {args.count} secrets into a child (median of {args.repeat}, anchor: "
        f"{anchor_name} = {base_time:.3f} s)"
    )
    for name, samples in times.items():
        median = statistics.median(samples)
        print(f"  {name:<44} {median:8.3f} s   {median / base_time:7.1%} of anchor")


if __name__ == "__main__":
    main()
