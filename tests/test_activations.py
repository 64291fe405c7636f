"""Hidden-state extraction: values against plain HF forwards, the answer log-probs, and the cache."""

import json

import numpy as np
import pytest
import torch

import nbtoolkit
from nbtoolkit.ccs import activations
from nbtoolkit.ccs.activations import extract, load_cached
from nbtoolkit.core.modes import frozen
from nbtoolkit.data.contrast import load_contrast


@pytest.fixture(scope="module")
def lm():
    return nbtoolkit.tiny_model("llama", n_layers=2, d_model=32)


@pytest.fixture(scope="module")
def pairs():
    return load_contrast("arithmetic", templates=0, n=10, seed=1)[0]


def test_states_match_hidden_states_of_a_plain_forward(lm, pairs):
    st = extract(lm, pairs, cache=False, progress=False, batch_size=3)
    assert st.hidden_pos.shape == (10, lm.n_layers + 1, lm.d_model)
    assert st.layers == [-1, 0, 1]  # the embeddings, then after each block
    for i in (0, 7):
        for half, states in ((0, st.hidden_pos), (1, st.hidden_neg)):
            text = pairs.pairs[i][half]
            with torch.no_grad():
                out = lm.model(**lm.encode([text]), output_hidden_states=True)
            hs = out.hidden_states
            for index in range(lm.n_layers):  # HF hidden_states[i] is our layer i - 1
                np.testing.assert_allclose(states[i, index], hs[index][0, -1].numpy(), atol=1e-5)
            # HF's last entry is after the final norm; ours is the residual stream before it
            normed = lm.model.model.norm(torch.from_numpy(states[i, -1]))
            np.testing.assert_allclose(normed.detach().numpy(), hs[-1][0, -1].numpy(), atol=1e-4)
            # zero-shot: mean log-prob of the answer tokens given the prompt
            n_prompt = len(lm.tokenizer(pairs.prompts[i])["input_ids"])
            ids = lm.tokenizer(text)["input_ids"]
            logp = out.logits[0].log_softmax(-1)
            hand = np.mean([float(logp[j - 1, ids[j]]) for j in range(n_prompt, len(ids))])
            lp = (st.logp_pos, st.logp_neg)[half][i]
            assert lp == pytest.approx(hand, abs=1e-4)



def test_frozen_extraction_is_the_same_and_its_head_reads_contiguous_rows(lm, pairs):
    # ``logits_to_keep=keep`` would hand the LM head a strided [batch, keep, d] view, which torch
    # multiplies row by row when the weight needs no gradient: extraction was 1.4x slower frozen.
    contiguous = []
    head = lm.model.get_output_embeddings()
    handle = head.register_forward_pre_hook(lambda m, args: contiguous.append(args[0].is_contiguous()))
    try:
        trainable = extract(lm, pairs, cache=False, progress=False, batch_size=4)
        with frozen(lm.model):
            still = extract(lm, pairs, cache=False, progress=False, batch_size=4)
    finally:
        handle.remove()
    assert len(contiguous) == 10 and all(contiguous)  # 2 x 20 texts in batches of 4
    np.testing.assert_array_equal(still.hidden_pos, trainable.hidden_pos)
    np.testing.assert_array_equal(still.logp_neg, trainable.logp_neg)

def test_mean_pooling_and_layer_subset(lm, pairs):
    st = extract(lm, pairs, layers=[1, -1], pooling="mean", cache=False, progress=False)
    assert st.layers == [1, -1] and st.hidden_pos.shape == (10, 2, lm.d_model)
    text = pairs.pairs[4][0]
    with nbtoolkit.capture(lm, ["layer.1"]) as acts, torch.no_grad():
        lm.model(**lm.encode([text]))
    np.testing.assert_allclose(st.at(1)[0][4], acts["layer.1"][0].mean(0).numpy(), atol=1e-5)
    xp, xn = st.stack([-1, 1])
    assert xp.shape == (2, 10, lm.d_model)
    torch.testing.assert_close(xp[1], torch.from_numpy(st.hidden_pos[:, 0]))


def test_cache_round_trip_is_identical_and_skips_the_model(lm, pairs, tmp_path, monkeypatch):
    first = extract(lm, pairs, cache=tmp_path, chunk_size=4, progress=False)
    calls = []
    real = activations.forward_states
    monkeypatch.setattr(activations, "forward_states", lambda *a, **k: calls.append(1) or real(*a, **k))
    again = extract(lm, pairs, cache=tmp_path, chunk_size=4, progress=False)
    assert calls == []
    for name in ("hidden_pos", "hidden_neg", "logp_pos", "logp_neg", "labels", "row_ids"):
        np.testing.assert_array_equal(getattr(first, name), getattr(again, name))
    ds = load_cached(again.meta["cache"])
    assert len(ds) == 10 and "hidden_pos" in ds.column_names
    np.testing.assert_array_equal(np.asarray(ds.with_format("numpy")[:]["hidden_neg"]), first.hidden_neg)
    # another pooling is another cache entry
    extract(lm, pairs, cache=tmp_path, chunk_size=4, progress=False, pooling="mean")
    assert calls != []


