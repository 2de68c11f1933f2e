"""Questions a user asks about their own models (the ``models`` and ``questions`` sections).

- :mod:`.plan`: the external models and the questions a configuration names (torch-free);
- :mod:`.derivation`: "was each suspect derived from the victim?", answered by every listed
  signature method with a verdict calibrated on the user's independent reference models;
- :mod:`.plots`: one figure per derivation question.
"""

from .plan import DerivationQuestion, ExternalModelSpec, derivation_questions, external_models

__all__ = ["DerivationQuestion", "ExternalModelSpec", "derivation_questions", "external_models"]
