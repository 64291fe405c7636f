import nbtoolkit as nb
from nbtoolkit.lens import logit_lens
from inputs import N_LAYERS, PROMPT, model, tokenizer

lm = nb.LM(model, tokenizer)
result = logit_lens(lm, PROMPT, layers=range(N_LAYERS), positions=-1).logprobs[:, 0]
