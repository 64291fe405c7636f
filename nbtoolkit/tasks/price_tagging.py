"""The price tagging game (Wu et al. 2023, Boundless DAS).

Instruction "Please say yes only if it costs between {X:.2f} and {Y:.2f} dollars, otherwise no.",
input "{Z:.2f} dollars", answer "Yes"/"No" at the last position. Prices are integer cents here
(no float ties): width ~ U(2.50, 7.50), X ~ U(0.05, 9.95 − width), Y = X + width,
Z ~ U(0.01, 9.99).

Hypotheses (causal models over the inputs X, Y, Z; each names the variables it interchanges):

    left        LB = (Z ≥ X), RB = (Z ≤ Y), O = LB ∧ RB;   interchange LB
    right       the same model;                            interchange RB
    left_right  the same model;                            interchange LB (id 0) or RB (id 1)
    midpoint    M = X + Y, H = Y − X, O = |2Z − M| ≤ H;    interchange M (control)
    bracket     B = (X, Y), O = B₀ ≤ Z ≤ B₁;               interchange B (control)

Textual datasets are ``datasets.Dataset`` with ``input_ids``, ``source_input_ids``, ``labels``
(−100 everywhere but the last position, which holds the "Yes"/"No" token) and
``intervention_ids``; rows are left-padded (with ``attention_mask`` columns) only if prompts
tokenize to different lengths. Labels are balanced Yes/No per intervened variable.

``tokenizer()`` and ``tiny_model()`` give an offline word-level setup (digits are single tokens,
every prompt is 32 tokens) in which a 4-layer, d = 64 transformer, trained with
:func:`nbtoolkit.das.fit` (warm-up, then cosine decay), learns the task in a few CPU minutes.
Trained on :func:`explained_dataset` (answer and reason: "No, too cheap.") rather than on the
bare answer, it keeps the two boundaries further apart (:func:`boundary_cosine`), and Boundless
DAS finds its left boundary (notebook 04).
"""

from __future__ import annotations

import numpy as np

from .causal_model import CausalModel

INSTRUCTION = "Please say yes only if it costs between {x} and {y} dollars, otherwise no."
ALPACA = ("Below is an instruction that describes a task, paired with an input that provides "
          "further context. Write a response that appropriately completes the request.\n\n"
          "### Instruction:\n{instruction}\n\n### Input:\n{input}\n\n### Response:\n")
SHORT = "{instruction} Input: {input}. Response:"
TEMPLATES = {"short": SHORT, "alpaca": ALPACA}
HYPOTHESES = {"left": ("LB",), "right": ("RB",), "left_right": ("LB", "RB"),
              "midpoint": ("M",), "bracket": ("B",)}
ANSWERS = ("No", "Yes")
SIDES = ("below", "inside", "above")  # where Z sits relative to [X, Y]: see where_z
RESPONSES = {"below": "No, too cheap.", "inside": "Yes.", "above": "No, too expensive."}


def causal_model(hypothesis: str = "left") -> CausalModel:
    """The causal model behind ``hypothesis`` (see the module docstring)."""
    if hypothesis in ("left", "right", "left_right"):
        return CausalModel(parents={"LB": ["X", "Z"], "RB": ["Y", "Z"], "O": ["LB", "RB"]},
                           mechanisms={"LB": lambda x, z: z >= x, "RB": lambda y, z: z <= y,
                                       "O": lambda lb, rb: lb & rb}, output="O")
    if hypothesis == "midpoint":
        return CausalModel(parents={"M": ["X", "Y"], "H": ["X", "Y"], "O": ["M", "H", "Z"]},
                           mechanisms={"M": lambda x, y: x + y, "H": lambda x, y: y - x,
                                       "O": lambda m, h, z: np.abs(2 * z - m) <= h}, output="O")
    if hypothesis == "bracket":
        return CausalModel(parents={"B": ["X", "Y"], "O": ["B", "Z"]},
                           mechanisms={"B": lambda x, y: np.stack([x, y], -1),
                                       "O": lambda b, z: (b[..., 0] <= z) & (z <= b[..., 1])},
                           output="O")
    raise ValueError(f"unknown hypothesis {hypothesis!r}; choose from {', '.join(HYPOTHESES)}")


def sample_prices(n: int, rng: np.random.Generator) -> dict[str, np.ndarray]:
    """``{X, Y, Z: [n]}`` integer cents, sampled as in the paper."""
    width = rng.integers(250, 751, size=n)
    x = (rng.random(n) * (995 - width - 5 + 1)).astype(np.int64) + 5
    return {"X": x, "Y": x + width, "Z": rng.integers(1, 1000, size=n)}


def prompt(x: int, y: int, z: int, template: str = "short") -> str:
    """The prompt for bracket [x, y] and price z (cents)."""
    if template not in TEMPLATES:
        raise ValueError(f"unknown template {template!r}; choose from {', '.join(TEMPLATES)}")
    money = lambda c: f"{c / 100:.2f}"
    return TEMPLATES[template].format(instruction=INSTRUCTION.format(x=money(x), y=money(y)),
                                      input=f"{money(z)} dollars")


