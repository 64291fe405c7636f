"""Result bands: each reproduction notebook checks its headline numbers at its CPU preset.

A band is measured, never chosen: ``python -m nbtoolkit.cli.bands`` (``make bands``) runs the
notebooks at their CPU preset as ``make test`` runs them (``SEED = 0``, one thread), and again at
``SEED = 1`` on two threads, and writes each headline number's runs and band to ``bands.json``
beside this module::

    band = [mean − 4·sd, mean + 4·sd] over the runs, widened to their [min, max] and to at least
           ± (0.1% of |mean| + 1e-6) (sd: the runs' sample standard deviation)

A notebook's check cell::

    bands = check_bands(preset, {"iia_wx": iia_das["WX"], ...})
    save_results("03_das", table, bands=bands, ...)
    bands.verify()

shows a table (number, value, band, status); :meth:`BandCheck.verify` raises :class:`OutOfBand`
naming each number outside its band, the band, and what usually moves it (:data:`HEADLINES`).
A run that is not the measured one (another model or sizes, as in the hub pass, or
``PRESET = "paper"``) marks every band "not applicable" and passes.

``NBTOOLKIT_BANDS``: ``record`` checks nothing (the measuring runs); a path reads the bands from
that JSON file instead of ``bands.json``.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

BANDS_FILE = Path(__file__).with_name("bands.json")
SPREAD = 4.0            # a band is the runs' mean ± SPREAD sample standard deviations ...
RELATIVE_FLOOR = 1e-3   # ... and at least ± this share of |mean| (float32 on another CPU) ...
FLOOR = 1e-6            # ... plus this
NOT_PARAMETERS = ("SEED",)  # a run at another seed is still the measured preset


@dataclass(frozen=True)
class Headline:
    """A headline number of a notebook: what it is and what usually moves it."""

    what: str
    moves_it: str


_TRAINING = "the training schedule or sizes of the preset, the optimiser, the model's initialisation"
_TRACING = "the noise level (3σ), the facts kept by filter_known, the restoration window, the model's weights"
_ATP = "N_PAIRS, which prompts (SEED), the corruption (how far patches leave the linear regime)"

# notebook -> number -> Headline: the numbers each reproduction checks (bands.json holds their bands)
HEADLINES: dict[str, dict[str, Headline]] = {
    "02_causal_tracing": {
        "total_effect": Headline("average total effect of corrupting the subject", _TRACING),
        "hidden_peak": Headline("best hidden-state AIE at the last subject token", _TRACING),
        "hidden_peak_depth": Headline("its layer / number of layers", _TRACING),
        "mlp_peak": Headline("best MLP-window AIE at the last subject token", _TRACING),
        "mlp_kept_when_severed": Headline("share of the lower-layer AIE kept with the later MLPs "
                                          "severed", "the severing passes (tracing.severing)"),
    },
    "03_das": {
        "task_accuracy": Headline("the task network's accuracy", _TRAINING),
        "das_iia_wx": Headline("DAS IIA of WX", "DAS's learning rate, epochs or pairs; the network"),
        "das_iia_yz": Headline("DAS IIA of YZ", "DAS's learning rate, epochs or pairs; the network"),
        "neuron_iia_best": Headline("best neuron-aligned IIA (of WX, YZ)",
                                    "N_NEURON_SETS, the neuron baseline's search"),
        "sum_iia": Headline("a + b + c: DAS IIA of S", "SUM_K, the staged network's training"),
    },
    "04_boundless_das": {
        "task_accuracy": Headline("the trained tagger's accuracy", _TRAINING),
        "left_gain": Headline("left-boundary IIA minus its no-intervention floor",
                              "the grid's best cell, Boundless DAS's temperature and epochs"),
        "control_gain": Headline("largest gain of a control hypothesis over its floor",
                                 "the control hypotheses' pairs, the tagger's training"),
    },
    "05_ccs": {
        "ccs_mean": Headline("CCS accuracy, mean over datasets (default model)",
                             "CCS's restarts and epochs, the chosen layer, the templates"),
        "lr_mean": Headline("supervised LR ceiling, mean over datasets (default model)",
                            "the hidden states (extraction, pooling), the layer, the split"),
        "zero_shot_mean": Headline("calibrated zero-shot accuracy, mean over datasets",
                                   "the answer tokens' log-probabilities, the templates"),
    },
    "06_instruction_shift": {
        "followed_importance": Headline("instruction-word importance in format-followed responses "
                                        "(tuned model)", "the responses (MAX_NEW_TOKENS, N_PROMPTS), ATTR_TOKENS"),
        "not_followed_importance": Headline("the same in the other responses", "the same"),
        "base_importance": Headline("instruction-word importance, base model", "ATTR_TOKENS, the prompts"),
        "tuned_importance": Headline("instruction-word importance, tuned model", "ATTR_TOKENS, the prompts"),
    },
    "07_selfie": {
        "baseline_match": Headline("share of interpretation tokens equal to the placeholder-only "
                                   "generation", "the interpretation template, the insert layer"),
        "mean_relevancy": Headline("mean relevancy of the interpretations",
                                   "the interpretation template, MAX_NEW_TOKENS"),
    },
    "08_selfie_control": {
        "known_accuracy_before": Headline("known-fact accuracy before any edit", "N_FACTS, which facts (SEED)"),
        "unrelated_accuracy_after": Headline("unrelated-fact accuracy after the supervised edit",
                                             "LAYER, STEPS, the edit's learning rate"),
        "known_accuracy_after_rc": Headline("known-fact accuracy after the reinforcement edit",
                                            "RC_LAYER, RC_STEPS, the judge"),
    },
    "09_logit_lens": {
        "best_induction": Headline("the highest induction score of any head on repeated random tokens",
                                   "SEQ_LEN, BATCH, the random tokens (SEED), eager attention"),
        "top_induction_depth": Headline("the strongest induction head's layer / number of layers",
                                        "SEQ_LEN, BATCH, the random tokens (SEED)"),
        "tuned_kl_middle": Headline("the tuned lens's KL(final ‖ lens) at the trained layer nearest "
                                    "the middle, in nats",
                                    "TUNED_STEPS, TOKENS_PER_STEP, the optimiser, the text order (SEED)"),
        "logit_kl_mean": Headline("the logit lens's mean KL over the trained block layers, in nats",
                                  "the read-out (final norm, unembedding), LAYER_STEP, N_KL_TEXTS"),
    },
    "10_ioi_circuit": {
        "logit_difference": Headline("IOI logit difference logit(IO) − logit(S), mean over pairs",
                                     "N_PAIRS, which prompts (SEED), the templates and names"),
        "top_head_effect": Headline("the largest drop of the logit difference from patching one "
                                    "head's output", "N_PAIRS, the corruption, the model's weights"),
        "atp_correlation": Headline("Pearson correlation of AtP with the exact head sweep",
                                    "N_PAIRS, the corruption (how far patches leave the linear "
                                    "regime), attention saturation"),
        "faithfulness": Headline("the circuit's share of the logit difference, F(C) / F(M)",
                                 "N_MOVERS, N_INHIBITION (which heads are kept), the mean "
                                 "ablation's reference prompts"),
    },
    "11_attribution_patching": {
        "out_correlation": Headline("Pearson correlation of AtP with exact patching, head outputs",
                                    _ATP),
        "q_correlation": Headline("the same for queries (plain AtP)", _ATP + ", attention saturation"),
        "q_fixed_correlation": Headline("the same with AtP*'s QK fix",
                                        "the QK fix (circuits.attribution._qk_fixed), " + _ATP),
        "out_false_negatives": Headline("share of the exact top-k head outputs missing from AtP's "
                                        "top k", "TOP_K, " + _ATP),
        "mlp_spearman": Headline("Spearman correlation of AtP with exact patching, each MLP at each "
                                 "named position (IO, S1, S2, end)", _ATP),
    },
}


class OutOfBand(AssertionError):
    """A headline number fell outside the band measured for it."""


@dataclass
class BandCheck:
    """The check of one run: ``rows`` of number, value, low, high, status (``held``, ``outside``,
    ``no band measured``, ``not applicable``, ``recorded``) and what the number is; ``reason``
    says why the bands apply or not."""

    notebook: str
    rows: list[dict]
    applicable: bool
    reason: str

    def to_frame(self) -> pd.DataFrame:
        return pd.DataFrame(self.rows, columns=["number", "value", "low", "high", "status", "what"])

    def to_dict(self) -> dict:
        return {"applicable": self.applicable, "reason": self.reason, "rows": self.rows}

    def failures(self) -> list[str]:
        """A sentence per number outside its band or without a measured band."""
        found = []
        for row in self.rows:
            headline = HEADLINES[self.notebook][row["number"]]
            if row["status"] == "outside":
                found.append(f"{row['number']} = {row['value']:.4g} is outside its band "
                             f"[{row['low']:.4g}, {row['high']:.4g}] ({headline.what}); what usually "
                             f"moves it: {headline.moves_it}")
            elif row["status"] == "no band measured":
                found.append(f"{row['number']} = {row['value']:.4g} has no measured band "
                             f"({headline.what}): make bands ONLY={self.notebook[:2]} measures it")
        return found

    def verify(self) -> "BandCheck":
        """Raise :class:`OutOfBand` naming every number outside its band or without one; else
        return self."""
        failures = self.failures()
        if failures:
            raise OutOfBand(f"{self.notebook}: " + "; ".join(failures))
        return self

    def _repr_html_(self) -> str:
        return f"<p>Result bands: {self.reason}</p>" + self.to_frame().to_html(index=False)


def load_bands(path: Path | str | None = None) -> dict:
    """``{notebook: {number: {"low", "high", "runs"}}}`` from ``bands.json`` (or ``path``)."""
    path = Path(path or BANDS_FILE)
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError) as error:
        raise ValueError(f"cannot read the result bands {path}: {error}") from error


def band_of(values) -> tuple[float, float]:
    """The band of a number measured as ``values`` (one per run): the module docstring's rule."""
    values = np.asarray(values, dtype=float)
    if len(values) < 2 or not np.isfinite(values).all():
        raise ValueError(f"a band needs at least two finite runs, got {values.tolist()}")
    mean, sd = values.mean(), values.std(ddof=1)
    floor = RELATIVE_FLOOR * abs(mean) + FLOOR
    low = min(mean - SPREAD * sd, values.min(), mean - floor)
    high = max(mean + SPREAD * sd, values.max(), mean + floor)
    return float(low), float(high)


