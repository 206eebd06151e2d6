"""Fit one model structure to many responses in one compiled, sharded computation.

:func:`fit_batch` is the engine behind ``fit.bootstrap``, ``fit.refit_many``
and the power simulations: responses (given, or drawn on the device from
per-replicate keys) → their cross-products (:mod:`.products`) → the batched
bound-constrained trust-region Newton method (:mod:`.newton`) → β̂, σ̂,
cov(β̂)/σ̂² at θ̂.

- **Chunks.** Replicates go through in chunks of ``batch_size`` (memory
  bound; by default from an estimate of the memory one replicate needs).
  Every chunk has the same shape (the last one is padded by repeating its
  last replicate, whose copies are dropped), so one compilation serves all.
- **Compiled once per structure.** The jitted function is cached per
  (kind, :class:`~lmmjax.structure.crossprod.Dims`, options, devices); data
  are arguments, so another data set of the same structure and chunk size
  reuses it.
- **Sharded.** The replicate axis of each chunk is split over
  ``jax.devices()`` with ``jax.shard_map`` over a one-axis mesh ``("rep",)``:
  each device runs its own replicates' loops with no communication (the
  chunk size is a multiple of the device count). In a multi-host run
  (``jax.distributed.initialize()`` first) the mesh spans every process's
  devices; each process holds the inputs and gathers the results.
- **Lanes.** Within a device's shard, replicates run ``LANE`` at a time
  (``lax.map`` over groups, each group one vmapped loop): a group's arrays
  stay in cache, and a slow replicate holds up only its own group.
- **Reproducible.** Replicate i's response and fit depend on i and the
  seed only, not on the chunk it lands in: chunk sizes are multiples of
  LANE × devices, so every replicate runs in a group of the same width and
  the results are bitwise identical for any batch size. Across device
  counts XLA compiles the per-device program separately; results then agree
  to rounding (about 1e-12 relative), not bitwise.
"""
from __future__ import annotations

from dataclasses import replace
import time

import jax
import numpy as np
from jax import lax
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P

from ..fitting.bounds import column_mates, start_theta
from ..fitting.chunks import chunk_rows, n_chunks, round_up, shared_chunk
from ..fitting.derivatives import choose_derivatives, initial_hessian
from ..fitting.newton import NewtonOptions, minimize_theta
from ..fitting.record import STATUS_TEXT, OptSummary
from ..fitting.reparam import reparametrisation
from ..objective.crossprod import cross_products
from ..objective.residual_engines import response_arrays
from ..objective.deviance import profiled_deviance
from ..objective.estimates import estimates_at
from ..program_cache import cached_jit
from ..progress import Progress, first_use
from .draw import SimulationParameters, draw_response, replicate_key, simulate_model, simulation_arrays

jax.config.update("jax_enable_x64", True)

SINGULAR_TOL = 1e-4  # lme4's isSingular tolerance (as LmerFit.singular)
MEMORY_BUDGET = 2 ** 29  # bytes per chunk for the automatic batch size (512 MiB)
MAX_BATCH = 2048  # larger chunks gain little and wait longer for their slowest replicate
LANE = 8  # replicates per vmapped loop inside a chunk (cache-sized; measured best on sleepstudy)


# ---- one replicate --------------------------------------------------------------------
def _fit_one(y, theta0, inputs, bounds, dims, opts):
    return _fit_arrays(response_arrays(y, inputs, dims), theta0, bounds, dims, opts)


def _fit_weighted(w, theta0, inputs, bounds, dims, opts):
    arrays = {**inputs["index"], **cross_products(inputs["pattern"], w, inputs["y"], inputs["offset"], dims)}
    return _fit_arrays(arrays, theta0, bounds, dims, opts)


def _fit_arrays(arrays, theta0, bounds, dims, opts):
    res = minimize_theta(theta0, lambda th: profiled_deviance(th, arrays, dims), bounds["lower"], opts,
                         mates=bounds["mates"], H0=bounds["H0"])
    est = estimates_at(res["theta"], arrays, dims)
    res.update(beta=est.beta, sigma=est.sigma, vcov_unscaled=est.vcov_unscaled)
    return res


# ---- compiled chunk functions ------------------------------------------------------------
_COMPILED: dict = {}


def _mesh(devices) -> Mesh:
    return Mesh(np.asarray(devices), ("rep",))


