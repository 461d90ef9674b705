#!/usr/bin/env python3
"""Reads the runs of scripts/bench-targets.sh from OUT_DIR and prints medians, ratios and each target met or not.

The targets are the kernel issue's (prompt and generation against llama.cpp at the same depth, peak RSS, decode's
share of the measured read bandwidth) and the speculation issue's (verify cost at T = 5, n-gram speed-up against
the speed model, the MatFormer view against its exported slice). Which prompt and generation targets apply
follows the kernel set g3n ran: AVX2 sets on an AVX2-only CPU, AVX-512 sets, AMX.

usage: bench_targets.py OUT_DIR
"""
import json
import os
import re
import statistics
import sys


def load(path):
    try:
        with open(path) as f:
            return json.load(f)
    except (OSError, ValueError):
        return None


def rss_kb(path):
    try:
        with open(path) as f:
            return int(f.read().split()[-1])
    except (OSError, ValueError, IndexError):
        return None


def med(values):
    values = [v for v in values if v is not None]
    return statistics.median(values) if values else None


def fmt(v, spec=".2f"):
    return "-" if v is None else format(v, spec)


def ratio(a, b):
    return a / b if a is not None and b else None


class Checks:
    def __init__(self):
        self.lines = []

    def add(self, ok, what):
        if ok is None:
            self.lines.append(f"  [no data ] {what}")
        else:
            self.lines.append(f"  [{'met' if ok else 'NOT met':8}] {what}")


def runs(out, pattern):
    """{key tuple: {round: file base}} for files matching pattern (a regex with a 'r' group)."""
    found = {}
    for name in sorted(os.listdir(out)):
        m = re.fullmatch(pattern, name)
        if m:
            d = m.groupdict()
            r = int(d.pop("r"))
            found.setdefault(tuple(d.values()), {})[r] = os.path.join(out, name[: -len(".json")])
    return found


def llama_ts(base):
    j = load(base + ".json")
    if isinstance(j, list) and j and isinstance(j[0], dict):
        return j[0].get("avg_ts")
    return None


def machine(out):
    """(kernel set, cpu features string) from the first g3n JSON with a `kernels` object."""
    for name in sorted(os.listdir(out)):
        if name.endswith(".json"):
            j = load(os.path.join(out, name))
            if isinstance(j, dict) and isinstance(j.get("kernels"), dict):
                return j["kernels"].get("set", ""), j["kernels"].get("cpu_features", "")
    return "", ""


