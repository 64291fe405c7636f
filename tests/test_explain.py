"""Weight-based explanations (Wu et al. 2310.00492): planted word pairs, PCA, FFN concept words."""

import string

import numpy as np
import pandas as pd
import pytest
import torch

import nbtoolkit as nb
from nbtoolkit.core.hooks import capture
from nbtoolkit.instruction_shift import (Concepts, WordPairs, attention_word_pairs, ffn_components,
                                         ffn_concepts, head_query_key, model_annotator,
                                         output_word_vectors, similarity_thresholds, word_counts,
                                         word_vectors)

LETTERS = list(string.ascii_lowercase)


@pytest.fixture(scope="module")
def planted():
    """Layer 1, head 1 of a tiny llama: query dim 0 reads a (+5), b (+4); its key head reads c (+5), d (-4)."""
    lm = nb.tiny_model("llama", seed=3)
    tok = lm.tokenizer
    with torch.no_grad():
        emb = lm.model.get_input_embeddings().weight
        emb.zero_()
        for i, letter in enumerate(LETTERS):
            space, tid = tok(" " + letter, add_special_tokens=False)["input_ids"]
            emb[tid, i] = 2.0  # word vector = mean(0, 2 e_i) = e_i
        block = lm.model.model.layers[1]
        block.input_layernorm.weight.fill_(1.0)
        gen = torch.Generator().manual_seed(0)
        attn = block.self_attn
        attn.q_proj.weight.copy_(0.01 * torch.randn(attn.q_proj.weight.shape, generator=gen))
        attn.k_proj.weight.copy_(0.01 * torch.randn(attn.k_proj.weight.shape, generator=gen))
        d_head = 64 // 4
        q_row, k_row = 1 * d_head, 0  # head 1 shares key head 1 // (4 // 2) = 0
        attn.q_proj.weight[q_row, [0, 1]] = torch.tensor([5.0, 4.0])
        attn.k_proj.weight[k_row, [2, 3]] = torch.tensor([5.0, -4.0])
    assert space == tok(" ", add_special_tokens=False)["input_ids"][0]
    return lm


def _letter_similarity():
    sim = np.eye(26)
    a, b, c, d = 0, 1, 2, 3
    for i, j in [(a, c), (b, c), (a, d)]:
        sim[i, j] = sim[j, i] = 0.9
    return sim


def test_planted_pairs_recovered(planted):
    result = attention_word_pairs(planted, 1, 1, LETTERS, top_k=2, similarity=_letter_similarity())
    assert isinstance(result, WordPairs) and (result.layer, result.head) == (1, 1)
    pairs = result.to_frame()
    assert len(result) == len(pairs) and result.queries == pairs["query"].tolist()
    top = pairs[pairs.dim_rank == 0]
    assert set(top.dim) == {0}
    # a-c and b-c: positive product and similar; a-d: similar but negative product; b-d: dissimilar
    assert set(zip(top["query"], top["key"])) == {("a", "c"), ("b", "c")}
    assert top["product"].tolist() == pytest.approx([25.0, 20.0], rel=1e-3)
    assert (pairs["product"] > 0).all() and (pairs["query"] != pairs["key"]).all()
    # a callable similarity gives the same answer
    again = attention_word_pairs(planted, 1, 1, LETTERS, top_k=2,
                                 similarity=lambda words: _letter_similarity())
    pd.testing.assert_frame_equal(pairs, again.to_frame())
    # head 0 shares the key head but not the planted query row
    other = attention_word_pairs(planted, 1, 0, LETTERS, top_k=2,
                                 similarity=_letter_similarity()).to_frame()
    assert ("a", "c") not in set(zip(other["query"], other["key"]))


def test_planted_query_key_values(planted):
    vectors = word_vectors(planted, LETTERS)
    torch.testing.assert_close(vectors, torch.eye(26, 64, dtype=torch.float64))
    hq, hk = head_query_key(planted, 1, 1, vectors)
    scale = 1 / (1 + 1e-6) ** 0.5  # the norm's output on ones: gain / sqrt(1 + eps)
    assert hq[0, 0].item() == pytest.approx(5.0 * scale, rel=1e-4)
    assert hk[3, 0].item() == pytest.approx(-4.0 * scale, rel=1e-4)


def test_default_similarity_is_model_embedding_cosine(planted):
    # letters have orthogonal embeddings: nothing is similar, so no pair survives
    pairs = attention_word_pairs(planted, 1, 1, LETTERS, top_k=5)
    assert len(pairs) == 0 and pairs.to_frame().empty


def test_similarity_thresholds_hand_computed():
    sim = np.array([[1.0, 0.2, 0.0], [0.2, 1.0, 0.4], [0.0, 0.4, 1.0]])
    expected = sim.mean(axis=1) + 1.96 * sim.std(axis=1)
    np.testing.assert_allclose(similarity_thresholds(sim), expected)
    np.testing.assert_allclose(similarity_thresholds(sim, n_reference=2, z=1.0),
                               sim[:, :2].mean(1) + sim[:, :2].std(1))


