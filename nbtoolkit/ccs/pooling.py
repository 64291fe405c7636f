"""Several templates, or several datasets, as one training set (elk's variants and ``--add_pooled``).

    both = stack_templates([extract(lm, cs) for cs in load_contrast("capitals", [0, 1])])
    both.hidden_pos              # [n, n_layers + 1, 2, d]: every layer, every template
    train = pool([capitals_train, animals_train])   # one training set, dataset "capitals+animals"

A stacked :class:`~nbtoolkit.ccs.activations.ContrastStates` has a template axis after the layer
axis (``at(layer)`` gives ``[n, v, d]`` pairs, what one reporter for all templates takes), answer
log-probabilities ``[n, v]``, ``template_id`` None and the templates in ``meta["templates"]``.

Pooling datasets: each dataset's pairs are first centred per (template, completion) on its own
means (Burns' per-class normalisation, per dataset: the answer words differ between datasets),
then the examples are concatenated. A pooled reporter is evaluated on a dataset's test split
centred with that dataset's *training* means (:func:`centred`); no label is used for either.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from .activations import ContrastStates


def stack_templates(states: list[ContrastStates]) -> ContrastStates:
    """One set of states for several templates of the same examples (same rows, same order)."""
    if not states:
        raise ValueError("stack_templates needs at least one ContrastStates")
    first = states[0]
    for s in states[1:]:
        if s.dataset != first.dataset or not np.array_equal(s.row_ids, first.row_ids):
            raise ValueError(f"templates can only be stacked over the same examples: {s.dataset} "
                             f"t{s.template_id} differs from {first.dataset} t{first.template_id} "
                             f"(load them with one load_contrast call)")
        if s.layers != first.layers:
            raise ValueError(f"layers differ between templates: {s.layers} vs {first.layers}")
    meta = dict(first.meta, templates=[s.template_id for s in states])
    return ContrastStates(first.dataset, None, np.stack([s.hidden_pos for s in states], 2),
                          np.stack([s.hidden_neg for s in states], 2), first.labels.copy(),
                          first.row_ids.copy(), np.stack([s.logp_pos for s in states], 1),
                          np.stack([s.logp_neg for s in states], 1), list(first.layers), meta)


def centred(states: ContrastStates, by: ContrastStates | None = None) -> ContrastStates:
    """``states`` with the per-(layer, template) means of each completion over the examples of
    ``by`` (default: ``states`` itself) subtracted. Labels are not used."""
    by = states if by is None else by
    if by.hidden_pos.shape[1:] != states.hidden_pos.shape[1:]:
        raise ValueError(f"states {states.hidden_pos.shape[1:]} and reference "
                         f"{by.hidden_pos.shape[1:]} differ in layers, templates or width")
    return replace(states, hidden_pos=states.hidden_pos - by.hidden_pos.mean(0),
                   hidden_neg=states.hidden_neg - by.hidden_neg.mean(0))


def pool(parts: list[ContrastStates]) -> ContrastStates:
    """Training states of several datasets as one set: each centred on its own means, then
    concatenated (dataset ``"a+b"``). Every part needs the same layers and template count."""
    if len(parts) < 2:
        raise ValueError(f"pool needs at least two datasets, got {len(parts)}")
    shapes = {p.hidden_pos.shape[1:] for p in parts}
    if len(shapes) != 1:
        raise ValueError(f"pooled datasets need the same layers, template count and width; got "
                         f"{', '.join(f'{p.dataset}: {p.hidden_pos.shape[1:]}' for p in parts)}")
    parts = [centred(p) for p in parts]
    cat = lambda name: np.concatenate([getattr(p, name) for p in parts])
    return ContrastStates("+".join(p.dataset for p in parts), parts[0].template_id, cat("hidden_pos"),
                          cat("hidden_neg"), cat("labels"), cat("row_ids"), cat("logp_pos"),
                          cat("logp_neg"), list(parts[0].layers),
                          dict(parts[0].meta, datasets=[p.dataset for p in parts]))
