"""Per-fit memo of expensive inference pieces (fits are immutable, so this is safe)."""
from __future__ import annotations

import weakref

_CACHE: "weakref.WeakKeyDictionary" = weakref.WeakKeyDictionary()


def cached(fit, key: str, compute):
    """``compute()`` once per (fit, key); dropped with the fit."""
    store = _CACHE.setdefault(fit, {})
    if key not in store:
        store[key] = compute()
    return store[key]


def ml_refit(fit):
    """The fit itself when fitted by ML, else its ML refit (computed once per fit)."""
    if not fit.reml:
        return fit
    return cached(fit, "ml_fit", lambda: fit.refit(reml=False))
