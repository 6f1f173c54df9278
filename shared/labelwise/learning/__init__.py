"""Online learners (pure numpy). See :mod:`labelwise.learning.pa`."""

from labelwise.learning.pa import PALearner, scores_to_probabilities, seed_for

__all__ = ["PALearner", "scores_to_probabilities", "seed_for"]
