"""One memo for values derived from an immutable object (a fit, a model).

A fit never changes, so anything computed from it (the fixed-effect table,
the Satterthwaite derivatives, the ML refit, the leverages) can be kept
with it. The memo lives *in* the object, in a plain dict under
``__dict__["_memo"]``: it is dropped with the object, cannot keep the
object alive (as a global ``WeakKeyDictionary`` would when a memoized value
refers back to its owner), and a ``dataclasses.replace`` copy starts empty.
This replaces ``functools.cached_property`` and the per-package caches that
lmmjax used before (one mechanism, one place to clear).

Two ways in:

- :func:`memoized` decorates a function of one object, ``f(obj)`` (a
  module-level function such as ``curvature(fit)``, or a method under
  ``@property``); the key is the function's qualified name.
- :func:`cached` is the call form, ``cached(obj, key, compute)``, for a value
  whose key is chosen by the caller.

Examples
--------
>>> class Box:
...     pass
>>> b = Box()
>>> cached(b, "answer", lambda: 6 * 7)
42
>>> @memoized
... def double(box):
...     return [2]
>>> double(b) is double(b)
True
"""
from __future__ import annotations

import functools
from typing import Any, Callable

MEMO_ATTRIBUTE = "_memo"


def memo_of(owner) -> dict:
    """The memo dict of ``owner`` (created empty on first use).

    Written straight into ``owner.__dict__``, so frozen dataclasses work
    (as with ``functools.cached_property``)."""
    try:
        store = vars(owner)
    except TypeError:
        raise TypeError(f"{type(owner).__name__} has no __dict__ to hold a memo") from None
    memo = store.get(MEMO_ATTRIBUTE)
    if memo is None:
        memo = store[MEMO_ATTRIBUTE] = {}
    return memo


def cached(owner, key: str, compute: Callable[[], Any]):
    """``compute()`` once per (owner, key); later calls return the same value.

    Examples
    --------
    >>> info = cached(fit, "satterthwaite", lambda: satterthwaite_info(fit))  # doctest: +SKIP
    """
    memo = memo_of(owner)
    if key not in memo:
        memo[key] = compute()
    return memo[key]


def memoized(fn: Callable[[Any], Any]) -> Callable[[Any], Any]:
    """Decorator: ``fn(owner)`` computed once per owner, kept in its memo.

    Examples
    --------
    >>> @memoized
    ... def curvature(fit):  # doctest: +SKIP
    ...     ...
    """
    key = f"{fn.__module__}.{fn.__qualname__}"

    @functools.wraps(fn)
    def wrapper(owner):
        return cached(owner, key, lambda: fn(owner))

    return wrapper


def clear(owner) -> None:
    """Forget everything memoized for ``owner`` (for tests and benchmarks)."""
    memo_of(owner).clear()
