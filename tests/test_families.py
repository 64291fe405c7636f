"""The families beyond the first six: encoders and T5 against Hugging Face's own outputs and
hand-written references, the fast tracer and patched generation on the new decoders, every method
on every family the family table gives it (and a clear refusal elsewhere), and the table itself.

The decoder contract (capture, interchange, self-patch, left padding, run_blocks) runs on every
decoder family in tests/test_hooks.py and tests/test_blocks.py through the ``tiny`` fixture."""

import re
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from conftest import ENCODERS
from test_hooks import forward_replacing
from test_tracing import PROMPT, SUBJECT, peaked, reference_trace
from nbtoolkit import Set, Zero, capture, load_model, patch, site_name, tiny_model
from nbtoolkit.core.anatomy import FAMILIES, MODEL_TYPES, resolve_site
from nbtoolkit.core.blocks import run_blocks
from nbtoolkit.core.loading import auto_class, pick_head
from nbtoolkit.tutorials.families import family_table, method_support

NEW_DECODERS = ["gptj", "opt", "mixtral", "qwen3", "phi", "phi3", "gemma2", "olmo2"]
TEXTS = ["The capital of Spain is", "Hi"]


def models(family, head=None, _cache={}):
    """One small model per (family, head), built once."""
    if (family, head) not in _cache:
        _cache[family, head] = tiny_model(family, n_layers=2, d_model=32, head=head)
    return _cache[family, head]


def t5_inputs(lm, texts=TEXTS, answers=("yes", "no")):
    """Encoder inputs (left-padded) and decoder inputs for T5."""
    batch, target = lm.encode(list(texts)), lm.encode(list(answers))
    return dict(batch, decoder_input_ids=target["input_ids"],
                decoder_attention_mask=target["attention_mask"])


# ---------------------------------------------------------------- encoders (BERT, RoBERTa, DeBERTa-v2)

def test_encoder_capture_matches_hidden_states_and_post_norm_sums(tiny_encoder):
    lm = tiny_encoder
    batch = lm.encode(TEXTS)
    sites = [site_name(i, kind) for i in range(lm.n_layers) for kind in ("", "in", "attn", "mlp")]
    with torch.no_grad(), capture(lm, sites) as acts:
        hidden = lm.model(**batch, output_hidden_states=True).hidden_states
    for i in range(lm.n_layers):  # every layer: encoders have no final norm
        torch.testing.assert_close(acts[f"layer.{i}"], hidden[i + 1], atol=0, rtol=0)
    # post-norm: out = norm2(norm1(in + attn) + mlp), the norms read from the model by hand
    block = resolve_site(lm.model, "layer.1").module
    norm1, norm2 = block.attention.output.LayerNorm, block.output.LayerNorm
    with torch.no_grad():
        by_hand = norm2(norm1(acts["layer.1.in"] + acts["layer.1.attn"]) + acts["layer.1.mlp"])
    torch.testing.assert_close(acts["layer.1"], by_hand, atol=1e-5, rtol=1e-5)


def assert_interchange_is_exact(lm, site, base, source, position):
    """A self-patch is bit-identical; the source's activation at one position gives the logits of
    a forward whose module output is replaced by hand (tests/test_hooks.py's reference)."""
    logits = lambda batch: lm.model(**batch).logits
    with torch.no_grad(), capture(lm, site) as acts:
        clean = logits(base)
    with torch.no_grad(), patch(lm, {site: Set(acts[site])}):
        assert torch.equal(logits(base), clean)
    with torch.no_grad(), capture(lm, site) as src:
        logits(source)
    with torch.no_grad(), patch(lm, {site: Set(src[site], at=[position])}):
        patched = logits(base)

    def substitute(h):
        h = h.clone()
        h[:, position] = src[site][:, position]
        return h
    reference = forward_replacing(lm, resolve_site(lm.model, site).module, substitute, base)
    torch.testing.assert_close(patched, reference, atol=1e-6, rtol=0)
    assert not torch.allclose(patched, clean, atol=1e-6)


@pytest.mark.parametrize("site", ["layer.1.attn", "layer.0", "layer.1.mlp", "embed"])
def test_encoder_interchange_equals_reference_and_self_patch_is_exact(tiny_encoder, site):
    lm = tiny_encoder
    assert_interchange_is_exact(lm, site, lm.encode("in Spain"), lm.encode("in Italy"), 4)


