"""Trainable interchange interventions against hand-written references; save/load safety."""

import json
import pickle

import pytest
import torch

from conftest import hook_count
from nbtoolkit import Set, capture, patch
from nbtoolkit.das.rotations import (BoundlessRotatedSubspace, Interchange, LowRankRotatedSubspace,
                                    NeuronSubspace, RotatedSubspace, load_intervention,
                                    save_intervention, set_orthogonal)

G = torch.Generator().manual_seed(0)


def pair(n=5, d=8):
    return torch.randn(n, d, generator=G), torch.randn(n, d, generator=G)


def test_rotated_interchange_matches_matrix_reference():
    rot = RotatedSubspace(8, 3, seed=1)
    base, source = pair()
    R = rot.rotation.detach().double()
    P = torch.diag(torch.tensor([1.0] * 3 + [0.0] * 5, dtype=torch.double))
    # out = Rᵀ-back of: source's rotated coords 0..2, base's elsewhere
    expected = (base.double() @ R @ (torch.eye(8, dtype=torch.double) - P) + source.double() @ R @ P) @ R.T
    torch.testing.assert_close(rot(base, source).double(), expected, atol=1e-5, rtol=0)


def test_blocks_pick_disjoint_coordinates_per_example():
    rot = RotatedSubspace(8, 4, seed=2)
    set_orthogonal(rot.rotate, torch.eye(8))
    base, source = pair(2)
    out = rot(base, source, torch.tensor([0, 1]))
    torch.testing.assert_close(out[0], torch.cat([source[0, :4], base[0, 4:]]))
    torch.testing.assert_close(out[1], torch.cat([base[1, :4], source[1, 4:]]))
    with pytest.raises(ValueError, match="block ids must be in 0..1"):
        rot(base, source, torch.tensor([0, 2]))


def test_per_example_blocks_and_extra_leading_dims_match_the_matrix_reference():
    rot = RotatedSubspace(8, 4, seed=3)
    R = rot.rotation.detach().double()
    base, source = pair(6)
    blocks = torch.tensor([0, 1, 1, 0, 1, 0])
    out = rot(base, source, blocks).double()
    for i, j in enumerate(blocks.tolist()):
        P = torch.zeros(8, dtype=torch.double)
        P[4 * j:4 * j + 4] = 1  # rotated coordinates of block j come from the source
        expected = (base[i].double() @ R * (1 - P) + source[i].double() @ R * P) @ R.T
        torch.testing.assert_close(out[i], expected, atol=1e-5, rtol=0)
    # activations with extra leading axes (e.g. per-head cells [n, heads, d]) rotate row by row
    stacked = rot(torch.stack([base, source], 1), torch.stack([source, base], 1), 1)
    torch.testing.assert_close(stacked[:, 0], rot(base, source, 1))
    torch.testing.assert_close(stacked[:, 1], rot(source, base, 1))


def test_full_rank_interchange_is_the_source():
    base, source = pair()
    for seed in (0, 3):
        rot = RotatedSubspace(8, 8, seed=seed)
        torch.testing.assert_close(rot(base, source), source, atol=1e-5, rtol=0)


def test_identity_rotation_full_interchange_equals_set_in_a_transformer(tiny_llama):
    lm = tiny_llama
    base, src = lm.encode("The cat sat on"), lm.encode("A dog ran fast")
    with capture(lm, "layer.1") as acts, torch.no_grad():
        lm.model(**src)
    rot = RotatedSubspace(lm.d_model, lm.d_model)
    set_orthogonal(rot.rotate, torch.eye(lm.d_model))
    with torch.no_grad():
        with patch(lm, {"layer.1": Set(acts["layer.1"], at=[2, -1])}):
            want = lm.model(**base).logits
        with patch(lm, {"layer.1": Interchange(rot, acts["layer.1"], at=[2, -1])}):
            got_full = lm.model(**base).logits
        # the source given as just the selected positions [batch, 2, d]
        with patch(lm, {"layer.1": Interchange(rot, acts["layer.1"][:, [2, -1]], at=[2, -1])}):
            got_slice = lm.model(**base).logits
    torch.testing.assert_close(got_full, want)
    torch.testing.assert_close(got_slice, want)
    assert hook_count(lm.model) == 0


