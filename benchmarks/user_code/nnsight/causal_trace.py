import numpy as np
import torch
from nnsight import TransformersModel
from inputs import NOISE, PROMPT, SAMPLES, SEED, SUBJECT_TOKENS, model, tokenizer

nn_model = TransformersModel(model, tokenizer=tokenizer, task="text-generation")
layers = nn_model.model.layers
noise = torch.from_numpy(
    np.random.RandomState(SEED).randn(SAMPLES, len(SUBJECT_TOKENS), model.config.hidden_size) * NOISE)
clean = []
with nn_model.trace(PROMPT):
    for layer in layers:
        clean.append(layer.output.save())
    answer = nn_model.lm_head.output[0, -1].argmax().save()
n_tokens = clean[0].shape[1]
result = np.zeros((n_tokens, len(layers)))
for layer in range(len(layers)):
    for token in range(n_tokens):
        with nn_model.trace([PROMPT] * SAMPLES):
            nn_model.model.embed_tokens.output[:, SUBJECT_TOKENS.start:SUBJECT_TOKENS.stop] += noise
            layers[layer].output[:, token] = clean[layer][0, token]
            probs = nn_model.lm_head.output[:, -1].softmax(-1)[:, answer].mean().save()
        result[token, layer] = probs
