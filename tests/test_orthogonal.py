"""The square rotations' parametrization (nbtoolkit.das.orthogonal) against PyTorch's own
``orthogonal`` (pyvene's): the same weights and gradients up to float rounding, the same DAS
training run, the same saved files."""

import pytest
import torch
from torch.nn.utils.parametrizations import orthogonal as torch_orthogonal

from nbtoolkit.das import RotatedSubspace, fit, iia, train_das
from nbtoolkit.das.orthogonal import _OrthogonalMap, orthogonal
from nbtoolkit.das.rotations import set_orthogonal
from nbtoolkit.tasks import hierarchical_equality as he


def layer(parametrize, original, base):
    """A bias-free Linear whose ``weight`` [n, n] is ``parametrize``d with these parameters."""
    n = original.shape[0]
    lin = torch.nn.Linear(n, n, bias=False, dtype=original.dtype)
    lin.weight = torch.nn.Parameter(torch.eye(n, dtype=original.dtype))
    parametrize(lin)
    with torch.no_grad():
        lin.parametrizations.weight.original.copy_(original)
    lin.parametrizations.weight[0].base = base.clone()
    return lin


def weight_and_gradient(lin, G):
    W = lin.weight
    (W * G).sum().backward()
    return W.detach(), lin.parametrizations.weight.original.grad


def skew_with_repeated_eigenvalues(n):
    """original whose A = T − Tᵀ is block-diagonal with one 2×2 rotation generator repeated:
    every eigenvalue ±0.7i has multiplicity n/2 (the divided differences meet equal eigenvalues)."""
    X = torch.zeros(n, n, dtype=torch.float64)
    for i in range(0, n, 2):
        X[i + 1, i] = 0.7
    return X


@pytest.mark.parametrize("n", [1, 5, 16, 64])
@pytest.mark.parametrize("scale", [0.0, 1e-3, 0.3, 3.0])
def test_weight_and_gradient_equal_pytorchs(n, scale):
    g = torch.Generator().manual_seed(n)
    original = torch.randn(n, n, generator=g, dtype=torch.float64) * scale
    base = torch.linalg.qr(torch.randn(n, n, generator=g, dtype=torch.float64))[0]
    G = torch.randn(n, n, generator=g, dtype=torch.float64)
    ours = weight_and_gradient(layer(orthogonal, original, base), G)
    theirs = weight_and_gradient(layer(torch_orthogonal, original, base), G)
    torch.testing.assert_close(ours, theirs, atol=1e-12, rtol=1e-11)
    # float32: within float rounding of the float64 result
    ours32 = weight_and_gradient(layer(orthogonal, original.float(), base.float()), G.float())
    for a, b in zip(ours32, theirs):
        assert (a.double() - b).abs().max() <= 5e-5 * max(1.0, b.abs().max())
    assert torch.allclose(ours[0].T @ ours[0], torch.eye(n, dtype=torch.float64), atol=1e-12)


def test_repeated_eigenvalues_and_gradcheck():
    X = skew_with_repeated_eigenvalues(6).requires_grad_()
    base = torch.linalg.qr(torch.randn(6, 6, dtype=torch.float64))[0]
    assert torch.autograd.gradcheck(lambda x: _OrthogonalMap.apply(x, base), (X,))
    zero = (-torch.eye(6, dtype=torch.float64)).requires_grad_()  # A = 0: one eigenvalue, 6 times
    assert torch.autograd.gradcheck(lambda x: _OrthogonalMap.apply(x, base), (zero,))
    G = torch.randn(6, 6, dtype=torch.float64)
    ours = weight_and_gradient(layer(orthogonal, X.detach(), base), G)
    theirs = weight_and_gradient(layer(torch_orthogonal, X.detach(), base), G)
    torch.testing.assert_close(ours, theirs, atol=1e-12, rtol=1e-11)


def test_half_precision_weights_compute_in_float32():
    original = torch.randn(8, 8) * 0.3
    base = torch.linalg.qr(torch.randn(8, 8))[0]
    full = layer(orthogonal, original, base).weight.detach()
    half = layer(orthogonal, original.bfloat16(), base.bfloat16()).weight
    assert half.dtype == torch.bfloat16
    assert (half.float() - full).abs().max() < 2e-2


