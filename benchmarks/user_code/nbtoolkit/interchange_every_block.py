import nbtoolkit as nb
from inputs import POSITION, PROMPT, SOURCE_HIDDEN, model, tokenizer

lm = nb.LM(model, tokenizer)
patches = {f"layer.{i}": nb.Set(hidden, at=POSITION) for i, hidden in enumerate(SOURCE_HIDDEN)}
with nb.patch(lm, patches):
    result = model(**lm.encode(PROMPT)).logits[0, -1]