def text_part(out, kset, avx512_cpu, checks):
    found = runs(out, r"text-r(?P<r>\d+)-(?P<m>e\db)-t(?P<t>\d+)-g3n\.json")
    if not found:
        return
    if "amx" in kset:
        prompt_target, gen_target, rss_target, cls = 5.0, 1.3, 0.6, "AMX (prompt against llama.cpp's AVX-512 build)"
    elif "avx512" in kset:
        prompt_target, gen_target, rss_target, cls = 3.0, 1.3, 0.6, "AVX-512"
    elif "avx" in kset:
        prompt_target, gen_target, rss_target, cls = 2.5, 1.35, None, "AVX2"
        if avx512_cpu:
            cls += " set on a CPU with AVX-512: a stand-in, the targets are an AVX2-only machine's"
    else:
        prompt_target, gen_target, rss_target, cls = None, None, None, "no x86 target for this set"
    print(f"\n## Text: g3n bench --prompt 512 --gen 64 against llama-bench pp512 and tg64 -d 512 ({cls})\n")
    print("| model, threads | prompt tok/s g3n / llama.cpp (rounds) | ratio | generation after 512 g3n / llama.cpp (rounds) "
          "| ratio | peak RSS GB g3n / llama.cpp | gen_bandwidth_fraction (rounds) |")
    print("|---|---|---|---|---|---|---|")
    for (m, t), by_round in sorted(found.items(), key=lambda kv: (kv[0][0], -int(kv[0][1]))):
        g = {r: load(b + ".json") or {} for r, b in by_round.items()}
        gp = [g[r].get("prompt_tokens_per_s") for r in sorted(g)]
        gg = [g[r].get("gen_tokens_per_s") for r in sorted(g)]
        grss = med([g[r].get("peak_rss_bytes") for r in g])
        bw = [g[r].get("gen_bandwidth_fraction") for r in sorted(g)]
        lp = [llama_ts(os.path.join(out, f"text-r{r}-{m}-t{t}-llama-pp")) for r in sorted(g)]
        lg = [llama_ts(os.path.join(out, f"text-r{r}-{m}-t{t}-llama-tg")) for r in sorted(g)]
        lrss = med([rss_kb(os.path.join(out, f"text-r{r}-{m}-t{t}-llama-{k}.rss")) for r in g for k in ("pp", "tg")])
        pr, gr = ratio(med(gp), med(lp)), ratio(med(gg), med(lg))
        rr = ratio(grss, lrss * 1024 if lrss else None)
        rounds = lambda xs: ", ".join(fmt(x, ".1f") for x in xs)
        print(f"| {m.upper()}, {t} | {fmt(med(gp), '.1f')} ({rounds(gp)}) / {fmt(med(lp), '.1f')} ({rounds(lp)}) | "
              f"{fmt(pr)}x | {fmt(med(gg))} ({rounds(gg)}) / {fmt(med(lg))} ({rounds(lg)}) | {fmt(gr)}x | "
              f"{fmt(grss / 1e9 if grss else None)} / {fmt(lrss * 1024 / 1e9 if lrss else None)} | "
              f"{', '.join(fmt(x) for x in bw)} |")
        if prompt_target:
            checks.add(None if pr is None else pr >= prompt_target, f"{m.upper()} {t} thr: prompt >= {prompt_target}x llama.cpp ({fmt(pr)}x)")
            checks.add(None if gr is None else gr >= gen_target, f"{m.upper()} {t} thr: generation >= {gen_target}x llama.cpp at depth 512 ({fmt(gr)}x)")
        if rss_target and t == "2":
            checks.add(None if rr is None else rr <= rss_target, f"{m.upper()}: peak RSS <= {rss_target}x llama.cpp's ({fmt(rr)}x)")
        if t == "2" and prompt_target:
            mb = med(bw)
            checks.add(None if mb is None else mb >= 0.85, f"{m.upper()} 2 thr: decode bandwidth fraction >= 0.85 (median {fmt(mb)})")


