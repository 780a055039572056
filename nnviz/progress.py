"""Progress of long loops on stderr: the one reporter every long loop uses (the optimizers,
the attribution loops, evaluation, the batch runner, the demo).

A tqdm bar when stderr is a terminal, else a line every ``$NNVIZ_PROGRESS_EVERY`` seconds
(default 10) with the time left; nothing with ``progress=False`` (``-q``). tqdm is imported
here and nowhere else.
"""
import math
import os
import sys
import time

PROGRESS_EVERY = "NNVIZ_PROGRESS_EVERY"    # seconds between progress lines (default 10)


def duration(seconds):
    """``seconds`` for a reader: ``45 s``, ``1 min 40 s``, ``2 h 5 min``."""
    s = max(0, int(round(seconds)))
    if s < 60:
        return f"{s} s"
    m, s = divmod(s, 60)
    if m < 60:
        return f"{m} min {s} s" if s else f"{m} min"
    h, m = divmod(m, 60)
    return f"{h} h {m} min" if m else f"{h} h"


class Progress:
    """A long loop's progress on stderr, the one kind every command uses: a tqdm bar when
    stderr is a terminal, else a line every ``$NNVIZ_PROGRESS_EVERY`` seconds (default 10),
    ``nnviz filters conv4_1: step 120/500, 24%, ~1 min 40 s left``; nothing when ``progress``
    is False (``-q``); ``progress=None``: only on a terminal. Either way, once the first steps
    have been timed, a run that will take longer than three such intervals says how long it
    will take, once. ``update``, ``close``, ``set_postfix``, ``set_postfix_str`` and ``write``
    as tqdm's; :meth:`part` hands a share of the loop to an inner function (the batches of
    ``filters``) without closing it."""

    def __init__(self, total, desc, progress=True, unit="step", stream=None):
        self.total, self.desc, self.unit = max(int(total), 0), desc, unit
        self.stream = stream or sys.stderr
        self.every = progress_every()
        self.n, self.start = 0, time.perf_counter()
        self.last, self.estimated, self.closed, self.first = self.start, False, False, None
        self.bar = None
        on = _isatty(self.stream) if progress is None else bool(progress)
        self.on = on and self.total > 0
        if self.on and _isatty(self.stream):
            from tqdm import tqdm
            self.bar = tqdm(total=self.total, desc=desc, unit=unit, file=self.stream, leave=False,
                            dynamic_ncols=True)

    def write(self, text):
        if not self.on:
            return
        if self.bar is not None:
            self.bar.write(text, file=self.stream)
        else:
            print(text, file=self.stream, flush=True)

    def update(self, k=1):
        if not self.on or self.closed:
            return
        self.n += k
        if self.bar is not None:
            self.bar.update(k)
        now = time.perf_counter()
        if self.first is None:          # the first step carries the setup: time from its end
            self.first = (now, self.n)
        spent = now - self.start
        t1, n1 = self.first
        rate = (now - t1) / (self.n - n1) if self.n > n1 else spent / self.n
        left = rate * max(self.total - self.n, 0)
        if not self.estimated and self.n > n1 and (self.n >= min(n1 + 3, self.total) or
                                                   now - t1 >= self.every):
            self.estimated = True      # once the first steps are timed (or slow): the estimate
            if spent + left > 3 * self.every and self.n < self.total:
                self.last = now
                self.write(f"nnviz {self.desc}: {self.total} {self.unit}s, about "
                           f"{duration(spent + left)} in all ({rate:.2g} s per "
                           f"{self.unit})")
                return
        if self.bar is None and self.estimated and now - self.last >= self.every and \
                self.n < self.total:
            self.last = now
            self.write(f"nnviz {self.desc}: {self.unit} {self.n}/{self.total}, "
                       f"{100 * self.n // self.total}%, ~{duration(left)} left")

    def set_postfix(self, *args, **kw):
        if self.bar is not None:
            self.bar.set_postfix(*args, **kw)

    def set_postfix_str(self, text):
        if self.bar is not None:
            self.bar.set_postfix_str(text)

    def part(self):
        """This progress for an inner loop: its ``update`` counts here, its ``close`` does
        nothing."""
        outer = self

        class _Part:
            def update(self, k=1):
                outer.update(k)

            def set_postfix(self, *args, **kw):
                outer.set_postfix(*args, **kw)

            def set_postfix_str(self, text):
                outer.set_postfix_str(text)

            def write(self, text):
                outer.write(text)

            def close(self):
                pass
        return _Part()

    def close(self):
        if self.bar is not None and not self.closed:
            self.bar.close()
        self.closed = True

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def progress_every():
    """Seconds between progress lines: ``$NNVIZ_PROGRESS_EVERY`` (a number > 0), else 10."""
    try:
        value = float(os.environ.get(PROGRESS_EVERY, "10"))
    except ValueError:
        return 10.0
    return value if math.isfinite(value) and value > 0 else 10.0


def _isatty(stream):
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False


def progress_bar(total, desc, progress, unit="step"):
    """The progress of a loop of ``total`` steps (:class:`Progress`); ``progress`` False: none;
    a :class:`Progress` (or its part): that one, shared (the loop is part of a longer one)."""
    if hasattr(progress, "update"):
        return progress.part() if isinstance(progress, Progress) else progress
    return Progress(total, desc, progress, unit)