def test_every_position_fast_path_matches_general_path(tiny_llama):
    lm = tiny_llama
    base, src = lm.encode("The cat sat"), lm.encode("The dog ran")
    with capture(lm, "layer.0") as acts, torch.no_grad():
        lm.model(**src)
    rot = RotatedSubspace(lm.d_model, 16, seed=4)
    with torch.no_grad():
        with patch(lm, {"layer.0": Interchange(rot, acts["layer.0"], at=None)}):
            fast = lm.model(**base).logits
        n = base["input_ids"].shape[1]
        with patch(lm, {"layer.0": Interchange(rot, acts["layer.0"], at=list(range(n)))}):
            general = lm.model(**base).logits
    torch.testing.assert_close(fast, general)


def test_low_rank_matches_projection_reference():
    lr = LowRankRotatedSubspace(8, 2, seed=5)
    W = lr.basis.detach()
    torch.testing.assert_close(W.T @ W, torch.eye(2), atol=1e-5, rtol=0)
    base, source = pair()
    torch.testing.assert_close(lr(base, source), base + (source - base) @ W @ W.T,
                               atol=1e-5, rtol=0)


def _rotated_block(rot):
    """(W [d, k], weights [k] or None) of a subspace's block 0, live (gradients flow)."""
    if isinstance(rot, RotatedSubspace):
        return rot.rotation[:, :rot.k], None
    if isinstance(rot, LowRankRotatedSubspace):
        return rot.basis, None
    return rot.rotation, rot.masks()[0]


@pytest.mark.parametrize("make", [lambda: RotatedSubspace(8, 3, seed=1),  # through 3 coordinates
                                  lambda: RotatedSubspace(8, 4, seed=1),  # through an 8x8 matrix
                                  lambda: LowRankRotatedSubspace(8, 2, seed=1),
                                  lambda: BoundlessRotatedSubspace(8, init=0.4, temperature=0.5)])
def test_one_subspace_for_every_row_matches_the_reference_values_and_gradients(make):
    # b + ((s − b) W ⊙ m) Wᵀ is computed through k coordinates or as one d×d matrix, whichever
    # multiplies less: the same values and the same gradients for the parameters either way
    rot = make()
    base, source = pair(n=6)
    grad_out = torch.randn(6, 8, generator=G)
    params = list(rot.parameters())
    out = rot(base, source)
    ours = torch.autograd.grad((out * grad_out).sum(), params)
    W, weights = _rotated_block(rot)
    coords = (source - base) @ W
    expected = base + (coords if weights is None else coords * weights) @ W.T
    reference = torch.autograd.grad((expected * grad_out).sum(), params)
    torch.testing.assert_close(out, expected, atol=1e-5, rtol=0)
    for got, want in zip(ours, reference):
        torch.testing.assert_close(got, want, atol=1e-5, rtol=1e-5)


def test_neuron_subspace_swaps_named_neurons():
    base, source = pair()
    out = NeuronSubspace(8, [1, 6])(base, source)
    expected = base.clone()
    expected[:, [1, 6]] = source[:, [1, 6]]
    torch.testing.assert_close(out, expected)
    with pytest.raises(ValueError, match="neuron indices in 0..7"):
        NeuronSubspace(8, [9])


def test_rotation_stays_orthogonal_through_training():
    rot = RotatedSubspace(8, 4, seed=0)
    start = rot.rotation.detach().clone()
    optimizer = torch.optim.Adam(rot.parameters(), lr=0.05)
    base, source = pair(32)
    target = torch.randn(32, 8, generator=G)
    for _ in range(50):
        loss = (rot(base, source) - target).pow(2).mean()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        R = rot.rotation.detach()
        torch.testing.assert_close(R.T @ R, torch.eye(8), atol=1e-4, rtol=0)
    assert (rot.rotation.detach() - start).abs().max() > 0.1  # it did move


