"""Tables 3 and 5 / Figure 3 of the instruction-tuning-shift paper from small files written in the
released formats (the real ones are downloaded, never bundled), against hand-counted answers."""

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from nbtoolkit import instruction_shift as shift
from nbtoolkit.instruction_shift import released

HEADER = "\t".join(released.BILINEAR_COLUMNS)


def bilinear_row(model, layer, head, dim, pairs):
    return "\t".join([model, "7B", str(layer), "QK", str(head), str(dim), "1", "0.5", "|||".join(pairs)])


BILINEAR = [
    HEADER,
    bilinear_row("vicuna", 0, 0, 0, ["essay=write", "write=essay", "cat=dog"]),  # mirror: twice
    bilinear_row("vicuna", 0, 0, 1, ["write=letter", "dog=cat"]),
    bilinear_row("vicuna", 0, 1, 0, ["make=cake", "cake=make"]),
    bilinear_row("vicuna", 9, 0, 0, ["write=poem", "poem=write"]),
    bilinear_row("mistral", 0, 0, 0, ["write=essay", "essay=write"]),             # another model
    "vicuna\t7B\t0\tQK\t0\t5\t1\t0.5",                                             # 8 fields: skipped
    HEADER,                                                                        # repeated header
    bilinear_row("llama", 0, 0, 0, ["write=essay"]),
    bilinear_row("llama", 0, 0, 1, ["go=home", "home=go"]),
    bilinear_row("llama", 0, 1, 0, ["make=cake"]),
    bilinear_row("llama", 0, 1, 1, ["make=cake"]),  # dim 1 of head (0, 1) exists for llama only
    bilinear_row("llama", 9, 0, 0, ["write=poem", "poem=write", "eat=food", "food=eat"]),
]


@pytest.fixture()
def folder(tmp_path):
    """The bilinear file cut into the 23 released parts (a cut mid-line in the second), and
    task/concept annotations for two seeds."""
    text = "\n".join(BILINEAR) + "\n"
    cuts = [0, 40, 140] + [len(text)] * 21
    for path, a, b in zip(released.BILINEAR_PARTS, cuts, cuts[1:]):
        (tmp_path / path).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / path).write_text(text[a:b])
    head = "Task\tExplainable\tTokens\tSummary\tModel\tSize\tLayer\tType\tHead\tRank\tScore\tTopK"

    def row(label, model, layer, rank):
        return "\t".join([label, "1", "Words: a, b.", "a concept", model, "7B", str(layer), "FFN",
                          "0", str(rank), "0.1", "a|||b"])

    tasks = {0: [row("daily writing", "llama", 0, 1), row("None", "llama", 1, 2),
                 row("coding; professional writing", "vicuna", 0, 1), row("translation", "vicuna", 5, 2),
                 row("coding", "vicuna", 0, 301), row("coding", "mistral", 0, 1)],
             1: [row("solving math problems", "llama", 0, 1), row("daily writing", "llama", 1, 2),
                 row("coding", "vicuna", 0, 1), row("None", "vicuna", 5, 2)]}
    for seed in released.SEEDS:
        for kind in released.ANNOTATION_KINDS:
            path = tmp_path / released.annotation_path(kind, seed)
            path.parent.mkdir(parents=True, exist_ok=True)
            lines = [head] + (tasks.get(seed, []) if kind == "task" else [row("Semantic", "llama", 0, 1)])
            path.write_text("\n".join(lines) + "\n")
    return tmp_path


def test_reading_the_split_bilinear_file(folder):
    assert released.released_available(folder)
    pairs = released.load_bilinear_pairs(folder, words=["write", "make", "go", "eat"])
    assert set(pairs.model) == {"llama", "vicuna"}
    # the join on (layer, head, dim): llama's dim 1 of head (0, 1) has no vicuna twin
    assert pairs[(pairs.layer == 0) & (pairs["head"] == 1)].dim.unique().tolist() == [0]
    v00 = pairs[(pairs.model == "vicuna") & (pairs.layer == 0) & (pairs["head"] == 0)].pair.dropna()
    assert sorted(v00) == ["essay=write", "essay=write", "letter=write"]  # cat=dog: no verb
    everything = released.load_bilinear_pairs(folder)
    assert "cat=dog" in set(everything.pair)
    assert released.normalise_pair("Write=Essay") == "essay=write"


def test_table3_counts_and_shares_by_hand(folder):
    pairs = released.load_bilinear_pairs(folder, words=["write", "make", "go", "eat"])
    counts = shift.head_word_counts(pairs)
    got = {(m, l, h, w): c for m, l, h, w, c in counts.itertuples(index=False)}
    # vicuna (0,0): essay=write twice -> kept; letter=write once -> not
    assert got[("vicuna", 0, 0, "write")] == 1 and ("vicuna", 0, 0, "letter") not in got
    assert got[("llama", 0, 0, "go")] == 1 and ("llama", 0, 0, "write") not in got
    assert got[("vicuna", 0, 1, "make")] == 1 and ("llama", 0, 1, "make") not in got
    assert got[("llama", 9, 0, "eat")] == 1 and got[("vicuna", 9, 0, "write")] == 1
    counts["group"] = [shift.layer_group_label(l, 8) for l in counts.layer]
    table = shift.verb_shift(counts, base="llama", tuned="vicuna", instruction_verbs=["write", "make"],
                             general_verbs=["go", "eat"]).set_index(["group", "verbs"])
    # 1-8: write (head 0,0) and make (head 0,1) gained -> 1.0 each; go lost -> 0.0; eat unchanged
    assert table.loc[("1-8", "instruction verbs"), ["mean", "std", "n_verbs"]].tolist() == [1.0, 0.0, 2]
    assert table.loc[("1-8", "general verbs"), ["mean", "n_verbs"]].tolist() == [0.0, 1]
    assert np.isnan(table.loc[("1-8", "general verbs"), "p"])  # one general verb: no t-test
    # 9-16: write ties (skipped), eat lost
    assert table.loc[("9-16", "instruction verbs"), "n_verbs"] == 0
    assert table.loc[("9-16", "general verbs"), "mean"] == 0.0


