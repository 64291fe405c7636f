import pyvene as pv
from inputs import N_LAYERS, PROMPT, model, tokenizer

base = tokenizer(PROMPT, return_tensors="pt")
n_tokens = base.input_ids.shape[1]
config = pv.IntervenableConfig(
    [{"layer": i, "component": "block_output", "max_number_of_units": n_tokens}
     for i in range(N_LAYERS)], intervention_types=pv.CollectIntervention)
pv_model = pv.IntervenableModel(config, model)
(_, result), _ = pv_model(base, unit_locations={"base": [[list(range(n_tokens))]] * N_LAYERS})
