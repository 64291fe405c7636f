from nnsight import TransformersModel
from inputs import POSITION, PROMPT, SOURCE_HIDDEN, model, tokenizer

nn_model = TransformersModel(model, tokenizer=tokenizer, task="text-generation")
with nn_model.trace(PROMPT):
    for layer, hidden in zip(nn_model.model.layers, SOURCE_HIDDEN):
        layer.output[:, POSITION] = hidden[:, POSITION]
    result = nn_model.lm_head.output[0, -1].save()
