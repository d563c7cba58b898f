"""Language-specific FFN neurons (LAPE, Tang et al. 2024; docs/neurons.md).

- :func:`activation_probabilities` (:mod:`.probabilities`): per language, the share of its tokens on which
  each neuron of each block is active, streamed and cached;
- :func:`select_language_neurons` (:mod:`.selection`): the low-entropy neurons and their languages;
- :func:`neuron_intervention` (:mod:`.intervene`): switch neurons off or set them during any forward pass;
- :func:`perplexity_change` (:mod:`.perplexity`): the language x language perplexity-change matrix and its
  random control; :func:`steering` (:mod:`.steering`): the share of continuations in a target language.
"""

from .intervene import Intervention, neuron_intervention, random_like
from .locate import FFN_PATHS, FFNSite, find_ffn
from .perplexity import PerplexityChange, perplexity, perplexity_change
from .probabilities import ActivationProbabilities, activation_probabilities
from .selection import LanguageNeurons, lape_entropy, select_language_neurons
from .steering import generate, steering

__all__ = ["FFN_PATHS", "ActivationProbabilities", "FFNSite", "Intervention", "LanguageNeurons", "PerplexityChange",
           "activation_probabilities", "find_ffn", "generate", "lape_entropy", "neuron_intervention", "perplexity",
           "perplexity_change", "random_like", "select_language_neurons", "steering"]
