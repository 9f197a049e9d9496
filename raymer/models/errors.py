"""The models' own error (no raymer import here: model code is pure torch)."""


class ModelError(ValueError):
    """A model, spec or weights file that does not fit what is asked of it (another shape,
    another encoder, an unknown format); the message says which and why. The caller can fix
    it with other inputs, so the CLI treats it as a usage error (exit 2)."""
