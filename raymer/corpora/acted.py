"""CREMA-D and TESS: acted corpora whose file names (and, for TESS, folders) say the
actor, the emotion and the sentence, with the quirks of the files as shipped."""

from __future__ import annotations

import posixpath
import re

from raymer import storage
from raymer.corpora.prepared import CorpusLayoutError, Prepared, named_files, relative_to_root

# -- CREMA-D ------------------------------------------------------------------------------

CREMA_EMOTIONS = {
    "ANG": "angry",
    "DIS": "disgust",
    "FEA": "fear",
    "HAP": "happy",
    "NEU": "neutral",
    "SAD": "sad",
}
CREMA_SENTENCES = {
    "IEO": "It's eleven o'clock.",
    "TIE": "That is exactly what happened.",
    "IOM": "I'm on my way to the meeting.",
    "IWW": "I wonder what this is about.",
    "TAI": "The airplane is almost full.",
    "MTI": "Maybe tomorrow it will be cold.",
    "IWL": "I would like a new alarm clock.",
    "ITH": "I think I have a doctor's appointment.",
    "DFA": "Don't forget a jacket.",
    "ITS": "I think I've seen this before.",
    "TSI": "The surface is slick.",
    "WSI": "We'll stop in a couple of minutes.",
}
CREMA_LEVELS = {"LO": "low", "MD": "medium", "HI": "high", "XX": "unspecified"}
# One real file spells the level "X" (1040_ITH_SAD_X.wav): read as XX, with a note.
_CREMA = re.compile(r"^(\d{4})_([A-Z]{3})_([A-Z]{3})_([A-Z]{1,2})\.wav$")


def crema_d(root: str) -> Prepared:
    """``AudioWAV/<actor>_<sentence>_<EMO>_<level>.wav``."""
    audio = storage.join(root, "AudioWAV")
    if not storage.is_dir(audio):
        raise CorpusLayoutError(
            f"{root} does not look like CREMA-D: expected AudioWAV/ with files like "
            "AudioWAV/1001_DFA_ANG_XX.wav"
        )
    out = Prepared([], root)
    for path, name, m in named_files(out, root, storage.list_files(audio, (".wav",)), _CREMA):
        actor, sentence, emo, level = m.groups()
        if emo not in CREMA_EMOTIONS:
            out.problem("unknown label", f"{name}: emotion code {emo}")
            continue
        if sentence not in CREMA_SENTENCES:
            out.problem("unknown sentence code", f"{name}: {sentence}")
        if level == "X":
            out.problem("kept, level X read as XX (unspecified)", name)
            level = "XX"
        out.add(
            {
                "path": relative_to_root(root, path),
                "id": name[:-4],
                "label": CREMA_EMOTIONS[emo],
                "raw_label": emo,
                "speaker": actor,
                "session": None,
                "text": CREMA_SENTENCES.get(sentence),
                "sentence": sentence,
                "level": CREMA_LEVELS.get(level, level),
            },
            relative_to_root(root, path),
        )
    return out


# -- TESS ---------------------------------------------------------------------------------

TESS_EMOTIONS = {
    "angry": "angry",
    "disgust": "disgust",
    "fear": "fear",
    "happy": "happy",
    "neutral": "neutral",
    "ps": "surprised",
    "pleasant_surprise": "surprised",
    "pleasant_surprised": "surprised",
    "sad": "sad",
}
_TESS_FILE = re.compile(r"^([a-z]+)_([a-z]+)_([a-z_]+)\.wav$", re.IGNORECASE)
TESS_SPEAKERS = ("OAF", "YAF")


def tess(root: str) -> Prepared:
    """Folders like ``OAF_angry/OAF_back_angry.wav`` (speakers OAF and YAF; folder names
    vary in case and spelling, e.g. ``OAF_Fear``, ``YAF_pleasant_surprised`` with files
    ``..._ps.wav``); the text is "Say the word <word>."."""
    files = storage.list_files(root, (".wav",))
    out = Prepared([], root)
    for path, _, m in named_files(out, root, files, _TESS_FILE):
        speaker, word, emo = m.group(1).upper(), m.group(2).lower(), m.group(3).lower()
        folder = posixpath.basename(posixpath.dirname(path)).lower()
        if speaker not in TESS_SPEAKERS:
            # One real file is OAF_neutral/OA_bite_neutral.wav: its folder names the speaker.
            owner = folder.split("_", 1)[0].upper()
            if owner not in TESS_SPEAKERS or not owner.startswith(speaker):
                out.problem("unexpected file name", relative_to_root(root, path))
                continue
            out.problem(
                "kept, speaker read from the folder",
                f"{relative_to_root(root, path)}: {speaker} -> {owner}",
            )
            speaker = owner
        if emo not in TESS_EMOTIONS:
            out.problem("unknown label", f"{relative_to_root(root, path)}: {emo!r}")
            continue
        folder_emo = folder.split("_", 1)[1] if "_" in folder else ""
        if folder_emo and TESS_EMOTIONS.get(folder_emo) not in (None, TESS_EMOTIONS[emo]):
            out.problem("file and folder disagree", relative_to_root(root, path))
        rid = f"{speaker}_{word}_{TESS_EMOTIONS[emo]}"
        out.add(
            {
                "path": relative_to_root(root, path),
                "id": rid,
                "label": TESS_EMOTIONS[emo],
                "raw_label": emo,
                "speaker": speaker,
                "session": None,
                "text": f"Say the word {word}.",
                "word": word,
            },
            relative_to_root(root, path),
        )
    if not out.rows:
        raise CorpusLayoutError(
            f"{root} does not look like TESS: expected folders like OAF_angry/ and YAF_sad/ "
            "holding OAF_<word>_<emotion>.wav files, e.g. OAF_angry/OAF_back_angry.wav"
        )
    return out
