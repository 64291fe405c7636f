"""Attribution: ours (default method) vs the paper's loop (one forward, one backward per response
token), with trainable and with frozen weights."""

from __future__ import annotations

import torch

import nbtoolkit as nb
from nbtoolkit.instruction_shift import input_output_attribution

from timing import FULL, STATES, row, side_by_side, weights

PROMPT = "Write a one-sentence description of the ocean. Answer in all capital letters."
RESPONSE = "THE OCEAN IS VAST AND DEEP."


def reference(lm, prompt: str, response: str) -> torch.Tensor:
    """The paper's procedure: embeddings as a leaf, one forward, ``autograd.grad`` per response token."""
    text = prompt.strip() + " " + response.strip()
    n_prompt = len(lm.tokenizer(prompt.strip())["input_ids"])
    ids = torch.tensor([lm.tokenizer(text)["input_ids"]])
    embeds = lm.model.get_input_embeddings()(ids).detach().requires_grad_(True)
    probs = lm.model(inputs_embeds=embeds).logits[0].softmax(-1)
    out = []
    for pos in range(n_prompt, ids.shape[1]):
        (grad,) = torch.autograd.grad(probs[pos - 1, ids[0, pos]], embeds, retain_graph=True)
        out.append((grad * embeds)[0, :n_prompt].sum(-1))
    return torch.stack(out, dim=1).detach()


def run() -> list[dict]:
    lm = nb.load_model(nb.DEFAULT_MODEL)
    ours = input_output_attribution(lm, PROMPT, RESPONSE).scores
    ref = reference(lm, PROMPT, RESPONSE)
    assert torch.allclose(ours, ref, rtol=1e-3, atol=1e-6), "benchmark implementations disagree"
    rows = []
    for state in STATES:
        with weights(lm.model, state):
            t = side_by_side({"ours": lambda: input_output_attribution(lm, PROMPT, RESPONSE),
                              "paper": lambda: reference(lm, PROMPT, RESPONSE)},
                             repeats=10 if FULL else 3, warmup=1)
        rows.append(row("input_output_attribution vs the paper's loop (default model)", t["ours"],
                        t["paper"], "<= 1.0",
                        f"{tuple(ours.shape)} matrix; paper = 1 forward + 1 backward per response "
                        f"token", state))
    return rows


if __name__ == "__main__":
    for r in run():
        print(r)
