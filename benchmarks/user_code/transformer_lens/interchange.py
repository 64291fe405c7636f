from transformer_lens.model_bridge import TransformerBridge
from inputs import LAYER, MODEL_NAME, POSITION, PROMPT, SOURCE_PROMPT, model, tokenizer

bridge = TransformerBridge.boot_transformers(MODEL_NAME, hf_model=model, tokenizer=tokenizer)
name = f"blocks.{LAYER}.hook_resid_post"
_, source = bridge.run_with_cache(SOURCE_PROMPT, names_filter=name, prepend_bos=False)


def patch(activation, hook):
    activation[:, POSITION] = source[name][:, POSITION]
    return activation


result = bridge.run_with_hooks(PROMPT, fwd_hooks=[(name, patch)], prepend_bos=False)[0, -1]
