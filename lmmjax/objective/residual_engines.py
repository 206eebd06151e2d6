"""How the objective gets its cross-product arrays for a model with a residual structure.

The engine kind is chosen once, when the structure is built
(:func:`lmmjax.structure.residual.choose_engine`, kept in
``dims.residual.engine``); :func:`residual_engine` maps it to its
implementation, the one place that does. Each implementation has

- ``values(raw, dims)``: the arrays :attr:`lmmjax.model.Model.arrays` holds,
  from the raw padded rows (:meth:`lmmjax.model.Model.values`);
- ``products(params, arrays, dims)``: the objective's arrays at the
  parameters (JAX; the factorization calls it at every evaluation);
- ``response_inputs(raw, dims)`` and ``response_arrays(y, inputs, dims)``:
  the arrays for another response, the part that does not involve y made
  once (batched refits: bootstrap, power).

:class:`WhitenRows` whitens every row at every evaluation
(:mod:`lmmjax.objective.residual`); :class:`CombineLagSets` combines sets
computed once (:mod:`lmmjax.objective.residual_lag`).
"""
from __future__ import annotations

from ..structure.residual import LagProducts, RowWhitening
from .crossprod import response_arrays as plain_response_arrays
from .residual import whitened_products, whitened_products_jit
from .residual_lag import (lag_arrays_jit, lag_design_jit, lag_index, lag_products, lag_products_jit, lag_response,
                           step_classes)


def _without_y(raw: dict) -> dict:
    return {k: v for k, v in raw.items() if k != "y"}


class WhitenRows:
    """:class:`~lmmjax.structure.residual.RowWhitening`: the arrays hold the raw rows."""

    products = staticmethod(whitened_products)
    products_jit = whitened_products_jit

    @staticmethod
    def values(raw: dict, dims) -> dict:
        return raw

    @staticmethod
    def response_inputs(raw: dict, dims) -> dict:
        return dict(raw=_without_y(raw))

    @staticmethod
    def response_arrays(y, inputs: dict, dims) -> dict:
        return {**inputs["raw"], "y": y}


def _with_step_classes(raw: dict) -> dict:
    codes, steps = step_classes(raw["has_pred"], raw["dt"], raw["w"])
    return {**raw, "lag_class": codes, "lag_steps": steps}


class CombineLagSets:
    """:class:`~lmmjax.structure.residual.LagProducts`: the arrays hold the sets."""

    products = staticmethod(lag_products)
    products_jit = lag_products_jit

    @staticmethod
    def values(raw: dict, dims) -> dict:
        return lag_arrays_jit(_with_step_classes(raw), dims)

    @staticmethod
    def response_inputs(raw: dict, dims) -> dict:
        raw = _with_step_classes(_without_y(raw))
        return dict(raw=raw, design={**lag_index(raw), **lag_design_jit(raw, dims)})

    @staticmethod
    def response_arrays(y, inputs: dict, dims) -> dict:
        raw = inputs["raw"]
        return {**inputs["design"], **lag_response(raw, y - raw["offset"], dims)}


_IMPLEMENTATIONS = {RowWhitening: WhitenRows, LagProducts: CombineLagSets}


def residual_engine(dims):
    """The implementation of ``dims.residual.engine``.

    Examples
    --------
    >>> residual_engine(model.dims).products(params, model.arrays, model.dims)  # doctest: +SKIP
    """
    return _IMPLEMENTATIONS[type(dims.residual.engine)]


def residual_products(params, arrays, dims) -> dict:
    """The objective's cross-product arrays at ``params`` (JAX), by the model's engine."""
    return residual_engine(dims).products(params, arrays, dims)


def response_arrays(y, inputs: dict, dims) -> dict:
    """The objective's arrays for a response ``y`` (padded rows), reusing the part without y.

    ``inputs`` as made by :meth:`lmmjax.model.Model.response_inputs`; without
    a residual structure :func:`lmmjax.objective.crossprod.response_arrays`.
    """
    if dims.residual is None:
        return plain_response_arrays(y, inputs, dims)
    return residual_engine(dims).response_arrays(y, inputs, dims)
