from nnsight import TransformersModel
from inputs import LAYER, POSITION, PROMPT, SOURCE_PROMPT, model, tokenizer

nn_model = TransformersModel(model, tokenizer=tokenizer, task="text-generation")
block = nn_model.model.layers[LAYER]
with nn_model.trace(SOURCE_PROMPT):
    source = block.output[:, POSITION].save()
with nn_model.trace(PROMPT):
    block.output[:, POSITION] = source
    result = nn_model.lm_head.output[0, -1].save()
