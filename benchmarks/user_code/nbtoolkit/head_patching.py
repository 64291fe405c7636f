import nbtoolkit as nb
from nbtoolkit.circuits import head_patching
from inputs import BASE_PROMPTS, SOURCE_PROMPTS, logit_diff, model, tokenizer

lm = nb.LM(model, tokenizer)
result = head_patching(lm, BASE_PROMPTS, SOURCE_PROMPTS, logit_diff).scores
