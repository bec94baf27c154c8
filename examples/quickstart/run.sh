#!/usr/bin/env bash
# The quickstart, from nothing to a trained model tracked in MLflow:
#
#   bash examples/quickstart/run.sh
#
# 1. sets the machine up (.ci/setup: Docker Engine, the base image, the project venv),
# 2. starts an MLflow server on 127.0.0.1:5000 unless one already answers there (its database
#    and artifacts stay in examples/quickstart/.mlflow, so runs survive a restart),
# 3. builds the trainer image from this folder's Dockerfile,
# 4. runs `mlsteps train` here, which reads mlsteps.yaml.
# Arguments go on to `mlsteps train`: `run.sh --dry-run` prints the plan and trains nothing.
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "$HERE/../.." && pwd)
STATE=$HERE/.mlflow
IMAGE=mlsteps-quickstart-trainer:latest
PORT=5000
URI=http://127.0.0.1:$PORT
# MLflow's usage telemetry stays off: this server and its clients talk to each other only.
export MLFLOW_DISABLE_TELEMETRY=true DO_NOT_TRACK=true

say() { printf 'quickstart: %s\n' "$*"; }

answers() {
    "$REPO/.venv/bin/python" - "$1" <<'EOF' 2>/dev/null
import sys, urllib.request
urllib.request.urlopen(sys.argv[1], timeout=2).read()
EOF
}

bash "$REPO/.ci/setup" apt docker base-image venv

mkdir -p "$STATE"
if answers "$URI/health"; then
    say "MLflow server already answering at $URI"
else
    say "starting an MLflow server at $URI (data in $STATE, log in $STATE/server.log)"
    # Its own session, so it outlives this script: the runs stay browsable at $URI.
    setsid "$REPO/.venv/bin/mlflow" server \
        --backend-store-uri "sqlite:///$STATE/mlflow.db" \
        --artifacts-destination "$STATE/artifacts" \
        --host 127.0.0.1 --port "$PORT" --workers 1 \
        >"$STATE/server.log" 2>&1 </dev/null &
    pid=$!
    echo "$pid" >"$STATE/server.pid"
    for ((i = 0; i < 120; i++)); do
        answers "$URI/health" && break
        if ! kill -0 "$pid" 2>/dev/null; then
            say "the MLflow server exited; the end of its log:"
            tail -n 20 "$STATE/server.log" | sed 's/^/    /'
            exit 1
        fi
        sleep 1
    done
    answers "$URI/health" || { say "the MLflow server did not answer within 120 s"; exit 1; }
    say "MLflow server up (stop it with: kill -- -$pid)"
fi

say "building $IMAGE from $HERE/Dockerfile (a minute the first time, cached after)"
if ! docker build -t "$IMAGE" "$HERE" >"$STATE/build.log" 2>&1; then
    say "the image build failed; the end of $STATE/build.log:"
    tail -n 20 "$STATE/build.log" | sed 's/^/    /'
    exit 1
fi
say "built $IMAGE"

say "training: mlsteps train (reads $HERE/mlsteps.yaml)"
cd "$HERE"
exec "$REPO/.venv/bin/mlsteps" train "$@"
