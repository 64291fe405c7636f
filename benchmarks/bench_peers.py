"""nbtoolkit side by side with its peers, pyvene, nnsight and TransformerLens, and a hand-written
hook, on the default model's weights, in one run, with frozen weights (FULL: also trainable):

    capture      every block's output, batch 8 x 64 tokens
    interchange  block 15's output at positions 10 and 20 from a pre-captured source run
    30 sites     the same interchange at every block at once
    steering     20 greedy tokens with a vector added to block 15's output on every pass
    tracing      (FULL only) ROME's causal trace of one prompt (hidden kind, 10 samples) against
                 each peer's tutorial-style loop: one forward per (token, layer) cell (pyvene: a
                 new IntervenableModel per cell, as its causal-tracing tutorial), each library's
                 code being its file in benchmarks/user_code, the code the lines-of-code table
                 counts

TransformerLens 4 runs through its ``TransformerBridge`` over a copy of the same Hugging Face
model (the bridge switches the model it wraps to eager attention, which its pattern hooks need; the
copy keeps the others on the model's default), with its hook names (``blocks.{i}.hook_resid_post``).

Each candidate runs once first and its numbers (activations, logits, scores) are compared with
the hand-written hook's (tracing: with nbtoolkit's); a disagreement stops the benchmark. Only then
are they timed, interleaved (tracing: one run each). Ratios are to the plain forward or generate
(tracing: nbtoolkit / the fastest peer loop). The peers come with the optional extra,
``pip install -e ".[bench]"``; a peer that is not installed is skipped with a message.

    python benchmarks/bench_peers.py      # or `make bench`
"""

from __future__ import annotations

import copy
import importlib
import importlib.util
import os
import time
import warnings

import numpy as np
import torch

import nbtoolkit as nb
from nbtoolkit.core.anatomy import resolve_site

from count_lines import run_snippet
from timing import FULL, limit_of, row, side_by_side, spread, states, weights

PEERS = ("pyvene", "nnsight", "transformer_lens")
BATCH, SEQ, POSITIONS, LAYER = 8, 64, [10, 20], 15
STEER_PROMPT, NEW_TOKENS, STEER_SCALE = "I watched the film and", 20, 8.0
REPEATS = int(os.environ.get("BENCH_PEERS_REPEATS", "10" if FULL else "3"))
TOL = 1e-4  # the same numbers: float32 logits of different but equivalent kernels
# TransformerLens's eager attention against the model's default kernel: relative to the largest
# |value| (the residual stream of SmolLM2 reaches the thousands).
TOL_EAGER = 1e-4


def installed_peers() -> dict:
    """``{name: module}`` of the peers that import; the others are reported and skipped."""
    found = {}
    for name in PEERS:
        if importlib.util.find_spec(name) is None:
            print(f"   {name} is not installed: skipped (pip install -e '.[bench]')", flush=True)
            continue
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                found[name] = importlib.import_module(name)
        except Exception as error:  # a peer broken by this torch/transformers: skip it
            print(f"   {name} does not import ({error!r}): skipped", flush=True)
    return found


def transformer_lens_bridge(lm):
    """TransformerLens 4's ``TransformerBridge`` over a copy of ``lm``'s model, offline (the
    loaded model and tokenizer are handed over; nothing is fetched)."""
    from transformer_lens.model_bridge import TransformerBridge

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return TransformerBridge.boot_transformers(lm.name, hf_model=copy.deepcopy(lm.model),
                                                   tokenizer=lm.tokenizer, device="cpu")


