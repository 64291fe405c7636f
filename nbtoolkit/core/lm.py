"""LM: a Hugging Face causal LM and its tokenizer, with the few helpers every method needs."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from .anatomy import config_value, family_of, n_layers_of, site_names

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


@dataclass
class LM:
    """A causal language model, its tokenizer and its site table.

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
        return config_value(self.model, "context")

    @property
    def sites(self) -> list[str]:
        return site_names(self.model)

    @property
    def device(self) -> torch.device:
        return self.model.get_input_embeddings().weight.device

    def __repr__(self):
        return (f"LM({self.name!r}, family={self.family!r}, n_layers={self.n_layers}, "
                f"d_model={self.d_model})")

    def encode(self, prompts: str | list[str]) -> dict[str, torch.Tensor]:
        """Tokenize with left padding: ``input_ids``, ``attention_mask``, ``position_ids`` [batch, seq]."""
        prompts = [prompts] if isinstance(prompts, str) else list(prompts)
        if not prompts or any(not isinstance(p, str) or not p for p in prompts):
            raise ValueError(f"prompts must be non-empty strings, got {prompts!r}")
        side = self.tokenizer.padding_side
        self.tokenizer.padding_side = "left"
        try:
            batch = self.tokenizer(prompts, return_tensors="pt", padding=True)
        finally:
            self.tokenizer.padding_side = side
        mask = batch["attention_mask"]
        return {"input_ids": batch["input_ids"].to(self.device), "attention_mask": mask.to(self.device),
                "position_ids": position_ids(mask).to(self.device)}

    def tokens(self, prompt: str) -> list[str]:
        """The prompt's tokens as strings."""
        ids = self.tokenizer(prompt)["input_ids"]
        return [self.tokenizer.decode([i]) for i in ids]

    @torch.no_grad()
    def next_token_probs(self, prompts: str | list[str]) -> torch.Tensor:
        """Next-token distribution after each prompt, ``[batch, vocab]`` (float32)."""
        batch = self.encode(prompts)
        logits = self.model(**batch, logits_to_keep=LAST_POSITION).logits[:, -1]
        return logits.float().softmax(-1)

    def token_id(self, text: str) -> int:
        """The id of the first token of ``text`` (e.g. ``" Paris"``)."""
        ids = self.tokenizer(text, add_special_tokens=False)["input_ids"]
        if not ids:
            raise ValueError(f"{text!r} encodes to no tokens")
        return ids[0]

    @torch.no_grad()
    def generate(self, prompts: str | list[str], max_new_tokens: int = 20, **kwargs) -> list[str]:
        """Greedy continuations (text only, prompt removed) for a batch of prompts.

        Run it inside ``patch(...)`` to generate with interventions.
        """
        batch = self.encode(prompts)
        batch.pop("position_ids")  # generate derives them from the attention mask
        kwargs.setdefault("do_sample", False)
        kwargs.setdefault("pad_token_id", self.tokenizer.pad_token_id)
        out = self.model.generate(**batch, max_new_tokens=max_new_tokens, **kwargs)
        new = out[:, batch["input_ids"].shape[1]:]
        return self.tokenizer.batch_decode(new, skip_special_tokens=True)
