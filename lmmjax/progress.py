"""Progress bars (tqdm) for calls that may take more than about a second.

A :class:`Progress` bar appears only once its work has run for
:data:`DELAY` seconds, so quick calls print nothing, and a watcher thread keeps
it alive while a compiled chunk runs: it shows the time spent and, before the
first result of a program that is new to this process, ``compiling…``.

``progress=False`` (an argument of the calls that loop: ``bootstrap``,
``refit_many``, ``power``, ``power_curve``) turns the bar off, ``progress=True``
shows it at once. The environment variable ``LMMJAX_PROGRESS=0`` turns every
bar off, including the timer of an ``lmer`` call that compiles.

A fit's timer also says how far its optimizer has got: an
:class:`EvaluationReporter` (from :func:`evaluation_reporter`, None when the
bar is off, so that a fit with the bar off pays nothing) is the callable the
optimizer calls with the objective's value at each evaluation, and the bar
reads ``lmer 00:12, evaluation 7, REML criterion 2531034.81``.

Examples
--------
>>> with Progress(total=3, desc="refits", unit="fit") as bar:  # doctest: +SKIP
...     for _ in range(3):
...         bar.update(1)
"""
from __future__ import annotations

import os
import sys
import threading
import time

DELAY = 1.0  # seconds of work before a bar appears
TICK = 0.25  # seconds between refreshes of a shown bar
ENV = "LMMJAX_PROGRESS"

_seen: set = set()
_seen_lock = threading.Lock()


class _Compilations:
    """Whether JAX is compiling right now, from its monitoring events: a
    program is being compiled from the end of its lowering to MLIR until its
    backend compilation (or persistent-cache hit) is reported; tracing, which
    has no start event, counts while it follows another compile event closely."""

    def __init__(self):
        self.pending = 0
        self.last = 0.0
        self.registered = False
        self.lock = threading.Lock()

    def register(self) -> None:
        with self.lock:
            if self.registered:
                return
            self.registered = True
        from jax import monitoring

        monitoring.register_event_duration_secs_listener(lambda name, _s, **_kw: self.event(name))
        monitoring.register_event_listener(lambda name, **_kw: self.event(name))

    def event(self, name: str) -> None:
        if not name.startswith(("/jax/core/compile/", "/jax/compilation_cache/")):
            return
        with self.lock:
            self.last = time.perf_counter()
            if name.endswith("jaxpr_to_mlir_module_duration"):
                self.pending += 1
            elif name.endswith(("backend_compile_duration", "cache_hits")):
                self.pending = max(0, self.pending - 1)

    def active(self, since: float) -> bool:
        """Compiling now, or nothing reported yet since ``since`` (tracing the first program)."""
        with self.lock:
            return self.pending > 0 or self.last < since or time.perf_counter() - self.last < TICK * 2


COMPILATIONS = _Compilations()


def first_use(key) -> bool:
    """True the first time ``key`` (e.g. a compiled program's structure) is seen
    in this process: the call that will compile it."""
    with _seen_lock:
        if key in _seen:
            return False
        _seen.add(key)
        return True


def mode(progress) -> str:
    """``"off"``, ``"on"`` (show at once) or ``"auto"`` (show after :data:`DELAY` s)."""
    if os.environ.get(ENV, "").strip().lower() in ("0", "false", "no", "off"):
        return "off"
    if progress is None:
        return "auto"
    return "on" if progress else "off"


