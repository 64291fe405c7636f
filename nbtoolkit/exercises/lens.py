"""Checks for notebook 09 (reading the residual stream): the logit lens of one layer, one head's
direct logit attribution, and an induction score, each against :mod:`nbtoolkit.lens`."""

from __future__ import annotations

import torch

from ..core.anatomy import readout, site_name
from ..lens import direct_logit_attribution, induction_score, logit_lens, previous_token_score
from ..lens.readout import frozen_norm, unembed
from .feedback import Feedback, call, captured, expect, number, run_check, tensor, tiny_lm

PROMPT = "The capital of Spain is"
ANSWER, DISTRACTOR = "M", "P"  # "Madrid" vs "Paris", first byte tokens of the tiny model


def _uneven_norms(lm):
    """``lm`` with norm gains and embeddings of uneven scale, as a trained model's are (a random
    model's gains are all 1, which would hide a forgotten gain)."""
    g = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for name, p in lm.model.named_parameters():
            if p.dim() == 1:  # the norms' gains
                p.mul_(1 + torch.rand(p.shape, generator=g))
    return lm


def _read(lm, h: torch.Tensor, norm: bool = True) -> torch.Tensor:
    """Log-probs of a stream ``[seq, d]`` through the read-out (or the LM head alone)."""
    with torch.no_grad():
        logits = unembed(lm, h) if norm else readout(lm.model).unembed(h)
        return logits.float().log_softmax(-1)


# ---------------------------------------------------------------- 09.1

def check_lens_of_layer(lens_of_layer) -> Feedback | None:
    """Exercise 09.1: ``lens_of_layer(lm, prompt, layer)`` is the logit lens of ``layer``: the
    log-probs ``[seq, vocab]`` its residual stream gives through the final norm and unembedding."""
    return run_check("09.1", lens_of_layer, _lens_of_layer)


def _lens_of_layer(student) -> str:
    lm = _uneven_norms(tiny_lm())
    last = lm.n_layers - 1
    for layer in (1, last):
        want = logit_lens(lm, PROMPT, layers=[layer]).logprobs[0]
        got = tensor(call(student, lm, PROMPT, layer), "your log-probs", want.shape)
        stream = captured(lm, PROMPT, site_name(layer))
        wrong = [
            (lambda: _read(lm, stream, norm=False),
             "you unembedded the raw stream: the model reads its last layer through the final norm "
             "first (unembed(final_norm(h))); skipping it changes the scale and every logit"),
            (lambda: _read(lm, captured(lm, PROMPT, site_name(layer, "in"))),
             f"this is the stream entering block {layer} (Hugging Face's hidden_states[{layer}]); "
             f"layer {layer} is the stream leaving block {layer}, hidden_states[{layer + 1}]"),
            (lambda: _read(lm, captured(lm, PROMPT, site_name(layer, "mlp"))),
             f"this reads only what the MLP of block {layer} wrote; the lens reads the whole "
             f"residual stream, site {site_name(layer)}"),
            (lambda: _read(lm, stream).exp(),
             "these are probabilities; the lens gives log-probabilities (log_softmax)"),
            (lambda: unembed(lm, stream).float(),
             "these are logits; the lens gives log-probabilities: apply log_softmax over the vocabulary"),
        ]
        if layer == last:
            wrong.append((lambda: _read(lm, captured(lm, PROMPT, "final_norm")),
                          f"you normalised twice: Hugging Face's hidden_states[-1] is already "
                          f"after the final norm; the lens reads site {site_name(last)} (the "
                          f"block's output)"))
        expect(got, want, wrong, f"your lens of layer {layer} differs from unembed(final_norm("
                                 f"stream at {site_name(layer)}))", rtol=1e-4, atol=1e-5)
    return ("the logit lens: each layer's stream read as if the later blocks were skipped; at the "
            "last layer it is the model's own output (logit_lens in nbtoolkit.lens reads them all).")


# ---------------------------------------------------------------- 09.2

def check_head_attribution(head_attribution) -> Feedback | None:
    """Exercise 09.2: ``head_attribution(lm, prompt, layer, head, answer_id, distractor_id)`` is
    one head's direct contribution to logit(answer) − logit(distractor) at the last token,
    through the final norm frozen at the scale of the final stream."""
    return run_check("09.2", head_attribution, _head_attribution)


