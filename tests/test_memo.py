"""lmmjax.memo: values derived from an immutable object, kept in the object."""
import gc
import weakref

import pytest

from lmmjax.memo import cached, clear, memo_of, memoized


class Owner:
    pass


def test_cached_computes_once_per_owner_and_key():
    calls = []
    a, b = Owner(), Owner()
    assert cached(a, "k", lambda: calls.append(1) or 1) == 1
    assert cached(a, "k", lambda: calls.append(2) or 2) == 1
    assert cached(b, "k", lambda: calls.append(3) or 3) == 3
    assert cached(a, "other", lambda: 4) == 4
    assert calls == [1, 3]


def test_memoized_function_and_property():
    calls = []

    @memoized
    def value(owner):
        calls.append(owner)
        return [len(calls)]

    class WithProperty:
        @property
        @memoized
        def items(self):
            return object()

    o = Owner()
    assert value(o) is value(o) and calls == [o]
    w = WithProperty()
    assert w.items is w.items
    assert value.__name__ == "value"
    clear(o)
    assert value(o) == [2]


def test_memo_does_not_keep_its_owner_alive():
    """A memoized value that refers back to its owner is collected with it."""
    o = Owner()
    cached(o, "self", lambda: {"owner": o})
    ref = weakref.ref(o)
    del o
    gc.collect()
    assert ref() is None


def test_objects_without_a_dict_are_refused():
    with pytest.raises(TypeError, match="no __dict__"):
        memo_of(3)
