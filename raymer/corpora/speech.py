"""Adapters of the conversational speech corpora rated on emotion dimensions: IEMOCAP and
MSP-Podcast (the acted corpora, CREMA-D, TESS, RAVDESS and SAVEE: ``acted``; any manifest:
``prepare.manifest``).

Each reads a corpus from its documented layout (none can be downloaded here) and returns one
row per utterance: ``path`` (relative to the corpus root), ``id``, ``label`` (the chosen label
set), ``raw_label`` (the corpus's own code), ``speaker``, ``session``, ``text`` where the
corpus has it, and the corpus's other attributes as extra columns. Problems (missing files,
files without a label line, unknown label codes, duplicate ids) are counted with examples,
never dropped in silence; a tree that does not look like the corpus named is refused with
what was expected.

Dimensions (``arousal``, ``valence``, ``dominance``, where a corpus rates them) are rescaled
to one range, -1 (low) .. 1 (high), whatever the corpus's own scale (``rescale``): IEMOCAP
rates 1-5, MSP-Podcast 1-7. The corpus's own number is kept beside it (``arousal_raw``).
"""

from __future__ import annotations

import posixpath
import re

from raymer import storage
from raymer.contract.schema import DIMENSIONS
from raymer.corpora.prepared import CorpusLayoutError, Prepared, relative_to_root


def rescale(value: float | None, low: float, high: float) -> float | None:
    """A rating on the corpus's ``low``..``high`` scale -> -1..1 (None stays None)."""
    if value is None:
        return None
    return round(2 * (float(value) - low) / (high - low) - 1, 6)


def dimensions(ratings: dict[str, float | None], low: float, high: float) -> dict:
    """``arousal``/``valence``/``dominance`` rescaled to -1..1, and each ``*_raw`` as rated."""
    out = {}
    for name in DIMENSIONS:
        out[name] = rescale(ratings.get(name), low, high)
        out[f"{name}_raw"] = ratings.get(name)
    return out


# -- IEMOCAP ------------------------------------------------------------------------------

IEMOCAP_CODES = {
    "neu": "neutral",
    "hap": "happy",
    "exc": "excited",
    "sad": "sad",
    "ang": "angry",
    "fru": "frustrated",
    "fea": "fear",
    "sur": "surprised",
    "dis": "disgust",
    "oth": "other",
    "xxx": "no agreement",
}
# The standard 4-class set: happy merged with excited (5,531 utterances on the full corpus).
IEMOCAP_4 = {"neu": "neutral", "hap": "happy", "exc": "happy", "sad": "sad", "ang": "angry"}
_IEMOCAP_LINE = re.compile(
    r"^\[(?P<start>[\d.]+) - (?P<end>[\d.]+)\]\t(?P<utt>\S+)\t(?P<code>\w+)\t"
    r"\[(?P<v>[\d.]+), (?P<a>[\d.]+), (?P<d>[\d.]+)\]"
)
_IEMOCAP_TEXT = re.compile(r"^(?P<utt>Ses\d\d[FM]_\S+_[FM]\d+)\s+\[[^\]]*\]:\s*(?P<text>.*)$")


def iemocap(root: str, labels: str = "4class", subset: str = "all") -> Prepared:
    """``Session1..5/sentences/wav/<dialog>/<utt>.wav``; labels from
    ``Session*/dialog/EmoEvaluation/*.txt``, transcripts from
    ``Session*/dialog/transcriptions/*.txt``. ``labels``: 4class | all;
    ``subset``: all | improvised | scripted."""
    sessions = [s for s in range(1, 6) if storage.is_dir(storage.join(root, f"Session{s}"))]
    if not sessions:
        raise CorpusLayoutError(
            f"{root} does not look like IEMOCAP: expected folders Session1 .. Session5 with "
            "sentences/wav/<dialog>/<utterance>.wav and dialog/EmoEvaluation/*.txt"
        )
    out = Prepared([], root)
    for s in sessions:
        _iemocap_session(out, root, s, labels, subset)
    return out


