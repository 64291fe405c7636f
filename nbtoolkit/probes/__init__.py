"""Probes that read truth from hidden states (Burns et al. 2022; EleutherAI's elk).

    ccs = CCS().fit(x_pos, x_neg, y_train)      # y only fits the Platt scale (sign) of the direction
    ccs.predict_proba(x_pos_test, x_neg_test)   # [n]: p(the label-1 completion is true)

reporters   CCS, CRC, LogisticProbe, ZeroShot: scikit-learn estimators, Platt-scaled credences
vinc        VINC, elk's eigen reporter
registry    the reporters by name (make_reporter)
pairs       contrast-pair checks and the per-class mean normalisation
metrics     accuracy, AUROC, calibrated accuracy, ECE, cluster-bootstrap intervals, ensembling
saving      save_reporter / load_reporter (safetensors + JSON)

Estimators only: fitting them on every layer of extracted states is :mod:`nbtoolkit.ccs.layers`.
"""

from .metrics import (ENSEMBLING, accuracy, auroc, bootstrap_ci, calibrated_accuracy,
                      calibration_error, calibration_threshold, evaluate, evaluate_credences,
                      optimistic_accuracy)
from .pairs import PairNormalizer, check_pairs
from .registry import REPORTERS, make_reporter
from .reporters import (CCS, CRC, NOT_FITTED, LogisticProbe, Reporter, ZeroShot, ccs_loss,
                        refit_normalization)
from .saving import load_reporter, save_reporter
from .vinc import VINC

__all__ = ["CCS", "CRC", "ENSEMBLING", "LogisticProbe", "NOT_FITTED", "PairNormalizer",
           "REPORTERS", "Reporter", "VINC", "ZeroShot", "accuracy", "auroc", "bootstrap_ci",
           "calibrated_accuracy", "calibration_error", "calibration_threshold", "ccs_loss",
           "check_pairs", "evaluate", "evaluate_credences", "load_reporter", "make_reporter",
           "optimistic_accuracy", "refit_normalization", "save_reporter"]