def test_boundless_masks_harden_as_temperature_falls():
    bd = BoundlessRotatedSubspace(16, init=0.375)  # block [0, 6): coords 0..5 swapped
    soft = bd.masks().detach()
    assert ((soft > 0.05) & (soft < 0.95)).float().mean() > 0.9  # τ = 50: everything soft
    hard_values = []
    for tau in (5.0, 0.5, 0.01):
        bd.set_temperature(tau)
        m = bd.masks().detach()[0]
        hard_values.append(torch.minimum(m, 1 - m).max().item())
    assert hard_values[0] > hard_values[1] > hard_values[2]
    expected = (torch.arange(16) + 0.5 < 6).float()
    torch.testing.assert_close(bd.masks().detach()[0], expected, atol=1e-6, rtol=0)
    assert bd.subspace_sizes() == pytest.approx([6.0])


def test_boundless_full_hard_mask_is_full_interchange_and_two_variables_split():
    bd = BoundlessRotatedSubspace(8, init=1.0)
    bd.set_temperature(1e-3)
    base, source = pair()
    torch.testing.assert_close(bd(base, source), source, atol=1e-5, rtol=0)
    two = BoundlessRotatedSubspace(8, n_variables=2, init=1.0)
    two.set_temperature(1e-3)
    set_orthogonal(two.rotate, torch.eye(8))
    out = two(base[:2], source[:2], torch.tensor([0, 1]))
    torch.testing.assert_close(out[0], torch.cat([source[0, :4], base[0, 4:]]))
    torch.testing.assert_close(out[1], torch.cat([base[1, :4], source[1, 4:]]))


def test_bf16_activations_are_rotated_in_the_weight_dtype():
    rot = RotatedSubspace(8, 3)
    base, source = pair()
    out = rot(base.bfloat16(), source.bfloat16())
    assert out.dtype == torch.bfloat16
    ref = rot(base.bfloat16().float(), source.bfloat16().float())
    torch.testing.assert_close(out.float(), ref, atol=0.05, rtol=0)


def test_two_dimensional_activations_without_positions():
    mlp = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.ReLU(), torch.nn.Linear(8, 2))
    x, xs = torch.randn(3, 4, generator=G), torch.randn(3, 4, generator=G)
    with torch.no_grad(), capture(mlp, "1") as acts:
        mlp(xs)
    rot = RotatedSubspace(8, 8)
    with torch.no_grad(), patch(mlp, {"1": Interchange(rot, acts["1"])}):
        out = mlp(x)
    torch.testing.assert_close(out, mlp(xs), atol=1e-5, rtol=0)


def test_bad_arguments_name_the_problem():
    with pytest.raises(ValueError, match="k must be an int in 1..8"):
        RotatedSubspace(8, 0)
    with pytest.raises(ValueError, match="d must be a positive int"):
        RotatedSubspace(0, 1)
    with pytest.raises(ValueError, match="width 5 but .* d=8"):
        Interchange(RotatedSubspace(8, 2), torch.zeros(2, 5))
    with pytest.raises(TypeError, match="source must be a torch.Tensor"):
        Interchange(RotatedSubspace(8, 2), [1.0] * 8)
    with pytest.raises(TypeError, match="subspace must be a RotatedSubspace"):
        Interchange(torch.nn.Linear(8, 8), torch.zeros(2, 8))


# ------------------------------------------------------------------ save / load

KINDS = [lambda: RotatedSubspace(8, 3, seed=7), lambda: LowRankRotatedSubspace(8, 2, seed=7),
         lambda: BoundlessRotatedSubspace(8, n_variables=2, init=0.3, seed=7),
         lambda: NeuronSubspace(8, [[0, 2], [5]])]


def _perturb(module):
    """Move the trainable state off its initialisation, so a load that re-initialises fails."""
    if isinstance(module, NeuronSubspace):
        return
    optimizer = torch.optim.SGD(module.parameters(), lr=0.3)
    base, source = pair(16)
    module(base, source, torch.zeros(16, dtype=torch.long)).sum().backward()
    optimizer.step()
    if isinstance(module, BoundlessRotatedSubspace):
        module.set_temperature(0.7)


