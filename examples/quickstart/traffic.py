"""Client traffic for the quickstart's canary: rows shaped like the breast cancer data set,
POSTed to the endpoint's /invocations at a steady rate until SIGTERM or SIGINT, then a count of
the requests that failed.

    python traffic.py http://127.0.0.1:8800 --rate 25

A canary is judged on the requests clients send; with none, deploy can show nothing (and rolls
back at --max-bake). run.sh starts this beside `mlsteps deploy` and stops it when deploy ends.
Requests refused before the endpoint first answered are not counted: on a first run the proxy
starts during the deploy. Standard library only, so any python3 runs it.
"""

from __future__ import annotations

import argparse
import json
import random
import signal
import sys
import threading
import time
import urllib.error
import urllib.request
from collections import Counter
from typing import Any

# scikit-learn's load_breast_cancer(): each feature's name, mean and standard deviation, so a
# row looks like a patient of the data set (a normal draw, kept positive as the features are).
FEATURES = [
    ("mean radius", 14.1273, 3.524), ("mean texture", 19.2896, 4.301),
    ("mean perimeter", 91.969, 24.299), ("mean area", 654.8891, 351.9141),
    ("mean smoothness", 0.0964, 0.0141), ("mean compactness", 0.1043, 0.0528),
    ("mean concavity", 0.0888, 0.0797), ("mean concave points", 0.0489, 0.0388),
    ("mean symmetry", 0.1812, 0.0274), ("mean fractal dimension", 0.0628, 0.0071),
    ("radius error", 0.4052, 0.2773), ("texture error", 1.2169, 0.5516),
    ("perimeter error", 2.8661, 2.0219), ("area error", 40.3371, 45.491),
    ("smoothness error", 0.007, 0.003), ("compactness error", 0.0255, 0.0179),
    ("concavity error", 0.0319, 0.0302), ("concave points error", 0.0118, 0.0062),
    ("symmetry error", 0.0205, 0.0083), ("fractal dimension error", 0.0038, 0.0026),
    ("worst radius", 16.2692, 4.8332), ("worst texture", 25.6772, 6.1463),
    ("worst perimeter", 107.2612, 33.6025), ("worst area", 880.5831, 569.357),
    ("worst smoothness", 0.1324, 0.0228), ("worst compactness", 0.2543, 0.1573),
    ("worst concavity", 0.2722, 0.2086), ("worst concave points", 0.1146, 0.0657),
    ("worst symmetry", 0.2901, 0.0619), ("worst fractal dimension", 0.0839, 0.0181),
]  # fmt: skip


def body(rng: random.Random, rows: int) -> bytes:
    data = [[round(abs(rng.gauss(mean, sd)), 5) for _, mean, sd in FEATURES] for _ in range(rows)]
    columns = [name for name, _, _ in FEATURES]
    return json.dumps({"dataframe_split": {"columns": columns, "data": data}}).encode()


class Traffic:
    def __init__(self, url: str, rate: float, threads: int, rows: int) -> None:
        self.url = url.rstrip("/") + "/invocations"
        self.interval, self.threads, self.rows = threads / rate, threads, rows
        self.stop = threading.Event()
        self.answered = threading.Event()  # the endpoint answered once: count from then on
        self.outcomes: Counter[str] = Counter()
        self.unanswered = 0  # requests sent before the endpoint first answered
        self.lock = threading.Lock()

    def send(self, rng: random.Random) -> str:
        request = urllib.request.Request(
            self.url, data=body(rng, self.rows), headers={"Content-Type": "application/json"}
        )
        try:
            with urllib.request.urlopen(request, timeout=10) as answer:
                answer.read()
                return str(answer.status)
        except urllib.error.HTTPError as exc:
            return str(exc.code)
        except (OSError, ValueError) as exc:  # refused, reset, timed out
            reason: Any = getattr(exc, "reason", exc)
            return type(reason).__name__

    def run(self, seed: int) -> None:
        rng = random.Random(seed)
        next_at = time.monotonic()
        while not self.stop.is_set():
            outcome = self.send(rng)
            if outcome == "200":
                self.answered.set()
            with self.lock:
                if self.answered.is_set():
                    self.outcomes[outcome] += 1
                else:
                    self.unanswered += 1
            next_at += self.interval
            self.stop.wait(max(0.0, next_at - time.monotonic()))

    def report(self) -> str:
        if not self.answered.is_set():
            return f"traffic: {self.url} never answered ({self.unanswered} requests sent)"
        total = sum(self.outcomes.values())
        failed = {k: n for k, n in self.outcomes.items() if k != "200"}
        detail = ", ".join(f"{n} {k}" for k, n in sorted(failed.items()))
        return f"traffic: {total} requests, {sum(failed.values())} failed" + (
            f" ({detail})" if detail else ""
        )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("url", help="the endpoint, e.g. http://127.0.0.1:8800")
    parser.add_argument("--rate", type=float, default=25, help="requests per second (25)")
    parser.add_argument("--rows", type=int, default=4, help="rows per request (4)")
    parser.add_argument("--threads", type=int, default=4)
    args = parser.parse_args(argv)
    traffic = Traffic(args.url, args.rate, args.threads, args.rows)
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: traffic.stop.set())
    pool = [threading.Thread(target=traffic.run, args=(n,)) for n in range(args.threads)]
    for thread in pool:
        thread.start()
    while any(thread.is_alive() for thread in pool):
        traffic.stop.wait(0.5)  # the main thread takes the signals; the senders just stop
        if traffic.stop.is_set():
            for thread in pool:
                thread.join()
    print(traffic.report(), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