def test_encoder_left_padding_equals_one_by_one(tiny_encoder):
    lm = tiny_encoder
    with torch.no_grad():
        together = lm.model(**lm.encode(TEXTS), output_hidden_states=True).hidden_states[-1]
        for row, text in enumerate(TEXTS):
            alone = lm.model(**lm.encode(text), output_hidden_states=True).hidden_states[-1][0]
            torch.testing.assert_close(together[row, -len(alone):], alone, atol=1e-5, rtol=0)


def test_deberta_layer_0_is_read_after_its_convolution():
    lm = models("deberta-v2")
    assert resolve_site(lm.model, "layer.0").module is lm.model.deberta.encoder.conv
    with torch.no_grad(), capture(lm, ["layer.0", "layer.1.in"]) as acts:
        lm.model(**lm.encode(TEXTS))
    torch.testing.assert_close(acts["layer.0"], acts["layer.1.in"], atol=0, rtol=0)


def test_classifier_logits_and_das_interchange_on_encoders():
    from nbtoolkit.das import RotatedSubspace, intervened_logits, train_das

    for family in ENCODERS:
        lm = models(family, "sequence-classification")
        assert lm.head == "sequence-classification"
        base, source = lm.encode(["in Spain", "in Italy"]), lm.encode(["in Italy", "in Spain"])
        with torch.no_grad(), capture(lm, "logits") as acts:
            out = lm.model(**base).logits
        assert out.shape == (2, 3) and torch.equal(acts["logits"], out)
        # DAS: swapping rotated coordinates 0..7 of the source at the last position of layer 0
        rot = RotatedSubspace(lm.d_model, 8, seed=1)
        with torch.no_grad(), capture(lm, "layer.0") as src:
            lm.model(**source)
        batch = {"base": base["input_ids"], "mask": base["attention_mask"]}
        with torch.no_grad():
            das = intervened_logits(lm, rot, "layer.0", batch, src["layer.0"][:, -1:], at=[-1])
        W = rot.rotation.detach()[:, :8]

        def swap(h):  # h + W Wᵀ (s − h) at the last position: the subspace comes from the source
            h = h.clone()
            h[:, -1] += (src["layer.0"][:, -1] - h[:, -1]) @ W @ W.T
            return h
        reference = forward_replacing(lm, resolve_site(lm.model, "layer.0").module, swap, base)
        torch.testing.assert_close(das, reference, atol=1e-5, rtol=0)
        labels = torch.tensor([0, 2])
        result = train_das(lm, rot, "layer.0", {"input_ids": base["input_ids"],
                                                "source_input_ids": source["input_ids"],
                                                "labels": labels}, at=[-1], progress=False)
        assert np.isfinite(result.history.loss).all()


# ---------------------------------------------------------------- T5

def test_t5_sites_match_hidden_states_and_sum_to_the_blocks():
    lm = models("t5")
    inputs = t5_inputs(lm)
    sites = [site_name(i, "", stack) for stack in ("encoder", "decoder") for i in range(2)]
    parts = ["decoder.layer.1.in", "decoder.layer.1.attn", "decoder.layer.1.cross_attn",
             "decoder.layer.1.mlp", "encoder.embed", "decoder.embed"]
    with torch.no_grad(), capture(lm, sites + parts) as acts:
        out = lm.model(**inputs, output_hidden_states=True)
    torch.testing.assert_close(acts["encoder.layer.0"], out.encoder_hidden_states[1], atol=0, rtol=0)
    torch.testing.assert_close(acts["decoder.layer.0"], out.decoder_hidden_states[1], atol=0, rtol=0)
    torch.testing.assert_close(acts["encoder.embed"], out.encoder_hidden_states[0], atol=0, rtol=0)
    torch.testing.assert_close(acts["decoder.embed"], out.decoder_hidden_states[0], atol=0, rtol=0)
    total = sum(acts[p] for p in parts[:4])
    torch.testing.assert_close(acts["decoder.layer.1"], total, atol=1e-5, rtol=1e-5)
    # the heads feed the attention's output projection, which has no bias
    with torch.no_grad(), patch(lm, {"encoder.layer.1.attn.heads": Zero()}), \
            capture(lm, ["encoder.layer.1.attn.heads", "encoder.layer.1.attn"]) as zeroed:
        lm.model(**inputs)
    assert zeroed["encoder.layer.1.attn.heads"].shape == (2, inputs["input_ids"].shape[1], 4, 8)
    assert not zeroed["encoder.layer.1.attn"].any()


