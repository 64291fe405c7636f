"""The patching core on the default model, batch 8 x 64 tokens: capture and Set vs a plain forward,
with trainable and with frozen weights; loading from the cache vs from the GGUF file."""

from __future__ import annotations

import time

import torch

import nbtoolkit as nb
from nbtoolkit.core.loading import gguf_path

from timing import FULL, STATES, row, side_by_side, weights


def run() -> list[dict]:
    lm = nb.load_model(nb.DEFAULT_MODEL)
    generator = torch.Generator().manual_seed(0)
    ids = torch.randint(100, 10000, (8, 64), generator=generator)
    batch = dict(input_ids=ids, attention_mask=torch.ones_like(ids))
    sites = [f"layer.{i}" for i in range(lm.n_layers)]
    with torch.no_grad(), nb.capture(lm, "layer.15") as source:
        lm.model(input_ids=ids.flip(0), attention_mask=batch["attention_mask"])

    def plain():
        with torch.no_grad():
            lm.model(**batch)

    def capture_all():
        with torch.no_grad(), nb.capture(lm, sites):
            lm.model(**batch)

    def interchange():
        with torch.no_grad(), nb.patch(lm, {"layer.15": nb.Set(source["layer.15"], at=[10, 20])}):
            lm.model(**batch)

    rows = []
    for state in STATES:
        with weights(lm.model, state):
            t = side_by_side({"plain": plain, "capture": capture_all, "set": interchange},
                             repeats=24 if FULL else 6, warmup=1)
        rows += [
            row("capture every layer.{i} vs plain forward (8x64)", t["capture"], t["plain"],
                "<= 1.05", state=state),
            row("one Set interchange vs plain forward (8x64)", t["set"], t["plain"], "<= 1.05",
                state=state),
        ]

    start = time.perf_counter()
    nb.load_model(nb.DEFAULT_MODEL)
    cached = time.perf_counter() - start
    from transformers import AutoModelForCausalLM

    path = gguf_path(nb.DEFAULT_MODEL)
    start = time.perf_counter()
    AutoModelForCausalLM.from_pretrained(str(path.parent), gguf_file=path.name, dtype=torch.float32)
    from_gguf = time.perf_counter() - start
    rows.append(row("load from cache vs dequantize the GGUF", cached, from_gguf, "about 1 s cached",
                    "one load each"))
    return rows
