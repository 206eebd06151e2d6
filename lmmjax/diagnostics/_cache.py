"""Per-fit caches that do not keep fits alive."""
from __future__ import annotations

import weakref

_CACHES: dict = {}


def per_fit(fn):
    """Decorator: cache ``fn(fit)`` for as long as the fit lives."""
    cache = weakref.WeakKeyDictionary()
    _CACHES[fn.__qualname__] = cache

    def wrapper(fit):
        try:
            return cache[fit]
        except KeyError:
            value = cache[fit] = fn(fit)
            return value

    wrapper.__doc__ = fn.__doc__
    wrapper.__name__ = fn.__name__
    wrapper.__wrapped__ = fn
    return wrapper
