"""Exercise checks for the tutorials: one module per notebook, one check per exercise.

    from nbtoolkit.exercises.causal_tracing import check_noise_level
    check_noise_level(noise_level)      # ✔ Correct / … Not done yet / ✘ Not yet right: what differs

getting_started     00: the residual stream, an interchange, a batched row of interchanges
causal_tracing      02: ROME's noise level, the corrupted run, one restoration cell
das                 03: neuron-aligned and rotated interchanges, interchange intervention accuracy
boundless_das       04: the counterfactual label, the boundary mask, the boundless interchange
ccs                 05: per-class normalisation, the CCS loss, training a CCS probe
instruction_shift   06: quantised attribution, importance density, gradient × input attribution
selfie              07: a hidden state by layer number, the overlay, the insertion
selfie_control      08: the supervised loss, the reinforcement loss, one block's state from its input
feedback            Feedback, the check runner and comparison helpers
layers              the layer-numbering mistakes 00.1 and 07.1 anticipate (one catalogue)
release             make exercises: student notebooks with nbgrader (solutions removed); its
                    command line is nbtoolkit.cli.exercises

Each tutorial holds its exercises' solutions between nbgrader's ``### BEGIN SOLUTION`` /
``### END SOLUTION`` markers; ``make exercises`` writes the student versions (notebooks/README.md).
"""
