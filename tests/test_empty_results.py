"""Issue 25, item 3: every table the package returns keeps its documented columns when there is
nothing to report (no changed verb, no pair, no layer, no fact, an empty list), so the
notebooks' indexing (``table[table.verbs == "x"]``) works on it. Hand-built inputs and one tiny
model: the file runs in seconds."""

import numpy as np
import pandas as pd
import pytest
import torch

import nbtoolkit as nb
from nbtoolkit import ccs, das
from nbtoolkit import instruction_shift as shift
from nbtoolkit.ccs.layers import EVAL_COLUMNS
from nbtoolkit.das.evaluate import NEURON_BASELINE_COLUMNS
from nbtoolkit.das.train import GRID_COLUMNS
from nbtoolkit.instruction_shift import released
from nbtoolkit.instruction_shift.heads import PAIR_COLUMNS
from nbtoolkit.instruction_shift.tables import (CONCEPT_SHARES_COLUMNS, HEAD_WORD_COLUMNS,
                                                PAIRS_COLUMNS, VERB_SHIFT_COLUMNS)
from nbtoolkit.interchange.sweep import InterchangeResult
from nbtoolkit.selfie.control import FACT_COLUMNS, MLPEdit, fact_accuracy
from nbtoolkit.selfie.interpretation import INTERPRETATION_COLUMNS, Interpretations
from nbtoolkit.selfie.steering import Generations, WordProbs
from nbtoolkit.tracing.effects import AVERAGE_COLUMNS, TRACE_COLUMNS, AverageEffect, TraceResult
from nbtoolkit.tracing.severing import SEVERING_COLUMNS, SeveringResult

WORDS = ["write", "essay", "go", "home", "make", "cake"]


def empty_with(table: pd.DataFrame, columns) -> pd.DataFrame:
    """``table`` has exactly ``columns`` and no row."""
    assert isinstance(table, pd.DataFrame)
    assert table.columns.tolist() == list(columns)
    assert len(table) == 0
    return table


# ---------------------------------------------------------------- instruction_shift

@pytest.fixture(scope="module")
def no_pairs():
    """A tiny llama's head 0 of layer 1 with an identity word similarity: no two different words
    pass the co-occurrence filter, so the head relates no word pair."""
    lm = nb.tiny_model("llama", seed=0)
    return shift.attention_word_pairs(lm, 1, 0, WORDS, top_k=3, similarity=np.eye(len(WORDS)))


def test_no_word_pair_gives_empty_tables_down_to_table3(no_pairs):
    assert len(no_pairs) == 0
    pairs = empty_with(no_pairs.to_frame(), PAIR_COLUMNS)
    empty_with(shift.word_counts(pairs), ["layer", "head", "word", "count"])
    long = empty_with(shift.pairs_from_explanations(pairs, "tuned"), PAIRS_COLUMNS)
    counts = empty_with(shift.head_word_counts(long), HEAD_WORD_COLUMNS)
    counts["group"] = [shift.layer_group_label(l, 8) for l in counts.layer]
    table3 = shift.verb_shift(counts, base="base", tuned="tuned", instruction_verbs=["write"],
                              general_verbs=["go"])
    empty_with(table3, VERB_SHIFT_COLUMNS)
    assert table3[table3.verbs == "instruction verbs"].empty  # notebook 06's indexing
    assert table3["mean"].dtype == float and table3["n_verbs"].dtype == int


def test_verb_shift_of_identical_models_and_of_no_counts():
    # the notebook's per-word counts: the same words and counts for both models
    words = pd.DataFrame([(m, "Q1", w, 1.0) for m in ("base", "tuned") for w in ("write", "go")],
                         columns=["model", "group", "word", "count"])
    table = shift.verb_shift(words, base="base", tuned="tuned", instruction_verbs=["write"],
                             general_verbs=["go"], unit=())
    assert table.columns.tolist() == list(VERB_SHIFT_COLUMNS)
    assert table.n_verbs.tolist() == [0, 0] and table["mean"].isna().all()
    none = shift.verb_shift(words.iloc[:0], base="base", tuned="tuned", instruction_verbs=["write"],
                            general_verbs=["go"], unit=())
    empty_with(none, VERB_SHIFT_COLUMNS)
    assert none[none.verbs == "general verbs"]["mean"].tolist() == []


def test_repeated_pairs_only_are_counted_so_single_pairs_count_nothing():
    frame = pd.DataFrame({"layer": [3, 3], "head": [1, 1], "dim": [0, 1],
                          "query": ["write", "go"], "key": ["essay", "home"]})
    counts = shift.head_word_counts(shift.pairs_from_explanations(frame, "tuned"))
    empty_with(counts, HEAD_WORD_COLUMNS)
    empty_with(shift.word_counts(frame), ["layer", "head", "word", "count"])


def test_concept_shares_without_categories_or_labels():
    labels = pd.DataFrame(columns=["seed", "model", "group", "label"])
    table5 = shift.concept_shares(labels.drop(columns="group"), [], base="base", tuned="tuned")
    empty_with(table5, CONCEPT_SHARES_COLUMNS)
    assert table5[table5.category != "none"][["base_mean", "tuned_mean"]].sum().tolist() == [0, 0]
    with pytest.warns(RuntimeWarning):  # no label at all: one row per category, NaN shares
        unlabelled = shift.concept_shares(labels.drop(columns="group"), ["coding"], base="b", tuned="t")
    assert unlabelled.columns.tolist() == list(CONCEPT_SHARES_COLUMNS) and unlabelled.n_seeds.tolist() == [0]
    fig3 = shift.concept_shares_by_group(labels, ["coding"])
    empty_with(fig3, ["model", "group", "category", "share", "share_std"])


