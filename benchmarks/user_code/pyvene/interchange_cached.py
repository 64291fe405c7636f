import pyvene as pv
from inputs import LAYER, POSITION, PROMPT, SOURCE_HIDDEN, model, tokenizer

config = pv.IntervenableConfig([{"layer": LAYER, "component": "block_output"}],
                               intervention_types=pv.VanillaIntervention)
pv_model = pv.IntervenableModel(config, model)
_, out = pv_model(tokenizer(PROMPT, return_tensors="pt"),
                  unit_locations={"sources->base": ([[[POSITION]]], [[[POSITION]]])},
                  source_representations=[SOURCE_HIDDEN[LAYER][:, [POSITION]]])
result = out.logits[0, -1]
