"""Training data from the extraction Parquet: the labelled clips, speaker-independent splits
and the row filter of each split. (The batches themselves: ``raymer.trained.batches``.)"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import pyarrow.parquet as pq

from raymer import storage
from raymer.audio.normalize import FrameStats
from raymer.contract.schema import AUGMENT
from raymer.errors import UsageError
from raymer.trained.checkpoint import target_column
from raymer.trained.targets import has_target, is_rated

if TYPE_CHECKING:
    from raymer.config import TrainConfig

COLUMNS = ["id", "label", "speaker", "session", "audio_frames", "text_tokens"]
SPLIT_COLUMNS = ("speaker", "session")


def features_path(uri: str) -> str:
    """Accept an extraction output root or its ``features/`` folder."""
    inner = storage.join(uri, "features")
    return inner if storage.is_dir(inner) else uri


def feature_files(uri: str) -> list[str]:
    """The Parquet files of the features under ``uri``."""
    return storage.list_files(features_path(uri), (".parquet",))


@dataclass
class Index:
    """The labelled clips: ids, labels (a list per clip when multi-label), their group
    (speaker or session), the feature widths (audio 0: a text corpus), and how many clips
    were left out for having no label."""

    ids: list[str]
    labels: list  # str per clip, or list[str] per clip (multi-label)
    speakers: list[str]  # the values of the split column (speaker or session)
    audio_dim: int
    text_dim: int
    unlabelled: int = 0

    def label_set(self) -> list[str]:
        """Every label that occurs, sorted (none for a model of dimensions alone)."""
        found = {
            x
            for lab in self.labels
            if lab is not None
            for x in ([lab] if isinstance(lab, str) else lab)
        }
        return sorted(found)


def group_of(row: dict, split_by: str = "speaker") -> str:
    """The split group of a row: its speaker (or session); ``unknown`` when missing."""
    value = row.get(split_by)
    return "unknown" if value is None or value == "" else str(value)


def read_index(
    uri: str, split_by: str = "speaker", multi_label: bool = False, rated: tuple[str, ...] = ()
) -> Index:
    """Read the small columns of every clip (no frames); unlabelled clips are only counted.
    ``rated`` (a model of emotion dimensions alone): a clip rated on any of these columns
    counts as labelled, and no label is read."""
    ids, labels, groups, dims, unlabelled = [], [], [], None, 0
    columns = feature_columns(uri)
    if rated:
        missing = [c for c in rated if c not in columns]
        if missing:
            raise UsageError(f"targets {missing}: the features under {uri} have no such column")
    target = rated[0] if rated else target_column(multi_label)
    if split_by not in columns:
        raise UsageError(
            f"split_by={split_by}: the features under {uri} have no `{split_by}` column "
            "(it comes from the manifest; `raymer corpus prepare` writes `fold`)"
        )
    if target not in columns:
        raise UsageError(
            f"multi_label: the features under {uri} have no `labels` column (a list of labels "
            "per clip, as `raymer corpus prepare goemotions` writes)"
        )
    wanted = list(dict.fromkeys(["id", target, *rated, split_by, "audio_embedding"]))
    wanted += ["text_embedding"] + ([AUGMENT] if AUGMENT in columns else [])
    for path in feature_files(uri):
        fs, inner = storage.filesystem(path)
        table = pq.read_table(inner, filesystem=fs, columns=wanted)
        for row in table.to_pylist():
            if row.get(AUGMENT) is not None:
                continue  # an augmented copy: its clip stands for it
            if not (is_rated(row, rated) if rated else has_target(row[target])):
                unlabelled += 1
                continue
            ids.append(row["id"])
            labels.append(None if rated else row[target])
            groups.append(group_of(row, split_by))
            dims = dims or (len(row["audio_embedding"] or []), len(row["text_embedding"]))
    if not ids:
        raise UsageError(
            f"no labelled clips under {uri} ({unlabelled} without a label): "
            f"train needs features with {' or '.join(f'`{c}`' for c in rated or [target])}"
        )
    return Index(ids, labels, groups, *dims, unlabelled=unlabelled)


def feature_columns(uri: str) -> list[str]:
    """Column names of the features (from the first file's schema)."""
    files = feature_files(uri)
    if not files:
        raise UsageError(f"no Parquet files under {features_path(uri)}")
    fs, inner = storage.filesystem(files[0])
    return pq.read_schema(fs.open_input_file(inner)).names


def split_speakers(
    speakers: list[str], test: list[str], val: list[str], val_fraction: float, seed: int
) -> tuple[set[str], set[str], set[str]]:
    """(train, val, test) group sets (speakers or sessions): disjoint, no group in two splits."""
    everyone = sorted(set(speakers))
    unknown = [s for s in (*test, *val) if s not in everyone]
    if unknown:
        raise UsageError(f"groups {unknown} are not in the features (there: {everyone})")
    rest = [s for s in everyone if s not in test]
    if not val:
        shuffled = random.Random(seed).sample(rest, len(rest))
        val = shuffled[: max(1, round(val_fraction * len(rest)))]
    train = set(rest) - set(val)
    if not train:
        raise UsageError(f"no speaker left for training after test {test} and validation {val}")
    return train, set(val), set(test)


class InSpeakers:
    """Row filter for Ray Data: labelled clips of the given speakers (or sessions, with
    ``split_by="session"``), none of the held-out ones; their augmented copies too with
    ``copies`` (training), never otherwise. ``rated`` (a model of dimensions alone): a clip
    rated on any of these columns is labelled."""

    def __init__(
        self,
        speakers: set[str],
        holdout: dict[str, list[str]] | None = None,
        split_by: str = "speaker",
        target: str = "label",
        copies: bool = False,
        rated: tuple[str, ...] = (),
    ) -> None:
        self.speakers = speakers
        self.holdout = {k: set(v) for k, v in (holdout or {}).items()}
        self.split_by = split_by
        self.target = rated[0] if rated else target
        self.copies = copies
        self.rated = tuple(rated)

    def table(self, table):
        """The rows of an Arrow batch this filter keeps, in one vectorised step (Ray Data
        ``map_batches`` with ``batch_format="pyarrow"``: no Python object per row)."""
        import pyarrow as pa
        import pyarrow.compute as pc

        target = table.column(self.target)
        if self.rated:
            labelled = pc.is_valid(target)
            for column in self.rated[1:]:
                labelled = pc.or_(labelled, pc.is_valid(table.column(column)))
        elif pa.types.is_list(target.type) or pa.types.is_large_list(target.type):
            labelled = pc.fill_null(pc.greater(pc.list_value_length(target), 0), False)
        else:
            text = target.cast(pa.string())
            labelled = pc.fill_null(pc.not_equal(text, ""), False)
        groups = table.column(self.split_by).cast(pa.string())
        groups = pc.if_else(pc.fill_null(pc.equal(groups, ""), True), "unknown", groups)
        keep = pc.and_(labelled, pc.is_in(groups, value_set=pa.array(sorted(self.speakers))))
        if not self.copies and AUGMENT in table.column_names:
            keep = pc.and_(keep, pc.is_null(table.column(AUGMENT)))
        for column, values in self.holdout.items():
            held = pc.is_in(
                table.column(column).cast(pa.string()), value_set=pa.array(sorted(values))
            )
            keep = pc.and_(keep, pc.invert(pc.fill_null(held, False)))
        return table.filter(keep)

    def __call__(self, row: dict) -> bool:
        if not self.copies and row.get(AUGMENT) is not None:
            return False
        if any(str(row.get(k)) in v for k, v in self.holdout.items()):
            return False
        if self.rated and not is_rated(row, self.rated):
            return False
        if not self.rated and not has_target(row[self.target]):
            return False
        return group_of(row, self.split_by) in self.speakers


def frame_stats(uri: str, dim: int) -> FrameStats:
    """Per-speaker sums of the first ``dim`` columns of the audio frames (``audio_norm:
    speaker``), added up by Ray Data over the whole corpus: one row per speaker comes back."""
    import ray.data

    from raymer.audio.normalize import GROUP, add, combine, partial_sums
    from raymer.runtime import READ_ARGS, init_ray

    columns = feature_columns(uri)
    if GROUP not in columns:
        raise UsageError(
            f"audio_norm=speaker: the features under {uri} have no `{GROUP}` column (it comes "
            "from the manifest)"
        )
    init_ray()
    fs, path = storage.filesystem(features_path(uri))
    ds = ray.data.read_parquet(path, filesystem=fs, **READ_ARGS)
    ds = ds.select_columns([GROUP, "audio_frames"] + [AUGMENT] * (AUGMENT in columns))
    sums = ds.map_batches(partial_sums, fn_kwargs={"dim": dim}, batch_format="pyarrow", **READ_ARGS)
    per_speaker = sums.groupby(GROUP).map_groups(combine, batch_format="pyarrow", **READ_ARGS)
    return add(per_speaker.take_all())


def read_frames(
    uri: str, keep: InSpeakers, limit: int = 2000, columns: tuple[str, ...] = ()
) -> list[np.ndarray]:
    """Audio frames (T, D) of up to ``limit`` clips that ``keep`` accepts (driver side)."""
    clips: list[np.ndarray] = []
    for path in feature_files(uri):
        fs, inner = storage.filesystem(path)
        cols = [keep.target, *keep.rated, keep.split_by, "audio_frames", *columns]
        cols = list(dict.fromkeys(cols))
        for row in pq.read_table(inner, filesystem=fs, columns=cols).to_pylist():
            if keep(row) and row["audio_frames"]:
                clips.append(np.asarray(row["audio_frames"], dtype=np.float32))
            if len(clips) >= limit:
                return clips
    return clips


def rated_only(cfg: TrainConfig) -> tuple[str, ...]:
    """A model of emotion dimensions alone: the dimensions (a clip rated on any is a training
    clip); () when the label is a target."""
    return () if cfg.model.has_labels else tuple(cfg.model.dimensions)


def keep_of(cfg: TrainConfig, speakers: set[str], copies: bool = False) -> InSpeakers:
    """The row filter of a split: its speakers, not the held-out groups, with a target."""
    target = target_column(cfg.model.multi_label)
    return InSpeakers(
        speakers, cfg.data.holdout, cfg.data.split_by, target, copies, rated_only(cfg)
    )
