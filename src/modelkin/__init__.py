"""modelkin: how functionally alike are these neural networks, and is one derived from another?"""

__version__ = "0.1.0"
