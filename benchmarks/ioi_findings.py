"""IOI on an embedded model, step by step, with timings: the numbers notebooks 10 and 11 will show.

    python benchmarks/ioi_findings.py [smollm2-135m-instruct | gemma-3-270m] [N_PAIRS]

1. the logit difference logit(IO) − logit(S) on IOI prompts and on their p_ABC corruption;
2. head patching (every head's output, all positions, p_ABC → IOI);
3. path patching, as Wang et al. trace the circuit back from the logits: every head → logits at
   the end (name-mover analogs: patching lowers the logit difference); every head → the top
   name movers' queries at the end (S-inhibition analogs); every head at S2 → the S-inhibition
   analogs' values at S2 (duplicate-token / induction analogs); attention checks for each class;
4. circuit faithfulness: the heads found, everything else mean-ablated over p_ABC per template;
5. attribution patching vs exact head patching (out, q, k, v; AtP and AtP* QK fix): correlation,
   worst sites, false negatives of the top-k, speed ratio.
Not a benchmark (make bench does not run it): a record for the notebooks and the report.
"""

from __future__ import annotations

import sys
import time

import numpy as np
import torch
from scipy.stats import pearsonr, spearmanr

import nbtoolkit as nb
from nbtoolkit.circuits import (attribution_patching, circuit_faithfulness, head_patching,
                                path_patching)
from nbtoolkit.lens import attention_patterns
from nbtoolkit.tasks.ioi import ioi_prompts


def timed(label, fn):
    start = time.perf_counter()
    out = fn()
    print(f"  [{label}: {time.perf_counter() - start:.1f} s]", flush=True)
    return out


def top_heads(scores, base, k=5, sign=-1):
    """The k heads whose patch moves the metric most in direction ``sign`` (−1: lowers it)."""
    effect = np.nan_to_num(scores - base) * sign
    flat = np.argsort(effect.ravel())[::-1][:k]
    return [tuple(int(x) for x in np.unravel_index(i, scores.shape)) for i in flat]


def fmt(heads, scores, base):
    return ", ".join(f"{l}.{h} ({scores[l, h] - base:+.2f})" for l, h in heads)


def false_negatives(estimate, exact, k):
    """Fraction of the exact top-k (by |effect|) missing from the estimate's top-k."""
    true = set(np.argsort(-np.abs(exact.ravel()))[:k])
    found = set(np.argsort(-np.abs(estimate.ravel()))[:k])
    return len(true - found) / k


