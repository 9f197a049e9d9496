"""raymer: multimodal (speech + transcript) emotion recognition at corpus scale on Ray."""

__version__ = "0.1.0"
__all__ = ["__version__"]
