import torch
from nnsight import TransformersModel
from inputs import BASE_IDS, SOURCE_IDS, logit_diff, model, tokenizer

nn_model = TransformersModel(model, tokenizer=tokenizer, task="text-generation")
n_layers, n_heads = model.config.num_hidden_layers, model.config.num_attention_heads
head_dim = model.config.hidden_size // n_heads
o_projs = [layer.self_attn.o_proj for layer in nn_model.model.layers]
source = []  # each layer's head outputs, concatenated: the input of o_proj
with nn_model.trace(SOURCE_IDS):
    for o_proj in o_projs:
        source.append(o_proj.input.save())
result = torch.zeros(n_layers, n_heads)
for layer in range(n_layers):
    for head in range(n_heads):
        cols = slice(head * head_dim, (head + 1) * head_dim)
        with nn_model.trace(BASE_IDS):
            o_projs[layer].input[:, :, cols] = source[layer][:, :, cols]
            score = logit_diff(nn_model.lm_head.output[:, -1]).mean().save()
        result[layer, head] = score
