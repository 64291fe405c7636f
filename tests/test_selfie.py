"""Tests for nbtoolkit.selfie: placeholders, the insertion, greedy interpretations, relevancy."""

import pytest
import torch

import nbtoolkit as nb
from nbtoolkit import selfie

PROMPT = "The Eiffel Tower is in"
SHORT = "A: {x} {x} {x}:"  # placeholders near the end: the tiny gemma3 attends 8 tokens back


@pytest.fixture(scope="module")
def llama():
    return nb.tiny_model("llama", seed=1)


def _writer(positions, v, strength=1.0, mode="normalized"):
    """Hand-written insertion: the SelfIE formulas on the placeholder rows of every batch row."""
    def write(act, ctx):
        out = act.clone()
        h = act[:, positions]
        out[:, positions] = (strength * v + (1 - strength) * h if mode == "normalized"
                             else h + strength * v)
        return out
    return write


@torch.no_grad()
def _hand_interpretation(lm, interp, v, insert_layer, max_new_tokens, strength=1.0):
    """Greedy decoding by full forwards (no cache), the insertion applied to every forward at the
    placeholders; relevancy from full forwards with and without it."""
    ids = interp.input_ids[None]
    eos = lm.tokenizer.eos_token_id
    site = f"layer.{insert_layer}.in"
    generated, p_with, p_without = [], [], []
    for _ in range(max_new_tokens):
        with nb.patch(lm, {site: _writer(interp.positions, v, strength)}):
            probs = lm.model(input_ids=ids).logits[0, -1].softmax(-1)
        p_plain = lm.model(input_ids=ids).logits[0, -1].softmax(-1)
        token = int(probs.argmax())
        generated.append(token), p_with.append(float(probs[token]))
        p_without.append(float(p_plain[token]))
        ids = torch.cat([ids, torch.tensor([[token]])], 1)
        if token == eos:
            break
    relevancy = [abs(a - b) for a, b in zip(p_with, p_without)]
    return generated, relevancy


# ---------------------------------------------------------------- the interpretation prompt

def test_placeholders_found_in_final_tokens(llama):
    interp = selfie.build_prompt(llama, "User: {x} {x}{x} and {x}\nAssistant:")
    assert "{x}" not in interp.text
    assert len(interp.positions) == 4
    assert [llama.tokenizer.decode([interp.tokens[p]]) for p in interp.positions] == ["_"] * 4
    assert interp.tokens == llama.tokenizer(interp.text)["input_ids"]


def test_chat_template_is_used_and_bos_not_doubled():
    lm = nb.tiny_model("llama")
    lm.tokenizer.chat_template = ("<bos>{% for m in messages %}[{{ m['role'] }}] {{ m['content'] }}"
                                  "\n{% endfor %}{% if add_generation_prompt %}[assistant] "
                                  "{% endif %}")
    lm.tokenizer.add_bos_token = True
    text = selfie.make_template(lm, reply="Sure:")
    assert text == "<bos>[user] {x} {x} {x} {x} {x}\n[assistant] Sure:"
    interp = selfie.build_prompt(lm, text)
    bos = lm.tokenizer.bos_token_id
    assert interp.tokens[0] == bos and interp.tokens[1] != bos
    assert [lm.tokenizer.decode([interp.tokens[p]]) for p in interp.positions] == ["_"] * 5


def test_plain_template_without_chat_template(llama):
    assert llama.tokenizer.chat_template is None
    text = selfie.make_template(llama, n_placeholders=2, reply="It means")
    assert text == "User: {x} {x}\nAssistant: It means"


@pytest.mark.parametrize("template", ["no markers here", "User: _ _ _\nAssistant:"])
def test_template_without_placeholders_raises(llama, template):
    with pytest.raises(ValueError, match="no placeholders"):
        selfie.build_prompt(llama, template)


def test_token_indices(llama):
    # byte tokens: "Eiffel Tower" covers characters 4..15 of PROMPT
    assert selfie.token_indices(llama, PROMPT, "Eiffel Tower") == list(range(4, 16))
    with pytest.raises(ValueError, match="does not occur"):
        selfie.token_indices(llama, PROMPT, "Louvre")


# ---------------------------------------------------------------- the insertion

