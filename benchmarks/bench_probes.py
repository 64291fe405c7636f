"""CCS pipeline on the default model.

1. Extraction with a cold cache (capture every layer, last-token pooling, answer log-probs, shards
   written as ``datasets.Dataset``) vs a plain forward over the same tokens in the same batches
   (the same ``logits_to_keep``). Goal: throughput >= 0.9x, i.e. time ratio <= 1.11.
2. A rerun that reads the cache vs the same plain forward.
   (1 and 2 with frozen weights; FULL: also with trainable ones.)
3. Fitting CCS (10 tries x 1000 AdamW steps, the paper's settings) on every layer: one batched
   fit vs a loop of per-layer fits (the same result; see ``tests/test_probes.py``).
"""

from __future__ import annotations

import shutil
import tempfile
import time

import numpy as np
import torch

import nbtoolkit as nb
from nbtoolkit.ccs.activations import answer_lengths, extract
from nbtoolkit.data.contrast import load_contrast
from nbtoolkit.probes import CCS

from timing import FULL, row, weights
from timing import states as weight_states


def extraction(lm, cs, state: str, n_pairs: int, repeats: int):
    """Rows 1 and 2 with the weights in ``state``, and the extracted states."""
    texts = [p for p, _ in cs.pairs] + [n for _, n in cs.pairs]  # the order extract() uses
    keep = max(answer_lengths(lm, cs.prompts * 2, texts)) + 1
    last = torch.arange(-keep, 0)  # the positions extract() keeps logits for
    ordered = [texts[i] for i in np.argsort([len(t) for t in texts], kind="stable")]
    batch_size = 32

    def plain():
        with torch.no_grad():
            for b in range(0, len(ordered), batch_size):
                lm.model(**lm.encode(ordered[b: b + batch_size]), logits_to_keep=last)

    folder = tempfile.mkdtemp(prefix="bench-ccs-")
    try:
        def cold():
            shutil.rmtree(folder, ignore_errors=True)
            return extract(lm, cs, cache=folder, progress=False, batch_size=batch_size, chunk_size=n_pairs)

        cold(), plain()  # warm-up
        t_cold, t_plain, t_warm = [], [], []
        for _ in range(repeats):  # interleaved so load changes hit both alike
            start = time.perf_counter(); states = cold(); t_cold.append(time.perf_counter() - start)
            start = time.perf_counter(); plain(); t_plain.append(time.perf_counter() - start)
            start = time.perf_counter(); extract(lm, cs, cache=folder, progress=False,
                                                 chunk_size=n_pairs)
            t_warm.append(time.perf_counter() - start)
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    rows = [
        row(f"extract all {lm.n_layers + 1} layers, {2 * n_pairs} sequences, cold cache vs plain forward",
            t_cold, t_plain, "<= 1.11 (throughput >= 0.9x)",
            f"{len(texts)} sequences, batch {batch_size}", state),
        row("rerun reading the cache vs plain forward", t_warm, t_plain, "< 1", "", state),
    ]
    return rows, states


def run(n_pairs: int = 64, repeats: int = 5 if FULL else 3) -> list[dict]:
    lm = nb.load_model(nb.DEFAULT_MODEL)
    cs = load_contrast("capitals", templates=0, n=n_pairs, seed=0)[0]
    rows = []
    for state in weight_states(slow=True):  # outside FULL: frozen only
        with weights(lm.model, state):
            state_rows, states = extraction(lm, cs, state, n_pairs, repeats)
        rows += state_rows

    xp, xn = states.stack()
    y = states.labels
    ccs = CCS(n_tries=10, epochs=1000)
    start = time.perf_counter()
    ccs.fit_many(xp, xn, y)
    batched = time.perf_counter() - start
    start = time.perf_counter()
    for i in range(len(xp)):
        CCS(n_tries=10, epochs=1000).fit(xp[i], xn[i], y)
    loop = time.perf_counter() - start
    rows.append(row(f"fit CCS on all {len(xp)} layers ({n_pairs} pairs, 10 tries x 1000 steps): batched "
                    f"vs per-layer loop", batched, loop, "< 1", "one run each"))
    return rows


if __name__ == "__main__":
    for r in run():
        print(r)
