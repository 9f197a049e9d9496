"""``raymer corpus prepare``: the emotion corpora the paper used, as the project's manifest.

Each adapter reads a corpus from its documented layout (none can be downloaded here) and
returns one row per utterance: ``path`` (relative to the corpus root), ``id``, ``label``
(the chosen label set), ``raw_label`` (the corpus's own code), ``speaker``, ``session``,
``text`` where the corpus has it, and the corpus's other attributes as extra columns.
Problems (missing files, files without a label line, unknown label codes, duplicate ids)
are counted with examples, never dropped in silence; a tree that does not look like the
corpus named is refused with what was expected.
"""

from __future__ import annotations

import csv
import io
import posixpath
import re
from collections import Counter, defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field

from raymer import storage

CORPORA = ("iemocap", "ravdess", "savee", "crema-d", "tess", "goemotions", "manifest")


class CorpusLayoutError(ValueError):
    """The source does not look like the corpus named; the message says what was expected."""


@dataclass
class Prepared:
    """Rows of the manifest and the problems met while reading the corpus.

    Attributes:
        rows: one dict per kept utterance (``path`` relative to ``root`` or absolute).
        root: the corpus root the paths are relative to.
        problems: kind -> examples, e.g. {"missing file": [...], "unknown label": [...]}.
        problem_counts: kind -> how many.
        text_only: a text corpus (no audio paths).
    """

    rows: list[dict]
    root: str
    problems: dict[str, list[str]] = field(default_factory=lambda: defaultdict(list))
    problem_counts: Counter = field(default_factory=Counter)
    text_only: bool = False

    _where: dict[str, str] = field(default_factory=dict, init=False, repr=False)  # id -> place

    def problem(self, kind: str, example: str) -> None:
        self.problem_counts[kind] += 1
        if len(self.problems[kind]) < 5:
            self.problems[kind].append(example)

    def add(self, row: dict, where: str) -> None:
        """Keep ``row`` unless its id is taken (a "duplicate id" problem naming both places)."""
        if row["id"] in self._where:
            self.problem("duplicate id", f"{row['id']}: {where} and {self._where[row['id']]}")
            return
        self._where[row["id"]] = where
        self.rows.append(row)


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
        session = f"Session{s}"
        wav_dir = storage.join(root, session, "sentences", "wav")
        eval_dir = storage.join(root, session, "dialog", "EmoEvaluation")
        if not storage.is_dir(wav_dir) or not storage.is_dir(eval_dir):
            raise CorpusLayoutError(
                f"{root}/{session} lacks sentences/wav/ or dialog/EmoEvaluation/ (IEMOCAP layout)"
            )
        evaluations = {}
        for path in storage.list_files(eval_dir, (".txt",)):
            if posixpath.dirname(path).rstrip("/") != eval_dir.rstrip("/"):
                continue  # Categorical/ and Attribute/ hold per-annotator files
            for line in storage.read_bytes(path).decode("utf-8", "replace").splitlines():
                m = _IEMOCAP_LINE.match(line)
                if m:
                    evaluations[m["utt"]] = m
        texts = {}
        for path in storage.list_files(storage.join(root, session, "dialog", "transcriptions")):
            for line in storage.read_bytes(path).decode("utf-8", "replace").splitlines():
                m = _IEMOCAP_TEXT.match(line.strip())
                if m:
                    texts[m["utt"]] = m["text"].strip()
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
                    "path": _rel(root, wavs[utt]),
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
                    "valence": float(m["v"]),
                    "arousal": float(m["a"]),
                    "dominance": float(m["d"]),
                }
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
    for path in files:
        name = posixpath.basename(path)
        m = _RAVDESS.match(name)
        if not m:
            out.problem("unexpected file name", _rel(root, path))
            continue
        modality, channel, emotion, intensity, statement, repetition, actor = m.groups()
        if modality != "03" or channel != "01":
            continue  # video or song: not the speech corpus
        if emotion not in RAVDESS_EMOTIONS:
            out.problem("unknown label", f"{name}: emotion code {emotion}")
            continue
        if posixpath.basename(posixpath.dirname(path)) != f"Actor_{actor}":
            out.problem("file in another actor's folder", _rel(root, path))
        rid = name[:-4]
        out.add(
            {
                "path": _rel(root, path),
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
            _rel(root, path),
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
            out.problem("unexpected file name", _rel(root, path))
            continue
        prefix = m.group(2)
        if prefix not in SAVEE_PREFIXES:
            out.problem("unknown label", f"{_rel(root, path)}: prefix {prefix!r}")
            continue
        rid = f"{speaker}_{prefix}{m.group(3)}"
        out.add(
            {
                "path": _rel(root, path),
                "id": rid,
                "label": SAVEE_PREFIXES[prefix],
                "raw_label": prefix,
                "speaker": speaker,
                "session": None,
                "text": None,
            },
            _rel(root, path),
        )
    if not out.rows:
        raise CorpusLayoutError(
            f"{root} does not look like SAVEE: expected AudioData/DC|JE|JK|KL/<prefix><nn>.wav "
            "(prefixes a, d, f, h, n, sa, su), e.g. AudioData/DC/sa01.wav"
        )
    return out


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
_CREMA = re.compile(r"^(\d{4})_([A-Z]{3})_([A-Z]{3})_([A-Z]{2})\.wav$")


def crema_d(root: str) -> Prepared:
    """``AudioWAV/<actor>_<sentence>_<EMO>_<level>.wav``."""
    audio = storage.join(root, "AudioWAV")
    if not storage.is_dir(audio):
        raise CorpusLayoutError(
            f"{root} does not look like CREMA-D: expected AudioWAV/ with files like "
            "AudioWAV/1001_DFA_ANG_XX.wav"
        )
    out = Prepared([], root)
    for path in storage.list_files(audio, (".wav",)):
        name = posixpath.basename(path)
        m = _CREMA.match(name)
        if not m:
            out.problem("unexpected file name", _rel(root, path))
            continue
        actor, sentence, emo, level = m.groups()
        if emo not in CREMA_EMOTIONS:
            out.problem("unknown label", f"{name}: emotion code {emo}")
            continue
        if sentence not in CREMA_SENTENCES:
            out.problem("unknown sentence code", f"{name}: {sentence}")
        out.add(
            {
                "path": _rel(root, path),
                "id": name[:-4],
                "label": CREMA_EMOTIONS[emo],
                "raw_label": emo,
                "speaker": actor,
                "session": None,
                "text": CREMA_SENTENCES.get(sentence),
                "sentence": sentence,
                "level": CREMA_LEVELS.get(level, level),
            },
            _rel(root, path),
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
_TESS_FILE = re.compile(r"^(OAF|YAF)_([a-z]+)_([a-z_]+)\.wav$", re.IGNORECASE)


def tess(root: str) -> Prepared:
    """Folders like ``OAF_angry/OAF_back_angry.wav`` (speakers OAF and YAF; folder names
    vary in case and spelling, e.g. ``OAF_Fear``, ``YAF_pleasant_surprised`` with files
    ``..._ps.wav``); the text is "Say the word <word>."."""
    files = storage.list_files(root, (".wav",))
    out = Prepared([], root)
    for path in files:
        name = posixpath.basename(path)
        m = _TESS_FILE.match(name)
        if not m:
            out.problem("unexpected file name", _rel(root, path))
            continue
        speaker, word, emo = m.group(1).upper(), m.group(2).lower(), m.group(3).lower()
        if emo not in TESS_EMOTIONS:
            out.problem("unknown label", f"{_rel(root, path)}: {emo!r}")
            continue
        folder = posixpath.basename(posixpath.dirname(path)).lower()
        folder_emo = folder.split("_", 1)[1] if "_" in folder else ""
        if folder_emo and TESS_EMOTIONS.get(folder_emo) not in (None, TESS_EMOTIONS[emo]):
            out.problem("file and folder disagree", _rel(root, path))
        rid = f"{speaker}_{word}_{TESS_EMOTIONS[emo]}"
        out.add(
            {
                "path": _rel(root, path),
                "id": rid,
                "label": TESS_EMOTIONS[emo],
                "raw_label": emo,
                "speaker": speaker,
                "session": None,
                "text": f"Say the word {word}.",
                "word": word,
            },
            _rel(root, path),
        )
    if not out.rows:
        raise CorpusLayoutError(
            f"{root} does not look like TESS: expected folders like OAF_angry/ and YAF_sad/ "
            "holding OAF_<word>_<emotion>.wav files, e.g. OAF_angry/OAF_back_angry.wav"
        )
    return out


# -- GoEmotions (text only) ---------------------------------------------------------------

GOEMOTIONS_LABELS = (
    "admiration",
    "amusement",
    "anger",
    "annoyance",
    "approval",
    "caring",
    "confusion",
    "curiosity",
    "desire",
    "disappointment",
    "disapproval",
    "disgust",
    "embarrassment",
    "excitement",
    "fear",
    "gratitude",
    "grief",
    "joy",
    "love",
    "nervousness",
    "optimism",
    "pride",
    "realization",
    "relief",
    "remorse",
    "sadness",
    "surprise",
    "neutral",
)
# GoEmotions' documented mapping to Ekman's six (ekman_mapping.json), neutral kept.
GOEMOTIONS_EKMAN = {
    "anger": ("anger", "annoyance", "disapproval"),
    "disgust": ("disgust",),
    "fear": ("fear", "nervousness"),
    "joy": (
        "joy",
        "amusement",
        "approval",
        "excitement",
        "gratitude",
        "love",
        "optimism",
        "relief",
        "pride",
        "admiration",
        "desire",
        "caring",
    ),
    "sadness": ("sadness", "disappointment", "embarrassment", "grief", "remorse"),
    "surprise": ("surprise", "realization", "confusion", "curiosity"),
    "neutral": ("neutral",),
}
_TO_EKMAN = {fine: coarse for coarse, fines in GOEMOTIONS_EKMAN.items() for fine in fines}


def goemotions(root: str, labels: str = "ekman") -> Prepared:
    """``train.tsv``, ``dev.tsv``, ``test.tsv``: text, comma-separated label ids, id (no
    header). ``labels``: ekman (the six plus neutral) | all (the 27 plus neutral). Multi-label
    examples keep every label in ``labels`` (a list); ``label`` is set only when they agree
    on one."""
    splits = [s for s in ("train", "dev", "test") if storage.exists(storage.join(root, f"{s}.tsv"))]
    if not splits:
        raise CorpusLayoutError(
            f"{root} does not look like GoEmotions: expected train.tsv, dev.tsv, test.tsv "
            "(tab-separated: text, label ids like 2,17, id; no header)"
        )
    out = Prepared([], root, text_only=True)
    for split in splits:
        data = storage.read_bytes(storage.join(root, f"{split}.tsv")).decode("utf-8")
        for n, fields in enumerate(csv.reader(io.StringIO(data), delimiter="\t"), start=1):
            if len(fields) != 3:
                out.problem("malformed line", f"{split}.tsv line {n}: {len(fields)} fields")
                continue
            text, ids, rid = fields
            try:
                fine = [GOEMOTIONS_LABELS[int(i)] for i in ids.split(",")]
            except (ValueError, IndexError):
                out.problem("unknown label", f"{split}.tsv line {n}: {ids!r}")
                continue
            names = sorted({_TO_EKMAN[f] for f in fine}) if labels == "ekman" else fine
            out.add(
                {
                    "path": None,
                    "id": rid,
                    "label": names[0] if len(set(names)) == 1 else None,
                    "labels": names,
                    "raw_label": ids,
                    "speaker": None,
                    "session": None,
                    "text": text,
                    "split": split,
                },
                f"{split}.tsv line {n}",
            )
    return out


# -- generic ------------------------------------------------------------------------------


def manifest(source: str) -> Prepared:
    """Any corpus already listed in a manifest (CSV/JSONL/Parquet with ``path`` and
    ``label``): checked like the others and brought onto a label set with ``--label-map``."""
    from raymer.corpora.manifest import read_inputs

    inputs = read_inputs(source)
    out = Prepared([], storage.parent(source))
    for rid, _path, error in inputs.problems:
        out.problem("bad manifest row", f"{rid}: {error}")
    for row in inputs.rows:
        if not storage.exists(row["path"]):
            out.problem("missing file", row["path"])
            continue
        if row.get("label") is None:
            out.problem("no label", row["id"])
        out.rows.append(
            {k: v for k, v in row.items() if k != "reference_text"}
            | {"text": row.get("reference_text"), "raw_label": row.get("label")}
        )
    return out


def apply_label_map(prepared: Prepared, mapping: dict[str, str | None]) -> None:
    """Bring labels onto a chosen set: ``mapping`` raw or current label -> new label (null
    or missing: the utterance is left out and counted)."""
    kept = []
    for row in prepared.rows:
        key = row["label"] if row["label"] in mapping else row.get("raw_label")
        new = mapping.get(key) if key in mapping else None
        if new is None:
            prepared.problem("label outside the label map", f"{row['id']}: {row['label']!r}")
            continue
        kept.append(row | {"label": new})
    prepared.rows = kept


ADAPTERS: dict[str, Callable[..., Prepared]] = {
    "iemocap": iemocap,
    "ravdess": ravdess,
    "savee": savee,
    "crema-d": crema_d,
    "tess": tess,
    "goemotions": goemotions,
    "manifest": manifest,
}


def _rel(root: str, path: str) -> str:
    root = root.rstrip("/")
    if not storage.is_remote(root):
        root = storage.filesystem(root)[1]
    return path[len(root) + 1 :] if path.startswith(root + "/") else path


# -- folds, summary, output -----------------------------------------------------------------


def assign_folds(prepared: Prepared, name: str, folds: int = 5) -> None:
    """A ``fold`` per row, speaker-independent as common practice has it: IEMOCAP's five
    sessions (leave-one-session-out); elsewhere the speakers dealt in turn (sorted) into
    ``folds`` groups, so no speaker is in two folds. GoEmotions keeps its own split."""
    if prepared.text_only:
        for row in prepared.rows:
            row["fold"] = row.get("split")
        return
    if name == "iemocap":
        for row in prepared.rows:
            row["fold"] = row["session"]
        return
    speakers = sorted({r["speaker"] for r in prepared.rows if r.get("speaker")})
    k = max(1, min(folds, len(speakers)))
    fold_of = {s: f"fold{i % k + 1}" for i, s in enumerate(speakers)}
    for row in prepared.rows:
        row["fold"] = fold_of.get(row.get("speaker"))


def durations_s(prepared: Prepared) -> list[float]:
    """Each audio file's duration from its header (the first 64 KiB: cheap on s3:// too)."""
    import soundfile

    out = []
    for row in prepared.rows:
        if not row.get("path"):
            continue
        fs, path = storage.filesystem(_abs(prepared.root, row["path"]))
        try:
            with fs.open_input_stream(path) as stream:
                head = stream.read(65536)
            info = soundfile.info(io.BytesIO(head))
            out.append(info.frames / info.samplerate if info.frames > 0 else 0.0)
        except Exception:
            prepared.problem("unreadable audio header", row["path"])
    return out


def summary(prepared: Prepared, name: str) -> str:
    """Utterances per label, per speaker and per fold, total hours, and every problem."""
    rows = prepared.rows
    lines = [f"{name}: {len(rows)} utterances"]
    if not prepared.text_only:
        lines[0] += f", {sum(durations_s(prepared)) / 3600:.2f} h of audio"
    for column in ("label", "speaker", "fold"):
        counts = Counter(str(r.get(column)) for r in rows if r.get(column) is not None)
        if column == "label" and prepared.text_only:
            counts = Counter(lab for r in rows for lab in r.get("labels") or [])
        if counts:
            shown = ", ".join(f"{k} {v}" for k, v in sorted(counts.items())[:30])
            more = f" (+{len(counts) - 30} more)" if len(counts) > 30 else ""
            lines.append(f"  per {column}: {shown}{more}")
    for kind, count in sorted(prepared.problem_counts.items()):
        lines.append(f"  {kind}: {count}, e.g. " + "; ".join(prepared.problems[kind][:3]))
    return "\n".join(lines)


def write_manifest(prepared: Prepared, output: str) -> None:
    """CSV (JSONL when a row holds a list, e.g. GoEmotions' labels); paths made absolute
    (or full URIs) so the manifest works from wherever it is written."""
    import json

    rows = [
        r | ({"path": _abs(prepared.root, r["path"])} if r.get("path") else {})
        for r in prepared.rows
    ]
    columns: list[str] = []
    for r in rows:
        columns += [k for k in r if k not in columns]
    if output.endswith(".jsonl") or any(isinstance(v, list) for r in rows for v in r.values()):
        data = "".join(json.dumps({c: r.get(c) for c in columns}) + "\n" for r in rows)
    else:
        buf = io.StringIO()
        writer = csv.DictWriter(buf, columns, lineterminator="\n")
        writer.writeheader()
        writer.writerows({c: ("" if r.get(c) is None else r.get(c)) for c in columns} for r in rows)
        data = buf.getvalue()
    storage.write_bytes(output, data.encode())


def _abs(root: str, path: str) -> str:
    if storage.is_remote(path) or path.startswith("/"):
        return path
    return storage.join(storage.absolute(root), path)
