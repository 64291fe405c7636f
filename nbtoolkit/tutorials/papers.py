"""Every published number a notebook prints, in one place, with its source.

Notebooks read the paper's side of each "paper vs ours" table from here; none types a number.
Each entry: ``model`` (the paper's model), ``source`` (where the number is printed) and the
numbers themselves.
"""

ROME = {  # notebook 02
    "source": "Meng et al. 2022, Locating and Editing Factual Associations in GPT, Fig. 2 / §2.1",
    "model": "gpt2-xl",
    "n_layers": 48,
    "total_effect": 0.186,                   # ATE: clean − corrupted p(answer)
    "hidden_last_subject": (15, 0.087),      # (layer, AIE) of the best single hidden state
    "mlp_last_subject": (17, 0.066),         # MLP window of 10, peak at the last subject token
    "attn_last_subject": (None, 0.016),      # attention window of 10 at the last subject token
    "attn_last_token_layer": 32,             # where attention at the last token peaks
}

ROME_SEVERING = {  # notebook 02, severing
    "source": "Meng et al. 2022, Fig. 3 (the notebook causal_trace_frozen_mlp_attn.ipynb of "
              "kmeng01/rome: the hidden state at the last subject token restored, the MLP or "
              "attention outputs at that token re-inserted from the corrupted run)",
    "model": "gpt2-xl",
    "n_layers": 48,
    "n_facts": 1000,                         # the first 1,000 known facts
    "mlp_severed": "the lower layers' states lose their causal effect without the later MLPs",
    "attn_severed": "no such gap: the effect stays close to the plain restoration",
}

DAS = {  # notebook 03
    "source": "Geiger et al., Finding Alignments Between Interpretable Causal Variables and "
              "Distributed Neural Representations (arXiv 2303.02536), hierarchical equality",
    "model": "3-layer MLP, 16 units",
    "iia": {"WX": 1.00, "YZ": 1.00},
    "localist_iia": 0.60,                    # the paper's brute-force neuron-aligned search
    "pyvene_tutorial_iia": 0.97,             # pyvene's DAS_Main_Introduction, saved outputs
}

BOUNDLESS_DAS = {  # notebook 04
    "source": "Wu et al. 2023, Interpretability at Scale (Boundless DAS), Table 1 (IIA_max over a "
              "7 × 13 layer/position grid, best of 3 seeds)",
    "model": "Alpaca 7B, 7×13 grid, 3 seeds",
    "iia_max": {"left": ("Left Boundary", 0.90), "left_right": ("Left and Right Boundary", 0.86),
                "midpoint": ("Mid-point Distance (control)", 0.70),
                "bracket": ("Bracket Identity (control)", 0.72)},
    "task_accuracy": 0.85,                   # Alpaca's price-tagging accuracy (heatmap scaling)
    "pyvene_tutorial_task_accuracy": 0.92,
}

BURNS = {  # notebook 05
    "source": "Burns et al. 2022, Discovering Latent Knowledge in Language Models Without "
              "Supervision, Tables 1-2, Mean* over 5 models and 10 datasets (%)",
    "model": "5 models, 0.1-11B (T5, UnifiedQA, T0, DeBERTa, GPT-J)",
    "means": {"zero_shot": 62.8, "zero_shot_cal": 67.2, "ccs": 71.2, "crc": 69.2, "lr": 83.7},
}

BURNS_MISLEADING = {  # notebook 05 and `ccs elicit --misleading-prefix`
    "source": "Burns et al. 2022, Table 3: a prefix asking for incorrect answers before every "
              "prompt (accuracy %)",
    "model": "UnifiedQA-T5-11B (the model whose zero-shot answers the prefix hurt most)",
    "uqa": {"zero_shot_cal": (80.4, 70.9), "ccs": (82.1, 83.8)},  # (without, with the prefix)
    "means_with_prefix": {"zero_shot": 65.4, "ccs": 71.2, "crc": 69.2, "bss": 68.6, "lr": 84.2},
    "prefix_wording": "not in the authors' released code; nbtoolkit's MISLEADING_PREFIX is its own",
}