def prompts(prices: dict[str, np.ndarray], template: str = "short") -> list[str]:
    return [prompt(x, y, z, template) for x, y, z in zip(prices["X"], prices["Y"], prices["Z"])]


def where_z(x, y, z) -> np.ndarray:
    """Where price ``z`` sits relative to the bracket ``[x, y]`` (cents, arrays or lists):
    ``"below"`` (Z < X), ``"inside"`` (X ≤ Z ≤ Y) or ``"above"`` (Z > Y), per example."""
    x, y, z = (np.asarray(v) for v in (x, y, z))
    below, inside, above = SIDES
    return np.where(z < x, below, np.where(z > y, above, inside))


def boundary_cosine(acts, x, y, z) -> float:
    """How separately activations ``[n, d]`` (one per prompt with prices x, y, z) keep the two
    boundaries: the cosine between mean(below) − mean(inside) and mean(above) − mean(inside).
    Near +1: "below" and "above" move the state the same way (one "outside" feature; no left
    boundary to interchange on its own). Near 0: they move it in orthogonal directions, which
    is what swapping a subspace needs to carry LB without RB."""
    acts = np.asarray(acts, dtype=np.float64)
    side = where_z(x, y, z)
    if acts.ndim != 2 or len(acts) != len(side):
        raise ValueError(f"acts must be [n, d] with one row per prompt ({len(side)}), got {acts.shape}")
    if not set(SIDES) <= set(side):
        raise ValueError("boundary_cosine needs prompts below, inside and above their brackets")
    inside = acts[side == "inside"].mean(0)
    below, above = (acts[side == s].mean(0) - inside for s in ("below", "above"))
    return float(below @ above / (np.linalg.norm(below) * np.linalg.norm(above)))


def answer_ids(tokenizer) -> list[int]:
    """Token ids of "No" and "Yes" (class 0 and 1)."""
    ids = [tokenizer(a, add_special_tokens=False)["input_ids"] for a in ANSWERS]
    if any(not i for i in ids):
        raise ValueError("the tokenizer encodes 'Yes' or 'No' to nothing")
    return [i[0] for i in ids]


def _encode(tokenizer, texts: list[str]) -> tuple[list[list[int]], list[list[int]] | None]:
    """Token ids, left-padded to one length; masks only when lengths differ."""
    ids = tokenizer(texts)["input_ids"]
    longest = max(map(len, ids))
    if all(len(i) == longest for i in ids):
        return ids, None
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    masks = [[0] * (longest - len(i)) + [1] * len(i) for i in ids]
    return [[pad] * (longest - len(i)) + i for i in ids], masks


def _labels(tokenizer, length: int, outcome: np.ndarray) -> list[list[int]]:
    ids = answer_ids(tokenizer)
    return [[-100] * (length - 1) + [ids[int(o)]] for o in outcome]


