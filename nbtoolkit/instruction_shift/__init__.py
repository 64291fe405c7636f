"""What instruction tuning changes inside a model (Wu et al., arXiv 2310.00492): gradient
attribution, attention heads as word pairs, FFN layers as concepts, and the paper's tables.

    attr = input_output_attribution(lm, prompt, response)    # attr.scores [prompt, response tokens]
    attr.instruction_score(spans)                             # Tables 1-2: instruction-word importance
    attention_word_pairs(lm, layer, head, words).to_frame()  # Table 3's raw material
    ffn_concepts(lm, layer).to_frame()                       # Table 5 / Figure 3's raw material

attribution  input_output_attribution (Attribution), quantize_attribution, importance_density,
             instruction_score, instruction_mask
vocabulary   the paper's verb and category lists, tokenizer_words, word vectors
heads        attention_word_pairs (WordPairs), head_query_key, word_counts
ffn          ffn_concepts (Concepts), ffn_components, model_annotator
tables       Tables 3 and 5 / Figure 3 from explanations: head_word_counts, verb_shift,
             concept_shares, concept_shares_by_group
released     the paper's released explanation files (downloaded on request, never bundled)
"""

from .attribution import (Attribution, importance_density, input_output_attribution,
                          instruction_mask, instruction_score, quantize_attribution)
from .ffn import FFN_FAMILIES, Concepts, ffn_components, ffn_concepts, model_annotator
from .heads import (ATTENTION_FAMILIES, WordPairs, attention_word_pairs, head_query_key,
                    similarity_thresholds, word_counts, word_similarity)
from .released import download_released, load_annotations, load_bilinear_pairs, released_available
from .tables import (concept_shares, concept_shares_by_group, head_word_counts, layer_group_label,
                     pairs_from_explanations, verb_shift)
from .vocabulary import (GENERAL_VERBS, INSTRUCTION_VERBS, LINGUISTIC_LEVELS, TASK_CATEGORIES,
                         output_word_vectors, tokenizer_words, word_vectors)

__all__ = ["ATTENTION_FAMILIES", "Attribution", "Concepts", "FFN_FAMILIES", "GENERAL_VERBS",
           "INSTRUCTION_VERBS", "LINGUISTIC_LEVELS", "TASK_CATEGORIES", "WordPairs",
           "attention_word_pairs", "concept_shares", "concept_shares_by_group",
           "download_released", "ffn_components", "ffn_concepts", "head_query_key",
           "head_word_counts", "importance_density", "input_output_attribution",
           "instruction_mask", "instruction_score", "layer_group_label", "load_annotations",
           "load_bilinear_pairs", "model_annotator", "output_word_vectors",
           "pairs_from_explanations", "quantize_attribution", "released_available",
           "similarity_thresholds", "tokenizer_words", "verb_shift", "word_counts",
           "word_similarity", "word_vectors"]