INSTRUCTION_SHIFT = {  # notebook 06
    "source": "Wu et al. 2023, From Language Modeling to Instruction Following (arXiv 2310.00492), "
              "Tables 1-2",
    "table1": dict(  # instruction-word importance in Vicuna-7B, followed vs not (human ratings)
        model="Vicuna-7B", label="human rating",
        dataset=["Self-Instruct", "LIMA", "MT-Bench"], followed=[1.2283, 1.6173, 1.4584],
        not_followed=[0.8917, 1.2799, 0.9290], n_followed=[193, 249, 60],
        n_not_followed=[44, 50, 19], p=[6.1e-5, 2.8e-6, 4.2e-4]),
    "table2": dict(  # the same importance in the base and the tuned model
        base_model="LLaMA-7B", tuned_model="Vicuna-7B",
        dataset=["Self-Instruct", "LIMA", "MT-Bench"], base=[0.9394, 1.2683, 1.1777],
        tuned=[1.1302, 1.5579, 1.3440], n=[252, 300, 80], p=[1.7e-5, 2.0e-14, 0.033]),
    "n_prompts": 632,
    "response_tokens": 200,
    # Tables 3 and 5 / Figure 3: the published cells were not transcribed (the paper's tables
    # could not be read offline); the claims below are the paper's words, and the numbers come
    # from the authors' released explanation files (notebook 06, when online).
    "table3": dict(
        base_model="LLaMA-7B", tuned_model="Vicuna-7B", layer_groups=["1-8", "9-16", "17-24", "25-32"],
        published=None,
        claim="tuned heads encode more relations of instruction verbs (write, create, classify, ...), "
              "mainly in lower and middle layers; general verbs show no such trend"),
    "table5": dict(
        base_model="LLaMA-7B", tuned_model="Vicuna-7B", seeds=5, max_rank=300,
        tasks=["writing", "math", "coding", "translation", "none"],
        levels=["semantic", "syntax", "morphology", "phonology"], published=None,
        claim="after tuning, more FFN concepts serve user tasks (writing, coding, math, "
              "translation); shares across linguistic levels stay nearly unchanged"),
    "released": "github.com/JacksonWuxs/Interpret_Instruction_Tuning_LLMs at 52508a0 (GPL-3; "
                "downloaded on demand, never bundled)",
}

SELFIE = {  # notebook 07
    "source": "Chen et al. 2024, SelfIE: Self-Interpretation of Large Language Model Embeddings, "
              "§3-4 and the authors' repository",
    "model": "LLaMA-2-70B-chat (7B/13B ablations)",
    "insert_layer": "1 (repo default; notebooks 2)",
    "placeholders": 5,
    "mean_relevancy": "not reported",
    "placeholder_only": "'almost the same' on Llama-2-7b-chat (authors' issue #9)",
}

SELFIE_CONTROL = {  # notebook 08
    "source": "Chen et al. 2024, SelfIE, §5 and the authors' repository "
              "(examples/Supervised Controls.ipynb, examples/Reinforcement Controls.ipynb)",
    "model": "LLaMA-2-7B-chat (the repository's control runs; the paper: LLaMA-2-70B-chat)",
    "learning_rate": 3e-4,                   # Adam, both controls
    "supervised_steps": 20,                  # at most
    "supervised_loss": (0.387, 0.077),       # MSE over the first 4 steps shown (drink example)
    "reinforcement_steps": 11,
    "reinforcement_tokens": 50,              # interpretation length judged
    "fact_accuracy": (0.897, 0.720),         # known facts, before / after reinforcement control
    "n_facts": 844,
    "fact_new_tokens": 8,                    # correct = attribute within 8 generated tokens
    "ethics_override_efficacy": 0.95,        # "≈95%" (paper)
    "injection_success": (0.8906, 0.044),    # prompt injection on 388 unseen harmful behaviours
    "unrelated_fact_accuracy_after": 0.9585,
}

TUNED_LENS = {  # notebook 09
    "source": "Belrose et al. 2023, Eliciting Latent Predictions from Transformers with the Tuned "
              "Lens (arXiv 2303.08112, abstract); training settings from the authors' repository "
              "AlignmentResearch/tuned-lens (tuned_lens/scripts/train_loop.py, ingredients.py)",
    "model": "autoregressive LMs of up to 20B parameters",
    "claim": "the tuned lens is more predictive, reliable and unbiased than the logit lens",
    "loss": "KL(final ‖ lens), the final distribution at the same token",
    "steps": 250,
    "tokens_per_step": 2 ** 18,
    "optimizer": "Nesterov SGD, learning rate 1 (0.1 in torch's units with momentum 0.9), weight "
                 "decay 1e-3, linear decay, gradient norm clipped at 1; Adam (AMSGrad, lr 1e-3) "
                 "as an option",
    "identity_init": True,                   # h + W h + b with W = 0, b = 0
    "released_format": "config.json + params.pt (torch.save pickle of the translators' state dict)",
    "kl_per_layer": "not transcribed (figures only)",
}

