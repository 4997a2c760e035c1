"""Progress lines of a long loop: count, rate and time left, one line at least every 30 s.

E.g. ``predicted 120/2000 images, 3.1 img/s, ETA 10 min``; the last line gives the time taken
instead of the time left. Every project's ``predict`` prints through :class:`Progress`, so a
run on thousands of images shows the same lines everywhere. Light on purpose: no torch.
"""

from __future__ import annotations

import time
from collections.abc import Callable


def format_duration(seconds: float) -> str:
    """``42 s``, ``10 min`` or ``2.5 h``: a duration to the precision a reader wants."""
    if seconds < 60:
        return f"{seconds:.0f} s"
    if seconds < 3600:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


class Progress:
    """Counts finished items and prints a progress line every ``every`` seconds and at the end.

    Args:
        total: items of the whole job, those already done included.
        done: items finished before this process started (``--resume``); they count towards
            ``total`` but not towards the rate.
        verb: what happens to an item (``predicted``).
        noun: the items (``images``).
        unit: the rate's unit (``img``: ``3.1 img/s``).
        every: seconds between two progress lines.
        echo: where a line goes (``print`` with ``flush=True`` by default).
        clock: seconds since an arbitrary origin (``time.monotonic``; a fake in tests).
    """

    def __init__(self, total: int, done: int = 0, verb: str = "predicted",
                 noun: str = "images", unit: str = "img", every: float = 30.0,
                 echo: Callable[[str], None] | None = None,
                 clock: Callable[[], float] = time.monotonic):
        self.total, self.done, self.start_done = int(total), int(done), int(done)
        self.verb, self.noun, self.unit, self.every = verb, noun, unit, float(every)
        self.echo = echo or (lambda line: print(line, flush=True))
        self.clock = clock
        self.started = self.last = clock()

    @property
    def rate(self) -> float:
        """Items per second finished by this process (0 before the first)."""
        elapsed = self.clock() - self.started
        return (self.done - self.start_done) / elapsed if elapsed > 0 else 0.0

    def line(self, final: bool = False) -> str:
        """The progress line now; ``final``: with the time taken instead of the time left."""
        head = f"{self.verb} {self.done}/{self.total} {self.noun}, {self.rate:.1f} {self.unit}/s"
        if final:
            return f"{head}, took {format_duration(self.clock() - self.started)}"
        left = self.total - self.done
        eta = format_duration(left / self.rate) if self.rate > 0 else "unknown"
        return f"{head}, ETA {eta}"

    def step(self, n: int = 1) -> None:
        """Count ``n`` finished items; print a line when ``every`` seconds have passed."""
        self.done += n
        now = self.clock()
        if now - self.last >= self.every:
            self.last = now
            self.echo(self.line())

    def close(self) -> None:
        """Print the last line."""
        self.echo(self.line(final=True))