def test_gemma_query_key_match_the_model():
    """Gemma-3's q_norm/k_norm: our per-head queries equal the model's own (pre-RoPE) ones."""
    lm = nb.tiny_model("gemma3", seed=0)
    ids = lm.tokenizer("hello there", return_tensors="pt")["input_ids"]
    with capture(lm, ["layer.1.in", "model.layers.1.self_attn.q_norm",
                      "model.layers.1.self_attn.k_norm"]) as acts:
        lm.model(input_ids=ids)
    x = acts["layer.1.in"][0].double()
    for head in range(4):
        hq, hk = head_query_key(lm, 1, head, x)
        # [batch, heads, seq, d_head]; q_norm is scale-invariant, so the input RMS normalisation
        # we skip does not matter
        torch.testing.assert_close(hq.float(), acts["model.layers.1.self_attn.q_norm"][0, head],
                                   rtol=1e-3, atol=1e-4)
        torch.testing.assert_close(hk.float(), acts["model.layers.1.self_attn.k_norm"][0, head // 2],
                                   rtol=1e-3, atol=1e-4)


def test_word_counts_keeps_pairs_in_two_dims():
    pairs = pd.DataFrame(dict(layer=[0, 0, 0, 0, 1], head=[0, 0, 0, 0, 0], dim=[1, 2, 1, 3, 1],
                              query=["write", "essay", "go", "run", "write"],
                              key=["essay", "write", "run", "go", "essay"]))
    counts = word_counts(pairs)
    # layer 0: write-essay in dims 1, 2 and go-run in dims 1, 3 -> kept; layer 1: one dim -> dropped
    assert sorted(zip(counts.layer, counts.word, counts["count"])) == \
        [(0, "essay", 1), (0, "go", 1), (0, "run", 1), (0, "write", 1)]
    assert word_counts(pairs, min_dims=3).empty


def test_ffn_components_orthonormal_and_match_pca():
    lm = nb.tiny_model("llama", seed=4)
    comps, explained = ffn_components(lm, 2)
    torch.testing.assert_close(comps @ comps.T, torch.eye(64, dtype=torch.float64), atol=1e-10, rtol=0)
    assert explained.sum().item() == pytest.approx(1.0)
    assert (explained[:-1] >= explained[1:]).all()
    values = lm.model.model.layers[2].mlp.down_proj.weight.detach().double().T.numpy()
    cov = np.cov(values, rowvar=False)  # [d, d], (n - 1) normalised
    eig = np.sort(np.linalg.eigvalsh(cov))[::-1]
    np.testing.assert_allclose(explained.numpy(), eig / eig.sum(), rtol=1e-8, atol=1e-12)
    # each component is an eigenvector of the covariance
    c0 = comps[0].numpy()
    np.testing.assert_allclose(cov @ c0, eig[0] * c0, atol=1e-10)


def test_ffn_concepts_words_and_annotator():
    lm = nb.tiny_model("llama", seed=4)
    seen = []

    def annotator(word_lists):
        seen.extend(word_lists)
        return [f"concept {i}" for i in range(len(word_lists))]

    concepts = ffn_concepts(lm, 1, n_components=3, top_k=4, words=LETTERS, annotator=annotator)
    assert isinstance(concepts, Concepts) and len(concepts) == 3 and concepts.layer == 1
    frame = concepts.to_frame()
    assert frame["label"].tolist() == ["concept 0", "concept 1", "concept 2"]
    assert seen == frame["words"].tolist()
    comps, explained = ffn_components(lm, 1)
    vocab = torch.nn.functional.normalize(output_word_vectors(lm, LETTERS), dim=-1)
    cos = (vocab @ comps[1]).abs().numpy()
    assert frame["words"][1] == [LETTERS[i] for i in np.argsort(-cos)[:4]]
    np.testing.assert_allclose(frame["score"], explained[:3].numpy())
    assert ffn_concepts(lm, 1, 2, 3, words=LETTERS, annotator=False).to_frame()["label"].isna().all()


def test_model_annotator_returns_categories():
    lm = nb.tiny_model("llama", seed=4)
    labels = model_annotator(lm, ["writing", "math", "coding"])([["a", "b"], ["c"], ["x", "y"]])
    assert len(labels) == 3 and set(labels) <= {"writing", "math", "coding"}


def test_explain_bad_inputs(planted):
    with pytest.raises(ValueError, match="unique"):
        attention_word_pairs(planted, 1, 1, ["a", "a", "b"])
    with pytest.raises(TypeError, match="list of strings"):
        attention_word_pairs(planted, 1, 1, "abc")
    with pytest.raises(ValueError, match="layer must be"):
        attention_word_pairs(planted, 7, 1, LETTERS)
    with pytest.raises(ValueError, match="head must be"):
        attention_word_pairs(planted, 1, 4, LETTERS)
    with pytest.raises(ValueError, match="similarity must be"):
        attention_word_pairs(planted, 1, 1, LETTERS, similarity=np.eye(3))
    with pytest.raises(ValueError, match="top_k"):
        attention_word_pairs(planted, 1, 1, LETTERS, top_k=0)
    with pytest.raises(ValueError, match="not supported"):
        ffn_components(nb.tiny_model("gpt2"), 0)
    with pytest.raises(ValueError, match="labels for"):
        ffn_concepts(planted, 0, 2, 3, words=LETTERS, annotator=lambda lists: ["x"])
    with pytest.raises(ValueError, match="n_components"):
        ffn_concepts(planted, 0, 0, 3, words=LETTERS, annotator=False)