def _head_attribution(student) -> str:
    lm = _uneven_norms(tiny_lm())
    ids = [lm.tokenizer(t, add_special_tokens=False)["input_ids"][0] for t in (ANSWER, DISTRACTOR)]
    parts = readout(lm.model)
    weight = parts.unembed.weight.detach().float()
    direction = weight[ids[0]] - weight[ids[1]]
    final_stream = captured(lm, PROMPT, site_name(lm.n_layers - 1))[-1]
    final = frozen_norm(parts.final_norm, final_stream[None], parts.centred)
    for layer, head in ((1, 2), (2, 0)):
        result = direct_logit_attribution(lm, PROMPT, ids[0], ids[1])
        label = f"{site_name(layer, 'attn.heads')}[{head}]"
        want = result.values[result.labels.index(label)]
        got = number(call(student, lm, PROMPT, layer, head, *ids), "your attribution")
        heads = _head_outputs(lm, layer)

        def through(vector, frozen=final):
            return float(frozen(vector[None])[0] @ direction)
        wrong = [
            (lambda: float(heads[head] @ direction),
             "you dotted the head's output with the logit direction directly; the model reads the "
             "stream through the final norm: multiply by its gain over the final stream's RMS "
             "(the scale of this run, frozen)"),
            (lambda: through(heads[head], frozen_norm(parts.final_norm, heads[head][None],
                                                       parts.centred)),
             f"you normalised the head's output by its own RMS; the frozen scale is the whole "
             f"final stream's (site {site_name(lm.n_layers - 1)}), the same for every component, "
             f"so that they add up"),
            (lambda: through(heads.sum(0)),
             f"this is the whole attention layer {layer} (every head summed); take head {head}'s "
             f"slice of the output projection only"),
            (lambda: float(final(heads[head][None])[0] @ weight[ids[0]]),
             "this is the head's contribution to logit(answer) alone; subtract the distractor's "
             "unembedding: the direction is W_U[answer] − W_U[distractor]"),
            (lambda: -want, "the sign is flipped: the direction is W_U[answer] − W_U[distractor]"),
            (lambda: through(heads[(head + 1) % len(heads)]),
             f"this is head {(head + 1) % len(heads)}'s contribution; head h's output is columns "
             f"h·d_head … (h+1)·d_head − 1 of the projection's input"),
        ]
        expect(got, want, wrong, f"your attribution of layer {layer} head {head} differs",
               rtol=1e-4, atol=1e-6)
    return ("one head's direct logit attribution: its slice of the output projection, through the "
            "final norm at the final stream's scale, on W_U[answer] − W_U[distractor]. "
            "direct_logit_attribution gives every component; they sum to the logit difference.")


def _head_outputs(lm, layer: int) -> torch.Tensor:
    """Each head's output at the last token through its slice of the output projection,
    ``[n_heads, d_model]`` (float32)."""
    from ..core.anatomy import resolve_site

    z = captured(lm, PROMPT, site_name(layer, "attn.heads"))[-1]  # [n_heads, d_head]
    projection = resolve_site(lm.model, site_name(layer, "attn.heads")).module
    n = z.shape[0]
    alone = torch.zeros(n, *z.shape)
    alone[range(n), range(n)] = z
    with torch.no_grad():
        bias = projection(torch.zeros(1, z.numel()))[0]
        return (projection(alone.reshape(n, -1)) - bias).float()


# ---------------------------------------------------------------- 09.3

def check_induction_score(score_heads) -> Feedback | None:
    """Exercise 09.3: ``score_heads(weights, seq_len)`` is each head's induction score: the mean
    attention from each token of the second repeat to the token after its previous occurrence,
    ``weights`` ``[heads, T, T]`` of one sequence of T = 1 + 2·seq_len tokens (BOS, then the
    repeats) -> ``[heads]``."""
    return run_check("09.3", score_heads, _induction_score)


def _patterns(seq_len: int, heads: int = 4) -> torch.Tensor:
    """Causal attention weights ``[heads, T, T]``: random, with a planted induction head (0), a
    duplicate-token head (1) and a previous-token head (2) mixed in at 60%."""
    length = 1 + 2 * seq_len
    g = torch.Generator().manual_seed(7)
    scores = torch.randn(heads, length, length, generator=g)
    scores = scores.masked_fill(torch.ones(length, length).triu(1).bool(), -torch.inf)
    weights = scores.softmax(-1)
    q = torch.arange(length)
    planted = torch.zeros(3, length, length)
    second = q >= 1 + seq_len
    planted[0, q, torch.where(second, q - seq_len + 1, 0)] = 1
    planted[1, q, torch.where(second, q - seq_len, 0)] = 1
    planted[2, q, (q - 1).clamp(min=0)] = 1
    weights[:3] = 0.4 * weights[:3] + 0.6 * planted
    return weights


def _induction_score(student) -> str:
    seq_len = 6
    weights = _patterns(seq_len)
    length = weights.shape[-1]
    want = induction_score(weights[None], seq_len)
    got = tensor(call(student, weights.clone(), seq_len), "your scores", want.shape)
    q = torch.arange(length - seq_len, length)
    arena = torch.arange(seq_len - 1, length)  # ARENA's diagonal: two first-half rows more
    wrong = [
        (lambda: weights[:, q, q - seq_len].mean(-1),
         "this is attention to the previous occurrence itself (a duplicate-token score); an "
         "induction head attends to the token AFTER it: key = query − seq_len + 1"),
        (lambda: previous_token_score(weights[None]),
         "this is the previous-token score (key = query − 1); the induction score's key is "
         "query − seq_len + 1"),
        (lambda: weights[:, q, q - seq_len + 1].max(-1).values,
         "you took the maximum; the score is the mean over the second repeat's tokens"),
        (lambda: weights[:, q, q - seq_len + 1].sum(-1),
         "you summed; the score is the mean over the second repeat's tokens"),
        (lambda: weights[:, arena, arena - seq_len + 1].mean(-1),
         "your diagonal starts two rows early (the last two tokens of the first repeat, which "
         "have no previous occurrence); average over the second repeat's tokens only"),
        (lambda: weights[:, q - 1, q - seq_len].mean(-1),
         "your queries are shifted one token early; they are the second repeat's tokens, the "
         "last seq_len positions"),
    ]
    expect(got, want, wrong, "your induction scores differ", rtol=1e-5, atol=1e-7)
    return ("the induction score: mean attention from each repeated token to the token after "
            "its previous occurrence; induction_scores computes it for every head on random "
            "repeated tokens, induction_ablation checks that the top heads matter.")


__all__ = ["check_head_attribution", "check_induction_score", "check_lens_of_layer"]
