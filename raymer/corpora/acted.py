"""CREMA-D, TESS, RAVDESS and SAVEE: acted corpora whose file names (and folders) say the
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


# -- RAVDESS ------------------------------------------------------------------------------

RAVDESS_EMOTIONS = {
    "01": "neutral",
    "02": "calm",
    "03": "happy",
    "04": "sad",
    "05": "angry",
    "06": "fearful",
    "07": "disgust",
    "08": "surprised",
}
RAVDESS_STATEMENTS = {"01": "Kids are talking by the door.", "02": "Dogs are sitting by the door."}
_RAVDESS = re.compile(r"^(\d\d)-(\d\d)-(\d\d)-(\d\d)-(\d\d)-(\d\d)-(\d\d)\.wav$")


def ravdess(root: str) -> Prepared:
    """Speech files ``Actor_XX/MM-VV-EE-II-SS-RR-AA.wav`` (modality 03 audio-only, vocal
    channel 01 speech; song files are left out)."""
    files = [p for p in storage.list_files(root, (".wav",)) if "Actor_" in p]
    if not files:
        raise CorpusLayoutError(
            f"{root} does not look like RAVDESS: expected Actor_01 .. Actor_24 folders of "
            "MM-VV-EE-II-SS-RR-AA.wav files (e.g. Actor_01/03-01-05-01-02-01-01.wav)"
        )
    out = Prepared([], root)
    for path, name, m in named_files(out, root, files, _RAVDESS):
        modality, channel, emotion, intensity, statement, repetition, actor = m.groups()
        if modality != "03" or channel != "01":
            continue  # video or song: not the speech corpus
        if emotion not in RAVDESS_EMOTIONS:
            out.problem("unknown label", f"{name}: emotion code {emotion}")
            continue
        if posixpath.basename(posixpath.dirname(path)) != f"Actor_{actor}":
            out.problem("file in another actor's folder", relative_to_root(root, path))
        rid = name[:-4]
        out.add(
            {
                "path": relative_to_root(root, path),
                "id": rid,
                "label": RAVDESS_EMOTIONS[emotion],
                "raw_label": emotion,
                "speaker": f"Actor_{actor}",
                "session": None,
                "text": RAVDESS_STATEMENTS.get(statement),
                "intensity": "strong" if intensity == "02" else "normal",
                "gender": "male" if int(actor) % 2 else "female",
                "repetition": int(repetition),
            },
            relative_to_root(root, path),
        )
    return out


# -- SAVEE --------------------------------------------------------------------------------

SAVEE_SPEAKERS = ("DC", "JE", "JK", "KL")
SAVEE_PREFIXES = {
    "a": "angry",
    "d": "disgust",
    "f": "fear",
    "h": "happy",
    "n": "neutral",
    "sa": "sad",
    "su": "surprised",
}
_SAVEE = re.compile(r"^(?:(DC|JE|JK|KL)_)?([a-z]+)(\d\d)\.wav$")


def savee(root: str) -> Prepared:
    """``AudioData/<speaker>/<prefix><nn>.wav`` (speakers DC, JE, JK, KL) or the flat
    ``<speaker>_<prefix><nn>.wav``; prefixes a, d, f, h, n, sa, su."""
    files = storage.list_files(root, (".wav",))
    out = Prepared([], root)
    for path in files:
        name = posixpath.basename(path)
        m = _SAVEE.match(name)
        folder = posixpath.basename(posixpath.dirname(path))
        speaker = (m.group(1) if m else None) or (folder if folder in SAVEE_SPEAKERS else None)
        if not m or speaker is None:
            out.problem("unexpected file name", relative_to_root(root, path))
            continue
        prefix = m.group(2)
        if prefix not in SAVEE_PREFIXES:
            out.problem("unknown label", f"{relative_to_root(root, path)}: prefix {prefix!r}")
            continue
        rid = f"{speaker}_{prefix}{m.group(3)}"
        out.add(
            {
                "path": relative_to_root(root, path),
                "id": rid,
                "label": SAVEE_PREFIXES[prefix],
                "raw_label": prefix,
                "speaker": speaker,
                "session": None,
                "text": None,
            },
            relative_to_root(root, path),
        )
    if not out.rows:
        raise CorpusLayoutError(
            f"{root} does not look like SAVEE: expected AudioData/DC|JE|JK|KL/<prefix><nn>.wav "
            "(prefixes a, d, f, h, n, sa, su), e.g. AudioData/DC/sa01.wav"
        )
    return out
