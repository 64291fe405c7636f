import torch
from nnsight import TransformersModel
from inputs import PROMPT, model, tokenizer

nn_model = TransformersModel(model, tokenizer=tokenizer, task="text-generation")
last = []
with nn_model.trace(PROMPT):
    for layer in nn_model.model.layers:
        last.append(layer.output[0, -1].save())
result = model.lm_head(model.model.norm(torch.stack(last))).log_softmax(-1)