class Progress:
    """A tqdm bar over ``total`` items (or a timer when ``total`` is None).

    Parameters
    ----------
    total : int, optional
    desc, unit : str
    progress : bool or None
        None: shown if the work lasts more than :data:`DELAY` s; True: shown
        at once; False: never.
    compiling : bool
        Say ``compiling…`` until the first :meth:`update`.
    """

    def __init__(self, total=None, desc: str = "", unit: str = "it", progress=None,
                 compiling: bool = False):
        self.total, self.desc, self.unit = total, desc, unit
        self.compiling = compiling
        self.done = 0
        self.bar = None
        self.text = ""  # shown after the timer once compiling is over (:meth:`note`)
        self._mode = mode(progress)
        if self._mode != "off":
            COMPILATIONS.register()
        self._start = self._since = time.perf_counter()
        self._noted = -float("inf")  # when a note last redrew the bar
        self._lock = threading.Lock()
        self._closed = threading.Event()
        self._thread = None
        if self._mode == "on":
            self._show()
        if self._mode != "off":
            self._thread = threading.Thread(target=self._watch, daemon=True, name="lmmjax-progress")
            self._thread.start()

    def _show(self) -> None:
        from tqdm.auto import tqdm

        timer = {} if self.total is not None else {"bar_format": "{desc} {elapsed}{postfix}"}
        self.bar = tqdm(total=self.total, desc=self.desc, unit=self.unit, initial=self.done,
                        leave=False, file=sys.stderr, dynamic_ncols=True, **timer)
        self.bar.start_t -= time.perf_counter() - self._start  # the timer counts from the work's start
        if self.text:
            self.bar.set_postfix_str(self.text, refresh=False)
        self._status()

    def _status(self) -> None:
        """``compiling…`` while a new program compiles, ``running…`` after it, until the first result."""
        if self.compiling:
            self.bar.set_postfix_str("compiling…" if COMPILATIONS.active(self._since) else "running…",
                                     refresh=False)
        self.bar.refresh()

    def _watch(self) -> None:
        while not self._closed.wait(TICK):
            with self._lock:
                if self._closed.is_set():
                    return
                if self.bar is None and time.perf_counter() - self._start >= DELAY:
                    self._show()
                elif self.bar is not None:
                    self._status()

    def set_compiling(self, compiling: bool) -> None:
        """Say ``compiling…`` until the next :meth:`update` (a new program is about to compile)."""
        with self._lock:
            self.compiling = bool(compiling)
            if compiling:
                self._since = time.perf_counter()
            if self.bar is not None:
                self._status()

    @property
    def active(self) -> bool:
        """False when the bar is turned off (``progress=False`` or ``LMMJAX_PROGRESS=0``)."""
        return self._mode != "off"

    def note(self, text: str) -> None:
        """Show ``text`` after the timer; ends ``compiling…``. A shown bar is redrawn at once
        unless it was redrawn for a note less than :data:`TICK` s ago (the watcher catches up)."""
        with self._lock:
            self.text = text
            self.compiling = False
            if self.bar is not None:
                now = time.perf_counter()
                redraw = now - self._noted >= TICK
                self.bar.set_postfix_str(text, refresh=redraw)
                if redraw:
                    self._noted = now

    def update(self, k: int = 1) -> None:
        """``k`` more items done."""
        with self._lock:
            self.done += k
            if self.bar is not None:
                if self.compiling:
                    self.bar.set_postfix_str("", refresh=False)
                self.bar.update(k)
            self.compiling = False

    def close(self) -> None:
        with self._lock:
            self._closed.set()
            if self.bar is not None:
                self.bar.close()
        if self._thread is not None:
            self._thread.join()

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()


class EvaluationReporter:
    """Counts a fit's objective evaluations and shows the count and the latest value on a bar.

    Called by the optimizer with the objective's value at each evaluation
    (and, for a fit in stages, the stage's name).

    Examples
    --------
    >>> with Progress(desc="lmer", unit="s", progress=False) as bar:
    ...     report = EvaluationReporter(bar, "REML criterion")
    ...     report(2531034.8123)
    ...     bar.text
    'evaluation 1, REML criterion 2531034.81'
    """

    def __init__(self, bar: Progress, criterion: str):
        self.bar, self.criterion = bar, criterion
        self.count = 0

    def __call__(self, value: float, stage: str | None = None) -> None:
        self.count += 1
        self.bar.note(("" if stage is None else f"{stage}, ") +
                      f"evaluation {self.count}, {self.criterion} {float(value):.2f}")


def evaluation_reporter(bar: Progress, criterion: str) -> EvaluationReporter | None:
    """An :class:`EvaluationReporter` on ``bar``, or None when the bar is off (nothing to report to)."""
    return EvaluationReporter(bar, criterion) if bar.active else None
