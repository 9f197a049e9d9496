"""The trained head(s) of a checkpoint in this process: the model on Whisper's frames and the
text encoder's tokens (or raw audio and text, for a fine-tuned one), and the text-only model
``/v1/recognize/text`` answers with. One of the three stages of the one inference path
(``raymer.inference.core``)."""

from __future__ import annotations

from raymer.errors import UsageError
from raymer.trained import checkpoint
from raymer.trained.batches import LoadedModel


def _loaded(uri: str, device: str, threads: int):
    """A checkpoint's model: a portable export's head on onnxruntime (no torch), or the
    torch model."""
    from raymer.trained.portable import PortableModel, is_export

    folder = checkpoint.resolve(uri)
    if is_export(folder):
        return PortableModel.load(folder, threads)
    import torch

    if threads > 0:
        torch.set_num_threads(threads)
    return LoadedModel.load(uri, device)


class Heads:
    """The trained head(s) of a checkpoint: the main model (fusion, or audio/text only) and,
    for ``/v1/recognize/text``, a text-only model with the same labels (``with_text=False``:
    the main model only, as ``raymer recognize`` needs)."""

    def __init__(
        self,
        checkpoint_uri: str,
        text_checkpoint: str | None = None,
        threads: int = 0,
        device: str = "cpu",
        with_text: bool = True,
    ):
        main, default_text = checkpoint.models_of(checkpoint_uri)
        self.main = _loaded(main, device, threads)
        text_uri = (text_checkpoint or default_text) if with_text else None
        self.text = None
        if text_uri:
            self.text = _loaded(text_uri, device, threads)
            spec = self.text.spec
            if spec.modality != "text":
                raise UsageError(f"text_checkpoint {text_uri} is a {spec.modality} model")
            if spec.labels != self.main.spec.labels:
                raise UsageError(
                    f"text_checkpoint labels {spec.labels} differ from the main model's "
                    f"{self.main.spec.labels}"
                )
        elif with_text and self.main.spec.modality == "text":  # a text model answers texts
            self.text = self.main
        self.labels = self.main.spec.labels
        self.extract = self.main.spec.extract

    def info(self) -> dict:
        spec = self.main.spec
        return {
            "asr_model": self.extract.asr_model,
            "text_model": self.extract.text_model,
            "labels": self.labels,
            "loss": spec.loss,
            "temperature": spec.temperature,  # None: uncalibrated (its loss's own scores)
            "checkpoint": self.main.checkpoint,
            "modality": spec.modality,
            "mode": spec.mode,
            "text_checkpoint": self.text.checkpoint if self.text else None,
            "frame_rate_hz": float(self.extract.frame_rate_hz),
            "needs_audio": self.needs_audio,
            "multi_label": self.multi_label,
            "text_multi_label": self.text_multi_label,
            "dimensions": spec.dimensions,
            "text_dimensions": self.text.spec.dimensions if self.text else [],
        }

    def score(self, frames: list, tokens: list, clips=None, texts=None, text_only=False):
        """Answers (N, L + D): a score per label then a value per emotion dimension, of the
        main head on frames/tokens (features mode) or audio/text (fine-tune mode), or of
        the text-only head on tokens."""
        loaded = self.text if text_only else self.main
        if loaded is None:
            raise LookupError("no text-only model is loaded")
        return loaded.answer(
            frames=None if text_only or not frames else frames,
            tokens=tokens,
            clips=clips if loaded.spec.needs_audio else None,
            texts=texts,
        )

    @property
    def needs_audio(self) -> bool:
        """Fine-tune checkpoints with an audio branch read the raw audio; features ones the
        frames only, and a text model no audio at all."""
        return self.main.spec.needs_audio

    @property
    def multi_label(self) -> bool:
        """Trained on label lists: every label whose score passes 0.5 is reported."""
        return self.main.spec.multi_label

    @property
    def text_multi_label(self) -> bool:
        """The same of the text-only model (``/v1/recognize/text``)."""
        return bool(self.text and self.text.spec.multi_label)
