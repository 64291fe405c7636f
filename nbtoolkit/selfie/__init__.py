"""SelfIE (Chen et al. 2024, arXiv 2403.10949): a model describes its own hidden states; SelfIE
control edits what a state means; steering adds a direction to the residual stream.

    interpret(lm, prompt, tokens=[1, 2], layers=[1, 7]).to_frame()    # one reading per (layer, token)
    edit = supervised_control(lm, prompt, token=5, layer=6, target=v)  # edit.restore() undoes it
    word_probs(lm, prompts, words, direction(lm, pos, neg, site), site, scales).to_frame()

interpretation  interpret (Interpretations), interpret_vectors, hidden_states, the
                interpretation prompt (make_template, build_prompt), insertion, baseline
control         supervised_control, reinforcement_control (MLPEdit), the judges, fact_accuracy
                (FactCheck)
steering        direction, steer, generations (Generations), word_probs (WordProbs)
"""

from ..core.lm import token_indices
from .control import (LEARNING_RATE, FactCheck, MLPEdit, chat_judge, fact_accuracy, keyword_judge,
                      reinforcement_control, reinforcement_loss, supervised_control)
from .interpretation import (FILL, N_PLACEHOLDERS, PLACEHOLDER, REPLY, SUPPORTED_KINDS,
                             InterpretationPrompt, Interpretations, baseline, build_prompt,
                             check_indices, hidden_states, insertion, interpret, interpret_vectors,
                             make_template)
from .steering import Generations, WordProbs, direction, generations, mean_activation, steer, word_probs

__all__ = ["FILL", "FactCheck", "Generations", "InterpretationPrompt", "Interpretations",
           "LEARNING_RATE", "MLPEdit", "N_PLACEHOLDERS", "PLACEHOLDER", "REPLY", "SUPPORTED_KINDS", "WordProbs", "baseline", "build_prompt", "chat_judge",
           "check_indices", "direction", "fact_accuracy", "generations", "hidden_states",
           "insertion", "interpret", "interpret_vectors", "keyword_judge", "make_template",
           "mean_activation", "reinforcement_control", "reinforcement_loss", "steer",
           "supervised_control", "token_indices", "word_probs"]
