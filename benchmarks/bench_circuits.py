"""Circuit sweeps on the default model and the IOI task (``nbtoolkit.tasks.ioi``, p_ABC sources):

1. head patching of every head's output (all positions) against a naive loop of one patched
   forward per head (``patch`` + ``Set(..., heads=[h])``, the full logits: TransformerLens's
   ``get_act_patch_attn_head_out_all_pos`` loop), the same scores checked first; goal ≥ 3×;
2. attribution patching of every head's output against that exact sweep; goal ≥ 20× at a rank
   correlation ≥ 0.8;
3. head patching against TransformerLens's ``patching.get_act_patch_attn_head_out_all_pos`` (its
   bridge over a copy of the model; prompts of one IOI template, so that its unpadded batch is the
   same input), the same per-pair scores checked first; goal ≥ 3×. Skipped without the bench extra.

    python benchmarks/bench_circuits.py     # or `make bench`; BENCH_CIRCUITS_PAIRS: 4 (FULL: 8)

TransformerLens's loop runs on half the pairs by default (over a minute at 4).
"""

from __future__ import annotations

import os

import numpy as np
import torch

from bench_peers import installed_peers, transformer_lens_bridge
from timing import FULL, row, timed

N_PAIRS = int(os.environ.get("BENCH_CIRCUITS_PAIRS", "8" if FULL else "4"))
TL_PAIRS = N_PAIRS if FULL else max(1, N_PAIRS // 2)  # its loop: over a minute at 4 pairs
REPEATS = 3 if FULL else 1  # the naive loop takes minutes


def naive_head_patching(lm, pairs, metric) -> np.ndarray:
    """One forward per head, the source's head output set at every position: [n, L, H]."""
    import nbtoolkit as nb

    sites = [f"layer.{i}.attn.heads" for i in range(lm.n_layers)]
    with torch.no_grad(), nb.capture(lm, sites) as source:
        lm.model(**pairs.source)
    out = np.zeros((pairs.n, lm.n_layers, lm.n_heads))
    for layer, site in enumerate(sites):
        for head in range(lm.n_heads):
            with torch.no_grad(), nb.patch(lm, {site: nb.Set(source[site], heads=[head])}):
                out[:, layer, head] = metric(lm.model(**pairs.base).logits[:, -1]).numpy()
    return out


def transformer_lens_row(lm) -> list[dict]:
    """Ours against TransformerLens's head-patching sweep on the same pairs (one template: equal
    lengths, no padding), no gradients for either."""
    from nbtoolkit.circuits import head_patching
    from nbtoolkit.core.sweeps import encode_pairs
    from nbtoolkit.tasks.ioi import TEMPLATES, ioi_prompts

    if "transformer_lens" not in installed_peers():
        return []
    from transformer_lens import patching

    data = ioi_prompts(TL_PAIRS, corruption="abc", seed=0, templates=TEMPLATES[:1])
    metric = data.metric(lm)
    pairs = encode_pairs(lm, data.prompts, data.corrupted)
    assert bool(pairs.base["attention_mask"].all()), "one template must give equal lengths"
    bridge = transformer_lens_bridge(lm)

    def theirs():
        _, cache = bridge.run_with_cache(pairs.source["input_ids"],
                                         names_filter=lambda name: name.endswith("hook_z"))
        return patching.get_act_patch_attn_head_out_all_pos(
            bridge, pairs.base["input_ids"], cache, lambda logits: metric(logits[:, -1]),
            reduce="none").values  # [L, H, n]

    with torch.no_grad():
        ours_s, ours = timed(lambda: head_patching(lm, data.prompts, data.corrupted, metric), REPEATS)
        theirs_s, scores = timed(theirs, REPEATS)
    diff = float(np.abs(ours.per_pair - scores.permute(2, 0, 1).numpy()).max())
    assert diff < 1e-3, f"head patching differs from TransformerLens's by {diff}"
    name = (f"head patching, every head's output ({lm.n_layers}×{lm.n_heads} heads, {TL_PAIRS} "
            f"IOI pairs of one template) vs TransformerLens's get_act_patch_attn_head_out_all_pos")
    out = row(name, ours_s, theirs_s, "<= 0.3333 (3× faster)",
              f"speed-up {float(np.median(theirs_s) / np.median(ours_s)):.2f}×; max |Δ metric| "
              f"{diff:.1e}; TransformerLens runs its bridge's eager attention")
    out.update(times={"nbtoolkit": np.median(ours_s), "transformer_lens": np.median(theirs_s)},
               reference_library="transformer_lens")
    return [out]


def run() -> list[dict]:
    from nbtoolkit import load_model
    from nbtoolkit.circuits import agreement, attribution_patching, head_patching
    from nbtoolkit.core.sweeps import encode_pairs
    from nbtoolkit.tasks.ioi import ioi_prompts

    lm = load_model()
    data = ioi_prompts(N_PAIRS, corruption="abc", seed=0)
    metric = data.metric(lm)
    base, source = data.prompts, data.corrupted
    pairs = encode_pairs(lm, base, source)
    cells = f"{lm.n_layers}×{lm.n_heads} heads, {N_PAIRS} IOI pairs"
    ours_s, ours = timed(lambda: head_patching(lm, base, source, metric), REPEATS)
    naive_s, naive = timed(lambda: naive_head_patching(lm, pairs, metric), REPEATS)
    diff = float(np.abs(ours.per_pair - naive).max())
    assert diff < 1e-3, f"head patching differs from the naive loop by {diff}"
    atp_s, atp = timed(lambda: attribution_patching(lm, base, source, metric), REPEATS)
    rho = agreement(atp.effects(), ours.effects())["spearman"]
    speedup = lambda fast, slow: float(np.median(slow) / np.median(fast))  # noqa: E731
    return [
        row(f"head patching, every head's output ({cells}) vs one patched forward per head",
            ours_s, naive_s, "<= 0.3333 (3× faster)",
            f"speed-up {speedup(ours_s, naive_s):.2f}×; max |Δ metric| {diff:.1e}"),
        row(f"attribution patching (AtP) vs exact head patching ({cells})", atp_s, ours_s,
            "<= 0.05 (20× faster) at rank correlation >= 0.8",
            f"speed-up {speedup(atp_s, ours_s):.1f}×; Spearman ρ(AtP, exact effects) {rho:.3f}"
            + ("" if rho >= 0.8 else " (below the goal's 0.8)")),
        *transformer_lens_row(lm),
    ]


if __name__ == "__main__":
    for r in run():
        print(r)