def test_insertion_changes_only_placeholders_at_insert_layer(llama):
    interp = selfie.build_prompt(llama, SHORT)
    k, first = 1, interp.positions[0]
    v = torch.randn(1, llama.d_model, generator=torch.Generator().manual_seed(0))
    sites = [f"layer.{j}.in" for j in range(llama.n_layers)]
    ids = interp.input_ids[None]
    with torch.no_grad(), nb.capture(llama, sites) as plain:
        llama.model(input_ids=ids)
    with torch.no_grad(), nb.patch(llama, selfie.insertion(interp, v, insert_layer=k)), \
            nb.capture(llama, sites) as inserted:
        llama.model(input_ids=ids)
    others = [i for i in range(ids.shape[1]) if i not in interp.positions]
    for j in range(k):  # blocks before the insertion are untouched
        torch.testing.assert_close(inserted[f"layer.{j}.in"], plain[f"layer.{j}.in"], rtol=0, atol=0)
    at_k = inserted[f"layer.{k}.in"][0]
    torch.testing.assert_close(at_k[interp.positions], v.expand(len(interp.positions), -1),
                               rtol=0, atol=0)
    torch.testing.assert_close(at_k[others], plain[f"layer.{k}.in"][0][others], rtol=0, atol=0)
    assert not torch.equal(plain[f"layer.{k}.in"][0][interp.positions], at_k[interp.positions])
    later = inserted[f"layer.{k + 1}.in"][0]
    # later blocks: tokens before the first placeholder cannot see it; tokens after it can
    torch.testing.assert_close(later[:first], plain[f"layer.{k + 1}.in"][0][:first], rtol=0, atol=0)
    assert not torch.allclose(later[-1], plain[f"layer.{k + 1}.in"][0][-1])


@pytest.mark.parametrize("mode,strength", [("normalized", 0.3), ("addition", 2.0),
                                           ("addition", -0.5)])
def test_mode_formulas(llama, mode, strength):
    interp = selfie.build_prompt(llama, SHORT)
    v = torch.randn(2, llama.d_model, generator=torch.Generator().manual_seed(1))
    ids = interp.input_ids[None].expand(2, -1)
    with torch.no_grad(), nb.capture(llama, "layer.2.in") as plain:
        llama.model(input_ids=ids)
    edits = selfie.insertion(interp, v, insert_layer=2, mode=mode, strength=strength)
    with torch.no_grad(), nb.patch(llama, edits), nb.capture(llama, "layer.2.in") as inserted:
        llama.model(input_ids=ids)
    h = plain["layer.2.in"][:, interp.positions]
    expected = (strength * v[:, None] + (1 - strength) * h if mode == "normalized"
                else h + strength * v[:, None])
    torch.testing.assert_close(inserted["layer.2.in"][:, interp.positions], expected)


def test_layer_numbering_is_one_behind_hugging_face(llama):
    states = selfie.hidden_states(llama, PROMPT, range(-1, llama.n_layers))
    with torch.no_grad():
        hf = llama.model(**llama.encode(PROMPT), output_hidden_states=True).hidden_states
    for layer in range(-1, llama.n_layers - 1):  # our layer l is HF's hidden_states[l + 1]
        torch.testing.assert_close(states[layer], hf[layer + 1][0])
    # HF's last entry is after the final norm; ours is before it
    assert not torch.allclose(states[llama.n_layers - 1], hf[llama.n_layers][0])


# ---------------------------------------------------------------- interpretations

@pytest.mark.parametrize("family", ["llama", "gemma3"])
def test_interpret_matches_hand_greedy_decoding(family):
    lm = nb.tiny_model(family, seed=2)
    frame = selfie.interpret(lm, PROMPT, tokens=[3, -1], layers=[-1, 1], insert_layer=1,
                             template=SHORT, max_new_tokens=6).to_frame()
    interp = selfie.build_prompt(lm, SHORT)
    states = selfie.hidden_states(lm, PROMPT, [-1, 1])
    assert len(frame) == 4
    for row in frame.itertuples():
        v = states[row.layer][row.token_index]
        ids, relevancy = _hand_interpretation(lm, interp, v, 1, 6)
        assert row.interpretation == lm.tokenizer.decode(ids, skip_special_tokens=True)
        assert row.relevancy == pytest.approx(relevancy, abs=2e-5)
        assert row.mean_relevancy == pytest.approx(sum(relevancy) / len(relevancy), abs=2e-5)
    assert max(frame.mean_relevancy) > 1e-4  # the insertion did change the probabilities


def test_result_and_frame_layout(llama):
    result = selfie.interpret(llama, PROMPT, tokens=[-1], layers=[0, 2], template=SHORT,
                              max_new_tokens=3)
    assert isinstance(result, selfie.Interpretations) and len(result) == 2
    frame = result.to_frame()
    assert list(frame.columns) == ["prompt", "layer", "token_index", "token", "interpretation",
                                   "interpretation_tokens", "relevancy", "mean_relevancy",
                                   "baseline_match"]
    for row in frame.itertuples():
        assert len(row.interpretation_tokens) == len(row.relevancy)
        assert "".join(row.interpretation_tokens).startswith(row.interpretation)
    assert list(frame.layer) == [0, 2]
    assert list(frame.token_index) == [len(llama.tokens(PROMPT)) - 1] * 2
    assert list(frame.token) == [llama.tokens(PROMPT)[-1]] * 2
    assert result.baseline == selfie.baseline(llama, SHORT, max_new_tokens=3)
    assert result.positions == selfie.build_prompt(llama, SHORT).positions
    assert result.template == selfie.build_prompt(llama, SHORT).text
    assert (result.insert_layer, result.mode, result.strength) == (1, "normalized", 1.0)
    assert list(frame.mean_relevancy) == result.mean_relevancy


