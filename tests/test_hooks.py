"""The patching core against hand-written references, on every family's tiny model."""

import pytest
import torch

from conftest import hook_count
from nbtoolkit import Add, Noise, Overlay, Set, Zero, capture, patch, tiny_model
from nbtoolkit.core.anatomy import resolve_site

PROMPTS = ["The capital of Spain is", "The capital of Italy is"]


def forward_replacing(lm, module, edit, batch):
    """Reference: run the model with ``module.forward`` wrapped so its output passes through
    ``edit`` (no hooks involved). A module running on flattened rows [batch·seq, d] (OPT's MLP)
    has its output viewed as [batch, seq, d] for ``edit``."""
    original = module.forward
    shape = batch["input_ids"].shape

    def edit_rows(out):
        return edit(out.view(*shape, -1)).reshape(out.shape) if out.dim() == 2 else edit(out)

    def replaced(*args, **kwargs):
        out = original(*args, **kwargs)
        if torch.is_tensor(out):
            return edit_rows(out)
        return (edit_rows(out[0]), *out[1:])

    module.forward = replaced
    try:
        with torch.no_grad():
            return lm.model(**batch).logits
    finally:
        del module.forward


def logits(lm, batch):
    with torch.no_grad():
        return lm.model(**batch).logits


@pytest.mark.parametrize("site", ["layer.1", "layer.1.mlp", "layer.0.attn", "embed"])
def test_interchange_equals_reference_forward(tiny, site):
    source, base = tiny.encode(PROMPTS[1]), tiny.encode(PROMPTS[0])
    with capture(tiny, site) as acts:
        logits(tiny, source)
    positions = [15, 17]  # inside "Spain" / "Italy" (byte-level tokens)
    with patch(tiny, {site: Set(acts[site], at=positions)}):
        patched = logits(tiny, base)

    def substitute(h):
        h = h.clone()
        h[:, positions] = acts[site][:, positions]
        return h

    module = resolve_site(tiny.model, site).module
    reference = forward_replacing(tiny, module, substitute, base)
    torch.testing.assert_close(patched, reference, atol=1e-6, rtol=0)
    assert not torch.allclose(patched, logits(tiny, base), atol=1e-6)  # the patch did something


def test_residual_input_equals_previous_output(tiny):
    with capture(tiny, ["layer.0", "layer.1.in"]) as acts:
        logits(tiny, tiny.encode(PROMPTS[0]))
    torch.testing.assert_close(acts["layer.1.in"], acts["layer.0"], atol=0, rtol=0)


def test_block_output_is_input_plus_attention_plus_mlp(tiny):
    """The attn and mlp sites are exactly the terms added to the residual stream."""
    with capture(tiny, ["layer.1.in", "layer.1.attn", "layer.1.mlp", "layer.1"]) as acts:
        logits(tiny, tiny.encode(PROMPTS[0]))
    total = acts["layer.1.in"] + acts["layer.1.attn"] + acts["layer.1.mlp"]
    torch.testing.assert_close(acts["layer.1"], total, atol=1e-5, rtol=1e-5)


def test_heads_site_feeds_the_output_projection(tiny):
    with capture(tiny, ["layer.1.attn.heads"]) as acts:
        logits(tiny, tiny.encode(PROMPTS[0]))
    heads = acts["layer.1.attn.heads"]
    assert heads.shape[2] == tiny.model.config.num_attention_heads
    # zeroing every head makes the attention term the projection's bias alone (zero without bias)
    with patch(tiny, {"layer.1.attn.heads": Zero()}), capture(tiny, "layer.1.attn") as acts2:
        logits(tiny, tiny.encode(PROMPTS[0]))
    bias = getattr(resolve_site(tiny.model, "layer.1.attn.heads").module, "bias", None)
    expected = torch.zeros_like(acts2["layer.1.attn"]) if bias is None else bias.expand_as(acts2["layer.1.attn"])
    if tiny.family != "gemma3":  # gemma3's attn site is after a post-norm of the projection
        torch.testing.assert_close(acts2["layer.1.attn"], expected)


def test_patching_a_head_changes_only_that_head(tiny_llama):
    batch = tiny_llama.encode(PROMPTS[0])
    with capture(tiny_llama, "layer.1.attn.heads") as clean:
        logits(tiny_llama, batch)
    with patch(tiny_llama, {"layer.1.attn.heads": Zero(at=[3], heads=[2])}), \
            capture(tiny_llama, "layer.1.attn.heads") as patched:
        logits(tiny_llama, batch)
    diff = (patched["layer.1.attn.heads"] - clean["layer.1.attn.heads"]).abs().sum(-1)[0]
    assert diff[3, 2] > 0 and diff.sum() == diff[3, 2]


