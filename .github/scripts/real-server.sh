#!/usr/bin/env bash
# The real-server job's steps, runnable on any Linux machine with Docker (the GitHub workflow runs the same):
#
#   .github/scripts/real-server.sh install      # tensorflow_model_server out of the pinned tensorflow/serving image
#   .github/scripts/real-server.sh tests        # the suite's real-binary tests; they fail (not skip) without it
#   .github/scripts/real-server.sh tf-serving   # TF Serving's own tensorflow_model_server_test.py, real binary and
#                                               # local server side by side
#   .github/scripts/real-server.sh all          # the three in order (also: make real-server)
#
# Needs the project's virtualenv (make venv) and network access to Docker Hub and github.com.
set -euo pipefail
cd "$(dirname "$0")/../.."
IMAGE="${TF_SERVING_IMAGE:-tensorflow/serving:2.21.0}"   # the FROM of Dockerfile.serving (the suite checks it)
TF_SERVING_REF="${TF_SERVING_REF:-2.21.0}"               # the tensorflow/serving tag whose test file runs
WORK="${REAL_SERVER_WORK:-.cache/real-server}"
BIN="$WORK/bin"
PY="${PY:-.venv/bin/python}"

install() {
  mkdir -p "$BIN"
  docker pull -q "$IMAGE"
  id=$(docker create "$IMAGE")
  docker cp "$id:/usr/bin/tensorflow_model_server" "$BIN/tensorflow_model_server"
  docker rm "$id" >/dev/null
  "$BIN/tensorflow_model_server" --version
}

tests() {
  # TF_SERVING_REQUIRE_REAL=1: a real-binary test that cannot find the binary fails instead of skipping.
  PATH="$PWD/$BIN:$PATH" TF_SERVING_REQUIRE_REAL=1 "$PY" -m pytest -q -k tensorflow_model_server tests/
}

tf_serving() {
  src="$WORK/srcdir"
  if [ ! -d "$src/tf_serving" ]; then
    mkdir -p "$src"
    git clone -q --depth 1 --branch "$TF_SERVING_REF" https://github.com/tensorflow/serving "$src/tf_serving"
  fi
  server="$src/tf_serving/tensorflow_serving/model_servers/tensorflow_model_server"
  test_file="$src/tf_serving/tensorflow_serving/model_servers/tensorflow_model_server_test.py"
  "$PY" -m pip install -q "tf_keras==2.21.*"   # the test's Keras models need TF_USE_LEGACY_KERAS=1
  status=0
  for kind in real local; do
    if [ "$kind" = real ]; then
      cp "$BIN/tensorflow_model_server" "$server"
    else
      printf '#!/bin/sh\nexec %s -m serving "$@"\n' "$(realpath "$PY")" > "$server"
    fi
    chmod +x "$server"
    echo "== TF Serving's tensorflow_model_server_test.py against the $kind server"
    (cd "$src/tf_serving" && TEST_SRCDIR="$(realpath "$src")" TF_USE_LEGACY_KERAS=1 \
        PYTHONPATH="$(realpath "$src/tf_serving"):$PWD" "$(realpath "$PY")" "$test_file" 2>&1 \
        | tee "$WORK/tf-serving-$kind.log" | tail -5) || status=1
  done
  echo "== side by side (last line of each run)"
  for kind in real local; do echo "$kind: $(grep -E '^(OK|FAILED)' "$WORK/tf-serving-$kind.log" | tail -1)"; done
  return $status
}

case "${1:-all}" in
  install) install ;;
  tests) tests ;;
  tf-serving) tf_serving ;;
  all) install && tests && tf_serving ;;
  *) echo "usage: $0 [install|tests|tf-serving|all]" >&2; exit 2 ;;
esac
