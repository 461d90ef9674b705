#!/usr/bin/env bash
# Soak test (not in CI): `g3n serve` on loopback with G3N_NUM_PARALLEL=4 (unless set) over the tiny fixture
# model, driven for MINUTES (default 30) by scripts/soak.py (python3 standard library): both APIs, streamed
# and whole, tool calls, embeddings, schema output, clients hanging up mid-stream, malformed requests, and
# an unload + reload every 5 minutes. Bounded in time and in count (SOAK_MAX_REQUESTS, default 1000000).
# Reports requests served, failures (must be 0), p50/p99 latency and the server's RSS at start and end
# (must stay within 5%); exits nonzero otherwise. Needs a built build/g3n (or G3N=path).
# Extra soak.py options go after MINUTES (e.g. --clients 8 --num-predict 32).
set -euo pipefail
MINUTES=${1:-30}
shift || true
cd "$(dirname "$0")/.."
G3N=${G3N:-build/g3n}
MODEL=../shared/fixtures/gemma3n-tiny/models/gemma3n-tiny-q4_k_m.gguf
[ -x "$G3N" ] || { echo "soak: $G3N not built" >&2; exit 2; }
TMP=$(mktemp -d)
SERVER=
cleanup() {
  if [ -n "$SERVER" ]; then kill "$SERVER" 2>/dev/null || true; wait "$SERVER" 2>/dev/null || true; fi
  rm -rf "$TMP"
}
trap cleanup EXIT
export G3N_MODELS="$TMP/models" OLLAMA_MODELS="$TMP/no-ollama"
"$G3N" create tiny --from "$MODEL" >/dev/null
PORT=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
G3N_NUM_PARALLEL=${G3N_NUM_PARALLEL:-4} G3N_HOST="127.0.0.1:$PORT" "$G3N" serve 2>"$TMP/serve.log" &
SERVER=$!
for _ in $(seq 100); do
  python3 -c "import urllib.request; urllib.request.urlopen('http://127.0.0.1:$PORT/api/version', timeout=1)" 2>/dev/null && break
  sleep 0.2
done
echo "soak: g3n serve pid $SERVER on 127.0.0.1:$PORT, G3N_NUM_PARALLEL=${G3N_NUM_PARALLEL:-4}, $MINUTES min"
python3 scripts/soak.py --port "$PORT" --pid "$SERVER" --seconds "$((MINUTES * 60))" \
  --max-requests "${SOAK_MAX_REQUESTS:-1000000}" --warmup "$((MINUTES * 60 / 10 < 60 ? MINUTES * 60 / 10 : 60))" "$@"
