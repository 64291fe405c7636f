from transformer_lens import patching
from transformer_lens.model_bridge import TransformerBridge
from inputs import BASE_IDS, MODEL_NAME, SOURCE_IDS, logit_diff, model, tokenizer

bridge = TransformerBridge.boot_transformers(MODEL_NAME, hf_model=model, tokenizer=tokenizer)
_, source_cache = bridge.run_with_cache(SOURCE_IDS)
result = patching.get_act_patch_attn_head_out_all_pos(
    bridge, BASE_IDS, source_cache, lambda logits: logit_diff(logits[:, -1]).mean())
