import numpy as np
import torch
from transformer_lens.model_bridge import TransformerBridge
from inputs import (MODEL_NAME, NOISE, PROMPT, SAMPLES, SEED, SUBJECT_TOKENS, model,
                    tokenizer)

bridge = TransformerBridge.boot_transformers(MODEL_NAME, hf_model=model, tokenizer=tokenizer)
tokens = bridge.to_tokens(PROMPT, prepend_bos=False).expand(SAMPLES, -1)
logits, clean = bridge.run_with_cache(tokens[:1])
answer = logits[0, -1].argmax()
noise = torch.from_numpy(
    np.random.RandomState(SEED).randn(SAMPLES, len(SUBJECT_TOKENS), model.config.hidden_size) * NOISE)


def corrupt(embeddings, hook):
    embeddings[:, SUBJECT_TOKENS.start:SUBJECT_TOKENS.stop] += noise
    return embeddings


def restore(resid, hook, token):
    resid[:, token] = clean[hook.name][0, token]
    return resid


result = np.zeros((tokens.shape[1], bridge.cfg.n_layers))
for layer in range(bridge.cfg.n_layers):
    for token in range(tokens.shape[1]):
        hooks = [("embed.hook_out", corrupt),
                 (f"blocks.{layer}.hook_resid_post", lambda resid, hook: restore(resid, hook, token))]
        logits = bridge.run_with_hooks(tokens, fwd_hooks=hooks)
        result[token, layer] = logits[:, -1].softmax(-1)[:, answer].mean()
