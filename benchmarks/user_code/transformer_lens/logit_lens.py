import torch
from transformer_lens.model_bridge import TransformerBridge
from inputs import MODEL_NAME, PROMPT, model, tokenizer

bridge = TransformerBridge.boot_transformers(MODEL_NAME, hf_model=model, tokenizer=tokenizer)
_, cache = bridge.run_with_cache(PROMPT, prepend_bos=False)
resid = cache.accumulated_resid(incl_mid=False, pos_slice=-1)[1:, 0]  # after each block
result = bridge.unembed(bridge.ln_final(resid)).log_softmax(-1)
