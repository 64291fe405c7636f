"""Probes that read truth from hidden states (Burns et al. 2022; EleutherAI's elk).

    ccs = CCS().fit(x_pos, x_neg, y_train)      # y only orients the unsupervised direction
    ccs.predict_proba(x_pos_test, x_neg_test)   # [n]: p(the label-1 completion is true)

reporters   CCS, CRC, LogisticProbe, ZeroShot: scikit-learn estimators
pairs       contrast-pair checks and the per-class mean normalisation
metrics     accuracy, AUROC, bootstrap intervals, the optimistic max(acc, 1 − acc)
layers      one reporter per layer: fit_layers, eval_layers, zero_shot_eval, transfer_matrix
saving      save_reporter / load_reporter (safetensors + JSON)
"""

from .layers import EVAL_COLUMNS, eval_layers, fit_layers, transfer_matrix, zero_shot_eval
from .metrics import accuracy, auroc, bootstrap_ci, evaluate, optimistic_accuracy
from .pairs import PairNormalizer, check_pairs
from .reporters import (CCS, CRC, REPORTERS, LogisticProbe, Reporter, ZeroShot, ccs_loss,
                        make_reporter, refit_normalization)
from .saving import load_reporter, save_reporter

__all__ = ["CCS", "CRC", "EVAL_COLUMNS", "LogisticProbe", "PairNormalizer", "REPORTERS",
           "Reporter", "ZeroShot", "accuracy", "auroc", "bootstrap_ci", "ccs_loss", "check_pairs",
           "eval_layers", "evaluate", "fit_layers", "load_reporter", "make_reporter",
           "optimistic_accuracy", "refit_normalization", "save_reporter", "transfer_matrix",
           "zero_shot_eval"]
