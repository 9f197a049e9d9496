"""Speaker turns from a diarizer: NIST RTTM, the format pyannote and the NIST tools write.

One ``SPEAKER`` line per turn::

    SPEAKER <recording> <channel> <onset s> <duration s> <NA> <NA> <speaker> <NA> <NA>

Other line types (``SPKR-INFO``, ``LEXEME``, ...) and ``;;`` comments are skipped. A file
may hold turns of several recordings: ``read_turns`` keeps those of the one asked for and
refuses a file that names only others, a line it cannot read (by its number) and a turn
that runs past the audio's end (``check_length``, once the length is known from the
header), each with a ``TurnsError`` that says what and where.
"""

from __future__ import annotations

from dataclasses import dataclass

END_SLACK_S = 0.5  # a turn may end this far past the audio (diarizers round their ends)
MAX_SPEAKERS = 16  # each speaker's turns are heard as a stream of their own: the file decoded again


class TurnsError(ValueError):
    """A turn file that cannot be used for a recording (the message says why)."""


@dataclass(frozen=True)
class Turn:
    """One speaker's turn: ``start_s`` to ``end_s`` of the recording."""

    start_s: float
    end_s: float
    speaker: str


def read_turns(text: str, recording: str | None, source: str = "the turn file") -> list[Turn]:
    """The ``SPEAKER`` turns of ``recording`` in an RTTM text, by start time (None: of the
    one recording the file has turns of; a file of several is refused)."""
    if recording is None:
        named = {
            f[1]
            for f in (line.split() for line in text.splitlines())
            if f[:1] == ["SPEAKER"] and len(f) > 1
        }
        if len(named) > 1:
            raise TurnsError(
                f"{source} has turns of {len(named)} recordings ({', '.join(sorted(named)[:5])}): "
                "name the input's recording (a file named after it)"
            )
        recording = next(iter(named), "")
    turns, others = [], set()
    for number, line in enumerate(text.splitlines(), 1):
        fields = line.split()
        if not fields or fields[0].startswith(";;") or fields[0] != "SPEAKER":
            continue
        if len(fields) < 8:
            raise TurnsError(
                f"{source}, line {number}: a SPEAKER line has 10 fields (type, recording, "
                f"channel, onset, duration, NA, NA, speaker, NA, NA), this one {len(fields)}"
            )
        if fields[1] != recording:
            others.add(fields[1])
            continue
        try:
            onset, duration = float(fields[3]), float(fields[4])
        except ValueError:
            raise TurnsError(
                f"{source}, line {number}: onset {fields[3]!r} and duration {fields[4]!r} "
                "must be seconds"
            ) from None
        if not (onset >= 0 and duration > 0) or onset + duration == float("inf"):
            raise TurnsError(
                f"{source}, line {number}: a turn needs an onset >= 0 and a duration > 0 "
                f"(seconds), not {fields[3]} and {fields[4]}"
            )
        turns.append(Turn(onset, onset + duration, fields[7]))
    if not turns:
        names = f" (it has turns of {', '.join(sorted(others)[:5])})" if others else ""
        raise TurnsError(f"{source} has no SPEAKER turns of recording {recording!r}{names}")
    speakers = {t.speaker for t in turns}
    if len(speakers) > MAX_SPEAKERS:
        raise TurnsError(
            f"{source}: {len(speakers)} speakers in recording {recording!r}, at most "
            f"{MAX_SPEAKERS} (each is heard as a stream of its own)"
        )
    return sorted(turns, key=lambda t: (t.start_s, t.end_s))


def check_length(turns: list[Turn], duration_s: float, source: str = "the turn file") -> None:
    """Refuse turns that run past the audio (more than ``END_SLACK_S``): they belong to
    another recording, or another cut of this one."""
    late = [t for t in turns if t.end_s > duration_s + END_SLACK_S]
    if late:
        t = late[0]
        raise TurnsError(
            f"{source}: {len(late)} turn(s) run past the audio's end ({duration_s:.2f} s), "
            f"the first {t.speaker} {t.start_s:.2f}-{t.end_s:.2f} s: turns of another "
            "recording, or of another cut of this one?"
        )


def overlapped(turns: list[Turn]) -> list[bool]:
    """For each turn (in ``read_turns``' order): whether another speaker's turn overlaps it
    (two people talking at once)."""
    flags = [False] * len(turns)
    for i, a in enumerate(turns):
        for j in range(i + 1, len(turns)):
            b = turns[j]
            if b.start_s >= a.end_s:
                break
            if b.speaker != a.speaker:
                flags[i] = flags[j] = True
    return flags
