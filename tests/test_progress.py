"""Progress on a pipe or in a CI log: plain lines with an ETA, quiet for short work (a fake clock, no timing)."""

from __future__ import annotations

from dlakit.quantize.runtime import LogProgress, progress_bar


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_short_work_prints_nothing():
    clock, lines = Clock(), []
    log = LogProgress(10, "screening", every=15, clock=clock, write=lines.append)
    for _ in range(10):
        clock.now += 1
        log.advance(1)
    log.close()
    assert lines == []


def test_long_work_prints_count_share_elapsed_and_eta_then_a_closing_line():
    clock, lines = Clock(), []
    log = LogProgress(100, "FP16 layers: screening 100 candidates", every=15, clock=clock, write=lines.append)
    for _ in range(100):
        clock.now += 4  # 4 s a candidate: 400 s in all
        log.advance(1)
    log.close()
    assert lines[0] == "FP16 layers: screening 100 candidates: 4/100 (4%), 16s elapsed, ETA 6m24s"
    assert len(lines) == 24 + 1  # one line per 15 s (every 4th step, before the last), then the closing line
    assert lines[-1] == "FP16 layers: screening 100 candidates: 100/100 done in 6m40s"
    assert all("ETA" in line for line in lines[:-1])


def test_progress_bar_off_a_terminal_is_silent_for_quick_work(capsys):
    with progress_bar(3, "running", True) as advance:
        for _ in range(3):
            advance(1)
    assert capsys.readouterr().err == ""
