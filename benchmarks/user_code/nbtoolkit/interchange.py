import nbtoolkit as nb
from inputs import LAYER, POSITION, PROMPT, SOURCE_PROMPT, model, tokenizer

lm = nb.LM(model, tokenizer)
with nb.capture(lm, [f"layer.{LAYER}"]) as source:
    model(**lm.encode(SOURCE_PROMPT))
with nb.patch(lm, {f"layer.{LAYER}": nb.Set(source[f"layer.{LAYER}"], at=POSITION)}):
    result = model(**lm.encode(PROMPT)).logits[0, -1]
