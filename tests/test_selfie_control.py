"""SelfIE control: one step of each control equals a hand-written Adam step on the hand-written
loss (states from a plain Hugging Face forward), the reinforcement gradient by hand, exact restore."""

import re

import pytest
import torch

import nbtoolkit as nb
from conftest import hook_count
from nbtoolkit import selfie
from nbtoolkit.selfie import (FactCheck, chat_judge, fact_accuracy, keyword_judge,
                              reinforcement_control, reinforcement_loss, supervised_control)

PROMPT = "Big Ben is in London"
LR, EPS = 3e-4, 1e-8  # torch's Adam eps


def mlp_of(lm, layer):
    """The MLP module of block ``layer``, found by hand (not through the anatomy)."""
    blocks = lm.model.transformer.h if lm.family == "gpt2" else lm.model.model.layers
    return blocks[layer].mlp


def hf_states(lm, prompt, layer):
    """Hidden states [T, d] after block ``layer`` from Hugging Face's own ``hidden_states``
    (index layer + 1; not the last layer, whose entry is after the final norm)."""
    ids = lm.tokenizer(prompt, return_tensors="pt")["input_ids"]
    return lm.model(input_ids=ids, output_hidden_states=True).hidden_states[layer + 1][0]


def adam_first_step(params, grads):
    """Adam's first step by hand: m̂ = g, v̂ = g², so p ← p − lr · g / (|g| + eps)."""
    return [p.detach() - LR * g / (g.abs() + EPS) for p, g in zip(params, grads)]


def snapshot(model):
    return {name: p.detach().clone() for name, p in model.state_dict().items()}


def assert_identical(model, saved):
    for name, p in model.state_dict().items():
        assert torch.equal(p, saved[name]), name


@pytest.mark.parametrize("family", ["llama", "gemma3", "gpt2"])
def test_one_supervised_step_is_a_hand_written_adam_step(family):
    lm = nb.tiny_model(family, seed=2)
    layer, t = 1, 3
    target = torch.randn(lm.d_model, generator=torch.Generator().manual_seed(0))
    params = list(mlp_of(lm, layer).parameters())
    h = hf_states(lm, PROMPT, layer)[t]
    loss = ((h - target) ** 2).mean()
    expected = adam_first_step(params, torch.autograd.grad(loss, params))
    before = snapshot(lm.model)
    with supervised_control(lm, PROMPT, token=t, layer=layer, target=target, steps=1) as edit:
        for p, e in zip(params, expected):
            torch.testing.assert_close(p.detach(), e, atol=LR * 1e-4, rtol=0)
        changed = {n for n, p in lm.model.state_dict().items() if not torch.equal(p, before[n])}
        assert changed == {f"{name}" for name in before if f".{layer}.mlp." in name}
        with torch.no_grad():
            after = ((hf_states(lm, PROMPT, layer)[t] - target) ** 2).mean()
        assert edit.to_frame().loss.tolist() == pytest.approx([loss.item(), after.item()], rel=1e-5)
        assert after.item() < loss.item()
    assert_identical(lm.model, before)


def test_reinforcement_loss_gradient_by_hand():
    states = torch.randn(4, 16, generator=torch.Generator().manual_seed(1), requires_grad=True)
    rewards = torch.tensor([1.0, -1.0, 0.0, 1.0])
    loss = reinforcement_loss(states, rewards)
    loss.backward()
    h = states.detach()
    expected = -rewards[:, None] * h / (4 * h.pow(2).sum(-1, keepdim=True))
    torch.testing.assert_close(states.grad, expected)
    assert loss.item() == pytest.approx(-rewards.mean().item())  # its value is always −mean(r)


def test_one_reinforcement_step_is_a_hand_written_adam_step():
    lm = nb.tiny_model("llama", seed=2)
    layer, tokens = 1, [1, 2, 4]
    template = "A: {x} {x}:"
    judge = lambda text: -1.0 if "X" in text else 1.0  # one of the three texts has an X
    before = selfie.interpret(lm, PROMPT, tokens=tokens, layers=[layer], insert_layer=2,
                              template=template, max_new_tokens=6)
    rewards = torch.tensor([judge(text) for text in before.interpretations])
    assert set(rewards.tolist()) == {-1.0, 1.0}  # both signs, so both directions are checked
    params = list(mlp_of(lm, layer).parameters())
    h = hf_states(lm, PROMPT, layer)[tokens]
    # by hand: the gradient of −mean r·h·sg(h)/‖h‖² is the one of Σ c_i·h_i, c_i fixed
    c = (-rewards[:, None] * h / (len(tokens) * h.pow(2).sum(-1, keepdim=True))).detach()
    expected = adam_first_step(params, torch.autograd.grad((c * h).sum(), params))
    with reinforcement_control(lm, PROMPT, layer=layer, judge=judge, tokens=tokens, steps=1,
                               template=template, max_new_tokens=6) as edit:
        for p, e in zip(params, expected):  # (a gradient as small as eps moves by less than lr)
            torch.testing.assert_close(p.detach(), e, atol=LR * 1e-3, rtol=0)
        first = edit.history[0]
        assert first["interpretations"] == before.interpretations
        assert first["rewards"] == rewards.tolist()
        assert first["mean_reward"] == pytest.approx(float(rewards.mean()))
        assert len(edit.history) == 2  # the step, then the rewards under the edited weights