def _balanced(outcome: np.ndarray, n: int, rng: np.random.Generator) -> np.ndarray:
    """Indices of n/2 true and n/2 false outcomes (``ValueError`` if there are too few)."""
    yes, no = np.flatnonzero(outcome), np.flatnonzero(~outcome)
    if min(len(yes), len(no)) < n - n // 2:
        raise ValueError("too few candidates to balance the labels; raise the oversampling")
    picked = np.concatenate([rng.choice(yes, n // 2, replace=False),
                             rng.choice(no, n - n // 2, replace=False)])
    return rng.permutation(picked)


def factual_dataset(tokenizer, n: int, seed: int = 0, template: str = "short"):
    """``datasets.Dataset`` with ``input_ids``, ``labels`` (and ``attention_mask`` if padded) and
    the prices ``X``, ``Y``, ``Z`` in cents; half "Yes", half "No"."""
    from datasets import Dataset

    rng = np.random.default_rng(seed)
    prices = sample_prices(4 * n, rng)
    outcome = causal_model().output_of(prices)
    keep = _balanced(outcome, n, rng)
    prices = {k: v[keep] for k, v in prices.items()}
    ids, masks = _encode(tokenizer, prompts(prices, template))
    columns = {"input_ids": ids, "labels": _labels(tokenizer, len(ids[0]), outcome[keep]),
               **{k: v.tolist() for k, v in prices.items()}}
    if masks is not None:
        columns["attention_mask"] = masks
    return Dataset.from_dict(columns)


def explained_dataset(tokenizer, n: int, seed: int = 0, template: str = "short"):
    """Training text for a causal LM: the prompts of :func:`factual_dataset` (same seed, same
    prices), each followed by its answer and the reason (``RESPONSES``: "Yes.", "No, too
    cheap.", "No, too expensive."). ``input_ids`` ``[n, seq]`` = prompt + response, padded at
    the end (and at the start, with ``attention_mask``, if prompts differ in length);
    ``labels[i]`` is the token position i must predict (the answer at the prompt's last
    position, then the reason, then end-of-sequence), −100 on the prompt and the padding."""
    from datasets import Dataset

    facts = factual_dataset(tokenizer, n, seed, template)
    stop = tokenizer.eos_token_id
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else stop
    replies = {side: tokenizer(text, add_special_tokens=False)["input_ids"] + [stop]
               for side, text in RESPONSES.items()}
    longest = max(map(len, replies.values()))
    ids, labels = [], []
    for prompt_ids, side in zip(facts["input_ids"], where_z(facts["X"], facts["Y"], facts["Z"])):
        reply, fill = replies[side], longest - len(replies[side])
        ids.append(prompt_ids + reply[:-1] + [pad] * fill)
        labels.append([-100] * (len(prompt_ids) - 1) + reply + [-100] * fill)
    columns = {"input_ids": ids, "labels": labels, **{k: facts[k] for k in "XYZ"}}
    if "attention_mask" in facts.column_names:  # the end padding follows every labelled token
        columns["attention_mask"] = [m + [1] * (longest - 1) for m in facts["attention_mask"]]
    return Dataset.from_dict(columns)


def counterfactual_dataset(tokenizer, n: int, hypothesis: str = "left", seed: int = 0,
                           template: str = "short"):
    """Interchange examples for ``hypothesis``: ``input_ids`` (base), ``source_input_ids``,
    ``labels`` (the causal model's output on the base with the variable taken from the source),
    ``intervention_ids`` (which variable: index into ``HYPOTHESES[hypothesis]``). Balanced
    Yes/No within each variable."""
    from datasets import Dataset

    if hypothesis not in HYPOTHESES:
        raise ValueError(f"unknown hypothesis {hypothesis!r}; choose from {', '.join(HYPOTHESES)}")
    rng = np.random.default_rng(seed)
    model = causal_model(hypothesis)
    variables = HYPOTHESES[hypothesis]
    parts = []
    for j, variable in enumerate(variables):
        m = n // len(variables) + (j < n % len(variables))
        base, source = sample_prices(8 * m, rng), sample_prices(8 * m, rng)
        outcome = np.asarray(model.counterfactual(base, source, variable), dtype=bool)
        keep = _balanced(outcome, m, rng)
        parts.append(({k: v[keep] for k, v in base.items()}, {k: v[keep] for k, v in source.items()},
                      outcome[keep], np.full(m, j)))
    order = rng.permutation(n)
    cat = lambda i, k=None: np.concatenate([p[i] if k is None else p[i][k] for p in parts])[order]
    base = {k: cat(0, k) for k in "XYZ"}
    source = {k: cat(1, k) for k in "XYZ"}
    ids, masks = _encode(tokenizer, prompts(base, template) + prompts(source, template))
    columns = {"input_ids": ids[:n], "source_input_ids": ids[n:],
               "labels": _labels(tokenizer, len(ids[0]), cat(2)),
               "intervention_ids": cat(3).tolist(),
               **{k: v.tolist() for k, v in base.items()},
               **{f"source_{k}": v.tolist() for k, v in source.items()}}
    if masks is not None:
        columns["attention_mask"], columns["source_attention_mask"] = masks[:n], masks[n:]
    return Dataset.from_dict(columns)


# ------------------------------------------------------------------ an offline model


def tokenizer():
    """A word-level tokenizer for the short template: words and punctuation are tokens, every
    digit is its own token, so every prompt has 32 tokens."""
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    words = ["<pad>", "<unk>", "<eos>", *"0123456789", ".", ",", ":", *ANSWERS,
             *INSTRUCTION.replace(",", " ").replace(".", " ").split(), "Input", "Response",
             "too", "cheap", "expensive"]
    vocab = {w: i for i, w in enumerate(dict.fromkeys(w for w in words if w not in ("{x}", "{y}")))}
    backend = Tokenizer(models.WordLevel(vocab=vocab, unk_token="<unk>"))
    backend.pre_tokenizer = pre_tokenizers.Sequence(
        [pre_tokenizers.Whitespace(), pre_tokenizers.Digits(individual_digits=True)])
    return PreTrainedTokenizerFast(tokenizer_object=backend, pad_token="<pad>",
                                   unk_token="<unk>", eos_token="<eos>")


def tiny_model(n_layers: int = 4, d_model: int = 64, seed: int = 0):
    """An untrained LLaMA-style transformer (4 heads) with :func:`tokenizer`, as an
    :class:`~nbtoolkit.core.lm.LM`; train it with :func:`nbtoolkit.das.fit`."""
    from ..core.tiny import tiny_model as tiny

    return tiny("llama", seed=seed, n_layers=n_layers, d_model=d_model, n_kv_heads=4, context=64,
                tokenizer=tokenizer(), name="price-tagger (trained here)")
