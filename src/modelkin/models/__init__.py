"""The model zoo (architectures by name), building models, and their named layers.

- :mod:`.registry`: every architecture by name (torch-free);
- :mod:`.architectures`: the classes; models take images in [0, 1] and normalise inside;
- :mod:`.build`: :func:`build_model`, :func:`seeded_model`;
- :mod:`.normalisation`: a model's own input normalisation, as its checkpoint records it;
- :mod:`.sources`: networks from torchvision, timm or the user's code, by source string;
- :mod:`.preprocessing`: the input pipeline such a network was trained with (torch-free);
- :mod:`.external`: :class:`ExternalModel`, such a network behind the zoo model contract;
- :mod:`.layers`: named layers, capture, replacement, cut points and splitting.
"""

from .._lazy import lazy_exports
from .normalisation import Normalisation, checkpoint_normalisation, normalisation_of
from .preprocessing import Preprocessing
from .registry import ARCHITECTURES, Architecture, get_architecture

__all__ = [
    "ARCHITECTURES",
    "Architecture",
    "Classifier",
    "ExternalModel",
    "Normalisation",
    "Preprocessing",
    "build_external",
    "build_model",
    "checkpoint_normalisation",
    "get_architecture",
    "normalisation_of",
    "seeded_model",
]
__getattr__, __dir__ = lazy_exports(
    __name__,
    {
        "Classifier": ".architectures",
        "ExternalModel": ".external",
        "build_external": ".external",
        "build_model": ".build",
        "seeded_model": ".build",
    },
)