def test_empty_concepts_and_attribution_frames():
    empty_with(shift.Concepts(3, np.zeros(0), [], []).to_frame(),
               ["layer", "component", "score", "words", "label"])
    attr = shift.Attribution(torch.zeros(2, 0), ["a", "b"], [], [(0, 1), (2, 3)], "a b", "")
    empty_with(attr.to_frame(), ["prompt_index", "prompt_token", "response_index", "response_token",
                                 "score"])


def test_released_files_without_rows(tmp_path):
    for path in released.BILINEAR_PARTS:
        (tmp_path / path).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / path).write_text("\t".join(released.BILINEAR_COLUMNS) + "\n")
    for seed in released.SEEDS:
        for kind in released.ANNOTATION_KINDS:
            path = tmp_path / released.annotation_path(kind, seed)
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text("\t".join(released.ANNOTATION_COLUMNS) + "\n")
    pairs = empty_with(released.load_bilinear_pairs(tmp_path, words=["write"]), PAIRS_COLUMNS)
    empty_with(shift.head_word_counts(pairs), HEAD_WORD_COLUMNS)
    empty_with(released.load_annotations("task", tmp_path),
               ["seed", "model", "layer", "rank", "label", "summary"])


# ---------------------------------------------------------------- das

def test_das_tables_without_cells():
    grid = das.alignment_grid(None, None, None, None, layers=[], positions=[0], progress=False)
    empty_with(grid, GRID_COLUMNS)
    assert grid[grid.layer == 0].iia.tolist() == []
    with pytest.raises(ValueError, match="k=5"):  # no set of 5 of 4 neurons: no baseline
        das.neuron_baseline(None, "enc", None, d=4, k=5, progress=False)
    assert NEURON_BASELINE_COLUMNS == ("dims", "iia")
    with pytest.raises(ValueError, match="epochs must be a positive int.*0"):
        das.fit(None, None, epochs=0)


# ---------------------------------------------------------------- ccs

def burns_rows():
    return pd.DataFrame([dict(model="m", dataset="a", template=0, layer=2, reporter="ccs", acc=0.8)])


def test_ccs_tables_without_rows():
    empty_with(ccs.eval_layers({}, None), EVAL_COLUMNS)
    columns = ["model", "method", "layer", "a", "mean", "std_over_templates", "paper_mean"]
    t = empty_with(ccs.table1(burns_rows(), {"m": 1}), columns)  # no row at the chosen layer
    assert t[t.method == "CCS"].empty
    empty_with(ccs.table1(burns_rows().iloc[:0], {}), columns[:3] + columns[4:])
    empty_with(ccs.per_layer(burns_rows().iloc[:0].assign(auroc=[]), "auroc"),
               ["model", "dataset", "reporter", "layer", "auroc"])
    with pytest.raises(ValueError, match="at least one reporter"):
        ccs.elicit(None, "animals", reporters=())


# ---------------------------------------------------------------- selfie

def test_selfie_tables_without_entries():
    empty = Interpretations("p", [], [], [], [], [], [], [], "", "", [], 1, "normalized", 1.0)
    empty_with(empty.to_frame(), INTERPRETATION_COLUMNS)
    facts = fact_accuracy(None, [])
    empty_with(facts.to_frame(), FACT_COLUMNS)
    empty_with(Generations([], "layer.1", {}).to_frame(), ["prompt", "scale", "schedule", "text"])
    probs = WordProbs(["p"], "layer.1", [], ["good"], np.zeros((0, 1, 1))).to_frame()
    empty_with(probs, ["prompt", "scale", "group", "prob"])
    edit = MLPEdit(torch.nn.Linear(2, 2), 0)  # before any step
    history = empty_with(edit.to_frame(), ["step", "loss"])
    assert history[history.step == 0].loss.tolist() == []


# ---------------------------------------------------------------- tracing, interchange

def test_tracing_and_sweep_tables_without_cells():
    trace = TraceResult(np.zeros((0, 2)), 0.1, 0.9, [], (0, 0), "hidden", " Paris", 1)
    empty_with(trace.to_frame(), TRACE_COLUMNS)
    average = AverageEffect("mlp", np.zeros((6, 0)), np.zeros((6, 0)), np.zeros(6, int), 0.1, 0.9)
    table = empty_with(average.to_frame(), AVERAGE_COLUMNS)
    assert table[table.bucket == "last subject token"].aie.tolist() == []
    severed = SeveringResult({s: np.zeros((1, 0)) for s in ("none", "mlp", "attn")}, np.zeros(1),
                             np.ones(1), ["p"], ["s"], [" a"], [0])
    empty_with(severed.to_frame(), SEVERING_COLUMNS)
    sweep = InterchangeResult(np.zeros((1, 3, 0)), np.zeros(1), np.ones(1), ("layer", "position"),
                              {"position": []})
    empty_with(sweep.to_frame(), ["layer", "position", "position_label", "score", "std", "effect",
                                  "base_score", "source_score"])
