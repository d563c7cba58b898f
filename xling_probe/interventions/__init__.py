"""Interventions on the residual stream: steering, INCLINE-style maps, activation patching.

All three run through one mechanism (:mod:`.mechanism`: edits applied by hooks, always removed) and
score or generate through :mod:`.run`; each experiment returns an
:class:`~.results.InterventionResult` (a long table of per-item means with intervals).
"""

from .incline import InclineMaps, fit_incline, incline
from .mechanism import AddVector, Edit, MapToward, SetState, intervene
from .patching import concept_patching, patch_states
from .results import InterventionResult
from .run import continuation_logprobs, generate, next_token_logprobs
from .steering import SteeringVectors, steer, steering_vectors

__all__ = ["AddVector", "Edit", "InclineMaps", "InterventionResult", "MapToward", "SetState", "SteeringVectors",
           "concept_patching", "continuation_logprobs", "fit_incline", "generate", "incline", "intervene",
           "next_token_logprobs", "patch_states", "steer", "steering_vectors"]
