"""What ``raymer corpus prepare`` builds from any corpus: the rows and problems of a
``Prepared`` corpus, its label map, its speaker-independent folds, its summary, and the
manifest it writes.
"""

from __future__ import annotations

import csv
import io
import posixpath
import re
from collections import Counter, defaultdict
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field

from raymer import storage
from raymer.errors import UsageError
from raymer.pipeline.manifest import LIST_SEPARATOR
from raymer.pipeline.shards import is_address


class CorpusLayoutError(UsageError):
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
    surveyed_s: float = 0.0  # the hours of clips inside shards, from their survey (seconds)

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


def relative_to_root(root: str, path: str) -> str:
    root = root.rstrip("/")
    if not storage.is_remote(root):
        root = storage.filesystem(root)[1]
    return path[len(root) + 1 :] if path.startswith(root + "/") else path


def named_files(
    out: Prepared, root: str, files: Iterable[str], pattern: re.Pattern
) -> Iterator[tuple[str, str, re.Match]]:
    """(path, file name, match) of each file whose name matches ``pattern``; any other is
    counted as an "unexpected file name" problem."""
    for path in files:
        name = posixpath.basename(path)
        m = pattern.match(name)
        if m:
            yield path, name, m
        else:
            out.problem("unexpected file name", relative_to_root(root, path))


# -- folds, summary, output -----------------------------------------------------------------


def assign_folds(prepared: Prepared, name: str, folds: int = 5) -> None:
    """A ``fold`` per row, speaker-independent as common practice has it: IEMOCAP's five
    sessions (leave-one-session-out), MSP-Podcast's own ``Split_Set``; elsewhere the speakers dealt in turn (sorted) into
    ``folds`` groups, so no speaker is in two folds. GoEmotions keeps its own split."""
    if prepared.text_only:
        for row in prepared.rows:
            row["fold"] = row.get("split")
        return
    if name == "iemocap":
        for row in prepared.rows:
            row["fold"] = row["session"]
        return
    if name == "msp-podcast":  # the corpus's own partition (Train, Development, Test1, ...)
        for row in prepared.rows:
            row["fold"] = row["split"]
        return
    speakers = sorted({r["speaker"] for r in prepared.rows if r.get("speaker")})
    k = max(1, min(folds, len(speakers)))
    fold_of = {s: f"fold{i % k + 1}" for i, s in enumerate(speakers)}
    for row in prepared.rows:
        row["fold"] = fold_of.get(row.get("speaker"))


def durations_s(prepared: Prepared) -> list[float]:
    """Each audio file's duration from its header (the one decoder opens it and reads no
    audio: cheap on s3:// too)."""
    from raymer.audio.decode import UNLIMITED, open_audio

    out = []
    for row in prepared.rows:
        if not row.get("path") or is_address(row["path"]):  # (in shards: surveyed_s)
            continue
        if row.get("span_s") not in (None, ""):  # a supervision: its span of its recording
            out.append(float(row["span_s"]))
            continue
        try:
            with open_audio(absolute_path(prepared.root, row["path"]), UNLIMITED) as stream:
                out.append(stream.duration_s or 0.0)
        except Exception:
            prepared.problem("unreadable audio header", row["path"])
    return out


def summary(prepared: Prepared, name: str) -> str:
    """Utterances per label, per speaker and per fold, total hours, and every problem."""
    rows = prepared.rows
    lines = [f"{name}: {len(rows)} utterances"]
    if not prepared.text_only:
        seconds = sum(durations_s(prepared)) + prepared.surveyed_s
        lines[0] += f", {seconds / 3600:.2f} h of audio"
    for column in ("label", "speaker", "fold"):
        counts = Counter(str(r.get(column)) for r in rows if r.get(column) is not None)
        if column == "label" and any(r.get("labels") for r in rows):  # multi-label lists
            counts = Counter(lab for r in rows for lab in r.get("labels") or [])
        if counts:
            shown = ", ".join(f"{k} {v}" for k, v in sorted(counts.items())[:30])
            more = f" (+{len(counts) - 30} more)" if len(counts) > 30 else ""
            lines.append(f"  per {column}: {shown}{more}")
    for kind, count in sorted(prepared.problem_counts.items()):
        lines.append(f"  {kind}: {count}, e.g. " + "; ".join(prepared.problems[kind][:3]))
    return "\n".join(lines)


def write_manifest(prepared: Prepared, output: str) -> None:
    """The manifest in the format its name says: ``.jsonl`` (or ``.json``) JSON lines, else
    CSV, where a list is joined by ``LIST_SEPARATOR`` (``raymer extract`` splits a CSV's
    ``labels`` back into a list). Paths are made absolute (or full URIs) so the manifest
    works from wherever it is written."""
    import json

    rows = [
        r | ({"path": absolute_path(prepared.root, r["path"])} if r.get("path") else {})
        for r in prepared.rows
    ]
    columns: list[str] = []
    for r in rows:
        columns += [k for k in r if k not in columns]
    if output.lower().endswith((".jsonl", ".json")):
        data = "".join(json.dumps({c: r.get(c) for c in columns}) + "\n" for r in rows)
    else:
        buf = io.StringIO()
        writer = csv.DictWriter(buf, columns, lineterminator="\n")
        writer.writeheader()
        writer.writerows({c: _cell(r.get(c)) for c in columns} for r in rows)
        data = buf.getvalue()
    storage.write_bytes(output, data.encode())


def _cell(value) -> str:
    if value is None:
        return ""
    if isinstance(value, list | tuple):
        return LIST_SEPARATOR.join(str(v) for v in value)
    return value


def absolute_path(root: str, path: str) -> str:
    if storage.is_remote(path) or path.startswith("/"):
        return path
    return storage.join(storage.absolute(root), path)