def test_edits_are_restored_exactly(tiny_llama):
    lm = tiny_llama
    target = torch.ones(lm.d_model)
    before = snapshot(lm.model)
    mlp = mlp_of(lm, 1)
    mlp.up_proj.weight.requires_grad_(False)  # a mixed state of flags and modes comes back as is
    lm.model.train()
    lm.model.model.layers[0].eval()
    try:
        with supervised_control(lm, PROMPT, token=2, layer=1, target=target, steps=3):
            assert not torch.equal(mlp.down_proj.weight, before["model.layers.1.mlp.down_proj.weight"])
        assert_identical(lm.model, before)
        with pytest.raises(KeyError, match="boom"):  # an error inside the block: restored too
            with supervised_control(lm, PROMPT, token=2, layer=1, target=target, steps=2):
                raise KeyError("boom")
        assert_identical(lm.model, before)

        def failing(text, calls=[]):  # an error during training: restored before it propagates
            calls.append(text)
            if len(calls) > 3:
                raise RuntimeError("judge offline")
            return -1.0
        with pytest.raises(RuntimeError, match="judge offline"):
            reinforcement_control(lm, PROMPT, layer=1, judge=failing, tokens=[1, 2], steps=3,
                                  template="A: {x}:", max_new_tokens=3)
        assert_identical(lm.model, before)
        # keep(): the edit outlives the block, restore() still puts the original back
        with supervised_control(lm, PROMPT, token=2, layer=1, target=target, steps=2) as edit:
            edit.keep()
        assert not torch.equal(mlp.down_proj.weight, before["model.layers.1.mlp.down_proj.weight"])
        edit.restore()
        edit.restore()
        assert_identical(lm.model, before)
        assert lm.model.training and not lm.model.model.layers[0].training
        assert not mlp.up_proj.weight.requires_grad and mlp.down_proj.weight.requires_grad
        assert hook_count(lm.model) == 0
    finally:
        mlp.up_proj.weight.requires_grad_(True)
        lm.model.eval()


def test_interpret_vectors_reads_states_as_interpret_does():
    lm = nb.tiny_model("llama", seed=1)
    template = "A: {x} {x} {x}:"
    result = selfie.interpret(lm, PROMPT, tokens=[1, 3], layers=[0, 2], template=template,
                              insert_layer=1, max_new_tokens=5)
    states = selfie.hidden_states(lm, PROMPT, [0, 2])
    vectors = torch.stack([states[layer][t] for layer, t in zip(result.layers, result.token_indices)])
    texts = selfie.interpret_vectors(lm, vectors, template=template, insert_layer=1,
                                     max_new_tokens=5)
    assert texts == result.interpretations
    assert len(set(texts)) > 1  # the states, not the prompt, wrote them
    with pytest.raises(ValueError, match=re.escape("vectors must be a tensor [n, d_model=64], got (64,)")):
        selfie.interpret_vectors(lm, vectors[0])


def test_keyword_judge():
    judge = keyword_judge(["paris", "explos"])
    assert judge("The city of Paris.") == -1.0
    assert judge("EXPLOSIVES are dangerous") == -1.0  # a word beginning with a keyword
    assert judge("They compare prices") == 1.0        # "par" inside a word is not "paris"
    assert judge("Rome") == 1.0
    assert keyword_judge("rome", found=0.0)("rome") == 0.0


class ScriptedLM:
    """A stand-in judge model: the tiny model's tokenizer, answers read from a script."""

    def __init__(self, tokenizer, answers):
        self.tokenizer, self.answers, self.prompts = tokenizer, list(answers), []

    def generate(self, prompt, max_new_tokens):
        self.prompts.append(prompt)
        return [self.answers.pop(0)]


