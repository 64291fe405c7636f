import pyvene as pv
import torch
from inputs import N_LAYERS, PROMPT, model, tokenizer

config = pv.IntervenableConfig([{"layer": i, "component": "block_output"} for i in range(N_LAYERS)],
                               intervention_types=pv.CollectIntervention)
pv_model = pv.IntervenableModel(config, model)
base = tokenizer(PROMPT, return_tensors="pt")
last = [[[base.input_ids.shape[1] - 1]]] * N_LAYERS
(_, collected), _ = pv_model(base, unit_locations={"base": last})
hidden = torch.cat([c.reshape(1, -1) for c in collected])  # [layers, d]
result = model.lm_head(model.model.norm(hidden)).log_softmax(-1)