def spec_part(out, kset, avx512_cpu, checks):
    found = runs(out, r"spec-r(?P<r>\d+)-d(?P<d>\d+)\.json")
    if not found:
        return
    print("\n## Speculation: E4B, n-gram drafts, synthetic acceptance 0.7, 2 threads\n")
    print("| draft length | plain / spec tok/s (rounds) | speed-up | predicted | T = 5 (rounds) | floor at T = 5 | T = 5 / floor | beta | outputs equal |")
    print("|---|---|---|---|---|---|---|---|---|")
    best = None
    t5_all, floor_all = [], []
    for (d,), by_round in sorted(found.items(), key=lambda kv: int(kv[0][0])):
        js = [load(b + ".json") or {} for _, b in sorted(by_round.items())]
        plain = [j.get("plain_tokens_per_s") for j in js]
        spec = [j.get("spec_tokens_per_s") for j in js]
        sp = [j.get("spec_speedup") for j in js]
        pred = med([j.get("spec_predicted_speedup") for j in js])
        t5 = [j["verify_cost_ratio"][4] if len(j.get("verify_cost_ratio", [])) > 4 else None for j in js]
        fl = [j["verify_compute_floor_ratio"][4] if len(j.get("verify_compute_floor_ratio", [])) > 4 else None for j in js]
        t5_all += t5
        floor_all += fl
        eq = all(j.get("spec_outputs_equal") is True for j in js)
        msp = med(sp)
        if msp is not None and (best is None or msp > best[1]):
            best = (d, msp, pred)
        pairs = ", ".join(f"{fmt(a)}/{fmt(b)}" for a, b in zip(plain, spec))
        print(f"| {d} | {pairs} | {fmt(msp)} | {fmt(pred)} | {', '.join(fmt(x) for x in t5)} | {fmt(med(fl))} | "
              f"{fmt(ratio(med(t5), med(fl)))} | {fmt(med([j.get('verify_beta') for j in js]), '.3f')} | {eq} |")
        checks.add(eq, f"draft length {d}: speculative greedy output equals plain greedy in every run")
    t5m, flm = med(t5_all), med(floor_all)
    if "avx512vnni" in kset:
        checks.add(None if t5m is None else t5m <= 1.3, f"verify cost at T = 5 <= 1.3 on an AVX-512 VNNI set (median {fmt(t5m)})")
    elif "avx" in kset:
        note = "" if not avx512_cpu else "; stand-in: the rule is an AVX2-only machine's"
        r = ratio(t5m, flm)
        checks.add(None if r is None else r <= 1.1, f"verify cost at T = 5 <= 1.1x its compute floor ({fmt(t5m)} / {fmt(flm)} = {fmt(r)}x{note})")
    if best:
        d, msp, pred = best
        checks.add(None if pred is None else msp >= 0.9 * pred,
                   f"n-gram speed-up at the best draft length ({d}) >= 0.9x the speed model's ({fmt(msp)} against {fmt(pred)})")


def matformer_part(out, checks):
    found = runs(out, r"matformer-r(?P<r>\d+)-(?P<k>view|export)\.json")
    view, export = found.get(("view",), {}), found.get(("export",), {})
    if not view or not export:
        return
    vj = [load(b + ".json") or {} for _, b in sorted(view.items())]
    ej = [load(b + ".json") or {} for _, b in sorted(export.items())]
    vg, eg = [j.get("gen_tokens_per_s") for j in vj], [j.get("gen_tokens_per_s") for j in ej]
    vr, er = med([j.get("peak_rss_bytes") for j in vj]), med([j.get("peak_rss_bytes") for j in ej])
    print("\n## MatFormer: E4B's e2b slice as a view against its exported file, 2 threads\n")
    print("| | generation tok/s (rounds) | peak RSS GB |")
    print("|---|---|---|")
    print(f"| view | {fmt(med(vg))} ({', '.join(fmt(x) for x in vg)}) | {fmt(vr / 1e9 if vr else None)} |")
    print(f"| export | {fmt(med(eg))} ({', '.join(fmt(x) for x in eg)}) | {fmt(er / 1e9 if er else None)} |")
    gr, rr = ratio(med(vg), med(eg)), ratio(vr, er)
    checks.add(None if gr is None else gr >= 0.95, f"view generation >= 0.95x the exported slice's ({fmt(gr)}x)")
    checks.add(None if rr is None else rr <= 1.1, f"view peak RSS <= 1.1x the exported slice's ({fmt(rr)}x)")


def main():
    if len(sys.argv) != 2 or not os.path.isdir(sys.argv[1]):
        sys.exit(__doc__.strip().splitlines()[-1])
    out = sys.argv[1]
    meta = os.path.join(out, "meta.txt")
    if os.path.exists(meta):
        print(open(meta).read().strip())
    kset, features = machine(out)
    avx512_cpu = "avx512" in features
    print(f"g3n kernel set: {kset or 'unknown'}; cpu features: {features or 'unknown'}")
    checks = Checks()
    text_part(out, kset, avx512_cpu, checks)
    spec_part(out, kset, avx512_cpu, checks)
    matformer_part(out, checks)
    print("\n## Targets\n")
    print("\n".join(checks.lines) if checks.lines else "  (no runs found)")


if __name__ == "__main__":
    main()
