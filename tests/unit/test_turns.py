"""Speaker turns read from RTTM as pyannote writes it: the recording's own turns, overlaps
flagged, and files that cannot be used refused with the line and the reason."""

import pytest

from raymer.audio.turns import Turn, TurnsError, check_length, overlapped, read_turns

RTTM = """\
;; written by a diarizer
SPKR-INFO call 1 <NA> <NA> <NA> unknown agent <NA> <NA>
SPEAKER call 1 4.20 3.00 <NA> <NA> customer <NA> <NA>
SPEAKER call 1 0.50 4.00 <NA> <NA> agent <NA> <NA>
SPEAKER other 1 0.00 9.00 <NA> <NA> someone <NA> <NA>
SPEAKER call 1 8.00 1.50 <NA> <NA> agent <NA> <NA>
"""


def test_the_recording_s_turns_in_order_with_overlaps_flagged():
    turns = read_turns(RTTM, "call")
    assert turns == [
        Turn(0.5, 4.5, "agent"),
        Turn(4.2, 7.2, "customer"),
        Turn(8.0, 9.5, "agent"),
    ]
    assert overlapped(turns) == [True, True, False]  # 4.2-4.5: both talk
    assert overlapped([Turn(0, 2, "a"), Turn(1, 3, "a")]) == [False, False]  # one speaker
    check_length(turns, 9.3)  # within the slack diarizers round by


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (RTTM, "no SPEAKER turns of recording 'meeting' (it has turns of call, other)"),
        ("SPEAKER meeting 1 0.5\n", "line 1: a SPEAKER line has 10 fields"),
        ("\nSPEAKER meeting 1 x 2 <NA> <NA> a <NA> <NA>\n", "line 2: onset 'x' and duration"),
        ("SPEAKER meeting 1 1 0 <NA> <NA> a <NA> <NA>\n", "an onset >= 0 and a duration > 0"),
        ("SPEAKER meeting 1 -1 2 <NA> <NA> a <NA> <NA>\n", "an onset >= 0 and a duration > 0"),
        ("SPEAKER meeting 1 nan 2 <NA> <NA> a <NA> <NA>\n", "an onset >= 0 and a duration > 0"),
        ("", "no SPEAKER turns of recording 'meeting'"),
        (
            "".join(f"SPEAKER meeting 1 {i} 1 <NA> <NA> s{i} <NA> <NA>\n" for i in range(17)),
            "17 speakers in recording 'meeting', at most 16",
        ),
    ],
)
def test_a_file_that_cannot_be_used_is_refused_with_where_and_why(text, message):
    with pytest.raises(TurnsError, match=message.replace("(", r"\(").replace(")", r"\)")):
        read_turns(text, "meeting", "meeting.rttm")


def test_turns_past_the_audio_s_end_are_refused():
    with pytest.raises(TurnsError, match=r"2 turn\(s\) run past the audio's end \(5.00 s\)"):
        check_length(read_turns(RTTM, "call"), 5.0, "call.rttm")
