import pyvene as pv
from inputs import POSITION, PROMPT, SOURCE_HIDDEN, model, tokenizer

n_layers = len(SOURCE_HIDDEN)
config = pv.IntervenableConfig([{"layer": i, "component": "block_output"} for i in range(n_layers)],
                               intervention_types=pv.VanillaIntervention)
pv_model = pv.IntervenableModel(config, model)
where = [[[POSITION]]] * n_layers
_, out = pv_model(tokenizer(PROMPT, return_tensors="pt"),
                  unit_locations={"sources->base": (where, where)},
                  source_representations=[hidden[:, [POSITION]] for hidden in SOURCE_HIDDEN])
result = out.logits[0, -1]
