"""``--threads auto``: the CPU thread count that trains fastest on the cores that are free right now.

On a 2-core machine with one core taken by another program, two threads run at the pace of the slower core and
training loses about two thirds of its speed, where one thread would have kept all of it. So instead of a fixed
count, ``ThreadTuner`` times a few real training steps at each candidate count (nothing is wasted: they are the
run's own steps), keeps the fastest, and measures again every ``recheck_s`` seconds or as soon as the speed drops
well below what it was when it chose. Different thread counts sum in a different order, so a run whose count
changes is not bit-for-bit repeatable: a fixed ``--threads N`` or ``--deterministic`` is.
"""
from __future__ import annotations

import os
import time

import torch


def available_cores() -> int:
    """The cores this process may run on (its affinity mask, e.g. under taskset or a container), else all."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def candidate_counts(cores: int) -> list[int]:
    """1, 2, 4, ... and the core count itself: enough to find the free share without timing every count."""
    counts, n = [], 1
    while n < cores:
        counts.append(n)
        n *= 2
    return counts + [cores]


class ThreadTuner:
    """Call ``after_step(images, seconds)`` after each training step with the step's own duration (so the work
    between steps, like saving at the end of an epoch, never counts); it sets ``torch.set_num_threads`` as it
    measures.

    Each candidate count is timed for ``probe_s`` seconds of steps, after one untimed warm-up step at its new
    count (a warm-up step already slower than half the best rate so far settles that count at once: on a machine
    whose other core runs PyTorch, one step at 2 threads took nearly 2 s). The choice is measured again every ``recheck_s`` seconds, and at once when two windows of ``window_s``
    seconds of steps in a row run below ``drop`` times the chosen count's speed (the faster of its measurement and
    its best window since, so one slow measurement does not lower the bar; one slow window may be a hiccup)."""

    def __init__(self, counts: list[int], *, probe_s: float = 0.5, recheck_s: float = 30.0, drop: float = 0.75,
                 window_s: float = 2.0, clock=time.perf_counter, set_threads=torch.set_num_threads):
        self.counts, self.probe_s, self.recheck_s, self.drop, self.window_s = counts, probe_s, recheck_s, drop, \
            window_s
        self.clock, self.set_threads = clock, set_threads
        self.chosen: int | None = None
        self.chosen_rate = 0.0
        self.history: list[dict[int, float]] = []  # {count: images/s} of each measurement
        self._started = False  # the first step starts the measurement: building a tuner changes nothing
        # a count that lost by more than half is left out of the periodic checks for a while, doubling each time it
        # loses again (30 s, 60 s, ... up to 10 min): trying it can cost seconds a step under a PyTorch neighbour
        self._benched: dict[int, tuple[float, float]] = {}  # count -> (left out until, for how long)
        self._probing: int | None = None  # the count being timed, while measuring

    @classmethod
    def for_run(cls, config, device, world) -> "ThreadTuner | None":
        """``--threads auto`` on the CPU: a tuner that follows the free cores. Not with --deterministic
        (bit-for-bit runs keep one count), not under torchrun (it sets each process's share), not on one core."""
        counts = candidate_counts(available_cores())
        if (config.thread_count() or device.type != "cpu" or config.deterministic or world.distributed
                or len(counts) < 2):
            return None
        return cls(counts)

    def _start_probe(self) -> None:
        self._rates: dict[int, float] = {}
        now = self.clock()
        self._queue = [c for c in self.counts if self._benched.get(c, (0.0, 0.0))[0] <= now]
        self._begin(self._queue.pop(0))

    def _begin(self, count: int) -> None:
        self.set_threads(count)
        self._probing, self._warm, self._images, self._seconds = count, False, 0, 0.0

    def _next(self) -> None:
        if self._queue:
            self._begin(self._queue.pop(0))
        else:
            self._choose()

    def _choose(self) -> None:
        self.chosen = max(self._rates, key=self._rates.get)
        self.chosen_rate = self._rates[self.chosen]
        now = self.clock()
        for count, rate in self._rates.items():
            if rate < 0.5 * self.chosen_rate:
                pause = min(2 * self._benched.get(count, (0.0, self.recheck_s / 2))[1], 600.0)
                self._benched[count] = (now + pause, pause)
            else:
                self._benched.pop(count, None)
        self.history.append(dict(self._rates))
        self.set_threads(self.chosen)
        self._probing, self._chosen_at = None, self.clock()
        self._images = self._seconds = self._slow_windows = 0

    def after_step(self, images: int, seconds: float) -> None:
        if not self._started:
            self._started = True
            self._start_probe()
            return
        if self._probing is not None:
            if not self._warm:  # the first step at a new count pays for resizing the thread pool: not timed ...
                self._warm = True
                best = max(self._rates.values(), default=0.0)
                if images / seconds < 0.5 * best:  # ... unless it alone is far too slow: no need to time more
                    self._rates[self._probing] = images / seconds
                    self._next()
                return
            self._images, self._seconds = self._images + images, self._seconds + seconds
            if self._seconds >= self.probe_s:
                self._rates[self._probing] = self._images / self._seconds
                self._next()
            return
        self._images, self._seconds = self._images + images, self._seconds + seconds
        if self._seconds >= self.window_s:
            rate = self._images / self._seconds
            self._slow_windows = self._slow_windows + 1 if rate < self.drop * self.chosen_rate else 0
            self.chosen_rate = max(self.chosen_rate, rate)
            self._images = self._seconds = 0
        if self._slow_windows >= 2 or self.clock() - self._chosen_at >= self.recheck_s:
            self._start_probe()

    def describe(self) -> str:
        """The last measurement, for the run's summary: 'threads auto: 2 (1: 1,240 images/s, 2: 1,910 images/s)'."""
        if not self.history:
            return f"threads auto: still measuring ({torch.get_num_threads()} now)"
        rates = ", ".join(f"{c}: {r:,.0f} images/s" for c, r in sorted(self.history[-1].items()))
        return f"threads auto: {self.chosen} ({rates}; measured {len(self.history)} time(s))"
