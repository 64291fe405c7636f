import nbtoolkit as nb
from inputs import LAYER, NEW_TOKENS, STEER, STEER_PROMPT, model, tokenizer

lm = nb.LM(model, tokenizer)
with nb.patch(lm, {f"layer.{LAYER}": nb.Add(STEER)}):
    result = model.generate(**tokenizer(STEER_PROMPT, return_tensors="pt"), do_sample=False,
                            max_new_tokens=NEW_TOKENS, min_new_tokens=NEW_TOKENS)[0]
