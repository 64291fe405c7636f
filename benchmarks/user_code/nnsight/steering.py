from nnsight import TransformersModel
from inputs import LAYER, NEW_TOKENS, STEER, STEER_PROMPT, model, tokenizer

nn_model = TransformersModel(model, tokenizer=tokenizer, task="text-generation")
with nn_model.generate(STEER_PROMPT, max_new_tokens=NEW_TOKENS, min_new_tokens=NEW_TOKENS,
                       do_sample=False) as tracer:
    for step in tracer.iter[:NEW_TOKENS]:
        nn_model.model.layers[LAYER].output[:] += STEER
    tokens = tracer.result.save()
result = tokens[0]