def test_strength_zero_reproduces_placeholder_only_generation(llama):
    frame = selfie.interpret(llama, PROMPT, tokens=[1, 4], layers=[-1, 2], template=SHORT,
                             strength=0.0, max_new_tokens=6).to_frame()
    baseline = selfie.baseline(llama, SHORT, max_new_tokens=6)
    assert (frame.interpretation == baseline).all()
    # p_with comes from the cached generation steps, p_without from a teacher-forced pass:
    # the same numbers up to float rounding
    assert all(value < 1e-6 for rel in frame.relevancy for value in rel)
    assert (frame.baseline_match == 1.0).all()
    full = selfie.interpret(llama, PROMPT, tokens=[1, 4], layers=[-1, 2], template=SHORT,
                            max_new_tokens=6)
    assert all(r > 0 for r in full.mean_relevancy)


def test_batched_and_one_by_one_agree(llama):
    kwargs = dict(tokens=[0, 2, 5], layers=[-1, 0, 2], template=SHORT, max_new_tokens=5)
    batched = selfie.interpret(llama, PROMPT, batch_size=9, **kwargs)
    single = selfie.interpret(llama, PROMPT, batch_size=1, **kwargs)
    assert batched.interpretations == single.interpretations
    for a, b in zip(batched.relevancy, single.relevancy):
        assert a == pytest.approx(b, abs=1e-5)


@pytest.mark.parametrize("kwargs,match", [
    (dict(layers=[3]), r"layers must be ints in -1 \(embeddings\) .. 2 .*got \[3\]"),
    (dict(layers=[-2]), r"layers must be ints in -1 \(embeddings\) .. 2 .*got \[-2\]"),
    (dict(tokens=[99]), "token 99 is out of range"),
    (dict(tokens=[]), "tokens must not be empty"),
    (dict(insert_layer=3), "insert_layer 3 is out of range"),
    (dict(strength=1.5), r"outside \[0, 1\]"),
    (dict(strength=-0.1), r"outside \[0, 1\]"),
    (dict(mode="scaled"), "mode must be"),
    (dict(template="no placeholders"), "no placeholders"),
    (dict(max_new_tokens=0), "max_new_tokens"),
])
def test_bad_input_raises(llama, kwargs, match):
    with pytest.raises(ValueError, match=match):
        selfie.interpret(llama, PROMPT, **kwargs)


def test_addition_mode_accepts_strength_above_one(llama):
    frame = selfie.interpret(llama, PROMPT, tokens=[-1], layers=[1], template=SHORT,
                             mode="addition", strength=3.0, max_new_tokens=2)
    assert len(frame) == 1


# ---------------------------------------------------------------- the embedded model

@pytest.mark.slow
def test_smollm2_chat_template_and_merged_placeholders():
    lm = nb.load_model("smollm2-135m-instruct")
    interp = selfie.build_prompt(lm)
    assert "<|im_start|>user\n_ _ _ _ _<|im_end|>" in interp.text
    assert interp.text.endswith(selfie.REPLY)
    pieces = [lm.tokenizer.decode([interp.tokens[p]]) for p in interp.positions]
    assert [p.strip() for p in pieces] == ["_"] * 5
    prompt = "The Eiffel Tower is in Paris"
    assert [lm.tokens(prompt)[i] for i in selfie.token_indices(lm, prompt, "Eiffel Tower")] == \
        [" E", "iffel", " Tower"]
    with pytest.raises(ValueError, match="not a token of its own"):
        selfie.build_prompt(lm, "User: {x}{x}{x}\nAssistant:")  # "___" is one token here


@pytest.mark.filterwarnings("ignore:Glyph")
def test_plots(llama):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from nbtoolkit.viz.selfie import interpretation_bars, relevancy_grid

    result = selfie.interpret(llama, PROMPT, tokens=[2, 5], layers=[-1, 1], template=SHORT,
                              max_new_tokens=3)
    frame = result.to_frame()
    fig = relevancy_grid(result)
    ax = fig.axes[0]
    assert [t.get_text() for t in ax.get_xticklabels()] == ["-1", "1"]
    assert [t.get_text() for t in ax.get_yticklabels()] == [
        f"{llama.tokens(PROMPT)[i]!r} ({i})" for i in (2, 5)]
    # the image holds the mean relevancy grid, rows in token order
    grid = ax.get_images()[0].get_array()
    expected = frame.sort_values(["token_index", "layer"]).mean_relevancy.to_numpy().reshape(2, 2)
    assert abs(grid - expected).max() < 1e-12
    bars = interpretation_bars(frame.iloc[0], baseline="base")
    heights = [p.get_height() for p in bars.axes[0].patches]
    assert heights == pytest.approx(frame.iloc[0].relevancy)
    plt.close("all")