def test_assigning_a_weight():
    lin = layer(orthogonal, torch.zeros(4, 4), torch.eye(4))
    Q = torch.linalg.qr(torch.randn(4, 4))[0]
    lin.weight = Q
    assert torch.equal(lin.weight, Q)  # stored as the base, bit for bit
    with pytest.raises(ValueError, match=r"orthogonal \[4, 4\].*max \|QᵀQ − I\| = "):
        lin.weight = 2 * Q
    with pytest.raises(ValueError, match=r"got shape \(4, 3\)"):
        lin.weight = Q[:, :3]
    with pytest.raises(ValueError, match=r"square weight, got \(4, 3\)"):
        orthogonal(torch.nn.Linear(3, 4, bias=False).requires_grad_(False))


def test_das_training_run_equals_pytorchs_parametrization():
    """The whole train_das run (Adam, warm-up, 80 steps on hierarchical equality) with our
    parametrization vs with PyTorch's on the same initial rotation: the rotation and the IIA
    agree to float noise, and a state dict of either loads into the other."""
    net = he.mlp(seed=0)
    fit(net, he.factual_dataset(4000, seed=1), epochs=3, batch_size=256, lr=3e-3, progress=False)
    train, test = he.counterfactual_dataset(5120, seed=3), he.counterfactual_dataset(1000, seed=4)
    runs = []
    for parametrize in (orthogonal, torch_orthogonal):
        rot = RotatedSubspace(16, 8, seed=0)
        start = rot.rotation.detach().clone()
        rot.rotate = torch.nn.Linear(16, 16, bias=False)
        rot.rotate.weight = torch.nn.Parameter(start.clone())
        with torch.random.fork_rng(devices=[]):
            parametrize(rot.rotate)
        set_orthogonal(rot.rotate, start)
        result = train_das(net, rot, "layers.0", train, epochs=2, batch_size=128, lr=3e-2,
                           progress=False)
        runs.append((rot, result.history["loss"].to_numpy(), iia(net, rot, "layers.0", test)))
    (ours, loss, ours_iia), (theirs, their_loss, their_iia) = runs
    moved = (ours.rotation - RotatedSubspace(16, 8, seed=0).rotation).abs().max()
    assert moved > 0.05  # training changed the rotation
    assert (ours.rotation - theirs.rotation).abs().max() < 1e-4
    assert abs(loss - their_loss).max() < 1e-4 and ours_iia == pytest.approx(their_iia, abs=2e-3)
    swapped = RotatedSubspace(16, 8, seed=1)  # ours, loading PyTorch's parametrization's file
    swapped.load_state_dict(theirs.state_dict(), strict=True)
    torch.testing.assert_close(swapped.rotation, theirs.rotation, atol=1e-6, rtol=0)


@pytest.mark.parametrize("bad", [float("nan"), float("inf")])
def test_a_non_finite_parameter_gives_a_nan_weight_as_pytorchs(bad):
    original, base = torch.zeros(4, 4), torch.eye(4)
    original[2, 1] = bad
    ours = layer(orthogonal, original, base)
    assert torch.isnan(ours.weight).all()
    assert torch.isnan(layer(torch_orthogonal, original, base).weight).any()
    ours.weight.sum().backward()
    assert torch.isnan(ours.parametrizations.weight.original.grad).any()


@pytest.mark.skipif(not torch.cuda.is_available(),
                    reason="no CUDA device on this machine; runs where torch.cuda.is_available()")
def test_on_the_gpu_equals_pytorchs():
    g = torch.Generator().manual_seed(0)
    original = torch.randn(256, 256, generator=g) * 0.1
    base = torch.linalg.qr(torch.randn(256, 256, generator=g))[0]
    G = torch.randn(256, 256, generator=g)
    ours = weight_and_gradient(layer(orthogonal, original, base).cuda(), G.cuda())
    theirs = weight_and_gradient(layer(torch_orthogonal, original, base), G)
    for a, b in zip(ours, theirs):
        assert (a.cpu() - b).abs().max() <= 1e-4 * b.abs().max()
