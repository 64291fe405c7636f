import numpy as np
import pyvene as pv
import torch
from inputs import NOISE, PROMPT, SAMPLES, SEED, SUBJECT_TOKENS, model, tokenizer

noise = torch.from_numpy(
    np.random.RandomState(SEED).randn(SAMPLES, len(SUBJECT_TOKENS), model.config.hidden_size) * NOISE)


class NoiseIntervention(pv.ConstantSourceIntervention, pv.LocalistRepresentationIntervention):
    def __init__(self, embed_dim, **kwargs):
        super().__init__()
        self.interchange_dim = embed_dim

    def forward(self, base, source=None, subspaces=None):
        base[..., : self.interchange_dim] += noise
        return base


base = tokenizer([PROMPT] * SAMPLES, return_tensors="pt")
answer = model(**base).logits[0, -1].argmax()
n_tokens, n_layers = base.input_ids.shape[1], model.config.num_hidden_layers
result = np.zeros((n_tokens, n_layers))
for layer in range(n_layers):
    for token in range(n_tokens):
        config = pv.IntervenableConfig(
            [{"layer": 0, "component": "block_input"}, {"layer": layer, "component": "block_output"}],
            intervention_types=[NoiseIntervention, pv.VanillaIntervention])
        pv_model = pv.IntervenableModel(config, model)
        _, out = pv_model(base, [None, base], {"sources->base": (
            [None, [[token]] * SAMPLES], [[list(SUBJECT_TOKENS)] * SAMPLES, [[token]] * SAMPLES])})
        result[token, layer] = out.logits[:, -1].softmax(-1)[:, answer].mean()