def test_capture_matches_hf_hidden_states(tiny):
    batch = tiny.encode(PROMPTS)
    sites = [f"layer.{i}" for i in range(tiny.n_layers)]
    with capture(tiny, sites) as acts, torch.no_grad():
        hidden = tiny.model(**batch, output_hidden_states=True).hidden_states
    for i in range(tiny.n_layers - 1):  # the last entry has the final norm applied
        torch.testing.assert_close(acts[f"layer.{i}"], hidden[i + 1], atol=0, rtol=0)


def test_self_patch_is_bit_identical(tiny):
    batch = tiny.encode(PROMPTS)
    with capture(tiny, ["layer.1", "layer.2.mlp"]) as acts:
        clean = logits(tiny, batch)
    with patch(tiny, {"layer.1": Set(acts["layer.1"]), "layer.2.mlp": Set(acts["layer.2.mlp"], at=[1])}):
        patched = logits(tiny, batch)
    assert torch.equal(clean, patched)


def test_left_padded_batch_equals_one_by_one(tiny):
    prompts = ["Hi", "The capital of France is", "A b"]
    together = tiny.next_token_probs(prompts)
    alone = torch.cat([tiny.next_token_probs(p) for p in prompts])
    torch.testing.assert_close(together, alone, atol=1e-4, rtol=0)


def test_intervention_formulas(tiny_llama):
    lm, site = tiny_llama, "layer.1"
    batch = lm.encode(PROMPTS[0])
    with capture(lm, site) as acts:
        logits(lm, batch)
    h = acts[site]
    v = torch.randn(lm.d_model, generator=torch.Generator().manual_seed(0))
    cases = {
        "add": (Add(v, at=[1, 2], scale=2.0), lambda x: x + 2.0 * v),
        "overlay-normalized": (Overlay(v, at=[1, 2], strength=0.25), lambda x: 0.25 * v + 0.75 * x),
        "overlay-addition": (Overlay(v, at=[1, 2], strength=3.0, mode="addition"), lambda x: x + 3.0 * v),
        "zero": (Zero(at=[1, 2]), lambda x: torch.zeros_like(x)),
    }
    for name, (intervention, formula) in cases.items():
        with patch(lm, {site: intervention}), capture(lm, site) as out:
            logits(lm, batch)
        expected = h.clone()
        expected[:, [1, 2]] = formula(h[:, [1, 2]])
        torch.testing.assert_close(out[site], expected, atol=1e-6, rtol=0, msg=name)


def test_noise_is_seeded_and_positioned(tiny_llama):
    lm, batch = tiny_llama, tiny_llama.encode(PROMPTS[0])
    runs = []
    for _ in range(2):
        with patch(lm, {"embed": Noise(0.5, at=slice(0, 3), seed=7)}), capture(lm, "embed") as acts:
            logits(lm, batch)
        runs.append(acts["embed"])
    with capture(lm, "embed") as clean:
        logits(lm, batch)
    assert torch.equal(runs[0], runs[1])
    changed = (runs[0] - clean["embed"]).abs().sum(-1)[0] > 0
    assert changed.tolist() == [True] * 3 + [False] * (changed.numel() - 3)


def test_slice_value_and_per_row_positions(tiny_llama):
    lm = tiny_llama
    batch = lm.encode(["abcdef", "abcdef"])
    value = torch.randn(2, 1, lm.d_model)
    with patch(lm, {"layer.0": Set(value, at=[[1], [4]])}), capture(lm, "layer.0") as acts:
        logits(lm, batch)
    torch.testing.assert_close(acts["layer.0"][0, 1], value[0, 0])
    torch.testing.assert_close(acts["layer.0"][1, 4], value[1, 0])


def test_callable_intervention_and_nesting(tiny_llama):
    lm, batch = tiny_llama, tiny_llama.encode(PROMPTS[0])
    seen = []

    def double(act, ctx):
        seen.append(ctx.site)
        return act * 2

    with capture(lm, "layer.0") as clean:
        logits(lm, batch)
    with patch(lm, {"layer.0": double}):
        with patch(lm, {"layer.0": Add(torch.ones(lm.d_model))}), capture(lm, "layer.0") as acts:
            logits(lm, batch)
    # the most recently entered patch runs first; the capture sees the result of both
    torch.testing.assert_close(acts["layer.0"], (clean["layer.0"] + 1) * 2)
    assert seen == ["layer.0"]