def _replicate_function(kind: str, dims, opts: NewtonOptions, use_u: bool, null_dims):
    """One replicate's fit: (its input, θ0, *shared inputs) → results.

    - ``"responses"``: the input is a response vector;
    - ``"weights"``: a row-weight vector (deletion refits), the model's response;
    - ``"simulate"``: a replicate number; the response is drawn on the device
      (:func:`~lmmjax.simulate.draw.draw_response`) and, with ``null_dims``,
      a second (null) model is fitted to the same draw (results suffixed ``_h0``).
    """
    if kind == "responses":
        return lambda y, t0, inputs, bounds: _fit_one(y, t0, inputs, bounds, dims, opts)
    if kind == "weights":
        return lambda w, t0, inputs, bounds: _fit_weighted(w, t0, inputs, bounds, dims, opts)
    if kind != "simulate":
        raise ValueError(kind)

    def simulated(i, t0, base_key, sim, inputs, bounds, *null):
        y = draw_response(replicate_key(base_key, i), sim, inputs["pattern"], dims, use_u)
        out = _fit_one(y, t0, inputs, bounds, dims, opts)
        if null_dims is not None:
            inputs0, bounds0 = null
            out.update({f"{k}_h0": v for k, v in _fit_one(y, t0, inputs0, bounds0, null_dims, opts).items()})
        return out

    return simulated


def _chunk_function(kind: str, dims, opts: NewtonOptions, use_u: bool, devices, lane: int, n_shared: int,
                    null_dims=None):
    """The jitted, shard_mapped chunk fitter for this structure (cached).

    Within a device's shard, replicates run ``lane`` at a time (``lax.map``
    over groups, each group one vmapped loop): a group's arrays stay in cache
    and a slow replicate holds up only its own group.
    """
    key = (kind, dims, opts, use_u, tuple((d.process_index, d.id) for d in devices), lane, n_shared, null_dims)
    if key in _COMPILED:
        return _COMPILED[key]
    mesh = _mesh(devices)
    rep, rest = P("rep"), P()
    fit_replicate = _replicate_function(kind, dims, opts, use_u, null_dims)

    def local(first, theta0, *shared):
        return lax.map(lambda args: fit_replicate(args[0], args[1], *shared), (first, theta0), batch_size=lane)

    in_specs = (rep, rep) + (rest,) * n_shared
    fn = cached_jit(jax.shard_map(local, mesh=mesh, in_specs=in_specs, out_specs=rep, check_vma=False),
                    key=("simulate.batched chunk",) + key)
    _COMPILED[key] = (fn, mesh)
    return fn, mesh


def _put(x, sharding):
    """A global array from a host array that every process holds in full."""
    x = np.asarray(x)
    if jax.process_count() == 1:
        return jax.device_put(x, sharding)
    return jax.make_array_from_callback(x.shape, sharding, lambda index: x[index])


def _fetch(tree):
    if jax.process_count() > 1:
        from jax.experimental import multihost_utils

        tree = multihost_utils.process_allgather(tree, tiled=True)
    return jax.device_get(tree)


