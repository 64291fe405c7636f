from nnsight import TransformersModel
from inputs import PROMPT, model, tokenizer

nn_model = TransformersModel(model, tokenizer=tokenizer, task="text-generation")
result = []
with nn_model.trace(PROMPT):
    for layer in nn_model.model.layers:
        result.append(layer.output.save())