INDUCTION_HEADS = {  # notebook 09
    "source": "Olsson et al. 2022, In-context Learning and Induction Heads (transformer-circuits.pub);"
              " GPT-2 small's heads from ARENA 3.0, chapter 1.2 (Intro to Mech Interp), the "
              "solution to 'find induction heads': \"heads 5.1, 5.5, 6.9, 7.2, 7.10 are all "
              "strongly induction-y\"",
    "model": "gpt2 (GPT-2 small: 12 layers × 12 heads)",
    "gpt2_induction_heads": [(5, 1), (5, 5), (6, 9), (7, 2), (7, 10)],
    "score": "mean attention from each token of the second repeat to the token after its previous "
             "occurrence (ARENA: the diagonal at offset 1 − seq_len, which also takes in the last "
             "two tokens of the first repeat)",
    "seq_len": 50,                           # ARENA: random tokens after BOS, repeated once
    "batch": 10,
    "olsson_claim": "induction heads form in a phase change early in training, when in-context "
                    "learning improves; ablating them in small attention-only models removes "
                    "most of it",
}

IOI = {  # notebook 10
    "source": "Wang, Variengien, Conmy, Shlegeris, Steinhardt 2023, Interpretability in the Wild: "
              "a Circuit for Indirect Object Identification in GPT-2 small (ICLR 2023, arXiv "
              "2211.00593): §2 (logit difference), §3.1-3.4 and Appendices C, D, F, H, I (the "
              "heads), §4 (faithfulness), Appendix B (path patching)",
    "model": "gpt2 (GPT-2 small: 12 layers × 12 heads)",
    "n_prompts": 100_000,                    # §2: the logit difference's sample
    "logit_difference": 3.56,                # §2, mean over p_IOI
    "io_over_s": 0.993,                      # §2: IO's logit above S's
    "io_probability": 0.49,                  # §2: mean p(IO)
    "faithfulness": 0.87,                    # §4: F(C) = F(M) − 0.46, "87% of the performance"
    "faithfulness_gap": 0.46,                # §4: |F(M) − F(C)|
    "circuit_heads": 26,                     # abstract (the ICLR text says 28 in one place)
    "heads": {                               # (layer, head); the paper writes them "layer.head"
        "name mover": [(9, 9), (9, 6), (10, 0)],                              # §3.1
        "negative name mover": [(10, 7), (11, 10)],                           # §3.1
        "s-inhibition": [(7, 3), (7, 9), (8, 6), (8, 10)],                    # §3.2
        "duplicate token": [(0, 1), (3, 0)],                                  # §3.3, App. I
        "induction": [(5, 5), (6, 9)],                                        # §3.3, App. H
        "previous token": [(2, 2), (4, 11)],                                  # App. D, H
        "backup name mover": [(9, 0), (9, 7), (10, 1), (10, 2), (10, 6), (10, 10), (11, 2),
                              (11, 9)],                                       # App. F
    },
    "name_mover_attention_to_io": 0.59,      # §3.1: mean attention of the name movers to IO
    "s_inhibition_attention_to_s2": 0.51,    # §3.2: mean attention end → S2 of the four heads
    "backup_drop_after_name_movers_knocked_out": 0.05,  # §3.4: "only 5% drop"
    "path_patching": "MLPs and layer norms recomputed, every other head frozen (App. B)",
}

ATP_STAR = {  # notebook 11
    "source": "Kramár, Lieberum, Shah, Nanda 2024, AtP*: An efficient and scalable method for "
              "localizing LLM behaviour to components (arXiv 2403.00745), abstract and §3",
    "model": "Pythia 410M-12B",
    "cost": "AtP: 2 forwards and 1 backward for every node's estimate, vs one forward per node "
            "for activation patching",
    "failure_modes": "false negatives from attention saturation (a softmax whose gradient "
                     "vanishes) and from cancellation of a node's direct and indirect effects",
    "qk_fix": "recompute the attention softmax exactly for patched queries and keys, "
              "linearise only the rest",
    "graddrop": "repeat the backward with each layer's residual contribution's gradient "
                "dropped; rank by the mean absolute value of those estimates",
    "claim": "AtP significantly outperforms all other investigated methods; AtP* gives a further "
             "significant improvement (fewer false negatives), with a way to bound the "
             "probability of remaining false negatives",
    "published": None,                       # the gains are curves per model and task, not one number
}