@pytest.mark.parametrize("site", ["encoder.layer.1.mlp", "encoder.layer.0.attn",
                                  "decoder.layer.0.cross_attn", "decoder.layer.1"])
def test_t5_interchange_equals_reference_and_self_patch_is_exact(site):
    lm = models("t5")
    base, source = t5_inputs(lm, ["in Spain"], ["yes"]), t5_inputs(lm, ["in Italy"], ["yes"])
    assert_interchange_is_exact(lm, site, base, source, 0 if site.startswith("decoder") else 4)


def test_t5_left_padding_equals_one_by_one():
    lm = models("t5")
    answers = ["yes", "no"]
    with torch.no_grad():
        together = lm.model(**t5_inputs(lm, TEXTS, answers)).logits
        for row, (text, answer) in enumerate(zip(TEXTS, answers)):
            alone = lm.model(**t5_inputs(lm, [text], [answer])).logits[0]
            torch.testing.assert_close(together[row, -len(alone):], alone, atol=1e-5, rtol=0)


# ---------------------------------------------------------------- CCS extraction on encoders and T5

def test_ccs_extraction_reads_burns_tokens():
    """Encoders: ``prompt answer`` in the tokenizer's special tokens, the last one read; T5: the
    pair ``prompt </s> answer </s>`` in the encoder, or the prompt in the encoder and the answer's
    tokens in the decoder (Burns' two ways), the last token read."""
    from nbtoolkit.ccs.activations import extract
    from nbtoolkit.data.contrast import load_contrast

    pairs = load_contrast("arithmetic", templates=0, n=4, seed=1)[0]
    prompt, yes = pairs.prompts[2], pairs.choices[1]
    for family, stack in [*((f, None) for f in ENCODERS), ("t5", "encoder"), ("t5", "decoder")]:
        lm = models(family)
        st = extract(lm, pairs, cache=False, progress=False, batch_size=3, stack=stack)
        assert st.layers == [-1, 0, 1] and np.isnan(st.logp_pos).all()
        tok = lm.tokenizer
        with torch.no_grad():
            if family != "t5":
                ids = tok(f"{prompt} {yes}", return_tensors="pt")
                hidden = lm.model(**ids, output_hidden_states=True).hidden_states
                assert ids["input_ids"][0, -1] == tok.eos_token_id  # the end token is read
            elif stack == "encoder":
                ids = tok(prompt, yes, return_tensors="pt")
                hidden = lm.model.get_encoder()(**ids, output_hidden_states=True).hidden_states
            else:
                out = lm.model(**tok(prompt, return_tensors="pt"), output_hidden_states=True,
                               decoder_input_ids=tok(yes, return_tensors="pt")["input_ids"])
                hidden = out.decoder_hidden_states
        for index in (1, 2):  # after blocks 0 and 1 (HF's last entry is after a final norm)
            if family == "t5" and index == 2:
                continue
            np.testing.assert_allclose(st.hidden_pos[2, index], hidden[index][0, -1], atol=1e-5)
        assert np.abs(st.hidden_pos - st.hidden_neg).max() > 1e-3


# ---------------------------------------------------------------- the new decoders

@pytest.mark.parametrize("family", NEW_DECODERS)
def test_fast_tracer_equals_the_reference(family):
    """As tests/test_tracing.py on the first six, at the subject's last token and the last token."""
    from nbtoolkit.tracing import noise_level, trace_kinds

    lm = peaked(family)
    level = noise_level(lm, ["Big Ben", "London"], factor=5)
    results = trace_kinds(lm, PROMPT, SUBJECT, samples=3, noise=level, window=2, max_tokens=100,
                          positions=[6, 15])
    for kind, result in results.items():
        scores, low, high, answer, _ = reference_trace(lm, PROMPT, SUBJECT, kind, 3, level,
                                                       window=2, positions=[6, 15])
        assert result.answer_id == answer and abs(result.low_score - low) < 1e-5
        np.testing.assert_allclose(result.scores[[6, 15]], scores[[6, 15]], atol=1e-5, rtol=0)
        assert np.nanmax(np.abs(scores - low)) > 3e-4, (family, kind)


