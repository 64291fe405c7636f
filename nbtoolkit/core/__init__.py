"""The core: knows transformers, knows no method. Every method is written with it.

anatomy        per-family module paths, weight names and config keys; site names; layer numbering
lm             LM: a model, its tokenizer, left-padded batches, next-token probabilities, generation
loading        load_model (embedded, local folder, hub id), the embedded-model cache, tiny_model
hooks          capture() and patch(): the one place that registers hooks
interventions  Set, Add, Overlay, Zero, Noise and position selection
blocks         run a slice of a model's blocks
kv_cache       the transformers KV cache under whatever name this version uses
modes          train/eval and requires_grad saved and restored
files          atomic writes, safe names
"""
