#!/usr/bin/env bash
# The quickstart, from nothing to a trained model served from an image in a registry:
#
#   bash examples/quickstart/run.sh
#
# 1. sets the machine up (.ci/setup: Docker Engine, the base image, the project venv),
# 2. starts an MLflow server on 127.0.0.1:5000 and an image registry on 127.0.0.1:5050 unless
#    they already answer there (their data stays in examples/quickstart/.mlflow and .registry,
#    so runs and images survive a restart),
# 3. builds the trainer image from this folder's Dockerfile,
# 4. runs `mlsteps train` here, which reads mlsteps.yaml,
# 5. runs `mlsteps package` on the model train logged: a serving image, smoke-tested, pushed
#    to the registry, and registered in MLflow as a version of quickstart-classifier,
# 6. runs `mlsteps gate` on that version (mlsteps.yaml's thresholds, against the champion),
# 7. runs `mlsteps promote`: the version becomes the model's @champion,
# 8. runs `mlsteps deploy`: a canary of the promoted version's image on this machine (Docker
#    containers behind nginx on 127.0.0.1:8800, deploy.listen in mlsteps.yaml), judged on the
#    client traffic traffic.py sends meanwhile. The first run starts the endpoint with that same
#    image as its champion, so its canary is an A/A (the model against itself); later runs
#    canary each newly promoted version against the one serving. The endpoint stays up after.
# Arguments go on to `mlsteps train`: `run.sh --dry-run` prints train's plan and does nothing.
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "$HERE/../.." && pwd)
STATE=$HERE/.mlflow
REGISTRY_STATE=$HERE/.registry
IMAGE=mlsteps-quickstart-trainer:latest
PORT=5000
URI=http://127.0.0.1:$PORT
REGISTRY=127.0.0.1:5050   # the same address as package.registry in mlsteps.yaml
ENDPOINT=quickstart-classifier       # deploy.endpoint in mlsteps.yaml
ENDPOINT_URL=http://127.0.0.1:8800   # deploy.listen in mlsteps.yaml: change both together
# Where deploy keeps the endpoint's proxy (its nginx.pid), logs and state (--state-dir).
ENDPOINT_STATE=${XDG_CACHE_HOME:-$HOME/.cache}/mlsteps/endpoints/$ENDPOINT
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

mkdir -p "$REGISTRY_STATE"
if answers "http://$REGISTRY/v2/"; then
    say "image registry already answering at $REGISTRY"
else
    say "starting an image registry at $REGISTRY (images in $REGISTRY_STATE)"
    printf '%s\n' 'version: 0.1' 'log: {level: warn}' \
        "storage: {filesystem: {rootdirectory: $REGISTRY_STATE/data}}" \
        "http: {addr: $REGISTRY}" >"$REGISTRY_STATE/config.yml"
    # Loopback registries need no TLS: the Docker Engine trusts 127.0.0.0/8 over http.
    setsid docker-registry serve "$REGISTRY_STATE/config.yml" \
        >"$REGISTRY_STATE/registry.log" 2>&1 </dev/null &
    pid=$!
    for ((i = 0; i < 30; i++)); do
        answers "http://$REGISTRY/v2/" && break
        kill -0 "$pid" 2>/dev/null || break
        sleep 1
    done
    if ! answers "http://$REGISTRY/v2/"; then
        say "the registry did not start; the end of its log:"
        tail -n 20 "$REGISTRY_STATE/registry.log" | sed 's/^/    /'
        exit 1
    fi
    say "image registry up (stop it with: kill -- -$pid)"
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
# --json: the outputs come as one JSON document on stdout (the log stays on the terminal),
# so the next step can take the model from them.
result=$("$REPO/.venv/bin/mlsteps" --json train "$@")
model_uri=$("$REPO/.venv/bin/python" -c \
    'import json, sys; print(json.load(sys.stdin)["outputs"].get("model-uri", ""))' <<<"$result")
if [[ -z $model_uri ]]; then
    say "train logged no model (a dry run?): nothing to package"
    exit 0
fi

output() {  # output NAME: one output of the JSON result on stdin
    "$REPO/.venv/bin/python" -c \
        'import json, sys; print(json.load(sys.stdin)["outputs"].get(sys.argv[1], ""))' "$1"
}

say "packaging: mlsteps package --model-uri $model_uri (reads $HERE/mlsteps.yaml)"
packaged=$("$REPO/.venv/bin/mlsteps" --json package --model-uri "$model_uri")
version=$(output model-version <<<"$packaged")
image=$(output image-ref <<<"$packaged")   # REGISTRY/NAME@sha256:…, the image deploy runs

say "gate: mlsteps gate --model-uri models:/quickstart-classifier/$version"
# Exit 3 (rejected) stops here: the report says which threshold the model missed. Its digest
# is what promote checks the gate's report (and so its verdict) against.
digest=$("$REPO/.venv/bin/mlsteps" --json gate --model-uri "models:/quickstart-classifier/$version" | output report-digest)

say "promote: mlsteps promote --version $version --gate-report-digest $digest"
"$REPO/.venv/bin/mlsteps" promote --version "$version" --gate-report-digest "$digest"

say "deploy: a canary of version $version ($image) at $ENDPOINT_URL, under traffic.py's requests"
if [[ ! -f $ENDPOINT_STATE/state.json ]]; then
    say "nothing serves $ENDPOINT yet: it starts with this same image as its champion, so this" \
        "canary is an A/A (the model against itself); later runs canary each new version" \
        "against the one serving"
fi
# A canary is judged on client requests: without them it is inconclusive and rolls back.
"$REPO/.venv/bin/python" "$HERE/traffic.py" "$ENDPOINT_URL" --rate 25 &
traffic=$!
trap 'kill "$traffic" 2>/dev/null || true' EXIT
# --champion-image only counts when nothing serves yet; an endpoint already up keeps its own.
status=0
deployed=$("$REPO/.venv/bin/mlsteps" --json deploy --image "$image" --champion-image "$image" \
    --version "$version") || status=$?
kill -TERM "$traffic" 2>/dev/null || true
wait "$traffic" || true   # it prints how many requests failed
trap - EXIT
if ((status == 3)); then
    # Harm found, or undecided at the longest bake: all traffic is back on the one serving.
    say "deploy rolled version $version back: $HERE/.mlsteps/deploy/report.md says why"
    exit 3
elif ((status != 0)); then
    say "deploy failed (exit $status): its message is above"
    exit "$status"
fi
say "deploy: $(output decision <<<"$deployed"), $(output variant-weights <<<"$deployed")"
say "version $version serves at $ENDPOINT_URL/invocations (POST JSON, e.g. dataframe_split);" \
    "more traffic: $REPO/.venv/bin/python $HERE/traffic.py $ENDPOINT_URL (Ctrl-C stops it)"
say "stop the endpoint with: kill \$(cat $ENDPOINT_STATE/nginx.pid);" \
    "docker rm -f \$(docker ps -aq --filter label=io.mlsteps.endpoint=$ENDPOINT)"
