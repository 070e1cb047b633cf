#!/usr/bin/env bash
# Readiness/startup probe for TF Serving containers: ready only when every model named in the model config has
# a version in state AVAILABLE (GET /v1/models/<name> answers 200 while a version is still LOADING, so the HTTP
# status alone is not enough). Uses only bash (/dev/tcp) and sed/grep, which the tensorflow/serving image has.
#   model_ready.sh [config file] [REST port]
set -euo pipefail
config=${1:-/etc/tfserving/models.config}
port=${2:-8501}
models=$(grep -oE '(^|[^_[:alnum:]])name:[[:space:]]*"[^"]*"' "$config" | sed -E 's/.*"([^"]*)"$/\1/')
[ -n "$models" ] || { echo "no model names in $config" >&2; exit 1; }
for model in $models; do
  exec 3<>"/dev/tcp/127.0.0.1/$port" || { echo "REST port $port closed" >&2; exit 1; }
  printf 'GET /v1/models/%s HTTP/1.0\r\nHost: localhost\r\n\r\n' "$model" >&3
  response=$(cat <&3)
  exec 3<&-
  if ! grep -Eq '"state"[[:space:]]*:[[:space:]]*"AVAILABLE"' <<<"$response"; then
    echo "model $model is not AVAILABLE" >&2
    exit 1
  fi
done
