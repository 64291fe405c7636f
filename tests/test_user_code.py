"""The lines-of-code table (benchmarks/count_lines.py over benchmarks/user_code/): what counts as a
line, every task written for every library, and nbtoolkit's snippets give what a hand-written hook
gives. (The peers' snippets against nbtoolkit's: `python benchmarks/count_lines.py --run`.)"""

import importlib.util
import runpy
from pathlib import Path

import pytest
import torch

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"


@pytest.fixture(scope="module")
def count_lines():
    spec = importlib.util.spec_from_file_location("count_lines", BENCHMARKS / "count_lines.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def inputs(count_lines):
    return count_lines.shared_inputs()


def ours(task: str) -> object:
    """nbtoolkit's snippet's ``result``."""
    return runpy.run_path(str(BENCHMARKS / "user_code" / "nbtoolkit" / f"{task}.py"))["result"]


def test_only_lines_that_hold_code_count(count_lines, tmp_path):
    snippet = tmp_path / "snippet.py"
    snippet.write_text('"""A docstring\nover two lines."""\nimport torch\n'
                       'from inputs import (PROMPT,\n                    model)\n\n'
                       '# a comment\nx = torch.zeros(1,\n                2)  # a trailing comment\n'
                       'def f():\n    """Its docstring."""\n    return x\n')
    assert count_lines.count(snippet) == 5  # import torch, the two lines of x, def f, return x


def test_every_task_is_written_for_every_library_and_counted(count_lines):
    table = count_lines.table().splitlines()
    assert len(table) == 2 + len(count_lines.TASKS) + 1  # header, rule, tasks, total
    for task, what in count_lines.TASKS.items():
        line = next(line for line in table if line.startswith(f"| {what} |"))
        for library in count_lines.LIBRARIES:
            path = BENCHMARKS / "user_code" / library / f"{task}.py"
            assert path.exists(), f"{task} is not written for {library}"
            n = count_lines.count(path)
            assert 1 <= n < 40 and f"[{n}](" in line


def block_hooks(model, edit):
    """Forward hooks on every decoder layer calling ``edit(layer, output)``."""
    return [layer.register_forward_hook(lambda m, a, out, i=i: edit(i, out))
            for i, layer in enumerate(model.model.layers)]


@torch.no_grad()
def test_nbtoolkits_snippets_give_what_a_hand_written_hook_gives(inputs):
    model, tokenizer = inputs.model, inputs.tokenizer
    prompt = tokenizer(inputs.PROMPT, return_tensors="pt")

    captured = [None] * inputs.N_LAYERS
    handles = block_hooks(model, lambda i, out: captured.__setitem__(i, out.clone()))
    plain = model(**prompt).logits[0, -1]
    for handle in handles:
        handle.remove()
    assert inputs.close(ours("capture"), captured) == 0

    def interchange(i, out):
        if i == inputs.LAYER:
            out[:, inputs.POSITION] = inputs.SOURCE_HIDDEN[i][:, inputs.POSITION]
    handles = block_hooks(model, interchange)
    patched = model(**prompt).logits[0, -1]
    for handle in handles:
        handle.remove()
    assert inputs.close(ours("interchange"), patched) < 1e-4
    assert inputs.close(ours("interchange_cached"), patched) < 1e-4
    assert inputs.close(patched, plain) > 1  # the interchange changes the prediction

    lens = model.lm_head(model.model.norm(torch.stack([h[0, -1] for h in captured])))
    assert inputs.close(ours("logit_lens"), lens.log_softmax(-1)) < 1e-4

    handles = [model.model.layers[inputs.LAYER].register_forward_hook(
        lambda m, a, out: out + inputs.STEER)]
    steered = model.generate(**tokenizer(inputs.STEER_PROMPT, return_tensors="pt"), do_sample=False,
                             max_new_tokens=inputs.NEW_TOKENS, min_new_tokens=inputs.NEW_TOKENS)[0]
    for handle in handles:
        handle.remove()
    assert torch.equal(ours("steering"), steered)


@torch.no_grad()
def test_nbtoolkits_head_patching_snippet_equals_one_patched_forward_per_head(inputs):
    model, config = inputs.model, inputs.model.config
    head_dim = config.hidden_size // config.num_attention_heads
    o_projs = [layer.self_attn.o_proj for layer in model.model.layers]
    source = {}
    handles = [o.register_forward_pre_hook(lambda m, a, i=i: source.__setitem__(i, a[0].clone()))
               for i, o in enumerate(o_projs)]
    model(input_ids=inputs.SOURCE_IDS)
    for handle in handles:
        handle.remove()
    scores = ours("head_patching")
    assert scores.shape == (config.num_hidden_layers, config.num_attention_heads)
    for layer, head in [(0, 0), (14, 3), (29, 8)]:
        cols = slice(head * head_dim, (head + 1) * head_dim)

        def patch(m, args, layer=layer, cols=cols):
            args[0][:, :, cols] = source[layer][:, :, cols]
        handle = o_projs[layer].register_forward_pre_hook(patch)
        logits = model(input_ids=inputs.BASE_IDS).logits[:, -1]
        handle.remove()
        assert float(scores[layer, head]) == pytest.approx(float(inputs.logit_diff(logits).mean()),
                                                           abs=1e-4)