def test_hooks_removed_on_exit_and_on_error_and_user_hook_survives(tiny_llama):
    lm = tiny_llama
    calls = []
    user = lm.model.model.layers[0].register_forward_hook(lambda *a: calls.append(1))
    try:
        before = hook_count(lm.model)
        with capture(lm, ["layer.0", "layer.1.in"]), patch(lm, {"layer.1": Zero()}):
            assert hook_count(lm.model) > before
            logits(lm, lm.encode("x"))
        assert hook_count(lm.model) == before
        with pytest.raises(RuntimeError, match="boom"):
            with patch(lm, {"layer.1": Zero()}), capture(lm, "layer.2"):
                raise RuntimeError("boom")
        assert hook_count(lm.model) == before
        logits(lm, lm.encode("x"))
        assert len(calls) == 2
    finally:
        user.remove()


def test_gradients_flow_and_model_state_is_untouched(tiny_llama):
    lm = tiny_llama
    flags = [p.requires_grad for p in lm.model.parameters()]
    lm.model.requires_grad_(False)
    try:
        batch = lm.encode(PROMPTS[0])
        with capture(lm, "embed", grad=True) as acts:
            out = lm.model(**batch).logits[0, -1].logsumexp(-1)
        out.backward()
        assert acts["embed"].grad is not None and acts["embed"].grad.abs().sum() > 0
        assert not lm.model.training
        assert all(not p.requires_grad for p in lm.model.parameters())
        assert all(p.grad is None for p in lm.model.parameters())
    finally:
        for p, flag in zip(lm.model.parameters(), flags):
            p.requires_grad_(flag)


def test_generation_prompt_only_versus_every_step(tiny_llama):
    lm = tiny_llama
    for prompt_only, expected_passes in [(True, 1), (False, 3)]:
        record = []

        def spy(act, ctx):
            record.append((ctx.offset, act.shape[1], ctx.is_prompt))
            return act

        with patch(lm, {"layer.1": spy}, prompt_only=prompt_only):
            lm.generate("Hello", max_new_tokens=3, min_new_tokens=3)
        n = len(lm.tokens("Hello"))
        assert len(record) == expected_passes
        assert record[0] == (0, n, True)
        if not prompt_only:
            assert record[1:] == [(n, 1, False), (n + 1, 1, False)]


def test_absolute_position_is_not_patched_on_decoding_steps(tiny_llama):
    lm = tiny_llama
    vector = 10 * torch.ones(lm.d_model)
    with patch(lm, {"layer.0": Add(vector, at=[1])}):
        steered_late = lm.generate("Hello", max_new_tokens=4)
    with patch(lm, {"layer.0": Add(vector, at=[1])}, prompt_only=True):
        steered_prompt = lm.generate("Hello", max_new_tokens=4)
    assert steered_late == steered_prompt


# ------------------------------------------------------------------ bad input


@pytest.mark.parametrize("make, message", [
    (lambda lm: patch(lm, {"layer.1.mpl": Zero()}), "Closest valid names: layer.1.mlp"),
    (lambda lm: patch(lm, {"layer.9": Zero()}), "layer 9 does not exist"),
    (lambda lm: capture(lm, ["layer.0", "nope"]), "unknown site 'nope'"),
    (lambda lm: patch(lm, {"layer.0": "zero"}), "is not an intervention"),
])
def test_bad_sites_fail_before_registering(tiny_llama, make, message):
    before = hook_count(tiny_llama.model)
    with pytest.raises((ValueError, TypeError), match=message):
        with make(tiny_llama):
            pass
    assert hook_count(tiny_llama.model) == before


@pytest.mark.parametrize("intervention, message", [
    (lambda d: Zero(at=[40]), "position 40 is out of range"),
    (lambda d: Set(torch.zeros(1, 6, d + 1)), "does not fit"),
    (lambda d: Set(torch.zeros(d, dtype=torch.float64)), "dtype torch.float64"),
    (lambda d: Set(torch.zeros(d, device="meta")), "is on meta"),
    (lambda d: Set(torch.zeros(3, 6, d)), "value has batch 3"),
    (lambda d: Zero(at="first"), "`at` must be"),
    (lambda d: Zero(at=[[1], [2, 3]]), "per-row `at` lists"),
    (lambda d: (lambda act, ctx: act[:, :1]), "expected a tensor of shape"),
])
def test_bad_values_raise_clearly_and_leave_no_hooks(tiny_llama, intervention, message):
    lm = tiny_llama
    before = hook_count(lm.model)
    with pytest.raises((ValueError, TypeError), match=message):
        with patch(lm, {"layer.0": intervention(lm.d_model)}):
            logits(lm, lm.encode(["abcdef", "abcdef"]))
    assert hook_count(lm.model) == before


def test_raw_module_paths_work(tiny_llama):
    batch = tiny_llama.encode(PROMPTS[0])
    with capture(tiny_llama, ["model.layers.1.mlp", "layer.1.mlp"]) as acts:
        logits(tiny_llama, batch)
    assert torch.equal(acts["model.layers.1.mlp"], acts["layer.1.mlp"])