class Setup:
    """The model, a base batch, a source run's activations at every block, the peers' handles."""

    def __init__(self, peers: dict):
        self.lm = nb.load_model(nb.DEFAULT_MODEL)
        self.model = self.lm.model.eval()
        generator = torch.Generator().manual_seed(0)
        ids = torch.randint(100, 10000, (BATCH, SEQ), generator=generator)
        self.batch = dict(input_ids=ids, attention_mask=torch.ones_like(ids))
        self.sites = [f"layer.{i}" for i in range(self.lm.n_layers)]
        self.modules = [resolve_site(self.model, site).module for site in self.sites]
        self.path = {module: name for name, module in self.model.named_modules()}  # for nnsight
        with torch.no_grad(), nb.capture(self.lm, self.sites) as acts:
            self.model(input_ids=ids.flip(0), attention_mask=self.batch["attention_mask"])
        self.source = [acts[site] for site in self.sites]  # [batch, seq, d] per block
        self.peers = peers
        if "nnsight" in peers:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                self.nnsight = peers["nnsight"].TransformersModel(
                    self.model, tokenizer=self.lm.tokenizer, task="text-generation")
        if "transformer_lens" in peers:
            self.tl = transformer_lens_bridge(self.lm)

    def set_weights(self, state: str):
        """Every model's parameters trainable or not (pyvene's constructor freezes the model)."""
        self.model.requires_grad_(state == "unfrozen")
        if "transformer_lens" in self.peers:
            self.tl.requires_grad_(state == "unfrozen")

    def envoy(self, module: torch.nn.Module):
        """nnsight's handle on ``module``."""
        return self.nnsight.get(self.path[module])

    def pyvene(self, layers: list[int], kind: str, units: int):
        """An IntervenableModel on block outputs. pyvene freezes the model: the callers set the
        weights' state back."""
        pv = self.peers["pyvene"]
        config = pv.IntervenableConfig(
            representations=[pv.RepresentationConfig(layer, "block_output", "pos", units)
                             for layer in layers],
            intervention_types=getattr(pv, kind))
        return pv.IntervenableModel(config, self.model)


def _first(output):
    return output[0] if isinstance(output, tuple) else output


def capture_every_block(s: Setup) -> dict:
    candidates = {}

    def ours():
        with nb.capture(s.lm, s.sites) as acts:
            s.model(**s.batch)
        return [acts[site] for site in s.sites]
    candidates["nbtoolkit"] = ours

    def raw():
        acts = []
        handles = [m.register_forward_hook(lambda m, a, out: acts.append(_first(out).detach()))
                   for m in s.modules]
        try:
            s.model(**s.batch)
        finally:
            for handle in handles:
                handle.remove()
        return acts
    candidates["raw hook"] = raw

    if "pyvene" in s.peers:
        collect = s.pyvene(list(range(len(s.sites))), "CollectIntervention", SEQ)
        every = [[list(range(SEQ))] * BATCH] * len(s.sites)
        candidates["pyvene"] = lambda: collect(s.batch, unit_locations={"base": every})[0][1]
    if "nnsight" in s.peers:
        envoys = [s.envoy(module) for module in s.modules]

        def nnsight():
            saved = []
            with s.nnsight.trace(s.batch):
                for envoy in envoys:
                    saved.append(envoy.output.save())
            return saved
        candidates["nnsight"] = nnsight
    if "transformer_lens" in s.peers:
        names = [f"blocks.{i}.hook_resid_post" for i in range(len(s.sites))]

        def transformer_lens():
            _, cache = s.tl.run_with_cache(s.batch["input_ids"], names_filter=names)
            return [cache[name] for name in names]
        candidates["transformer_lens"] = transformer_lens
    return candidates


def interchange(layers: list[int]):
    """Candidates that replace ``layers``' block outputs at POSITIONS with the source run's."""
    def build(s: Setup) -> dict:
        sources = {layer: s.source[layer][:, POSITIONS] for layer in layers}  # [batch, 2, d]
        interventions = {s.sites[layer]: nb.Set(s.source[layer], at=POSITIONS) for layer in layers}
        candidates = {}

        def ours():
            with nb.patch(s.lm, interventions):
                return s.model(**s.batch).logits
        candidates["nbtoolkit"] = ours

        def raw():
            def hook(layer):
                def replace(module, args, output):
                    _first(output)[:, POSITIONS] = sources[layer]
                return replace
            handles = [s.modules[layer].register_forward_hook(hook(layer)) for layer in layers]
            try:
                return s.model(**s.batch).logits
            finally:
                for handle in handles:
                    handle.remove()
        candidates["raw hook"] = raw

        if "pyvene" in s.peers:
            model = s.pyvene(layers, "VanillaIntervention", len(POSITIONS))
            where = [[POSITIONS] * BATCH] * len(layers)
            reps = [sources[layer] for layer in layers]
            candidates["pyvene"] = lambda: model(
                s.batch, unit_locations={"sources->base": (where, where)},
                source_representations=reps)[1].logits
        if "nnsight" in s.peers:
            envoys = {layer: s.envoy(s.modules[layer]) for layer in layers}

            def nnsight():
                with s.nnsight.trace(s.batch):
                    for layer in layers:
                        envoys[layer].output[:, POSITIONS] = sources[layer]
                    out = s.nnsight.output.save()
                return out.logits
            candidates["nnsight"] = nnsight
        if "transformer_lens" in s.peers:
            def hook(layer):
                def replace(activation, hook):
                    activation[:, POSITIONS] = sources[layer]
                    return activation
                return (f"blocks.{layer}.hook_resid_post", replace)
            hooks = [hook(layer) for layer in layers]
            candidates["transformer_lens"] = lambda: s.tl.run_with_hooks(
                s.batch["input_ids"], fwd_hooks=hooks)
        return candidates
    return build