def _iemocap_labels(eval_dir: str) -> dict:
    """utterance -> its EmoEvaluation line (code, times, V-A-D) of one session."""
    evaluations = {}
    for path in storage.list_files(eval_dir, (".txt",)):
        if posixpath.dirname(path).rstrip("/") != eval_dir.rstrip("/"):
            continue  # Categorical/ and Attribute/ hold per-annotator files
        for line in storage.read_bytes(path).decode("utf-8", "replace").splitlines():
            m = _IEMOCAP_LINE.match(line)
            if m:
                evaluations[m["utt"]] = m
    return evaluations


def _iemocap_texts(folder: str) -> dict[str, str]:
    """utterance -> its transcript, from a session's transcriptions/."""
    texts = {}
    for path in storage.list_files(folder):
        for line in storage.read_bytes(path).decode("utf-8", "replace").splitlines():
            m = _IEMOCAP_TEXT.match(line.strip())
            if m:
                texts[m["utt"]] = m["text"].strip()
    return texts


def _iemocap_session(out: Prepared, root: str, s: int, labels: str, subset: str) -> None:
    """The utterances of Session ``s`` into ``out`` (problems counted there)."""
    session = f"Session{s}"
    wav_dir = storage.join(root, session, "sentences", "wav")
    eval_dir = storage.join(root, session, "dialog", "EmoEvaluation")
    if not storage.is_dir(wav_dir) or not storage.is_dir(eval_dir):
        raise CorpusLayoutError(
            f"{root}/{session} lacks sentences/wav/ or dialog/EmoEvaluation/ (IEMOCAP layout)"
        )
    evaluations = _iemocap_labels(eval_dir)
    texts = _iemocap_texts(storage.join(root, session, "dialog", "transcriptions"))
    wavs = {
        posixpath.splitext(posixpath.basename(p))[0]: p
        for p in storage.list_files(wav_dir, (".wav",))
        if not posixpath.basename(p).startswith("._")
    }
    for utt in sorted(set(wavs) - set(evaluations)):
        out.problem("file without a label line", f"{session}: {utt}.wav")
    for utt in sorted(set(evaluations) - set(wavs)):
        out.problem("missing file", f"{session}: {utt}.wav (labelled, not on disk)")
    for utt in sorted(set(wavs) & set(evaluations)):
        m = evaluations[utt]
        dialog = utt.rsplit("_", 1)[0]
        kind = "improvised" if "_impro" in dialog else "scripted"
        if subset != "all" and kind != subset:
            continue
        code = m["code"]
        if code not in IEMOCAP_CODES:
            out.problem("unknown label", f"{utt}: {code!r}")
            continue
        label = IEMOCAP_4.get(code) if labels == "4class" else IEMOCAP_CODES[code]
        if label is None:
            continue  # outside the 4-class set: left out by choice, not a problem
        out.rows.append(
            {
                "path": relative_to_root(root, wavs[utt]),
                "id": utt,
                "label": label,
                "raw_label": code,
                "speaker": f"Ses{s:02d}{utt.rsplit('_', 1)[1][0]}",
                "session": session,
                "text": texts.get(utt),
                "dialog": dialog,
                "kind": kind,
                "start_s": float(m["start"]),
                "end_s": float(m["end"]),
                **dimensions(
                    {
                        "valence": float(m["v"]),
                        "arousal": float(m["a"]),
                        "dominance": float(m["d"]),
                    },
                    low=1,
                    high=5,
                ),
            }
        )


# -- MSP-Podcast --------------------------------------------------------------------------

MSP_CODES = {
    "A": "angry",
    "S": "sad",
    "H": "happy",
    "U": "surprised",
    "F": "fear",
    "D": "disgust",
    "C": "contempt",
    "N": "neutral",
    "O": "other",
    "X": "no agreement",
}
MSP_4 = {"A": "angry", "H": "happy", "S": "sad", "N": "neutral"}
MSP_COLUMNS = ("FileName", "EmoClass", "EmoAct", "EmoVal", "EmoDom", "SpkrID", "Split_Set")