# ---- sizes -------------------------------------------------------------------------------
def auto_batch_size(dims, opts: NewtonOptions, n_devices: int = 1, budget: int = MEMORY_BUDGET,
                    n_rows: int = 0) -> int:
    """Replicates per chunk so that one chunk's working memory stays near ``budget`` bytes.

    Per replicate: the response and its cross-products, and for each point
    evaluated at once (k + 1 with gradients, kept for reverse mode, else 1)
    the factorization (per-level blocks of the first factor, the dense
    later block). ``n_rows``: the model's (padded) rows.
    """
    factor = dims.l1 * dims.p1 * (2 * dims.p1 + dims.p + 1) + 3 * dims.q2 * dims.q2 + 4 * dims.q2 * (dims.p + 1)
    points = {"gradient": 3 * (dims.n_theta + 1), "quasi-newton": 3}.get(opts.derivatives, 2)
    per_rep = 8 * (3 * n_rows + points * factor + 4 * dims.n_theta ** 2)
    size = max(1, min(MAX_BATCH, budget // per_rep))
    return max(n_devices, size // n_devices * n_devices)


def _chunk_size(n: int, batch_size: int | None, dims, opts, n_devices: int, lane: int, n_rows: int) -> int:
    """Replicates per chunk: a multiple of lane × devices, so that every replicate
    runs in the same vmapped width (results do not depend on the batch size)."""
    if batch_size is not None:
        size = int(batch_size)
        if size < 1:
            raise ValueError(f"batch_size must be a positive integer, got {batch_size}.")
    else:
        size = min(auto_batch_size(dims, opts, n_devices, n_rows=n_rows), shared_chunk(n))
    return round_up(size, lane * n_devices)


def newton_options(dims, options=None) -> NewtonOptions:
    """Default :class:`NewtonOptions` for a structure, updated by a dict or NewtonOptions."""
    if isinstance(options, NewtonOptions):
        opts = options
    else:
        unknown = set(options or {}) - set(NewtonOptions._fields)
        if unknown:
            raise ValueError(f"Unknown optimiser options {sorted(unknown)}; see NewtonOptions.")
        opts = NewtonOptions(derivatives=choose_derivatives(dims))._replace(**(options or {}))
    if opts.derivatives not in ("gradient", "quasi-newton"):
        raise ValueError(f"Unknown derivatives {opts.derivatives!r}; use 'gradient' or 'quasi-newton'.")
    return opts


# ---- driver ------------------------------------------------------------------------------
def default_lane(dims, opts: NewtonOptions) -> int:
    """Replicates per vmapped loop: LANE for small models, 1 when one replicate's
    factorization alone is larger than a cache."""
    per_rep = 8 * (dims.l1 * dims.p1 * (2 * dims.p1 + dims.p + 1) + 3 * dims.q2 * dims.q2)
    return LANE if per_rep <= 2 ** 17 else 1


def _run(kind, model, n, per_chunk_inputs, shared_inputs, theta0, batch_size, progress, opts, devices,
         use_u=False, lane=None, null_dims=None):
    t0 = time.perf_counter()
    dims = model.dims
    devices = list(devices) if devices is not None else jax.devices()
    lane = int(lane or default_lane(dims, opts))
    size = _chunk_size(n, batch_size, dims, opts, len(devices), lane, model.pattern.n_rows)
    fn, mesh = _chunk_function(kind, dims, opts, use_u, devices, lane, len(shared_inputs), null_dims)
    rep_sharding, rest_sharding = NamedSharding(mesh, P("rep")), NamedSharding(mesh, P())
    shared = jax.tree_util.tree_map(lambda a: _put(a, rest_sharding), shared_inputs)
    compiling = first_use(("chunk", id(fn), size))
    desc = "bootstrap" if kind == "simulate" else "refits"
    outputs, pending = [], None
    with Progress(total=n, desc=desc, unit="fit", progress=progress, compiling=compiling) as bar:
        for c in range(n_chunks(n, size)):
            start, stop = c * size, min(n, (c + 1) * size)
            rows = chunk_rows(n, size, c)  # padded with the last replicate
            args = [_put(a[rows], rep_sharding) for a in per_chunk_inputs(rows)]
            args.append(_put(theta0[rows], rep_sharding))
            result = fn(args[0], args[1], *shared)
            if pending is not None:
                outputs.append(_trim(_fetch(pending[0]), pending[1]))
                bar.update(pending[1])
            pending = (result, stop - start)
        outputs.append(_trim(_fetch(pending[0]), pending[1]))
        bar.update(pending[1])
    out = {k: np.concatenate([o[k] for o in outputs])[:n] for k in outputs[0]}
    diag = model.layout.diagonal
    for sfx in ("", "_h0") if null_dims is not None else ("",):
        theta = out["theta" + sfx]
        out["singular" + sfx] = np.any(theta[:, diag] < SINGULAR_TOL, axis=1) & np.all(np.isfinite(theta), axis=1)
        out["converged" + sfx] = out["converged" + sfx].astype(bool)
        out["message" + sfx] = np.array([STATUS_TEXT[int(s)] for s in out["status" + sfx]], dtype=object)
    out["optsummary"] = OptSummary(
        theta_start=theta0[:n], theta=out["theta"], deviance=out["deviance"], n_evaluations=None,
        n_iterations=out["n_iter"], optimizer="batched bound-constrained trust-region Newton (lmmjax.fitting.newton)",
        message=out["message"], projected_gradient=out["pgrad"], success=out["converged"],
        seconds=time.perf_counter() - t0, status=out["status"])
    return out


def _trim(tree, m):
    return {k: np.asarray(v)[:m] for k, v in tree.items()}


def _theta0_rows(model, theta0, n):
    k = model.layout.size
    if theta0 is None:
        theta0 = start_theta(model.layout.lower)
    theta0 = np.asarray(theta0, float)
    if theta0.ndim == 1:
        if theta0.shape != (k,):
            raise ValueError(f"theta0 has {theta0.size} values; the model has {k}.")
        theta0 = np.broadcast_to(theta0, (n, k))
    if theta0.shape != (n, k):
        raise ValueError(f"theta0 must have shape ({k},) or ({n}, {k}), got {theta0.shape}.")
    return np.ascontiguousarray(theta0)


def _design_inputs(model, opts: NewtonOptions, first_response, theta0):
    """Design inputs of the cross-products and the per-structure optimiser inputs
    (bounds, column reflections, and the quasi-Newton starting Hessian from the
    first response at its starting θ)."""
    inputs = model.response_inputs()
    k = model.layout.size
    H0 = np.eye(k)
    if opts.derivatives == "quasi-newton":
        # the structure's own response (the original data for a bootstrap) keeps each
        # replicate's path independent of the others; else the first response
        H0 = initial_hessian(model, model.y, theta0[0])
        if H0 is None:
            H0 = initial_hessian(model, first_response(), theta0[0])
        if H0 is None:
            H0 = np.eye(k)
    bounds = dict(lower=np.asarray(model.layout.lower, float), mates=column_mates(model.layout), H0=H0)
    return inputs, bounds


def _in_fit_parametrisation(model, theta0, n, fit):
    """``fit(model, theta0_rows)`` in the centred and scaled parametrisation when the model's
    random-effect columns are badly scaled (:mod:`lmmjax.fitting.reparam`), θ mapped back.

    The batched Newton, like L-BFGS-B, stalls on such columns (Days × 1e6:
    every refit unconverged, log-likelihoods up to 1.1 below the single fits').
    β̂, σ̂, cov(β̂), the deviance and ``singular`` (judged as
    :func:`lmmjax.fitting.reparam.boundary_theta` does) need no mapping.
    """
    plan = reparametrisation(model)
    if plan is None:
        return fit(model, _theta0_rows(model, theta0, n))
    rows = _theta0_rows(model, theta0, n) if theta0 is not None else None
    scaled = None if rows is None else np.stack([plan.to_scaled(t) for t in rows])
    out = fit(plan.model, _theta0_rows(plan.model, scaled, n))
    theta = np.stack([plan.to_original(t) if np.all(np.isfinite(t)) else t for t in out["theta"]])
    start = np.stack([plan.to_original(t) for t in out["optsummary"].theta_start])
    out["theta"] = theta
    out["optsummary"] = replace(out["optsummary"], theta=theta, theta_start=start)
    return out


def fit_batch(model, Y, theta0=None, *, batch_size: int | None = None, progress: bool | None = None,
              options=None, devices=None) -> dict:
    """Fit ``model`` (its structure and REML/ML setting) to every row of ``Y``.

    Parameters
    ----------
    model : lmmjax.model.Model
        The structure; its own response is ignored. Use ``model.with_reml(False)``
        for ML fits (likelihood-ratio tests).
    Y : array (B, nobs)
        One response vector per row, aligned with the model's rows.
    theta0 : array (n_theta,) or (B, n_theta), optional
        Starting θ (warm start, e.g. the original fit's θ̂); default lme4's
        start (1 on the diagonals of T, 0 elsewhere).
    batch_size : int, optional
        Replicates per compiled chunk (rounded up to a multiple of the
        device count). Default: from a memory estimate (see
        :func:`auto_batch_size`).
    progress : bool, optional
        tqdm bar (:mod:`lmmjax.progress`); by default shown when the call
        takes more than a second; False: never.
    options : dict or NewtonOptions, optional
        Optimiser settings, e.g. ``{"maxiter": 50}`` or
        ``{"derivatives": "values"}``.
    devices : list of jax devices, optional
        Default ``jax.devices()`` (all devices of all processes).

    Returns
    -------
    dict of numpy arrays, first axis B:
        ``theta`` (B, n_theta), ``beta`` (B, p), ``sigma`` (B,),
        ``deviance`` (B,) (ML deviance or REML criterion),
        ``vcov_unscaled`` (B, p, p) (cov(β̂)/σ̂²), ``converged`` (B,) bool,
        ``singular`` (B,) bool, ``n_iter`` (B,), ``pgrad`` (B,) (largest
        projected-gradient component), ``status`` (B,) int and ``message``
        (B,) text (see :data:`lmmjax.fitting.record.STATUS_TEXT`), and ``optsummary``:
        the same :class:`~lmmjax.fitting.record.OptSummary` record as a single
        fit's, with one array entry per replicate.
        A response with a missing or infinite value gives a replicate with
        ``converged = False`` and message "non-finite deviance"; the others
        are unaffected.

    Examples
    --------
    >>> import lmmjax as lmm
    >>> from lmmjax.simulate import fit_batch
    >>> fit = lmm.lmer("Reaction ~ Days + (Days | Subject)", lmm.datasets.load("sleepstudy"))
    >>> Y = fit.simulate(100, seed=1)
    >>> res = fit_batch(fit.model, Y, theta0=fit.theta)
    >>> res["theta"].shape, bool(res["converged"].all())
    ((100, 3), True)
    """
    Y = np.asarray(Y, float)
    if Y.ndim == 1:
        Y = Y[None, :]
    if Y.ndim != 2 or Y.shape[1] != model.n_rows:
        raise ValueError(f"Y must have shape (B, {model.n_rows}) (one response per row), got {Y.shape}.")
    n = Y.shape[0]
    if n == 0:
        raise ValueError("Y has no rows.")

    def fit(model, theta0):
        opts = newton_options(model.dims, options)
        inputs, bounds = _design_inputs(model, opts, lambda: Y[0], theta0)
        Ypad = model.pad_responses(Y)
        return _run("responses", model, n, lambda rows: [Ypad], (inputs, bounds),
                    theta0, batch_size, progress, opts, devices)

    return _in_fit_parametrisation(model, theta0, n, fit)


def fit_weights(model, W, theta0=None, *, batch_size: int | None = None, progress: bool | None = None,
                options=None, devices=None) -> dict:
    """Fit ``model`` (its response) with each row of ``W`` as row weights.

    A deletion refit is the same structure with other weights: 0 on the
    deleted rows (case-deletion influence, power-curve subsets). Returns the
    same dict as :func:`fit_batch`.

    Parameters
    ----------
    W : array (B, nobs)
        Row weights per refit (the model's prior weights times a 0/1 mask
        for deletion).

    Examples
    --------
    >>> W = np.ones((2, fit.nobs)); W[0, :10] = 0  # doctest: +SKIP
    >>> res = fit_weights(fit.model, W, theta0=fit.theta)  # doctest: +SKIP
    """
    W = np.asarray(W, float)
    if W.ndim != 2 or W.shape[1] != model.n_rows:
        raise ValueError(f"W must have shape (B, {model.n_rows}) (one weight vector per row), got {W.shape}.")
    n = W.shape[0]

    def fit(model, theta0):
        opts = newton_options(model.dims, options)
        inputs, bounds = _design_inputs(model, opts, lambda: model.y, theta0)
        inputs = dict(inputs, y=model.pattern.pad(model.y))
        Wpad = model.pad_responses(W)
        return _run("weights", model, n, lambda rows: [Wpad], (inputs, bounds),
                    theta0, batch_size, progress, opts, devices)

    return _in_fit_parametrisation(model, theta0, n, fit)


def fit_simulated(model, params: SimulationParameters, n: int, seed: int = 0, theta0=None, *,
                  batch_size: int | None = None, progress: bool | None = None, options=None,
                  devices=None, start: int = 0, null=None) -> dict:
    """Draw ``n`` responses from ``params`` on the devices and fit ``model`` to each.

    Replicate i is the response ``simulate_model(model, params, n, seed, start)[i]``
    (:mod:`.draw`, replicate number ``start + i``); the responses never travel
    through the host. With ``null`` (a model with the same rows and random
    part, e.g. fewer fixed effects) it is fitted to the same draws too, for
    likelihood-ratio tests: its results carry the suffix ``_h0``. Returns
    the same dict as :func:`fit_batch`.
    """
    n = int(n)
    if n < 1:
        raise ValueError(f"n must be a positive number of replicates, got {n}.")
    opts = newton_options(model.dims, options)
    theta0 = _theta0_rows(model, theta0, n)
    inputs, bounds = _design_inputs(
        model, opts, lambda: simulate_model(model, params, 1, seed=seed, start=start)[0], theta0)
    sim = simulation_arrays(model, params)
    base = np.asarray(jax.random.PRNGKey(int(seed)))
    idx = np.arange(start, start + n, dtype=np.uint32)
    shared = (base, sim, inputs, bounds)
    if null is not None:
        shared = shared + (null.response_inputs(), bounds)
    return _run("simulate", model, n, lambda rows: [idx], shared, theta0, batch_size, progress, opts, devices,
                use_u=params.ranef is not None, null_dims=None if null is None else null.dims)