def test_plain_torch_module_by_path():
    net = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.ReLU(), torch.nn.Linear(8, 2))
    x = torch.randn(3, 1, 4)
    with patch(net, {"0": Zero()}):
        out = net(x)
    torch.testing.assert_close(out, net[2](torch.zeros(3, 1, 8)))


def test_dispatched_model_with_disk_offload(tmp_path):
    """A model dispatched by accelerate, half of its layers offloaded to disk, patches the same."""
    from nbtoolkit import load_model

    lm = tiny_model("llama")
    lm.model.save_pretrained(tmp_path / "m")
    lm.tokenizer.save_pretrained(tmp_path / "m")
    device_map = {"model.embed_tokens": "cpu", "model.layers.0": "cpu", "model.layers.1": "disk",
                  "model.layers.2": "disk", "model.norm": "cpu", "model.rotary_emb": "cpu",
                  "lm_head": "cpu"}
    dispatched = load_model(str(tmp_path / "m"), device_map=device_map,
                            offload_folder=str(tmp_path / "offload"))
    batch = lm.encode(PROMPTS)
    with capture(lm, "layer.2") as source:
        logits(lm, lm.encode(PROMPTS[::-1]))
    results = []
    for model in (lm, dispatched):
        with patch(model, {"layer.2": Set(source["layer.2"], at=[3])}), capture(model, "layer.1") as acts:
            results.append((logits(model, batch), acts["layer.1"]))
    torch.testing.assert_close(results[0][0], results[1][0], atol=1e-5, rtol=0)
    torch.testing.assert_close(results[0][1], results[1][1], atol=1e-5, rtol=0)


class TupleBlock(torch.nn.Module):
    """A layer returning ``(hidden, extra)`` as decoder layers do in transformers < 5."""

    def __init__(self):
        super().__init__()
        self.linear = torch.nn.Linear(4, 4)

    def forward(self, hidden_states):
        return self.linear(hidden_states), "extra"


def test_tuple_outputs_are_read_and_written_back():
    net = torch.nn.Sequential()
    net.add_module("block", TupleBlock())
    x = torch.randn(2, 3, 4)
    with capture(net, "block") as acts:
        out, extra = net.block(x)
    assert torch.equal(acts["block"], out)
    with patch(net, {"block": Zero(at=[1])}):
        patched, extra = net.block(x)
    assert extra == "extra" and torch.equal(patched[:, 1], torch.zeros(2, 4))
    assert torch.equal(patched[:, [0, 2]], out[:, [0, 2]])


def test_prompt_only_refuses_generation_without_kv_cache(tiny_llama):
    before = hook_count(tiny_llama.model)
    with pytest.raises(ValueError, match="needs the KV cache"):
        with patch(tiny_llama, {"layer.0": Zero()}, prompt_only=True):
            tiny_llama.generate("Hi", max_new_tokens=2, use_cache=False)
    assert hook_count(tiny_llama.model) == before


def test_a_mask_passed_positionally_is_read(tiny_llama):
    """The stack's forward called with (input_ids, attention_mask) positionally, twice (the
    argument names are looked up once per forward function): left padding is read from it as
    from the keyword call, so position -1 is each row's last token in both."""
    lm = tiny_llama
    batch = lm.encode(["Hi", "The capital of France is"])
    assert not bool(batch["attention_mask"][:, 0].all())  # row 0 is left-padded
    body = lm.model.model
    v = torch.randn(lm.d_model, generator=torch.Generator().manual_seed(0))
    with patch(lm, {"layer.1": Add(v, at=[0])}):
        by_name = body(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"])
        for _ in range(2):
            positional = body(batch["input_ids"], batch["attention_mask"])
            torch.testing.assert_close(positional.last_hidden_state, by_name.last_hidden_state)
    plain = body(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"])
    changed = (by_name.last_hidden_state - plain.last_hidden_state).abs().sum(-1) > 1e-6
    first_real = int((batch["attention_mask"][0] == 0).sum())
    assert changed[0, first_real] and not changed[0, :first_real].any()


def test_a_forward_without_weak_references_still_names_its_arguments():
    """A module whose ``forward`` is a callable object that cannot be weakly referenced (a class
    with ``__slots__``): its positional names are read on every call instead of kept."""
    from nbtoolkit.core.hooks import _named_arguments

    class Forward:
        __slots__ = ()

        def __call__(self, input_ids, attention_mask=None):
            return input_ids

    module = torch.nn.Module()
    module.forward = Forward()
    for _ in range(2):
        assert _named_arguments(module, ("ids", "mask"), {"use_cache": True}) == \
            {"input_ids": "ids", "attention_mask": "mask", "use_cache": True}