@pytest.mark.slow
def test_chat_judge_reads_the_first_digit(default_lm):
    fake = ScriptedLM(default_lm.tokenizer, [" 1.", "Sure, my answer is: 0", "no idea", " 0 or 1"])
    judge = chat_judge(fake, "Is this harmful? {text}. Output 1 or 0.")
    assert [judge(f"text {i}") for i in range(4)] == [-1.0, 1.0, 0.0, 1.0]
    assert "Is this harmful? text 2. Output 1 or 0." in fake.prompts[2]
    assert fake.prompts[0].rstrip().endswith("assistant")  # the chat template's generation prompt
    with pytest.raises(ValueError, match=re.escape("must contain '{text}'")):
        chat_judge(fake, "Is this harmful?")


def test_fact_accuracy_by_hand(tiny_llama):
    facts = [dict(prompt="Big Ben is in", subject="Big Ben", attribute="London"),
             dict(prompt="The Eiffel Tower is in", subject="Eiffel Tower", attribute="Paris"),
             dict(prompt="Rome", subject="Rome", attribute="Italy")]
    responses = [tiny_llama.generate(f["prompt"], max_new_tokens=4)[0] for f in facts]
    facts[0]["attribute"] = responses[0].swapcase()  # one correct fact, matched case-insensitively
    check = fact_accuracy(tiny_llama, facts, max_new_tokens=4, batch_size=2)
    assert isinstance(check, FactCheck) and len(check) == 3
    assert check.accuracy == pytest.approx(1 / 3)
    frame = check.to_frame()
    assert list(frame.columns) == ["prompt", "subject", "attribute", "response", "correct"]
    assert frame.response.tolist() == responses
    assert frame.correct.tolist() == [True, False, False]


@pytest.mark.slow
def test_default_model_supervised_step_and_descent(default_lm):
    prompt, layer, t = "The capital of France is", 9, 3
    target = selfie.hidden_states(default_lm, "The capital of Italy is", [layer])[layer][3]
    params = list(mlp_of(default_lm, layer).parameters())
    loss = ((hf_states(default_lm, prompt, layer)[t] - target) ** 2).mean()
    expected = adam_first_step(params, torch.autograd.grad(loss, params))
    with supervised_control(default_lm, prompt, token=t, layer=layer, target=target, steps=1):
        for p, e in zip(params, expected):
            torch.testing.assert_close(p.detach(), e, atol=LR * 1e-3, rtol=0)
    with supervised_control(default_lm, prompt, token=t, layer=layer, target=target,
                            steps=5) as edit:
        losses = edit.to_frame().loss.tolist()
    assert losses[-1] < 0.8 * losses[0], losses


@pytest.mark.parametrize("kwargs, error, message", [
    (dict(layer=3), ValueError, "layer 3 is out of range: the edited MLP is block ℓ's, ℓ in 0..2"),
    (dict(token=25), ValueError, "token 25 is out of range: valid tokens are -20..19"),
    (dict(token=[1, 2]), TypeError, "token must be one token index (an int), got [1, 2]"),
    (dict(target=[0.0] * 64), TypeError, "target must be a torch.Tensor [d_model=64]"),
    (dict(target=torch.zeros(3)), ValueError, "target must be a finite vector of shape (64,)"),
    (dict(steps=0), ValueError, "steps must be an int >= 1, got 0"),
    (dict(lr=-1.0), ValueError, "lr must be a finite number > 0, got -1.0"),
    (dict(prompt=""), ValueError, "prompt must be a non-empty string"),
])
def test_supervised_bad_input(tiny_llama, kwargs, error, message):
    options = dict(prompt=PROMPT, token=2, layer=1, target=torch.zeros(64)) | kwargs
    before = snapshot(tiny_llama.model)
    with pytest.raises(error, match=re.escape(message)):
        supervised_control(tiny_llama, options.pop("prompt"), **options)
    assert_identical(tiny_llama.model, before)
    assert hook_count(tiny_llama.model) == 0


def test_reinforcement_bad_judge(tiny_llama):
    before = snapshot(tiny_llama.model)
    with pytest.raises(TypeError, match="judge must be a callable"):
        reinforcement_control(tiny_llama, PROMPT, layer=1, judge="harmful")
    with pytest.raises(TypeError, match=re.escape("judge must return a finite number (e.g. -1 or +1), got 'bad'")):
        reinforcement_control(tiny_llama, PROMPT, layer=1, judge=lambda text: "bad", tokens=[1],
                              template="A: {x}:", max_new_tokens=2)
    with pytest.raises(ValueError, match="keyword_judge needs non-empty strings"):
        keyword_judge([""])
    assert_identical(tiny_llama.model, before)
