import nbtoolkit as nb
from inputs import LAYER, POSITION, PROMPT, SOURCE_HIDDEN, model, tokenizer

lm = nb.LM(model, tokenizer)
with nb.patch(lm, {f"layer.{LAYER}": nb.Set(SOURCE_HIDDEN[LAYER], at=POSITION)}):
    result = model(**lm.encode(PROMPT)).logits[0, -1]