def test_interrupted_run_resumes(lm, pairs, tmp_path, monkeypatch):
    real = activations.forward_states
    calls = []

    def flaky(*a, **k):
        calls.append(1)
        if len(calls) == 2:  # the second chunk dies half-way
            raise KeyboardInterrupt
        return real(*a, **k)

    monkeypatch.setattr(activations, "forward_states", flaky)
    with pytest.raises(KeyboardInterrupt):
        extract(lm, pairs, cache=tmp_path, chunk_size=4, batch_size=8, progress=False)
    calls.clear()
    monkeypatch.setattr(activations, "forward_states", lambda *a, **k: calls.append(1) or real(*a, **k))
    resumed = extract(lm, pairs, cache=tmp_path, chunk_size=4, batch_size=8, progress=False)
    assert len(calls) == 2  # chunks 2 and 3 only (one batch of 8 sequences each)
    fresh = extract(lm, pairs, cache=False, progress=False)
    np.testing.assert_allclose(resumed.hidden_pos, fresh.hidden_pos, atol=1e-5)


def test_corrupt_shard_is_detected_and_rebuilt(lm, pairs, tmp_path):
    first = extract(lm, pairs, cache=tmp_path, chunk_size=5, progress=False)
    folder = first.meta["cache"]
    arrow = sorted(p for p in __import__("pathlib").Path(folder).glob("shard-0000000-*/*.arrow"))[0]
    data = bytearray(arrow.read_bytes())
    data[-200] ^= 0xFF  # flip bits inside the float payload
    arrow.write_bytes(bytes(data))
    with pytest.warns(UserWarning, match="corrupt or mismatched"):
        again = extract(lm, pairs, cache=tmp_path, chunk_size=5, progress=False)
    np.testing.assert_array_equal(again.hidden_pos, first.hidden_pos)
    np.testing.assert_array_equal(again.hidden_neg, first.hidden_neg)


def test_mismatched_key_is_rebuilt(lm, pairs, tmp_path):
    first = extract(lm, pairs, cache=tmp_path, chunk_size=5, progress=False)
    key_file = __import__("pathlib").Path(first.meta["cache"]) / "key.json"
    key = json.loads(key_file.read_text())
    key["model_fingerprint"] = "somebody-else"
    key_file.write_text(json.dumps(key))
    with pytest.warns(UserWarning, match="does not match"):
        again = extract(lm, pairs, cache=tmp_path, chunk_size=5, progress=False)
    np.testing.assert_array_equal(again.hidden_pos, first.hidden_pos)
    assert json.loads(key_file.read_text())["model_fingerprint"] != "somebody-else"


def test_another_model_does_not_share_the_cache(lm, pairs, tmp_path):
    a = extract(lm, pairs, cache=tmp_path, progress=False)
    other = nbtoolkit.tiny_model("llama", n_layers=2, d_model=32, seed=1)
    b = extract(other, pairs, cache=tmp_path, progress=False)
    assert a.meta["cache"] != b.meta["cache"]
    assert not np.allclose(a.hidden_pos, b.hidden_pos)


def test_split_is_stratified_and_shared_across_templates(lm):
    sets = load_contrast("animals", templates=[0, 1], n=20)
    s0, s1 = (extract(lm, s, layers=[0], cache=False, progress=False) for s in sets)
    tr0, te0 = s0.split(0.6, seed=2)
    tr1, te1 = s1.split(0.6, seed=2)
    np.testing.assert_array_equal(tr0.row_ids, tr1.row_ids)
    assert len(tr0) == 12 and tr0.labels.sum() == 6 and len(te0) == 8


def test_bad_input(lm, pairs):
    with pytest.raises(ValueError, match=r"-1 \(embeddings\) .. 1 .*\[2\]"):
        extract(lm, pairs, layers=[2], cache=False)
    with pytest.raises(ValueError, match="pooling"):
        extract(lm, pairs, pooling="max", cache=False)
    with pytest.raises(TypeError, match="ContrastSet"):
        extract(lm, ["a", "b"], cache=False)
    with pytest.raises(ValueError, match="not extracted"):
        extract(lm, pairs, layers=[0], cache=False, progress=False).at(1)
