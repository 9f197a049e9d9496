"""The speech stage (``Listener``): Whisper on the pieces of a window the VAD heard speech
in, each piece's transcript and encoder frames (``SpeechFeatures``); and ``silent``, the
no-speech rule (``SpeechConfig.silent``) asked of what it heard."""

from __future__ import annotations

from raymer.audio.segment import Window, speech_seconds
from raymer.config.parts import SpeechConfig
from raymer.models.whisper import SpeechFeatures


class Listener:
    """Whisper on the pieces the VAD heard speech in: a piece of noise or silence is never
    transcribed (Whisper would make words up), only marked with its ``speech_s``."""

    def __init__(self, featurizer, rule: SpeechConfig) -> None:
        self.featurizer, self.rule = featurizer, rule

    def __call__(self, windows: list[Window]) -> list[list[SpeechFeatures]]:
        """Windows -> each piece's ``SpeechFeatures``, window by window."""
        heard = [
            [speech_seconds(a, self.rule) if h is None else h for a, h in w.pieces] for w in windows
        ]
        out = [[SpeechFeatures("", "", 0.0) for _ in w.pieces] for w in windows]
        todo: dict[int, list[int]] = {}
        for i, w in enumerate(windows):
            ks = [k for k, (a, _) in enumerate(w.pieces) if len(a) and self.rule.heard(heard[i][k])]
            if ks:
                todo[i] = ks
        fitted = [(i, k) for i, ks in todo.items() if not windows[i].packed for k in ks]
        if fitted:
            found = self.featurizer([windows[i].pieces[k][0] for i, k in fitted])
            for (i, k), features in zip(fitted, found, strict=True):
                out[i][k] = features
        packed = [i for i in todo if windows[i].packed]
        if packed:
            from raymer.models.whisper_packed import transcribe_packed

            found = transcribe_packed(
                self.featurizer, [[windows[i].pieces[k][0] for k in todo[i]] for i in packed]
            )
            for i, features in zip(packed, found, strict=True):
                for k, f in zip(todo[i], features, strict=True):
                    out[i][k] = f
        for window, seconds in zip(out, heard, strict=True):
            for features, s in zip(window, seconds, strict=True):
                features.speech_s = s
        return out


def silent(rule: SpeechConfig, sp: SpeechFeatures) -> bool:
    return rule.silent(sp.speech_s, sp.transcript, sp.no_speech_prob, sp.avg_logprob)
