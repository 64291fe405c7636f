"""LM: a Hugging Face model and its tokenizer, with the few helpers every method needs.

Decoders are loaded as causal LMs; encoders as masked LMs or sequence classifiers (an MNLI head);
encoder-decoders as seq2seq LMs. ``lm.head`` says which (:data:`HEADS`)."""

from __future__ import annotations

import functools
from dataclasses import dataclass

import torch

from .anatomy import (config_value, context_length, family_of, kind_of, n_layers_of, site_names,
                      takes_position_ids)

# head -> the transformers Auto class that loads it
HEADS = {"causal-lm": "AutoModelForCausalLM", "masked-lm": "AutoModelForMaskedLM",
         "sequence-classification": "AutoModelForSequenceClassification",
         "seq2seq-lm": "AutoModelForSeq2SeqLM"}
_MAPPINGS = {"causal-lm": "MODEL_FOR_CAUSAL_LM_MAPPING_NAMES",
             "masked-lm": "MODEL_FOR_MASKED_LM_MAPPING_NAMES",
             "sequence-classification": "MODEL_FOR_SEQUENCE_CLASSIFICATION_MAPPING_NAMES",
             "seq2seq-lm": "MODEL_FOR_SEQ_TO_SEQ_CAUSAL_LM_MAPPING_NAMES"}

# ``logits_to_keep`` for the last position's logits only. Not ``logits_to_keep=1``: that hands the
# LM head a strided view [batch, 1, d_model], and torch's matmul multiplies a strided 3-D input by
# a weight that needs no gradient (a frozen model) one row at a time, several times slower. An
# index tensor makes transformers gather a contiguous copy instead.
LAST_POSITION = torch.tensor([-1])


def position_ids(mask: torch.Tensor) -> torch.Tensor:
    """Position ids ``[batch, seq]`` from an attention mask ``[batch, seq]``: each row counts its
    own tokens from 0, so a left-padded prompt gets the positions it has alone (padding: 0)."""
    return (mask.cumsum(-1) - 1).clamp(min=0)