def steering(s: Setup) -> dict:
    """Greedy generation with ``STEER_SCALE`` × a unit vector added to block 15's output at every
    position of every pass; returns the logits of the generated tokens [steps, vocab]."""
    batch = s.lm.encode(STEER_PROMPT)
    batch.pop("position_ids", None)  # generate derives them from the attention mask
    vector = torch.randn(s.lm.d_model, generator=torch.Generator().manual_seed(1))
    vector = STEER_SCALE * vector / vector.norm()
    options = dict(max_new_tokens=NEW_TOKENS, min_new_tokens=NEW_TOKENS, do_sample=False,
                   pad_token_id=s.lm.tokenizer.pad_token_id, output_logits=True,
                   return_dict_in_generate=True)
    generate = lambda: torch.cat(s.model.generate(**batch, **options).logits)
    steer = {s.sites[LAYER]: nb.Add(vector)}
    candidates = {"plain": generate}

    def ours():
        with nb.patch(s.lm, steer):
            return generate()
    candidates["nbtoolkit"] = ours

    def raw():
        handle = s.modules[LAYER].register_forward_hook(lambda m, a, out: out + vector)
        try:
            return generate()
        finally:
            handle.remove()
    candidates["raw hook"] = raw

    if "pyvene" in s.peers:
        model = s.pyvene([LAYER], "AdditionIntervention", 1)
        candidates["pyvene"] = lambda: torch.cat(model.generate(
            batch, source_representations=vector, intervene_on_prompt=True, **options)[1].logits)
    if "nnsight" in s.peers:
        envoy, head = s.envoy(s.modules[LAYER]), s.envoy(s.model.get_output_embeddings())
        plain_options = {k: v for k, v in options.items()
                         if k not in ("output_logits", "return_dict_in_generate")}

        def nnsight():
            steps = []
            with s.nnsight.generate(batch, **plain_options) as tracer:
                for _ in tracer.all():  # an open loop: it ends when generation does
                    envoy.output[:] += vector
                    steps.append(head.output[:, -1].save())
            return torch.cat(steps)
        candidates["nnsight"] = nnsight
    if "transformer_lens" in s.peers:
        # Its bridge's KV-cached generate gives other tokens than the model's own here (from the
        # 7th on, unsteered too; transformers 5's cache API): it runs without the cache.
        add = [(f"blocks.{LAYER}.hook_resid_post", lambda activation, hook: activation + vector)]

        def transformer_lens():
            with s.tl.hooks(fwd_hooks=add):
                out = s.tl.generate(batch["input_ids"], max_new_tokens=NEW_TOKENS, do_sample=False,
                                    stop_at_eos=False, output_logits=True, verbose=False,
                                    return_type="tokens", use_past_kv_cache=False)
            return torch.cat(out.logits)
        candidates["transformer_lens"] = transformer_lens
    return candidates


def check(name: str, candidates: dict, reference: str, control=None) -> dict[str, float]:
    """Run every candidate once; each one's largest |difference| from ``reference``'s numbers
    (``AssertionError`` above TOL; TransformerLens: above TOL_EAGER of the largest |value|).
    ``control`` (the unpatched output) must differ from the reference: the edit did something."""
    outputs = {who: fn() for who, fn in candidates.items()}
    as_list = lambda x: [t.float() for t in (x if isinstance(x, (list, tuple)) else [x])]
    expected = as_list(outputs[reference])
    diffs = {}
    for who, out in outputs.items():
        got = as_list(out)
        if len(got) != len(expected) or any(g.shape != e.shape for g, e in zip(got, expected)):
            raise AssertionError(f"{name}: {who} returned shapes {[tuple(g.shape) for g in got]}, "
                                 f"{reference} {[tuple(e.shape) for e in expected]}")
        diff = max(float((g - e).abs().max()) for g, e in zip(got, expected))
        scale = max(float(e.abs().max()) for e in expected)
        if diff > (TOL_EAGER * scale if who == "transformer_lens" else TOL):
            raise AssertionError(f"{name}: {who} differs from {reference} by {diff:.2e}")
        diffs[who] = diff
    if control is not None:
        effect = max(float((c - e).abs().max()) for c, e in zip(as_list(control), expected))
        if effect <= 100 * TOL:
            raise AssertionError(f"{name}: the intervention changed nothing ({effect:.1e})")
    return diffs


