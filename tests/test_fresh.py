"""launcher/fresh.py: a worker's copy, used for a few seconds. The clock is the test's."""

from __future__ import annotations

import threading

from launcher.fresh import Fresh


class Clock:
    """time.monotonic() for a copy, moved by the test."""

    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


class Source:
    """What the copy reads: counts the reads and answers ``value``."""

    def __init__(self) -> None:
        self.value = ["a"]
        self.calls = 0

    def __call__(self) -> list[str]:
        self.calls += 1
        return list(self.value)


def test_the_value_is_read_once_and_used_until_it_is_seconds_old() -> None:
    clock, source = Clock(), Source()
    copy: Fresh[list[str]] = Fresh(5, clock)
    assert copy.peek() is None  # nothing read yet, and peek reads nothing
    assert source.calls == 0
    assert copy.get(source) == ["a"]
    source.value = ["b"]
    clock.now += 4.999
    assert copy.get(source) == ["a"] and copy.peek() == ["a"]
    assert source.calls == copy.reads == 1
    clock.now += 0.001  # exactly ``seconds`` after the read began: stale
    assert copy.peek() is None
    assert copy.get(source) == ["b"]
    assert source.calls == copy.reads == 2


def test_an_empty_value_is_a_value() -> None:
    clock, source = Clock(), Source()
    source.value = []
    copy: Fresh[list[str]] = Fresh(5, clock)
    assert copy.get(source) == []
    assert copy.peek() == [] and copy.get(source) == []
    assert source.calls == 1


def test_another_key_is_read_anew_whatever_the_clock_says() -> None:
    clock, source = Clock(), Source()
    copy: Fresh[list[str]] = Fresh(5, clock)
    assert copy.get(source, "monday") == ["a"]
    assert copy.peek("tuesday") is None
    source.value = ["b"]
    assert copy.get(source, "tuesday") == ["b"]
    assert copy.peek("monday") is None  # one key held at a time
    assert copy.get(source, "tuesday") == ["b"]
    assert source.calls == 2


def test_clear_makes_the_next_call_read() -> None:
    clock, source = Clock(), Source()
    copy: Fresh[list[str]] = Fresh(5, clock)
    copy.get(source)
    source.value = ["b"]
    copy.clear()
    assert copy.peek() is None
    assert copy.get(source) == ["b"]
    assert copy.get(source) == ["b"]
    assert source.calls == 2


def test_a_read_that_a_clear_overtook_is_used_once_and_not_kept() -> None:
    """A change made while the read ran may be missing from what it read: that answer serves
    its caller, and the next caller reads again."""
    clock, source = Clock(), Source()
    copy: Fresh[list[str]] = Fresh(5, clock)

    def read_then_change() -> list[str]:
        value = source()
        copy.clear()  # an editor's change lands during the read
        source.value = ["b"]
        return value

    assert copy.get(read_then_change) == ["a"]
    assert copy.peek() is None
    assert copy.get(source) == ["b"]
    assert copy.peek() == ["b"]


def test_the_age_counts_from_before_the_read() -> None:
    """A slow read does not make the copy live longer than ``seconds`` after it began."""
    clock, source = Clock(), Source()
    copy: Fresh[list[str]] = Fresh(5, clock)

    def slow() -> list[str]:
        clock.now += 3
        return source()

    copy.get(slow)
    clock.now += 2  # 5 s after the read began, 2 s after it ended
    assert copy.peek() is None


def test_threads_that_ask_while_one_reads_get_its_answer() -> None:
    clock, source = Clock(), Source()
    copy: Fresh[list[str]] = Fresh(5, clock)
    reading, release = threading.Event(), threading.Event()

    def blocked() -> list[str]:
        reading.set()
        assert release.wait(10)
        return source()

    answers: list[list[str]] = []
    first = threading.Thread(target=lambda: answers.append(copy.get(blocked)))
    first.start()
    assert reading.wait(10)
    others = [threading.Thread(target=lambda: answers.append(copy.get(source))) for _ in range(4)]
    for thread in others:
        thread.start()
    release.set()
    for thread in [first, *others]:
        thread.join(10)
    assert answers == [["a"]] * 5
    assert source.calls == copy.reads == 1