def test_patched_generation_agrees_with_and_without_the_kv_cache(tiny):
    vector = 5 * torch.randn(tiny.d_model, generator=torch.Generator().manual_seed(0))
    batch = tiny.encode(["Hello", "The capital of"])
    batch.pop("position_ids")
    runs = []
    for use_cache in (True, False):
        with torch.no_grad(), patch(tiny, {"layer.1": Set(vector, at=[2])}):
            runs.append(tiny.model.generate(**batch, max_new_tokens=4, min_new_tokens=4,
                                            do_sample=False, use_cache=use_cache,
                                            pad_token_id=tiny.tokenizer.pad_token_id,
                                            output_logits=True, return_dict_in_generate=True))
    assert torch.equal(runs[0].sequences, runs[1].sequences)
    torch.testing.assert_close(torch.stack(runs[0].logits), torch.stack(runs[1].logits),
                               atol=1e-4, rtol=0)


def opt_350m_layout():
    """A tiny model in OPT-350m's layout: post-norm blocks, a projection into and out of the
    residual stream (width 32, embeddings 16), no final norm."""
    import transformers as tf

    from nbtoolkit.core.lm import LM
    from nbtoolkit.core.tiny import byte_tokenizer

    tokenizer = byte_tokenizer()
    config = tf.OPTConfig(vocab_size=len(tokenizer), hidden_size=32, word_embed_proj_dim=16,
                          ffn_dim=64, num_hidden_layers=2, num_attention_heads=4,
                          do_layer_norm_before=False, max_position_embeddings=64,
                          pad_token_id=tokenizer.pad_token_id)
    torch.manual_seed(0)
    return LM(tf.OPTForCausalLM(config).eval(), tokenizer)


def test_opt_350m_layout_post_norm_projections_no_final_norm():
    """OPT-350m: blocks normalise after their sums, token embeddings are projected into the
    residual stream and out of it, and there is no final norm."""
    lm = opt_350m_layout()
    assert "final_norm" not in lm.sites and lm.context_length == 64
    with pytest.raises(ValueError, match="no final norm"):
        resolve_site(lm.model, "final_norm")
    batch = lm.encode(TEXTS)
    with torch.no_grad(), capture(lm, ["embed", "layer.0", "layer.1.mlp"]) as acts:
        out = lm.model(**batch, output_hidden_states=True)
    assert acts["embed"].shape[-1] == 32  # after the projection in: the residual's width
    assert acts["layer.1.mlp"].shape == (*batch["input_ids"].shape, 32)
    torch.testing.assert_close(acts["layer.0"], out.hidden_states[1], atol=0, rtol=0)
    with torch.no_grad(), run_blocks(lm, 1):  # the projection in is skipped: already in the stream
        rest = lm.model(inputs_embeds=acts["layer.0"], **{k: v for k, v in batch.items()
                                                          if k != "input_ids"}).logits
    torch.testing.assert_close(rest, out.logits, atol=1e-5, rtol=0)


# ---------------------------------------------------------------- loading: heads and real configs

GPTJ_6B = dict(model_type="gptj", architectures=["GPTJForCausalLM"], n_layer=28, n_embd=4096,
               n_head=16, rotary_dim=64, n_positions=2048, vocab_size=50400)  # its config.json


def test_gpt_j_6b_config_resolves_to_the_gptj_family():
    """EleutherAI/gpt-j-6b, built on the meta device from its config (no weights needed)."""
    from transformers import AutoConfig

    config = AutoConfig.for_model(**GPTJ_6B)
    assert pick_head(config) == "causal-lm"
    with torch.device("meta"):
        model = auto_class("causal-lm").from_config(config)
    assert MODEL_TYPES[config.model_type] == "gptj"
    lm = type("Meta", (), {"model": model})()
    for site, module in [("layer.27.mlp", "transformer.h.27.mlp"),
                         ("layer.27.attn", "transformer.h.27.attn"),
                         ("layer.3.attn.heads", "transformer.h.3.attn.out_proj"),
                         ("final_norm", "transformer.ln_f"), ("embed", "transformer.wte")]:
        assert resolve_site(lm.model, site).module is model.get_submodule(module)
    assert resolve_site(model, "layer.3.attn.heads").n_heads == 16
    with pytest.raises(ValueError, match="layer 28 does not exist"):
        resolve_site(model, "layer.28")


@pytest.mark.parametrize("config, head", [
    (dict(model_type="roberta", architectures=["RobertaForSequenceClassification"]),
     "sequence-classification"),                                   # roberta-large-mnli
    (dict(model_type="deberta-v2", architectures=["DebertaV2ForMaskedLM"]), "masked-lm"),
    (dict(model_type="t5", architectures=["T5WithLMHeadModel"]), "seq2seq-lm"),  # t5-11b's legacy name
    (dict(model_type="bert"), "masked-lm"),
    (dict(model_type="gptj"), "causal-lm"),
])
def test_the_head_follows_the_config(config, head):
    from transformers import AutoConfig

    assert pick_head(AutoConfig.for_model(**config)) == head