def same_numbers(diffs: dict[str, float]) -> str:
    """How close the candidates' numbers were, TransformerLens's eager attention apart."""
    exact = max((d for who, d in diffs.items() if who != "transformer_lens"), default=0.0)
    text = f"the same numbers before timing (max |Δ| {exact:.1e}"
    if "transformer_lens" in diffs:
        text += f"; transformer_lens {diffs['transformer_lens']:.1e}, eager attention"
    return text + ")"


def comparison_row(name: str, state: str, times: dict[str, list[float] | float], reference: str,
                   diffs: dict[str, float], goal: str, what: str) -> dict:
    """nbtoolkit against ``reference`` (``times``: each library's repeats); the goal names the
    peers' ratios; the medians go to the peers' table. Without a ratio goal: met when at or
    below every peer's ratio, ``tie`` when not but within the best peer's spread (the per-repeat
    ratios of the two overlap: the repeats cannot tell them apart)."""
    medians = {who: spread(t)["median"] for who, t in times.items()}
    ratios = {who: t / medians[reference] for who, t in medians.items()}
    peers = [who for who in PEERS if who in ratios and who != reference]
    goal = goal or ("<= " + ", ".join(f"{who} {ratios[who]:.3f}" for who in peers) if peers
                    else "<= peers (none installed)")
    others = [f"{who} {ratios[who]:.3f}×" for who in ratios if who not in ("nbtoolkit", reference)]
    note = "; ".join([f"reference = {what}", *others, same_numbers(diffs)])
    out = dict(row(name, times["nbtoolkit"], times[reference], goal, note, state),
               times=medians, reference_library=reference)
    if peers and limit_of(goal) is None:  # the goal: at or below every peer's ratio
        out["best_peer"] = best = min(peers, key=ratios.get)
        out["met"] = ratios["nbtoolkit"] <= ratios[best]
        paired = lambda who: row("", times[who], times[reference], "")["ratio_spread"]  # noqa: E731
        out["tie"] = not out["met"] and paired("nbtoolkit")[0] <= paired(best)[1]
    return out


def profile_gap(ours, peer, name: str) -> str:
    """Where nbtoolkit's run spends more than ``name``'s, from ``torch.profiler`` runs of each
    (self CPU time per op, the lower of two alternated runs): the op calls only nbtoolkit makes
    (its hook path: the calls of an op beyond the peer's count, at that op's mean time), the ones
    only the peer makes, and the difference over the ops both call equally often (the model's
    own kernels)."""
    def profiled(fn) -> dict:
        with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU]) as prof:
            fn()
        return {e.key: (e.count, e.self_cpu_time_total / 1e3) for e in prof.key_averages()}
    first = [profiled(ours), profiled(peer)]
    ops = [{key: (n, min(ms, before.get(key, (n, ms))[1])) for key, (n, ms) in profiled(fn).items()}
           for fn, before in zip((ours, peer), first)]

    def beyond(mine: dict, other: dict) -> tuple[float, str]:
        """The milliseconds of ``mine``'s op calls beyond ``other``'s count of each op, and the
        three largest."""
        extra = []
        for key, (calls, ms) in mine.items():
            more = calls - other.get(key, (0, 0.0))[0]
            if more > 0:
                extra.append((ms * more / calls, key, more))
        extra.sort(reverse=True)
        top = ", ".join(f"{key} ×{more} {ms:.1f} ms" for ms, key, more in extra[:3])
        return sum(ms for ms, _, _ in extra), top
    ours_only, ours_top = beyond(*ops)
    peer_only, _ = beyond(*ops[::-1])
    shared = sum(ms - ops[1][key][1] for key, (n, ms) in ops[0].items()
                 if key in ops[1] and ops[1][key][0] == n)
    return (f"profile: nbtoolkit's extra op calls {ours_only:.1f} ms ({ours_top}), "
            f"{name}'s {peer_only:.1f} ms; the ops both call equally often (the model's kernels) "
            f"{shared:+.1f} ms")


