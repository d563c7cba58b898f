#!/bin/bash
# Start a loopback-only NDIF server (PyPI package `ndif` 0.1.2) on a machine without a GPU and deploy one
# local model folder on it, so that xling_probe's remote path (backend="nnsight", remote=True) can be
# tested against a real server:  MODEL=/path/to/hf-folder bash scripts/ndif_loopback/start.sh
#
# Stack: redis (127.0.0.1:6379) -> Ray head (GCS 6385, client 10001, dashboard 127.0.0.1:8265) + the NDIF
# controller -> the NDIF API (gunicorn, 127.0.0.1:8001).  Stop everything with stop.sh.
#
# Needs: redis-server (apt), and a venv with Python 3.12 or 3.13 (ndif requires >=3.12) holding
#   pip install "ndif[api,ray]==0.1.2" "nnsight==0.8.1"
# given as NDIF_VENV (default: $NDIF_WORK/venv).  See docs/models.md, "A self-hosted NDIF server", for
# why each of the three departures from the stock setup below is needed on a CPU-only machine.
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
W=${NDIF_WORK:-${TMPDIR:-/tmp}/xling-ndif}
VENV=${NDIF_VENV:-$W/venv}
MODEL=${MODEL:?set MODEL to the Hugging Face folder to serve}
MODEL=$(cd "$MODEL" && pwd)
SIZE=${MODEL_SIZE_BYTES:-$(du -sb "$MODEL" | cut -f1)}
mkdir -p "$W"
# shellcheck disable=SC1091
source "$VENV/bin/activate"
export NDIF_HOME=$W/ndif-home; mkdir -p "$NDIF_HOME/logs"
export NDIF_REDIS_URL=redis://127.0.0.1:6379
export NDIF_RAY_ADDRESS=ray://127.0.0.1:10001
export NDIF_RAY_HEAD_PORT=6385
export NDIF_API_PORT=${NDIF_API_PORT:-8001} NDIF_API_URL=http://127.0.0.1:${NDIF_API_PORT:-8001}
export NDIF_OBJECT_STORE_URL=http://127.0.0.1:9000   # not started: only used for results over redis' inline limit
export NDIF_MODEL_IMPORT_PATH=cpu_actor.CPUModelActor # 1. the stock model actor is CUDA-only
export NDIF_DEFAULT_DTYPE=float32
export PYTHONPATH=$HERE${PYTHONPATH:+:$PYTHONPATH}
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1
export GRPC_ENABLE_FORK_SUPPORT=0 NDIF_SERVICE=ray

redis-server --port 6379 --bind 127.0.0.1 --daemonize yes --logfile "$NDIF_HOME/logs/redis.log" --dir "$NDIF_HOME"

# 2. The controller only manages Ray nodes that report a "GPU" resource: declare one (nothing uses it).
unset RAY_ADDRESS
ray start --head --node-ip-address=127.0.0.1 --port=$NDIF_RAY_HEAD_PORT --num-cpus=4 --num-gpus=1 \
  --resources='{"head": 10, "cuda_memory_bytes": 8000000000, "cpu_memory_bytes": 8000000000}' \
  --include-dashboard=true --dashboard-host=127.0.0.1 --dashboard-port=8265 --temp-dir="$W/ray" \
  --ray-client-server-port=10001 --disable-usage-stats
RAY_ADDRESS=127.0.0.1:$NDIF_RAY_HEAD_PORT python -m ndif.services.ray.deployments.controller.controller \
  > "$NDIF_HOME/logs/controller.log" 2>&1

NDIF_SERVICE=api setsid nohup gunicorn --config python:ndif.services.api.gunicorn_conf \
  --bind 127.0.0.1:$NDIF_API_PORT ndif.services.api.app:app > "$NDIF_HOME/logs/api.log" 2>&1 &
echo $! > "$NDIF_HOME/api.pid"   # setsid: the pid is the process group (master, workers, queue dispatcher)
for _ in $(seq 60); do curl -sf "http://127.0.0.1:$NDIF_API_PORT/ping" >/dev/null 2>&1 && break; sleep 1; done
echo "api up: $(curl -s "http://127.0.0.1:$NDIF_API_PORT/ping")"

# 3. Deploy by an explicit model key and size: ndif 0.1.2's own key and size lookups ask the hub, and its
#    size estimate calls nnsight 0.8.1 with an argument that version no longer takes.
KEY="nnsight.modeling.transformers.TransformersModel:{\"repo_id\": \"$MODEL\", \"revision\": null, \"task\": \"${TASK:-text-generation}\"}"
cat > "$W/models.yaml" <<YAML
models:
  - checkpoint: $MODEL
    task: ${TASK:-text-generation}
    dtype: float32
    size_bytes: $SIZE
    padding_bias: 0
    gpus: 1
    model_key: '$KEY'
YAML
ndif deploy -f "$W/models.yaml" --ray-address "$NDIF_RAY_ADDRESS" --redis-url "$NDIF_REDIS_URL"
echo "serving $MODEL at http://127.0.0.1:$NDIF_API_PORT"