def msp_podcast(root: str, labels: str = "4class") -> Prepared:
    """``Labels/labels_consensus.csv`` (``FileName``, ``EmoClass``, ``EmoAct``, ``EmoVal``,
    ``EmoDom``, ``SpkrID``, ``Gender``, ``Split_Set``), audio under ``Audios/``, transcripts
    (when there) under ``Transcripts/<name>.txt``. ``labels``: 4class (A, H, S, N) | all.
    Dimensions are rated 1-7; the corpus's own ``Split_Set`` is the fold; an ``Unknown``
    speaker is a speaker of one utterance, never pooled with the others."""
    import csv
    import io

    table = storage.join(root, "Labels", "labels_consensus.csv")
    audio_dir = storage.join(root, "Audios")
    if not storage.exists(table) or not storage.is_dir(audio_dir):
        raise CorpusLayoutError(
            f"{root} does not look like MSP-Podcast: expected Labels/labels_consensus.csv "
            "(FileName, EmoClass, EmoAct, EmoVal, EmoDom, SpkrID, Gender, Split_Set) and "
            "Audios/<FileName>"
        )
    reader = csv.DictReader(io.StringIO(storage.read_bytes(table).decode("utf-8-sig")))
    missing = [c for c in MSP_COLUMNS if c not in (reader.fieldnames or [])]
    if missing:
        raise CorpusLayoutError(f"{table} lacks the columns {', '.join(missing)}")
    on_disk = {posixpath.basename(p): p for p in storage.list_files(audio_dir)}
    texts_dir = storage.join(root, "Transcripts")
    texts = {
        posixpath.splitext(posixpath.basename(p))[0]: p
        for p in (storage.list_files(texts_dir, (".txt",)) if storage.is_dir(texts_dir) else [])
    }
    out, listed = Prepared([], root), set()
    for line in reader:
        name, code = line["FileName"].strip(), line["EmoClass"].strip()
        listed.add(name)
        if code not in MSP_CODES:
            out.problem("unknown label", f"{name}: {code!r}")
            continue
        label = MSP_4.get(code) if labels == "4class" else MSP_CODES[code]
        if label is None:
            continue  # outside the 4-class set: left out by choice
        if name not in on_disk:
            out.problem("missing file", f"Audios/{name} (labelled, not on disk)")
            continue
        row = _msp_row(out, root, line, label, on_disk[name], texts)
        if row is not None:
            out.add(row, f"Labels/labels_consensus.csv: {name}")
    for name in sorted(set(on_disk) - listed):
        out.problem("file without a label line", f"Audios/{name}")
    return out


def _msp_row(out: Prepared, root: str, line: dict, label: str, path: str, texts: dict):
    """One labelled line of ``labels_consensus.csv`` -> its manifest row (None: a problem)."""
    name = line["FileName"].strip()
    rid, speaker = posixpath.splitext(name)[0], line["SpkrID"].strip()
    try:
        ratings = {
            key: float(line[col]) if line[col].strip() else None
            for key, col in (("arousal", "EmoAct"), ("valence", "EmoVal"), ("dominance", "EmoDom"))
        }  # fmt: skip
    except ValueError:
        out.problem("bad rating", f"{name}: {line['EmoAct']}, {line['EmoVal']}, {line['EmoDom']}")
        return None
    text = texts.get(rid)
    return {
        "path": relative_to_root(root, path),
        "id": rid,
        "label": label,
        "raw_label": line["EmoClass"].strip(),
        # an unknown speaker stands alone: never one speaker across the corpus
        "speaker": f"unknown-{rid}" if speaker.lower() in ("", "unknown") else f"msp{speaker}",
        "session": None,
        "text": storage.read_bytes(text).decode("utf-8", "replace").strip() if text else None,
        "gender": (line.get("Gender") or "").strip().lower() or None,
        "split": line["Split_Set"].strip(),
        **dimensions(ratings, low=1, high=7),
    }
