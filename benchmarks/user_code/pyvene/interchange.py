import pyvene as pv
from inputs import LAYER, POSITION, PROMPT, SOURCE_PROMPT, model, tokenizer

config = pv.IntervenableConfig([{"layer": LAYER, "component": "block_output"}],
                               intervention_types=pv.VanillaIntervention)
pv_model = pv.IntervenableModel(config, model)
base, source = (tokenizer(text, return_tensors="pt") for text in (PROMPT, SOURCE_PROMPT))
_, out = pv_model(base, [source], {"sources->base": POSITION})
result = out.logits[0, -1]
