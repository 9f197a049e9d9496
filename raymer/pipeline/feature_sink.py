"""The features' write: Ray Data's Parquet sink, each write task handing back the sums of the
rows it wrote (clips, augmented copies, audio seconds, word edits and reference words behind
the WER). The run's summary is those sums, added on the driver (one small record per write
task): exact for the files written (a retried task returns once), with no second pass over
them (a Ray Data aggregation took 2-5 s of every run, however small)."""

from __future__ import annotations

from dataclasses import dataclass

import pyarrow as pa

from raymer.wer import normalize_words


@dataclass
class Written:
    """What a write task wrote (or, added up, a run)."""

    rows: int = 0  # clips and copies
    copies: int = 0
    seconds: float = 0.0  # audio, copies included
    edits: float = 0.0  # WER x reference words, over the clips with a reference
    words: int = 0  # those references' words

    def add(self, other: Written | None) -> Written:
        if other is not None:
            self.rows += other.rows
            self.copies += other.copies
            self.seconds += other.seconds
            self.edits += other.edits
            self.words += other.words
        return self

    @property
    def clips(self) -> int:
        return self.rows - self.copies

    @property
    def wer(self) -> float | None:
        """Word errors over reference words: the clips' WER pooled (None without a reference)."""
        return self.edits / self.words if self.words else None


def written(table: pa.Table) -> Written:
    """The sums of feature rows: an augmented copy counts its audio, not its words."""
    out = Written(rows=table.num_rows)
    names = ("duration_s", "wer", "reference_text", "augment")
    for dur, w, ref, aug in zip(*(table.column(c).to_pylist() for c in names), strict=True):
        n = len(normalize_words(ref)) if w is not None and ref and aug is None else 0
        out.seconds += dur or 0.0
        out.edits += w * n if n else 0.0
        out.words += n
        out.copies += int(aug is not None)
    return out


def feature_sink(path: str, filesystem, filename_provider, min_rows_per_file: int):
    """``Dataset.write_datasink`` target: ``write_parquet``'s own sink (the pinned Ray's), whose
    write tasks return ``Written``; after the write, ``sink.totals`` is the run's."""
    from ray.data._internal.datasource.parquet_datasink import ParquetDatasink
    from ray.data.block import BlockAccessor

    class FeatureSink(ParquetDatasink):
        totals: Written | None = None

        def write(self, blocks, ctx) -> Written:
            blocks = list(blocks)
            super().write(blocks, ctx)
            done = Written()
            for block in blocks:
                done.add(written(BlockAccessor.for_block(block).to_arrow()))
            return done

        def on_write_complete(self, write_result) -> None:
            super().on_write_complete(write_result)
            self.totals = Written()
            for done in write_result.write_returns:
                self.totals.add(done)

    return FeatureSink(
        path,
        filesystem=filesystem,
        filename_provider=filename_provider,
        min_rows_per_file=min_rows_per_file,
    )
