from transformer_lens.model_bridge import TransformerBridge
from inputs import LAYER, MODEL_NAME, POSITION, PROMPT, SOURCE_HIDDEN, model, tokenizer

bridge = TransformerBridge.boot_transformers(MODEL_NAME, hf_model=model, tokenizer=tokenizer)


def patch(activation, hook):
    activation[:, POSITION] = SOURCE_HIDDEN[LAYER][:, POSITION]
    return activation


hooks = [(f"blocks.{LAYER}.hook_resid_post", patch)]
result = bridge.run_with_hooks(PROMPT, fwd_hooks=hooks, prepend_bos=False)[0, -1]
