import nbtoolkit as nb
from inputs import N_LAYERS, PROMPT, model, tokenizer

lm = nb.LM(model, tokenizer)
sites = [f"layer.{i}" for i in range(N_LAYERS)]
with nb.capture(lm, sites) as acts:
    model(**lm.encode(PROMPT))
result = [acts[site] for site in sites]
