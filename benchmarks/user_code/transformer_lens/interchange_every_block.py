from functools import partial

from transformer_lens.model_bridge import TransformerBridge
from inputs import MODEL_NAME, POSITION, PROMPT, SOURCE_HIDDEN, model, tokenizer

bridge = TransformerBridge.boot_transformers(MODEL_NAME, hf_model=model, tokenizer=tokenizer)


def patch(activation, hook, layer):
    activation[:, POSITION] = SOURCE_HIDDEN[layer][:, POSITION]
    return activation


hooks = [(f"blocks.{i}.hook_resid_post", partial(patch, layer=i)) for i in range(len(SOURCE_HIDDEN))]
result = bridge.run_with_hooks(PROMPT, fwd_hooks=hooks, prepend_bos=False)[0, -1]
