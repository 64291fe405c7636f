import nbtoolkit as nb
from nbtoolkit.tracing import causal_trace
from inputs import NOISE, PROMPT, SAMPLES, SEED, SUBJECT, model, tokenizer

lm = nb.LM(model, tokenizer)
trace = causal_trace(lm, PROMPT, SUBJECT, kind="hidden", samples=SAMPLES, noise=NOISE, seed=SEED)
result = trace.scores
