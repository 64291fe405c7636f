import pyvene as pv
from inputs import LAYER, NEW_TOKENS, STEER, STEER_PROMPT, model, tokenizer

config = pv.IntervenableConfig([{"layer": LAYER, "component": "block_output"}],
                               intervention_types=pv.AdditionIntervention)
pv_model = pv.IntervenableModel(config, model)
_, tokens = pv_model.generate(tokenizer(STEER_PROMPT, return_tensors="pt"),
                              source_representations=STEER, intervene_on_prompt=True,
                              max_new_tokens=NEW_TOKENS, min_new_tokens=NEW_TOKENS, do_sample=False)
result = tokens[0]
