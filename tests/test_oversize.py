"""The page's slow lane for requests over the answering limits (assistant/oversize.py)."""

from __future__ import annotations

import threading
import time

from assistant.config import Settings
from assistant.oversize import OversizeLane


def _lane(pause: float = 1.0) -> OversizeLane:
    return OversizeLane(
        Settings(max_message_chars=100, max_history_turns=4, max_history_chars=1000, oversize_pause=pause)
    )


def test_only_requests_over_an_answering_limit_are_oversize() -> None:
    lane = _lane()
    turn = {"role": "user", "content": "my back hurts"}
    assert not lane.oversize("how do I do a bird dog?", [turn] * 4)
    assert not lane.oversize(None, None)  # a malformed request is for Assistant.ask to reject
    assert lane.oversize("x" * 101, None)
    assert lane.oversize("hi", [turn] * 5)
    assert lane.oversize("hi", [{"role": "user", "content": "y" * 1001}])
    assert lane.oversize("hi", "z" * 1001)  # a history sent as one long string


def test_after_an_oversize_request_the_next_waits_its_pause_and_others_never_wait() -> None:
    lane = _lane(pause=2.0)
    with lane.admit("x" * 101):
        time.sleep(0.3)
    started = time.monotonic()
    with lane.admit("hi"):  # within the limits: not held by the closed lane
        light = time.monotonic() - started
    waited: list[float] = []

    def second() -> None:
        begun = time.monotonic()
        with lane.admit("x" * 101):
            waited.append(time.monotonic() - begun)

    thread = threading.Thread(target=second)
    thread.start()
    thread.join(10)
    assert light < 0.3
    assert waited and waited[0] >= 0.5  # closed for 2 x the 0.3 s the first one took


def test_a_pause_of_zero_switches_the_lane_off() -> None:
    lane = _lane(pause=0.0)
    with lane.admit("x" * 101):
        time.sleep(0.2)
    started = time.monotonic()
    with lane.admit("x" * 101):
        pass
    assert time.monotonic() - started < 0.2