def test_load_model_from_a_folder_picks_the_saved_head(tmp_path):
    lm = models("roberta", "sequence-classification")
    lm.model.save_pretrained(tmp_path)
    lm.tokenizer.save_pretrained(tmp_path)
    loaded = load_model(str(tmp_path))
    assert loaded.head == "sequence-classification" and "head='sequence-classification'" in repr(loaded)
    assert load_model(str(tmp_path), head="masked-lm").head == "masked-lm"
    with pytest.raises(ValueError, match="head must be one of causal-lm"):
        load_model(str(tmp_path), head="classifier")


def test_tiny_model_takes_hugging_face_model_types():
    assert tiny_model("deberta-v2").family == "deberta-v2"
    assert tiny_model("gemma3_text").family == "gemma3"
    assert set(FAMILIES) <= set(MODEL_TYPES)


# ---------------------------------------------------------------- bad input

@pytest.mark.parametrize("family, site, message", [
    ("t5", "layer.1", "have an encoder and a decoder: name the stack"),
    ("t5", "embed", "have an encoder and a decoder"),
    ("t5", "encoder.logits", "the logits belong to no stack"),
    ("llama", "layer.0.cross_attn", "only the decoder of an encoder-decoder"),
    ("llama", "positions", "no absolute position embedding"),
    ("bert", "final_norm", "no final norm"),
    ("bert", "encoder.layer.9", "unknown site"),
])
def test_bad_sites_say_what_is_valid(family, site, message):
    with pytest.raises(ValueError, match=message):
        resolve_site(models(family).model, site)


def test_methods_that_need_a_causal_lm_say_so():
    from nbtoolkit.ccs.activations import extract
    from nbtoolkit.data.contrast import load_contrast

    with pytest.raises(ValueError, match="next_token_probs needs a causal LM"):
        models("bert").next_token_probs("Hi")
    with pytest.raises(ValueError, match="generate needs a causal LM"):
        models("t5").generate("Hi")
    with pytest.raises(ValueError, match="reads next-token or class logits"):
        from nbtoolkit.interchange import interchange_sweep
        interchange_sweep(models("bert"), "ab", "cd", lambda p: p[:, 0])
    pairs = load_contrast("arithmetic", templates=0, n=2)[0]
    with pytest.raises(ValueError, match="stack is for encoder-decoder models"):
        extract(models("llama"), pairs, stack="decoder", cache=False)
    with pytest.raises(ValueError, match="stack must be one of"):
        extract(models("t5"), pairs, stack="both", cache=False)


# ---------------------------------------------------------------- every method, every family

def _site(lm, layer, kind=""):
    return site_name(layer, kind, "encoder" if lm.kind == "encoder-decoder" else "")


