#!/bin/sh
# Checks that every folder of src/ includes only itself and folders to its left in the layer order
# below (the one place the order is written; the README's Layout section explains it). Prints each
# violation as file:line and exits 1 if there is any. Runs with the tests (CTest: Layers.*).
# Usage: scripts/check-layers.sh [SRC_DIR]   (default: src; a relative path is from the repository root)
# A new folder goes into ORDER in the same commit that creates it.
set -eu
ORDER="base quant gguf kernels model vision audio tokenizer sampling runtime chat media store registry tools server cli"

src="${1:-src}"  # printed as given
cd "$(dirname "$0")/.."
cd "$src"
files=$(find . -type f \( -name '*.h' -o -name '*.hpp' -o -name '*.cpp' -o -name '*.cc' -o -name '*.inc' \) | sort)
[ -n "$files" ] || { echo "check-layers: no sources under $src" >&2; exit 1; }
# shellcheck disable=SC2086  # file names in src/ have no spaces
awk -v order="$ORDER" -v src="${src%/}" '
  BEGIN { n = split(order, o, " "); for (i = 1; i <= n; i++) rank[o[i]] = i; bad = 0 }
  FNR == 1 {
    f = FILENAME; sub(/^\.\//, "", f)
    dir = index(f, "/") ? substr(f, 1, index(f, "/") - 1) : ""
    if (!(dir in rank)) {
      printf "%s/%s:1: folder \"%s\" is not in the layer order (scripts/check-layers.sh)\n", src, f, dir
      bad++
    }
  }
  /^[ \t]*#[ \t]*include[ \t]*"/ {
    inc = $0; sub(/^[^"]*"/, "", inc); sub(/".*$/, "", inc)
    d = index(inc, "/") ? substr(inc, 1, index(inc, "/") - 1) : ""
    if (!(d in rank)) {
      printf "%s/%s:%d: includes \"%s\", not under a folder of the layer order\n", src, f, FNR, inc
      bad++
    } else if ((dir in rank) && rank[d] > rank[dir]) {
      printf "%s/%s:%d: %s/ includes %s (%s/ is to its right in the layer order)\n", src, f, FNR, dir, inc, d
      bad++
    }
  }
  END {
    if (bad) {
      printf "check-layers: %d violation(s); order, lowest first: %s\n", bad, order > "/dev/stderr"
      exit 1
    }
  }' $files
