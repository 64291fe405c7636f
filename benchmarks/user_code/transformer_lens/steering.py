from transformer_lens.model_bridge import TransformerBridge
from inputs import LAYER, MODEL_NAME, NEW_TOKENS, STEER, STEER_PROMPT, model, tokenizer

bridge = TransformerBridge.boot_transformers(MODEL_NAME, hf_model=model, tokenizer=tokenizer)
steer = [(f"blocks.{LAYER}.hook_resid_post", lambda activation, hook: activation + STEER)]
with bridge.hooks(fwd_hooks=steer):  # its KV cache yields wrong tokens here (RESULTS.md): off
    result = bridge.generate(STEER_PROMPT, max_new_tokens=NEW_TOKENS, do_sample=False,
                             stop_at_eos=False, prepend_bos=False, return_type="tokens",
                             use_past_kv_cache=False)[0]