def main(model="smollm2-135m-instruct", n=16):
    torch.manual_seed(0)
    lm = nb.load_model(model)
    data = ioi_prompts(n, corruption="abc", seed=0)
    metric = data.metric(lm)
    base, source = data.prompts, data.corrupted
    print(f"{model}: {lm.n_layers} layers × {lm.n_heads} heads, {n} IOI pairs (p_ABC sources)")

    exact = timed("head patching (out)", lambda: head_patching(lm, base, source, metric))
    b, s = exact.base_score, exact.source_score
    print(f"1. logit difference IOI {b:.2f} (std {exact.base_scores.std():.2f}, IO > S in "
          f"{(exact.base_scores > 0).mean():.0%}), p_ABC {s:.2f}")
    print(f"2. head patching, largest drops: {fmt(top_heads(exact.scores, b, 8), exact.scores, b)}")

    direct = timed("path patching heads → logits", lambda: path_patching(
        lm, base, source, "heads", "logits", metric, sender_positions="last"))
    movers = top_heads(direct.scores, b, 3)
    negative = top_heads(direct.scores, b, 2, sign=+1)
    print(f"3a. direct effect on the logits: name-mover analogs {fmt(movers, direct.scores, b)}; "
          f"negative {fmt(negative, direct.scores, b)}")
    positions = data.positions(lm)
    patterns = attention_patterns(lm, base)  # every layer, in each prompt's own positions
    col = positions
    for layer, head in movers:
        print(f"     {layer}.{head}: attention end→IO {patterns.between(layer, head, col['end'], col['IO']).mean():.2f}, "
              f"end→S1 {patterns.between(layer, head, col['end'], col['S1']).mean():.2f}, "
              f"end→S2 {patterns.between(layer, head, col['end'], col['S2']).mean():.2f}")
    queries = [(l, h, "q") for l, h in movers]
    inhibition = timed("path patching heads → name movers' queries", lambda: path_patching(
        lm, base, source, "heads", queries, metric, receiver_positions="last"))
    s_inh = top_heads(inhibition.scores, b, 4)
    print(f"3b. → name movers' queries: S-inhibition analogs {fmt(s_inh, inhibition.scores, b)}")
    for layer, head in s_inh:
        print(f"     {layer}.{head}: attention end→S2 {patterns.between(layer, head, col['end'], col['S2']).mean():.2f}, "
              f"end→IO {patterns.between(layer, head, col['end'], col['IO']).mean():.2f}")
    kv = lm.model.config.num_key_value_heads if hasattr(lm.model.config, "num_key_value_heads") else lm.n_heads
    per = lm.n_heads // kv
    values = sorted({(l, h // per, "v") for l, h in s_inh if l > 0})
    s2 = {"S2": positions["S2"]}
    duplicates = timed("path patching heads@S2 → S-inhibition values@S2", lambda: path_patching(
        lm, base, source, "heads", values, metric, sender_positions=s2, receiver_positions=s2))
    dup = top_heads(duplicates.scores, b, 4)
    print(f"3c. → S-inhibition values at S2: duplicate/induction analogs {fmt(dup, duplicates.scores, b)}")
    s1_next = [p + 1 for p in col["S1"]]
    for layer, head in dup:
        print(f"     {layer}.{head}: attention S2→S1 {patterns.between(layer, head, col['S2'], col['S1']).mean():.2f}, "
              f"S2→S1+1 {patterns.between(layer, head, col['S2'], s1_next).mean():.2f}")

    circuit = sorted(set(movers + s_inh + dup))
    faithful = timed("faithfulness", lambda: circuit_faithfulness(
        lm, base, source, circuit, metric, groups=[i["template"] for i in data.info]))
    print(f"4. circuit of {len(circuit)} heads: F(C)/F(M) = {faithful.fraction:.0%} "
          f"(F(M) {faithful.full.mean():.2f}, F(C) {faithful.circuit.mean():.2f}, "
          f"F(∅) {faithful.empty.mean():.2f})")

    start = time.perf_counter()
    atp = attribution_patching(lm, base, source, metric, kind="out")
    atp_s = time.perf_counter() - start
    start = time.perf_counter()
    head_patching(lm, base, source, metric)
    exact_s = time.perf_counter() - start
    print(f"5. AtP (out) {atp_s:.1f} s vs exact head patching {exact_s:.1f} s: {exact_s / atp_s:.1f}×")
    for kind in ("out", "q", "k", "v"):
        truth = exact if kind == "out" else timed(f"head patching ({kind})",
                                                  lambda: head_patching(lm, base, source, metric, kind=kind))
        for fix in ((False, True) if kind in "qk" else (False,)):
            est = attribution_patching(lm, base, source, metric, kind=kind, qk_fix=fix)
            e, t = est.effects().ravel(), truth.effects().ravel()
            worst = np.argsort(-np.abs(e - t))[:3]
            cells = [np.unravel_index(i, truth.scores.shape) for i in worst]
            print(f"   {kind}{' +QK fix' if fix else ''}: pearson {pearsonr(e, t)[0]:.3f}, "
                  f"spearman {spearmanr(e, t)[0]:.3f}, FN top-10 {false_negatives(e, t, 10):.0%}, "
                  f"top-20 {false_negatives(e, t, 20):.0%}; worst: " +
                  ", ".join(f"{l}.{h} exact {truth.scores[l, h] - b:+.2f} est {est.scores[l, h] - b:+.2f}"
                            for l, h in cells))


if __name__ == "__main__":
    main(*(sys.argv[1:2] or ["smollm2-135m-instruct"]), *map(int, sys.argv[2:3]))