def test_verb_shift_welch_p_and_std_over_verbs():
    rows = [("t", "g", h, w, c) for h, w, c in [(0, "a", 2), (1, "a", 0), (0, "b", 1), (0, "x", 0),
                                                   (1, "x", 3), (0, "y", 1)]]
    rows += [("b", "g", h, w, c) for h, w, c in [(0, "a", 1), (1, "a", 1), (0, "b", 0), (0, "x", 1),
                                                    (1, "x", 1), (0, "y", 0)]]
    counts = pd.DataFrame(rows, columns=["model", "group", "head", "word", "count"])
    table = shift.verb_shift(counts, base="b", tuned="t", instruction_verbs=["a", "b"],
                             general_verbs=["x", "y"], unit=["head"]).set_index("verbs")
    inst, gen = [0.5, 1.0], [0.5, 1.0]  # a: head 0 up, head 1 down; b up; x: down, up; y up
    assert table.loc["instruction verbs", "mean"] == pytest.approx(np.mean(inst))
    assert table.loc["instruction verbs", "std"] == pytest.approx(np.std(inst))
    assert table.loc["general verbs", "p"] == pytest.approx(
        stats.ttest_ind(inst, gen, equal_var=False).pvalue, nan_ok=True)


def test_table5_and_figure3_by_hand(folder):
    labels = released.load_annotations("task", folder, seeds=[0, 1])
    assert set(labels.model) == {"llama", "vicuna"} and labels["rank"].max() <= 300
    table = shift.concept_shares(labels, ["writing", "math", "coding", "translation", "none"],
                                 base="llama", tuned="vicuna").set_index("category")
    # seed 0: llama writing 1/2, none 1/2; vicuna writing 1/2, coding 1/2, translation 1/2
    # seed 1: llama math 1/2, writing 1/2; vicuna coding 1/2, none 1/2
    assert table.loc["writing", ["base_mean", "base_std", "tuned_mean", "tuned_std"]].tolist() == \
        [0.5, 0.0, 0.25, 0.25]
    assert table.loc["coding", ["base_mean", "tuned_mean"]].tolist() == [0.0, 0.5]
    assert table.loc["writing", "p"] == pytest.approx(stats.ttest_ind([0.5, 0.5], [0.5, 0.0]).pvalue)
    assert table.loc["none", "n_seeds"] == 2
    labels["group"] = [shift.layer_group_label(l, 4) for l in labels.layer]
    fig = shift.concept_shares_by_group(labels, ["coding", "writing"]).set_index(["model", "group", "category"])
    assert fig.loc[("vicuna", "1-4", "coding"), ["share", "share_std"]].tolist() == [1.0, 0.0]
    assert fig.loc[("vicuna", "1-4", "writing"), ["share", "share_std"]].tolist() == [0.5, 0.5]
    assert fig.loc[("vicuna", "5-8", "coding"), "share"] == 0.0
    concepts = released.load_annotations("concept", folder)
    assert set(concepts.label) == {"Semantic"} and sorted(concepts.seed.unique()) == list(range(5))


def test_our_explanations_use_the_same_functions():
    frame = pd.DataFrame({"layer": [3, 3, 3], "head": [1, 1, 1], "dim": [0, 1, 1],
                          "query": ["write", "essay", "run"], "key": ["essay", "write", "walk"]})
    pairs = shift.pairs_from_explanations(frame, "tuned")
    assert pairs.pair.tolist() == ["essay=write", "essay=write", "run=walk"]
    counts = shift.head_word_counts(pairs)
    assert sorted(counts.word) == ["essay", "write"]


def test_missing_files_and_bad_kinds_fail_clearly(tmp_path):
    assert not released.released_available(tmp_path)
    with pytest.raises(FileNotFoundError, match="download_released"):
        released.load_bilinear_pairs(tmp_path)
    with pytest.raises(ValueError, match="kind must be one of"):
        released.load_annotations("level", tmp_path)
    assert shift.layer_group_label(9, 8) == "9-16" and shift.layer_group_label(0, 4) == "1-4"


def test_download_writes_files_and_refuses_lfs_pointers(tmp_path, monkeypatch):
    import io
    import urllib.request

    served = {}

    def fake_urlopen(url, timeout):
        served[url] = True
        body = b"version https://git-lfs.github.com/spec/v1\n" if url.endswith("seed4.tsv") else b"a\tb\n"
        return io.BytesIO(body)

    monkeypatch.setattr(urllib.request, "urlopen", fake_urlopen)
    with pytest.raises(ValueError, match="Git LFS pointer"):
        released.download_released(tmp_path)
    assert (tmp_path / released.BILINEAR_PARTS[0]).read_text() == "a\tb\n"
    assert released.COMMIT in next(iter(served))

    def offline(url, timeout):
        raise OSError("no network")

    monkeypatch.setattr(urllib.request, "urlopen", offline)
    with pytest.raises(ValueError, match="need network access"):
        released.download_released(tmp_path / "other")