@pytest.mark.parametrize("make", KINDS)
def test_save_load_gives_identical_outputs(tmp_path, make):
    original = make()
    _perturb(original)
    save_intervention(original, tmp_path / "rot")
    assert sorted(p.name for p in (tmp_path / "rot").iterdir()) == ["intervention.json",
                                                                     "intervention.safetensors"]
    loaded = load_intervention(tmp_path / "rot")
    assert type(loaded) is type(original)
    base, source = pair(6)
    block = torch.tensor([0, 1, 0, 1, 0, 1]) if not isinstance(original, LowRankRotatedSubspace) \
        else 0
    block = 0 if isinstance(original, RotatedSubspace) and original.n_blocks < 2 else block
    with torch.no_grad():
        assert torch.equal(loaded(base, source, block),
                           original(base, source, block))


def test_loaded_rotation_is_trainable(tmp_path):
    save_intervention(RotatedSubspace(8, 3), tmp_path)
    loaded = load_intervention(tmp_path)
    params = [p for p in loaded.parameters() if p.requires_grad]
    assert params and all(p.grad is None for p in params)
    base, source = pair()
    loaded(base, source).sum().backward()
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in params)


def _rewrite(folder, **changes):
    meta = json.loads((folder / "intervention.json").read_text())
    meta.update(changes)
    (folder / "intervention.json").write_text(json.dumps(meta))


def test_unknown_kind_is_refused(tmp_path):
    save_intervention(RotatedSubspace(8, 3), tmp_path)
    _rewrite(tmp_path, kind="os.system")
    with pytest.raises(ValueError, match="unknown intervention kind 'os.system'; allowed kinds"):
        load_intervention(tmp_path)


def test_wrong_tensor_shape_is_refused(tmp_path):
    save_intervention(RotatedSubspace(8, 3), tmp_path)
    _rewrite(tmp_path, config={"d": 6, "k": 3, "seed": 0})
    with pytest.raises(ValueError, match=r"(?s)do not fit RotatedSubspace.*size mismatch"):
        load_intervention(tmp_path)


def test_missing_and_non_orthogonal_tensors_are_refused(tmp_path):
    from safetensors.torch import save_file

    save_intervention(BoundlessRotatedSubspace(8), tmp_path)
    save_file({"rotation": torch.eye(8)}, str(tmp_path / "intervention.safetensors"))
    with pytest.raises(ValueError, match="(?s)do not fit BoundlessRotatedSubspace.*Missing key"):
        load_intervention(tmp_path)
    rot = RotatedSubspace(8, 3)
    save_intervention(rot, tmp_path)
    state = dict(rot.state_dict())
    state["rotate.parametrizations.weight.0.base"] = 2 * torch.eye(8)
    save_file(state, str(tmp_path / "intervention.safetensors"))
    with pytest.raises(ValueError, match="not orthonormal"):
        load_intervention(tmp_path)
    state["rotate.parametrizations.weight.0.base"] = torch.full((8, 8), float("nan"))
    save_file(state, str(tmp_path / "intervention.safetensors"))
    with pytest.raises(ValueError, match="non-finite"):
        load_intervention(tmp_path)


def test_bad_config_and_missing_files_are_refused(tmp_path):
    with pytest.raises(ValueError, match="not a saved intervention"):
        load_intervention(tmp_path)
    save_intervention(RotatedSubspace(8, 3), tmp_path)
    _rewrite(tmp_path, config={"d": 8, "k": 3, "evil": 1})
    with pytest.raises(ValueError, match="bad config for RotatedSubspace"):
        load_intervention(tmp_path)
    (tmp_path / "intervention.json").write_text("{not json")
    with pytest.raises(ValueError, match="not valid JSON"):
        load_intervention(tmp_path)


def test_loading_never_unpickles(tmp_path, monkeypatch):
    save_intervention(RotatedSubspace(8, 3), tmp_path)

    def refuse(*args, **kwargs):
        raise AssertionError("pickle used")

    monkeypatch.setattr(torch, "load", refuse)
    monkeypatch.setattr(pickle, "load", refuse)
    monkeypatch.setattr(pickle, "loads", refuse)
    assert isinstance(load_intervention(tmp_path), RotatedSubspace)
