#!/bin/bash
# Stop what start.sh started: the API process group, the Ray head (controller and model actors) and redis.
W=${NDIF_WORK:-${TMPDIR:-/tmp}/xling-ndif}
VENV=${NDIF_VENV:-$W/venv}
# shellcheck disable=SC1091
source "$VENV/bin/activate"
H=$W/ndif-home
if [ -f "$H/api.pid" ]; then
  PG=$(cat "$H/api.pid"); kill -TERM -- "-$PG" 2>/dev/null
  for _ in $(seq 15); do kill -0 -- "-$PG" 2>/dev/null || break; sleep 1; done
  kill -KILL -- "-$PG" 2>/dev/null; rm -f "$H/api.pid"
fi
ray stop --force >/dev/null 2>&1
redis-cli -p 6379 shutdown nosave 2>/dev/null || true
echo stopped
