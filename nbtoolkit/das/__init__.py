"""Distributed alignment search: train an interchange intervention, measure IIA.

    data = {"inputs": base [N, ...], "source_inputs": [N, ...], "labels": [N],
            "intervention_ids": [N]}               # or input_ids / source_input_ids (a text task)
    rot = RotatedSubspace(d=16, k=8)
    result = train_das(model, rot, "layers.1", data, epochs=3)
    iia(model, rot, "layers.1", test_data)          # interchange intervention accuracy

``model`` is an :class:`~nbtoolkit.core.lm.LM`, a Hugging Face causal LM (the prediction is the
last position's logits; ``labels`` may be pyvene-style ``[N, seq]`` with −100 everywhere but the
last position) or any ``torch.nn.Module`` mapping inputs to class logits ``[N, classes]``.

rotations    the trainable subspaces (RotatedSubspace, Boundless, low-rank, neuron) and Interchange
orthogonal   the square rotations' parametrization: PyTorch's map, exp(A) through one eigh
data         counterfactual examples as columns of tensors, batches
forward      predictions, source activations, the intervened forward
train        train_das, alignment_grid, the DAS step and optimizer
evaluate     iia, task_accuracy, neuron_baseline
task_model   fit: train the task network itself
"""

from .data import as_columns
from .evaluate import iia, neuron_baseline, task_accuracy
from .forward import capture_sources, intervened_logits, predict_logits
from .rotations import (BoundlessRotatedSubspace, Interchange, LowRankRotatedSubspace,
                        NeuronSubspace, RotatedSubspace, Subspace, load_intervention,
                        save_intervention)
from .task_model import fit
from .train import DASResult, alignment_grid, das_optimizer, temperature_schedule, train_das

__all__ = ["BoundlessRotatedSubspace", "DASResult", "Interchange", "LowRankRotatedSubspace",
           "NeuronSubspace", "RotatedSubspace", "Subspace", "alignment_grid", "as_columns",
           "capture_sources", "das_optimizer", "fit", "iia", "intervened_logits",
           "load_intervention", "neuron_baseline", "predict_logits", "save_intervention",
           "task_accuracy", "temperature_schedule", "train_das"]
