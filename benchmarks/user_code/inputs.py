"""What every snippet in this folder starts from: the default model (SmolLM2-135M-Instruct, from
the embedded GGUF, offline) as a plain Hugging Face model and tokenizer, and each task's inputs.
A snippet imports what it uses from here (``from inputs import ...``: not counted) and leaves its
answer in ``result``; ``python benchmarks/count_lines.py --run`` runs each (without gradients, as
the peers' tutorials do) and checks every library's answer against nbtoolkit's."""

import numpy as np
import torch

import nbtoolkit as nb
from nbtoolkit.tasks.ioi import TEMPLATES, ioi_prompts
from nbtoolkit.tracing import resolve_noise

_lm = nb.load_model(nb.DEFAULT_MODEL)
MODEL_NAME = _lm.name
model, tokenizer = _lm.model.eval(), _lm.tokenizer

# Interchange: block LAYER's output at the subject's last token, from SOURCE_PROMPT into PROMPT.
PROMPT, SUBJECT = "The Eiffel Tower is located in the city of", "Eiffel Tower"
SOURCE_PROMPT = "The Colosseum is located in the city of"
SUBJECT_TOKENS = range(1, 4)  # " E", "iffel", " Tower"
assert tokenizer.decode(tokenizer(PROMPT).input_ids[1:4]).strip() == SUBJECT
assert len(tokenizer(PROMPT).input_ids) == len(tokenizer(SOURCE_PROMPT).input_ids)
LAYER, POSITION = 15, SUBJECT_TOKENS.stop - 1
N_LAYERS = model.config.num_hidden_layers
with torch.no_grad(), nb.capture(_lm, [f"layer.{i}" for i in range(N_LAYERS)]) as _acts:
    model(**tokenizer(SOURCE_PROMPT, return_tensors="pt"))
SOURCE_HIDDEN = [_acts[f"layer.{i}"] for i in range(N_LAYERS)]  # pre-captured: [1, T, d] each

# Steering: NEW_TOKENS greedy tokens with STEER added to block LAYER's output on every pass.
STEER_PROMPT, NEW_TOKENS = "I watched the film and", 20
STEER = torch.randn(model.config.hidden_size, generator=torch.Generator().manual_seed(1))
STEER = 8.0 * STEER / STEER.norm()

# Causal tracing (ROME): SAMPLES noised copies, noise RandomState(SEED).randn(...) * NOISE on
# the subject's tokens SUBJECT_TOKENS; the hidden grid [tokens, layers] of p(answer).
NOISE, SAMPLES, SEED = resolve_noise(_lm, "s3"), 10, 1

# Head patching (IOI, one template so every prompt has the same length): each head's output
# from SOURCE_PROMPTS into BASE_PROMPTS; logit_diff(logits [n, vocab]) -> [n].
_ioi = ioi_prompts(8, corruption="abc", seed=0, templates=TEMPLATES[:1])
BASE_PROMPTS, SOURCE_PROMPTS = _ioi.prompts, _ioi.corrupted
BASE_IDS = tokenizer(BASE_PROMPTS, return_tensors="pt").input_ids
SOURCE_IDS = tokenizer(SOURCE_PROMPTS, return_tensors="pt").input_ids
_correct = torch.tensor([tokenizer(name).input_ids[0] for name in _ioi.correct])
_wrong = torch.tensor([tokenizer(name).input_ids[0] for name in _ioi.wrong])


def logit_diff(logits: torch.Tensor) -> torch.Tensor:
    """The correct minus the wrong name's logit of each pair: [n, vocab] -> [n]."""
    rows = torch.arange(len(_correct))
    return logits[rows, _correct] - logits[rows, _wrong]


def close(a, b) -> float:
    """The largest |difference| between two results (tensors, arrays or lists of them)."""
    a, b = (x if isinstance(x, (list, tuple)) else [x] for x in (a, b))
    assert len(a) == len(b), f"{len(a)} results against {len(b)}"
    return max(float(np.abs(np.asarray(x, dtype=np.float64) - np.asarray(y, dtype=np.float64)).max())
               for x, y in zip(a, b))