def _run(method, family):
    """Run ``method`` on ``family``'s tiny model; returns something finite to check."""
    from nbtoolkit import instruction_shift, selfie
    from nbtoolkit.ccs.activations import extract
    from nbtoolkit.das import RotatedSubspace, train_das
    from nbtoolkit.data.contrast import load_contrast
    from nbtoolkit.interchange import interchange_sweep
    from nbtoolkit.tracing import causal_trace

    predicts = "sequence-classification" if FAMILIES[family].kind == "encoder" and \
        method in ("interchange", "DAS") else None
    lm = models(family, predicts)
    words = ["cat", "dog", "car", "bus"]
    if method == "capture & patch":
        site = _site(lm, 1, "mlp")
        inputs = t5_inputs(lm) if lm.kind == "encoder-decoder" else lm.encode(TEXTS)
        with torch.no_grad(), capture(lm, site) as acts:
            clean = lm.model(**inputs).logits
        with torch.no_grad(), patch(lm, {site: Zero()}):
            assert not torch.allclose(lm.model(**inputs).logits, clean)
        return acts[site]
    if method == "causal tracing":
        return causal_trace(lm, PROMPT, SUBJECT, kind="mlp", samples=2, noise=0.3, window=2,
                            positions="last").scores[-1]
    if method == "interchange":
        return interchange_sweep(lm, "in Spain", "in Italy", lambda p: p[:, 0], layers=[1]).scores[1]
    if method == "DAS":
        base, source = lm.encode(["in Spain", "in Italy"]), lm.encode(["in Italy", "in Spain"])
        data = {"input_ids": base["input_ids"], "source_input_ids": source["input_ids"],
                "labels": torch.tensor([0, 1])}
        return train_das(lm, RotatedSubspace(lm.d_model, 4), _site(lm, 0), data, at=[-1],
                         progress=False).history.loss.to_numpy()
    if method == "CCS extraction":
        return extract(lm, load_contrast("arithmetic", templates=0, n=2)[0], cache=False,
                       progress=False).hidden_pos
    if method == "attribution":
        return instruction_shift.input_output_attribution(lm, "Hello there", "ok").scores
    if method == "SelfIE":
        result = selfie.interpret(lm, "Big Ben", tokens=[-1], layers=[0], max_new_tokens=2)
        return result.mean_relevancy
    if method == "steering":
        vector = selfie.direction(lm, ["good day"], ["bad day"], _site(lm, 0))
        assert selfie.steer(lm, "Hi", vector, _site(lm, 0), max_new_tokens=2)
        return vector
    if method in ("head patching", "path patching", "attribution patching"):
        from nbtoolkit.circuits import attribution_patching, head_patching, path_patching

        base, source = ["in Spain", "Hi Bob to"], ["in Italy", "Hi Ann to"]
        metric = lambda logits: logits[:, 65] - logits[:, 66]  # noqa: E731
        if method == "head patching":
            return head_patching(lm, base, source, metric, kind="q", layers=[1]).scores[1]
        if method == "path patching":
            return path_patching(lm, base, source, [(0, 1)], [(1, 0, "k")], metric).scores
        return attribution_patching(lm, base, source, metric, kind="v", qk_fix=True).scores
    if method == "explain: heads":
        hq, hk = instruction_shift.head_query_key(lm, 1, 1, instruction_shift.word_vectors(lm, words))
        return hq * hk
    if method == "logit & tuned lens":
        from nbtoolkit.lens import TunedLens, logit_lens

        lens = logit_lens(lm, TEXTS)
        tuned = TunedLens(steps=1, tokens_per_step=8).fit(lm, TEXTS)
        return np.concatenate([lens.target_logprobs.numpy().reshape(-1)[:5],
                               tuned(lm, TEXTS[0]).top_logprobs.numpy().reshape(-1)])
    if method == "DLA":
        from nbtoolkit.lens import direct_logit_attribution

        result = direct_logit_attribution(lm, PROMPT, "a", "b")
        assert abs(result.total - result.logit_diff) < 1e-4 * max(1, abs(result.logit_diff)) \
            or result.softcap is not None
        return result.values
    if method == "attention & induction":
        from nbtoolkit.lens import attention_patterns, induction_ablation, induction_scores

        scores = induction_scores(lm, seq_len=5, batch=1)
        check = induction_ablation(lm, scores.top(1), controls=1, seq_len=5, batch=1)
        weights = attention_patterns(lm, TEXTS[0]).weights
        return np.concatenate([scores.induction.reshape(-1), [check.increase],
                               weights.numpy().reshape(-1)[:3]])
    if method == "explain: FFN":
        return instruction_shift.ffn_concepts(lm, 1, 2, 2, words=words, annotator=False).scores
    raise AssertionError(method)


CELLS = [(method, family) for method in method_support() for family in FAMILIES]


@pytest.mark.parametrize("method, family", CELLS, ids=[f"{m}-{f}" for m, f in CELLS])
def test_every_method_runs_where_the_table_says_and_refuses_elsewhere(method, family):
    if family in method_support()[method]:
        result = _run(method, family)
        values = result.detach().numpy() if torch.is_tensor(result) else np.asarray(result)
        assert values.size and np.isfinite(values.astype(float)).all()
    else:
        with pytest.raises(ValueError, match="runs on|not supported|reads next-token"):
            _run(method, family)


def test_the_docs_include_the_generated_family_table(tmp_path):
    """The family guide includes the table docs/conf.py generates from family_table() at build time."""
    docs = Path(__file__).resolve().parents[1] / "docs"
    assert "```{include} ../_generated/family_table.md" in (docs / "guides" / "families.md").read_text()
    sys.path.insert(0, str(docs))
    import pages
    pages.write_tables(tmp_path)
    assert (tmp_path / "family_table.md").read_text() == family_table()
