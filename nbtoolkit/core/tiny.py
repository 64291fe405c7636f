"""Tiny random models of every family, built offline: the test models of nbtoolkit and its users.

    lm = tiny_model("gemma3", n_layers=2)     # an LM with 4 heads, d_model 64, a byte tokenizer

Each family's config comes from its anatomy entry (:attr:`nbtoolkit.core.anatomy.Family.tiny`), so
a new family is one place; this file builds the model, its tokenizer and its head.
"""

from __future__ import annotations

import torch

from .anatomy import FAMILIES, MODEL_TYPES, TinySizes
from .lm import LM
from .loading import auto_class, pick_head

TINY_FAMILIES = tuple(f for f, family in FAMILIES.items() if family.tiny is not None)


def tiny_model(family: str = "llama", *, seed: int = 0, n_layers: int = 3, d_model: int = 64,
               n_kv_heads: int = 2, context: int = 256, tokenizer=None, name: str | None = None,
               head: str | None = None) -> LM:
    """A small randomly initialised model of ``family`` (a family name or a Hugging Face
    ``model_type`` such as ``"gptj"``, ``"deberta-v2"``, ``"gemma3_text"``): 4 heads,
    ``n_kv_heads`` key/value heads where the family has them, built offline. ``head`` as in
    :func:`~nbtoolkit.core.loading.load_model` (default: the family's usual one; sequence
    classifiers get 3 labels, like an MNLI head). ``tokenizer`` defaults to a byte-level one;
    encoders' wraps each text in ``<bos> … <eos>`` (like [CLS] … [SEP]), T5's ends it with
    ``<eos>``."""
    import transformers

    family = MODEL_TYPES.get(family, family)
    if family not in TINY_FAMILIES:
        raise ValueError(f"unknown family {family!r}; tiny models exist for {', '.join(TINY_FAMILIES)}"
                         f" (or their model types: {', '.join(sorted(MODEL_TYPES))})")
    entry = FAMILIES[family]
    if tokenizer is None:
        tokenizer = byte_tokenizer({"decoder": None, "encoder": "<bos> $0 <eos>",
                                    "encoder-decoder": "$0 <eos>"}[entry.kind])
    sizes = TinySizes(vocab=len(tokenizer), d_model=d_model, n_layers=n_layers,
                      n_kv_heads=n_kv_heads, context=context,
                      ids=dict(pad_token_id=tokenizer.pad_token_id,
                               bos_token_id=tokenizer.bos_token_id,
                               eos_token_id=tokenizer.eos_token_id))
    config_class, options = entry.tiny(sizes)
    config = getattr(transformers, config_class)(**options)
    head = pick_head(config, head)
    if head == "sequence-classification":
        config.num_labels = 3
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = auto_class(head).from_config(config)
    model.eval()
    return LM(model, tokenizer, name=name or f"tiny-{family}")


def byte_tokenizer(template: str | None = None):
    """A byte-level tokenizer needing no files: one token per byte, plus <bos>, <eos>, <pad>
    (ids 256-258). ``template`` makes an encoder's tokenizer: each text is wrapped, ``$0`` standing
    for it (``"<bos> $0 <eos>"`` as BERT's [CLS] … [SEP]; a pair is joined by ``<eos>``), and
    the specials come first as in RoBERTa's vocabulary: <bos> 0, <pad> 1, <eos> 2, <mask> 3."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors
    from transformers import PreTrainedTokenizerFast

    alphabet = sorted(pre_tokenizers.ByteLevel.alphabet())
    specials = ("<bos>", "<eos>", "<pad>") if template is None else ("<bos>", "<pad>", "<eos>", "<mask>")
    tokens = alphabet + list(specials) if template is None else list(specials) + alphabet
    vocab = {token: i for i, token in enumerate(tokens)}
    backend = Tokenizer(models.BPE(vocab=vocab, merges=[]))
    backend.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)
    backend.decoder = decoders.ByteLevel()
    if template is not None:
        single = template.replace("$0", "$A")
        pair = single.replace("$A", "$A <eos> $B:1") if "$A <eos>" not in single else \
            single.replace("$A <eos>", "$A <eos> $B:1 <eos>:1")
        backend.post_processor = processors.TemplateProcessing(
            single=single, pair=pair, special_tokens=[(t, vocab[t]) for t in specials])
    extra = {} if template is None else {"mask_token": "<mask>"}
    return PreTrainedTokenizerFast(tokenizer_object=backend, bos_token="<bos>", eos_token="<eos>",
                                   pad_token="<pad>", **extra)
