from nnsight import TransformersModel
from inputs import LAYER, POSITION, PROMPT, SOURCE_HIDDEN, model, tokenizer

nn_model = TransformersModel(model, tokenizer=tokenizer, task="text-generation")
with nn_model.trace(PROMPT):
    nn_model.model.layers[LAYER].output[:, POSITION] = SOURCE_HIDDEN[LAYER][:, POSITION]
    result = nn_model.lm_head.output[0, -1].save()
