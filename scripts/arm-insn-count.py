#!/usr/bin/env python3
"""Static instruction counts of the AArch64 kernel loops (scripts/arm-insn-count.sh runs this).

Reads `objdump -d -C` of the three cross-built NEON kernel objects (neon, neon+dotprod, neon+i8mm),
finds each kernel's loops from its backward branches, and prints the instructions one weight block
costs: for a dot, the body of its block loop; for a tile, the per-token loop (instructions per block,
row and token) and the rest of the block loop (the unpack, per block and row, shared by all tokens).
The SMMLA tiles handle 2 rows x 2 tokens per inner iteration, so their inner count is divided by 4
and their unpack by 2. Qemu has no instruction counter, so this static count is the speed evidence
available without ARM hardware; it ignores latency, dual issue and memory.
"""
import re
import subprocess
import sys

OBJDUMP = "aarch64-linux-gnu-objdump"
NS = "g3n::vecdot::(anonymous namespace)::"
DOTS = [
    ("Q4_K dot", "dot_q4_k(void const*, void const*, long)"),
    ("Q6_K dot", "dot_q6_k(void const*, void const*, long)"),
    ("Q8_0 dot", "dot_q8_0(void const*, void const*, long)"),
    ("Q4_0 dot", "dot_q4_0(void const*, void const*, long)"),
    ("Q5_K dot", "float g3n::vecdot::(anonymous namespace)::dot_unpacked<g3n::quant::BlockQ5_K>(void const*, void const*, long)"),
    ("Q2_K dot", "float g3n::vecdot::(anonymous namespace)::dot_unpacked<g3n::quant::BlockQ2_K>(void const*, void const*, long)"),
    ("Q3_K dot", "float g3n::vecdot::(anonymous namespace)::dot_unpacked<g3n::quant::BlockQ3_K>(void const*, void const*, long)"),
]
TILES = ["Q4_K", "Q6_K", "Q8_0", "Q5_K"]
BRANCH = re.compile(r"^\s*([0-9a-f]+):\s+(b\.\w+|cbz|cbnz|tbz|tbnz|b)\s+.*?([0-9a-f]+) <")
INSN = re.compile(r"^\s*([0-9a-f]+):\s+(\S+)")


def functions(obj):
    text = subprocess.run([OBJDUMP, "-d", "-C", "--no-show-raw-insn", obj], check=True, capture_output=True,
                          text=True).stdout
    funcs, name, body = {}, None, []
    for line in text.splitlines():
        m = re.match(r"^[0-9a-f]+ <(.*)>:$", line)
        if m:
            if name:
                funcs[name] = body
            name, body = m.group(1), []
        elif name and INSN.match(line):
            body.append(line)
    if name:
        funcs[name] = body
    return funcs


def loops(body):
    """(start, end, instructions) of every loop: a backward branch from end to start."""
    addrs = [int(INSN.match(l).group(1), 16) for l in body]
    out = []
    for l in body:
        m = BRANCH.match(l)
        if not m:
            continue
        at, target = int(m.group(1), 16), int(m.group(3), 16)
        if addrs[0] <= target <= at:
            out.append((target, at, sum(1 for a in addrs if target <= a <= at)))
    return out


def find(funcs, key):
    for name, body in funcs.items():
        if name == key or name == NS + key:
            return body
    return None


def dot_count(body):
    ls = loops(body)
    if not ls:
        return None
    outer = max(ls, key=lambda x: x[2])
    inner = [x for x in ls if x != outer and outer[0] <= x[0] and x[1] <= outer[1]]
    return outer[2], len(inner)


def tile_count(body, key):
    """The token loop (the loop with the most `key` integer-dot instructions that holds no other loop)
    and the rest of the block loop around it (its instructions minus every loop nested in it)."""
    addr = {int(INSN.match(l).group(1), 16): l for l in body}
    ls = loops(body)
    def holds(outer, x):
        return x != outer and outer[0] <= x[0] and x[1] <= outer[1]
    def keys(lp):
        return sum(1 for a, l in addr.items() if lp[0] <= a <= lp[1] and re.search(r"\s" + key + r"\s", l))
    innermost = [x for x in ls if not any(holds(x, y) for y in ls) and keys(x) > 0]
    if not innermost:
        return None
    tok = max(innermost, key=keys)
    around = [x for x in ls if holds(x, tok)]
    if not around:
        return tok[2], 0
    block = min(around, key=lambda x: x[2])
    nested = [x for x in ls if holds(block, x) and not any(holds(y, x) for y in ls if holds(block, y))]
    return tok[2], block[2] - sum(x[2] for x in nested)


def main(objs):
    sets = ["neon", "neon+dotprod", "neon+i8mm"]
    funcs = {s: functions(o) for s, o in zip(sets, objs)}
    print("| kernel | " + " | ".join(sets) + " |")
    print("|---|" + "---|" * len(sets))
    for label, key in DOTS:
        cells = []
        for s in sets:
            body = find(funcs[s], key)
            c = dot_count(body) if body else None
            cells.append("-" if not c else f"{c[0]}" + (f" ({c[1]} inner loops)" if c[1] else ""))
        print(f"| {label}, per block | " + " | ".join(cells) + " |")
    for t in TILES:
        block = {"Q4_K": "BlockQ4_K", "Q6_K": "BlockQ6_K", "Q8_0": "BlockQ8_0", "Q5_K": "BlockQ5_K"}[t]
        cells_tok, cells_row = [], []
        for s in sets:
            mm = find(funcs[s], f"void g3n::vecdot::(anonymous namespace)::tile_mmla<g3n::quant::{block}>(void const*, unsigned long, long, void const*, unsigned long, long, long, float*, long)")
            if mm:
                c = tile_count(mm, "smmla")
                cells_tok.append(f"{c[0] / 4:g} (SMMLA, {c[0]} per 2x2)")
                cells_row.append(f"{c[1] / 2:g}")
                continue
            body = find(funcs[s], f"void g3n::vecdot::(anonymous namespace)::tile_row<g3n::quant::{block}>(g3n::quant::{block} const*, unsigned char const*, unsigned long, long, long, float*, long)") or \
                find(funcs[s], f"void g3n::vecdot::(anonymous namespace)::tile_unpacked<g3n::quant::{block}>(void const*, unsigned long, long, void const*, unsigned long, long, long, float*, long)")
            c = tile_count(body, "sadalp" if s == "neon" else "sdot") if body else None
            cells_tok.append("-" if not c else f"{c[0]}")
            cells_row.append("-" if not c else f"{c[1]}")
        print(f"| {t} tile, per block, row and token | " + " | ".join(cells_tok) + " |")
        print(f"| {t} tile unpack, per block and row | " + " | ".join(cells_row) + " |")


if __name__ == "__main__":
    main(sys.argv[1:4])