def masked_mean(acts: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean over the tokens of each row: ``acts`` ``[batch, seq, d]``, ``mask`` ``[batch, seq]``
    (1 = token, 0 = padding) -> ``[batch, d]``."""
    m = mask[..., None].to(acts.dtype)
    return (acts * m).sum(1) / m.sum(1)


def token_indices(lm, prompt: str, text: str, start: int | None = None) -> list[int]:
    """Indices of the tokens of ``prompt`` that overlap the first occurrence of ``text``
    (e.g. the subject ``"Eiffel Tower"`` → the tokens ``" E", "iffel", " Tower"``), or its
    occurrence at character ``start``."""
    if start is None:
        start = prompt.find(text) if text else -1
    elif not text or prompt[start:start + len(text)] != text:
        start = -1
    if start < 0:
        raise ValueError(f"{text!r} does not occur in the prompt {prompt!r}")
    end = start + len(text)
    offsets = lm.tokenizer(prompt, return_offsets_mapping=True)["offset_mapping"]
    return [i for i, (a, b) in enumerate(offsets) if b > a and a < end and b > start]


@functools.lru_cache(maxsize=None)
def head_of_class(name: str) -> str | None:
    """The head (:data:`HEADS`) of a transformers model class name, e.g. ``"BertForMaskedLM"``."""
    from transformers.models.auto import modeling_auto

    for head, mapping in _MAPPINGS.items():
        for names in getattr(modeling_auto, mapping).values():
            if name in ((names,) if isinstance(names, str) else names):
                return head
    return None


def head_of(model: torch.nn.Module) -> str | None:
    """The head of a model, or of the transformers class it subclasses (``None`` for a bare
    body or a plain module)."""
    return next(filter(None, (head_of_class(c.__name__) for c in type(model).__mro__)), None)


def forward_inputs(model: torch.nn.Module, input_ids: torch.Tensor,
                   mask: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
    """The keyword arguments of a forward over left-padded ``input_ids`` ``[batch, seq]``: the
    attention mask and, where the family takes them, position ids counted per row."""
    if mask is None:
        return {"input_ids": input_ids}
    inputs = {"input_ids": input_ids, "attention_mask": mask}
    if takes_position_ids(model):
        inputs["position_ids"] = position_ids(mask)
    return inputs


def prediction_logits(model: torch.nn.Module, inputs: dict, *, every_position: bool = False,
                      purpose: str = "this method") -> torch.Tensor:
    """What the model predicts for each row: a causal LM's next-token logits at the last position
    ``[batch, vocab]`` (every position: ``[batch, seq, vocab]``), a sequence classifier's class
    logits ``[batch, classes]``. Other heads predict neither: ``ValueError``."""
    head = head_of(model)
    if head == "causal-lm":
        logits = model(**inputs, logits_to_keep=0 if every_position else LAST_POSITION).logits
        return logits if every_position else logits[:, -1]
    if head == "sequence-classification" and not every_position:
        return model(**inputs).logits
    wanted = "next-token logits" if every_position else "next-token or class logits"
    raise ValueError(f"{purpose} reads {wanted}: it needs a causal LM"
                     f"{'' if every_position else ' or a sequence classifier'}; this model is a "
                     f"{head or type(model).__name__} (load_model(..., head=...) picks another head)")


@dataclass
class LM:
    """A language model (a decoder, encoder or encoder-decoder), its tokenizer and its site table.

    Batches are left-padded with an attention mask and explicit position ids, so the last
    position of every row is that prompt's last token.
    """

    model: torch.nn.Module
    tokenizer: object
    name: str = "model"

    def __post_init__(self):
        if self.tokenizer.pad_token is None:
            self.tokenizer.pad_token = self.tokenizer.eos_token

    @property
    def family(self) -> str:
        return family_of(self.model)

    @property
    def kind(self) -> str | None:
        """``"decoder"``, ``"encoder"`` or ``"encoder-decoder"`` (``None``: no anatomy entry)."""
        return kind_of(self.model)

    @property
    def head(self) -> str | None:
        """Which head was loaded: ``"causal-lm"``, ``"masked-lm"``, ``"sequence-classification"``
        or ``"seq2seq-lm"`` (:data:`HEADS`)."""
        return head_of(self.model)

    @property
    def n_layers(self) -> int:
        return n_layers_of(self.model)

    @property
    def d_model(self) -> int:
        return config_value(self.model, "d_model")

    @property
    def n_heads(self) -> int:
        return config_value(self.model, "n_heads")

    @property
    def context_length(self) -> int | None:
        """The longest prompt the model takes (its position table's size), if the config says."""
        return context_length(self.model)

    @property
    def sites(self) -> list[str]:
        return site_names(self.model)

    @property
    def device(self) -> torch.device:
        return self.model.get_input_embeddings().weight.device

    def __repr__(self):
        head = "" if self.head == "causal-lm" else f", head={self.head!r}"
        return (f"LM({self.name!r}, family={self.family!r}{head}, n_layers={self.n_layers}, "
                f"d_model={self.d_model})")

    def encode(self, prompts: str | list[str], pairs: list[str] | None = None) -> dict[str, torch.Tensor]:
        """Tokenize with left padding: ``input_ids``, ``attention_mask``, ``position_ids`` [batch, seq]
        (position ids only where the family takes them: not RoBERTa, T5). For an encoder-decoder
        these are the encoder's inputs. ``pairs``: a second text per prompt, tokenized as a pair
        (BERT's ``[CLS] a [SEP] b [SEP]``, T5's ``a </s> b </s>``)."""
        prompts = [prompts] if isinstance(prompts, str) else list(prompts)
        if not prompts or any(not isinstance(p, str) or not p for p in prompts):
            raise ValueError(f"prompts must be non-empty strings, got {prompts!r}")
        if pairs is not None and len(pairs) != len(prompts):
            raise ValueError(f"pairs must have one text per prompt: {len(pairs)} for "
                             f"{len(prompts)} prompts")
        side = self.tokenizer.padding_side
        self.tokenizer.padding_side = "left"
        try:
            batch = self.tokenizer(prompts, pairs, return_tensors="pt", padding=True)
        finally:
            self.tokenizer.padding_side = side
        self._check_length(batch["input_ids"].shape[1])
        return forward_inputs(self.model, batch["input_ids"].to(self.device),
                              batch["attention_mask"].to(self.device))

    def _check_length(self, n_tokens: int, new_tokens: int = 0) -> None:
        """``ValueError`` if ``n_tokens`` (plus ``new_tokens`` to generate) exceed the context."""
        context = self.context_length
        if context is not None and n_tokens + new_tokens > context:
            extra = f" plus {new_tokens} new tokens" if new_tokens else ""
            raise ValueError(f"{n_tokens} prompt tokens{extra} exceed {self.name}'s context of "
                             f"{context} tokens; shorten the prompt")

    def tokens(self, prompt: str) -> list[str]:
        """The prompt's tokens as strings."""
        ids = self.tokenizer(prompt)["input_ids"]
        return [self.tokenizer.decode([i]) for i in ids]

    @torch.no_grad()
    def next_token_probs(self, prompts: str | list[str]) -> torch.Tensor:
        """Next-token distribution after each prompt, ``[batch, vocab]`` (float32); causal LMs only."""
        self._require_causal("next_token_probs")
        batch = self.encode(prompts)
        logits = self.model(**batch, logits_to_keep=LAST_POSITION).logits[:, -1]
        return logits.float().softmax(-1)

    def _require_causal(self, what: str) -> None:
        if self.head != "causal-lm":
            raise ValueError(f"{what} needs a causal LM (a decoder family); {self.name} is a "
                             f"{self.head or type(self.model).__name__} of family {self.family!r}")

    def token_id(self, text: str) -> int:
        """The id of the first token of ``text`` (e.g. ``" Paris"``)."""
        ids = self.tokenizer(text, add_special_tokens=False)["input_ids"]
        if not ids:
            raise ValueError(f"{text!r} encodes to no tokens")
        return ids[0]

    @torch.no_grad()
    def generate(self, prompts: str | list[str], max_new_tokens: int = 20, **kwargs) -> list[str]:
        """Greedy continuations (text only, prompt removed) for a batch of prompts.

        Run it inside ``patch(...)`` to generate with interventions. Causal LMs only.
        """
        self._require_causal("generate")
        batch = self.encode(prompts)
        self._check_length(batch["input_ids"].shape[1], max_new_tokens)
        batch.pop("position_ids")  # generate derives them from the attention mask
        kwargs.setdefault("do_sample", False)
        kwargs.setdefault("pad_token_id", self.tokenizer.pad_token_id)
        out = self.model.generate(**batch, max_new_tokens=max_new_tokens, **kwargs)
        new = out[:, batch["input_ids"].shape[1]:]
        return self.tokenizer.batch_decode(new, skip_special_tokens=True)
