from transformer_lens.model_bridge import TransformerBridge
from inputs import MODEL_NAME, N_LAYERS, PROMPT, model, tokenizer

bridge = TransformerBridge.boot_transformers(MODEL_NAME, hf_model=model, tokenizer=tokenizer)
names = [f"blocks.{i}.hook_resid_post" for i in range(N_LAYERS)]
_, cache = bridge.run_with_cache(PROMPT, names_filter=names, prepend_bos=False)
result = [cache[name] for name in names]
