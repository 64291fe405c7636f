"""The core: knows transformers, knows no method. Every method is written with it.

anatomy        per-family module paths, weight names, config keys and tiny configs; site names;
               layer numbering
tiny           tiny_model: a small random model of every family, offline; byte_tokenizer
lm             LM: a model, its tokenizer, left-padded batches, next-token probabilities, generation
loading        load_model (embedded, local folder, hub id), the embedded-model cache
hooks          capture() and patch(): the one place that registers hooks
interventions  Set, Add, Overlay, Zero, Noise and position selection
blocks         run a slice of a model's blocks
kv_cache       the transformers KV cache under whatever name this version uses
modes          train/eval, requires_grad and torch's thread count saved and restored
files          atomic writes, safe names, the default output folder (build_dir)
"""
