#!/usr/bin/env bash
# The measured targets of the kernel and speculation work on this machine, in one command (docs/bench.md §4).
#
#   scripts/bench-targets.sh [OUT_DIR]          (default OUT_DIR: bench-targets-<date>, outside the build)
#
# Makes the random-weight E2B and E4B files if they are missing (g3n create-random) and E4B's exported `e2b`
# slice, then runs ROUNDS rounds that alternate the runs being compared (these 2-core machines are noisy):
#   text       per model and thread count: llama.cpp pp512, llama.cpp tg64 after 512 (only when LLAMA_BENCH
#              names a llama-bench built for this CPU outside the repository), then g3n bench --prompt 512 --gen 64
#   spec       E4B, n-gram drafts at synthetic acceptance 0.7, one run per draft length (verify cost T = 1..9)
#   matformer  E4B's e2b slice as a view of the E4B file, then its exported file
# Every run's JSON goes to OUT_DIR; scripts/bench_targets.py prints the medians, ratios and each target met or not
# (run it again on an OUT_DIR to re-read one).
#
# Environment: G3N (default build/g3n), MODELS_DIR (the random files and a store for the exported slice; default
# ~/.cache/g3n-bench), LLAMA_BENCH (path; optional), ROUNDS (3), THREADS ("2 1"), KERNELS (a named set, e.g.
# avx2+fma+f16c; default the CPU's best), PARTS ("text spec matformer"), DRAFT_MAX ("2 3 4").
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
G3N=${G3N:-$here/../build/g3n}
MODELS_DIR=${MODELS_DIR:-$HOME/.cache/g3n-bench}
ROUNDS=${ROUNDS:-3}
THREADS=${THREADS:-"2 1"}
PARTS=${PARTS:-"text spec matformer"}
DRAFT_MAX=${DRAFT_MAX:-"2 3 4"}
OUT=${1:-bench-targets-$(date +%Y%m%d-%H%M%S)}
kernels=()
if [ -n "${KERNELS:-}" ]; then kernels=(--kernels "$KERNELS"); fi
[ -x "$G3N" ] || { echo "error: no g3n binary at $G3N (build first, or set G3N)" >&2; exit 1; }
if [ -n "${LLAMA_BENCH:-}" ] && [ ! -x "$LLAMA_BENCH" ]; then
  echo "error: LLAMA_BENCH=$LLAMA_BENCH is not an executable" >&2; exit 1
fi
mkdir -p "$MODELS_DIR" "$OUT"
export G3N_MODELS="$MODELS_DIR/store"
has_part() { case " $PARTS " in *" $1 "*) return 0 ;; *) return 1 ;; esac; }

for m in e2b e4b; do
  if [ ! -f "$MODELS_DIR/$m.gguf" ]; then
    echo "== making $MODELS_DIR/$m.gguf (random weights, real shapes)"
    "$G3N" create-random "$MODELS_DIR/$m.gguf" --preset "$m"
  fi
done
if has_part matformer && ! "$G3N" show e4b-e2b-slice > /dev/null 2>&1; then
  echo "== exporting E4B's e2b slice to the store as e4b-e2b-slice"
  "$G3N" create e4b-e2b-slice --from "$MODELS_DIR/e4b.gguf" --matformer e2b
fi
slice=""
if has_part matformer; then  # bench takes files: the stored slice's blob
  slice=$("$G3N" show e4b-e2b-slice --modelfile | awk '/^FROM /{print $2; exit}')
fi

# run NAME CMD...: CMD's stdout to OUT/NAME.json, its peak RSS (KB, /usr/bin/time) to OUT/NAME.rss.
run() {
  local name=$1; shift
  echo "-- $name"
  if ! /usr/bin/time -f %M -o "$OUT/$name.rss" "$@" > "$OUT/$name.json" 2> "$OUT/$name.err"; then
    echo "   failed (see $OUT/$name.err)"
  fi
}

{
  echo "date: $(date -u +%FT%TZ)"
  echo "g3n: $(git -C "$here/.." rev-parse --short HEAD 2>/dev/null || echo unknown)"
  echo "cpu: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ //')"
  echo "llama_bench: ${LLAMA_BENCH:-none}"
  echo "kernels: ${KERNELS:-default}"
} > "$OUT/meta.txt"

for r in $(seq 1 "$ROUNDS"); do
  echo "== round $r of $ROUNDS"
  if has_part text; then
    for m in e2b e4b; do
      for t in $THREADS; do
        f="$MODELS_DIR/$m.gguf"
        if [ -n "${LLAMA_BENCH:-}" ]; then
          run "text-r$r-$m-t$t-llama-pp" "$LLAMA_BENCH" -m "$f" -t "$t" -p 512 -n 0 -r 1 -o json
          run "text-r$r-$m-t$t-llama-tg" "$LLAMA_BENCH" -m "$f" -t "$t" -p 0 -n 64 -d 512 -r 1 -o json
        fi
        run "text-r$r-$m-t$t-g3n" "$G3N" bench "$f" --prompt 512 --gen 64 --threads "$t" --repeats 1 --json "${kernels[@]}"
      done
    done
  fi
  if has_part spec; then
    for d in $DRAFT_MAX; do
      run "spec-r$r-d$d" "$G3N" bench "$MODELS_DIR/e4b.gguf" --spec ngram --synthetic-acceptance 0.7 --draft-max "$d" \
        --threads 2 --repeats 3 --json "${kernels[@]}"
    done
  fi
  if has_part matformer; then
    run "matformer-r$r-view" "$G3N" bench "$MODELS_DIR/e4b.gguf" --matformer e2b --prompt 512 --gen 64 --threads 2 \
      --repeats 1 --json "${kernels[@]}"
    run "matformer-r$r-export" "$G3N" bench "$slice" --prompt 512 --gen 64 --threads 2 --repeats 1 --json "${kernels[@]}"
  fi
done
python3 "$here/bench_targets.py" "$OUT"
