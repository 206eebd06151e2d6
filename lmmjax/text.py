"""Values written for people in messages: ``300`` rather than ``np.float64(300.0)``.

Python's ``repr`` of a NumPy scalar (NumPy ≥ 2) shows its type, and a float's
repr shows binary noise (``0.30000000000000004``). Messages use :func:`plain`
for any value that came from the user or from the data.
"""
from __future__ import annotations

import numbers

import numpy as np


def plain(value, digits: int = 6) -> str:
    """A value as a person would write it in a sentence.

    Numbers (Python or NumPy) get at most ``digits`` significant digits and
    no type wrapper; strings are quoted; lists, tuples, sets and arrays are
    written as ``[a, b]`` with their items written plainly; anything else
    as its ``repr``.

    Examples
    --------
    >>> import numpy as np
    >>> plain(np.float64(300.0)), plain(0.1 + 0.2), plain(np.int64(3)), plain("ML")
    ('300', '0.3', '3', "'ML'")
    >>> plain([np.str_("a"), np.float64(2.5)])
    "['a', 2.5]"
    """
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, bool) or value is None:
        return str(value)
    if isinstance(value, numbers.Integral):
        return str(int(value))
    if isinstance(value, numbers.Real):
        return f"{float(value):.{digits}g}"
    if isinstance(value, str):
        return repr(str(value))
    if isinstance(value, (set, frozenset)):
        value = sorted(value, key=str)
    if isinstance(value, np.ndarray):
        value = value.ravel().tolist()
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(plain(v, digits) for v in value) + "]"
    return repr(value)