def applies(preset) -> tuple[bool, str]:
    """Whether ``preset`` (:func:`~nbtoolkit.tutorials.presets.use_preset`'s) is the measured run,
    and why (not)."""
    from .presets import NOTEBOOKS

    if preset.name != "cpu":
        return False, f'PRESET = "{preset.name}": bands are measured at the CPU preset only'
    cpu = NOTEBOOKS[preset.notebook].cpu
    changed = sorted(k for k, v in preset.values.items() if k not in NOT_PARAMETERS and v != cpu[k])
    if changed:
        return False, f"not applicable: {', '.join(changed)} differ from the CPU preset the bands were measured at"
    if os.environ.get("NBTOOLKIT_BANDS") == "record":
        return False, "recording (NBTOOLKIT_BANDS=record): nothing is checked"
    return True, "the CPU preset, as measured"


def check_bands(preset, values: dict[str, float]) -> BandCheck:
    """Check ``values`` (number -> value) of ``preset.notebook`` against their bands; see
    :meth:`BandCheck.verify` to fail on a number outside."""
    notebook = preset.notebook
    headlines = HEADLINES.get(notebook, {})
    if set(values) != set(headlines):
        raise ValueError(f"{notebook} checks {sorted(headlines)}, got {sorted(values)}")
    applicable, reason = applies(preset)
    recording = os.environ.get("NBTOOLKIT_BANDS") == "record"
    setting = None if recording else os.environ.get("NBTOOLKIT_BANDS") or None
    bands = load_bands(setting).get(notebook, {}) if applicable else {}
    rows = []
    for number, value in values.items():
        value, band = float(value), bands.get(number)
        low, high = (band["low"], band["high"]) if band else (None, None)
        if not applicable:
            status = "recorded" if recording else "not applicable"
        elif band is None:
            status = "no band measured"
        else:
            status = "held" if low <= value <= high else "outside"
        rows.append(dict(number=number, value=value, low=low, high=high, status=status,
                         what=headlines[number].what))
    return BandCheck(notebook, rows, applicable, reason)
