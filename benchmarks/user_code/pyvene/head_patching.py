import pyvene as pv
import torch
from inputs import BASE_IDS, SOURCE_IDS, logit_diff, model

n_pairs, n_tokens = BASE_IDS.shape
n_layers, n_heads = model.config.num_hidden_layers, model.config.num_attention_heads
result = torch.zeros(n_layers, n_heads)
for layer in range(n_layers):
    config = pv.IntervenableConfig(
        [{"layer": layer, "component": "head_attention_value_output", "unit": "h.pos"}],
        intervention_types=pv.VanillaIntervention)
    pv_model = pv.IntervenableModel(config, model)
    for head in range(n_heads):
        where = [[[head]] * n_pairs, [list(range(n_tokens))] * n_pairs]
        _, out = pv_model({"input_ids": BASE_IDS}, [{"input_ids": SOURCE_IDS}],
                          {"sources->base": ([where], [where])})
        result[layer, head] = logit_diff(out.logits[:, -1]).mean()