def forward_rows(s: Setup, state: str) -> list[dict]:
    rows = []
    tasks = [(f"capture every block's output, {BATCH}x{SEQ}", capture_every_block, False),
             (f"one interchange (block {LAYER}, 2 positions) from a pre-captured source, "
              f"{BATCH}x{SEQ}", interchange([LAYER]), True),
             (f"{len(s.sites)} interchanges (every block, 2 positions), {BATCH}x{SEQ}",
              interchange(list(range(len(s.sites)))), True)]
    plain = lambda: s.model(**s.batch).logits
    for name, build, changes_logits in tasks:
        candidates = build(s)
        s.set_weights(state)  # pyvene's constructor froze the model
        diffs = check(name, candidates, "raw hook", plain() if changes_logits else None)
        # check ran every candidate once: that was their warm-up
        times = side_by_side({"plain": plain, **candidates}, repeats=REPEATS, warmup=0)
        rows.append(profiled_if_behind(
            comparison_row(name, state, times, "plain", diffs, "", "plain forward"), candidates))
    name = f"steering: {NEW_TOKENS} greedy tokens, a vector added at block {LAYER}"
    candidates = steering(s)
    s.set_weights(state)
    steered = {k: v for k, v in candidates.items() if k != "plain"}
    diffs = check(name, steered, "raw hook", candidates["plain"]())
    times = side_by_side(candidates, repeats=REPEATS, warmup=0)
    rows.append(profiled_if_behind(
        comparison_row(name, state, times, "plain", diffs, "", "unsteered generate"), candidates))
    return rows


def profiled_if_behind(row: dict, candidates: dict) -> dict:
    """``row``, with a profile of its gap to the best peer in the note when it is not met."""
    if row["met"] is False:
        best = row["best_peer"]
        row["note"] += "; " + profile_gap(candidates["nbtoolkit"], candidates[best], best)
    return row


def tracing_row(s: Setup, state: str) -> dict | None:
    """ROME's causal trace as each library's user writes it: ``user_code/<library>/
    causal_trace.py`` (the peers: their tutorials' loop of one forward per cell), each whole, once,
    on a copy of the model in ``state``; the same grid checked first."""
    loops = [name for name in PEERS if name in s.peers]
    if not loops:
        print("   causal tracing: no peer installed, no tutorial loop to compare with", flush=True)
        return None
    times, grids = {}, {}
    for library in ["nbtoolkit", *loops]:
        model = copy.deepcopy(s.model)  # pyvene freezes, TransformerLens rewires the model
        start = time.perf_counter()
        grids[library] = np.asarray(run_snippet(library, "causal_trace", model))
        times[library] = time.perf_counter() - start
    diffs = {}
    for library in loops:
        diffs[library] = float(np.max(np.abs(grids[library] - grids["nbtoolkit"])))
        if diffs[library] > (TOL_EAGER if library == "transformer_lens" else TOL):
            raise AssertionError(f"causal tracing: {library}'s loop differs from nbtoolkit by "
                                 f"{diffs[library]:.2e}")
    fastest = min(loops, key=times.get)
    n_tokens, n_layers = grids["nbtoolkit"].shape
    name = (f"causal trace, hidden grid ({n_tokens} tokens × {n_layers} layers, 10 samples) vs "
            f"the peers' tutorial loops (benchmarks/user_code)")
    out = comparison_row(name, state, times, fastest, diffs, "<= 1",
                         f"{fastest}'s loop (one run each)")
    if "pyvene" in loops:
        out["note"] += "; pyvene's constructor freezes the model, so its loop runs frozen"
    return out


def run() -> list[dict]:
    torch.manual_seed(0)
    s = Setup(installed_peers())
    rows = []
    with torch.no_grad():
        for state in states(slow=True):  # outside FULL: frozen, as the tutorials run
            with weights(s.model, state):
                rows += forward_rows(s, state)
                if FULL:  # the peers' tracing loops: ~10 minutes
                    rows += filter(None, [tracing_row(s, state)])
    return rows


if __name__ == "__main__":
    for r in run():
        print({k: v for k, v in r.items() if k != "times"})
