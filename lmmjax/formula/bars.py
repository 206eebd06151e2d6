"""Split an lme4 formula into its fixed part, offsets and random-effect bar terms.

The bars ``( expr | group )`` and ``( expr || group )`` and the ``offset(expr)``
terms are recognised here; every other expression (the response, the fixed
part and the left side of each bar) is translated from R to what formulaic
evaluates (:mod:`lmmjax.formula.rsyntax`) and checked by formulaic's parser.
"""
from __future__ import annotations

import re
from dataclasses import dataclass

import formulaic

from ..errors import ModelSpecError
from .rsyntax import translate, unknown_columns

_R_NAME = re.compile(r"[A-Za-z.][A-Za-z0-9._]*\Z")
_ANSI = re.compile(r"\x1b\[[0-9;]*m|[\u29da\u29db]")


@dataclass(frozen=True)
class RandomTerm:
    """One random-effect term after expansion of ``||`` and ``/``.

    Attributes
    ----------
    expr : str
        Right-hand side for formulaic giving the term's model matrix, e.g.
        ``"1 + Days"`` or ``"0 + Days"``.
    factors : tuple of str
        Data columns whose combinations define the grouping factor.
    source : str
        The bar as the user wrote it, for messages.
    variables : tuple of str
        Data columns ``expr`` uses (when parsed with the data's columns).
    """

    expr: str
    factors: tuple
    source: str
    variables: tuple = ()

    @property
    def group(self) -> str:
        """Grouping-factor name: ``g`` or ``a:b``."""
        return ":".join(self.factors)


@dataclass(frozen=True)
class ParsedFormula:
    """A formula split into response, fixed part, offsets and random terms.

    ``response``, ``fixed``, ``offsets`` and the terms' ``expr`` are in
    formulaic's syntax (translated from R); ``text`` is the formula as
    written; ``variables`` are the data columns it uses (when parsed with the
    data's columns).
    """

    response: str
    fixed: str
    random: tuple
    text: str
    offsets: tuple = ()
    variables: tuple = ()
    fixed_variables: tuple = ()  # columns of the fixed part and the offsets
    response_parts: tuple = ()  # cbind(successes, failures): the two translated expressions


def _split_top(text: str, sep: str) -> list[str]:
    """Split ``text`` at occurrences of ``sep`` outside parentheses."""
    parts, depth, start, i = [], 0, 0, 0
    while i < len(text):
        ch = text[i]
        if ch in "`'\"":
            end = text.find(ch, i + 1)
            if end < 0:
                raise ModelSpecError(f"Unclosed quote {ch} in formula part {text!r}.")
            i = end + 1
            continue
        if ch in "([{":
            depth += 1
        elif ch in ")]}":
            depth -= 1
            if depth < 0:
                raise ModelSpecError(f"Unbalanced parentheses in formula part {text!r}.")
        elif depth == 0 and text.startswith(sep, i):
            parts.append(text[start:i])
            i += len(sep)
            start = i
            continue
        i += 1
    if depth != 0:
        raise ModelSpecError(f"Unbalanced parentheses in formula part {text!r}.")
    parts.append(text[start:])
    return parts


def _bar_content(piece: str):
    """Return (lhs, group, double) if ``piece`` is a whole ``( .. | .. )`` term."""
    piece = piece.strip()
    if not (piece.startswith("(") and piece.endswith(")")):
        return None
    inner = piece[1:-1]
    # The closing parenthesis must match the opening one.
    try:
        if len(_split_top(inner, ")")) != 1:
            return None
    except ModelSpecError:
        return None
    double = _split_top(inner, "||")
    if len(double) == 2:
        return double[0].strip(), double[1].strip(), True
    single = _split_top(inner, "|")
    if len(single) == 2:
        return single[0].strip(), single[1].strip(), False
    if len(single) > 2:
        raise ModelSpecError(f"Random-effect term {piece!r} has more than one '|'.")
    return None


def _expand_groups(group: str, source: str) -> list[tuple]:
    """``a/b/c`` -> [(a,), (a, b), (a, b, c)]; ``a:b`` -> [(a, b)]."""
    levels = [p.strip() for p in _split_top(group, "/")]
    out, prefix = [], []
    for lev in levels:
        lev = lev.strip()
        if lev.startswith("(") and lev.endswith(")"):
            lev = lev[1:-1]
        names = tuple(n.strip() for n in _split_top(lev, ":"))
        ok = all(_R_NAME.match(n) or (len(n) > 2 and n[0] == n[-1] == "`") for n in names)
        if not names or not ok:
            raise ModelSpecError(
                f"Grouping factor {group!r} in {source!r} must be data columns "
                "joined by ':' or '/' (write names with spaces or symbols in backticks, "
                "e.g. (1 | `subject id`))."
            )
        prefix = prefix + [n.strip("`") for n in names]
        out.append(tuple(prefix))
    return out


def plain_message(exc: Exception) -> str:
    """The first line of a formulaic error, without colour codes and markers."""
    return _ANSI.sub("", str(exc)).split("\n\n")[0].strip()


def _formulaic_terms(expr: str, text: str) -> list[str]:
    """Terms of one translated formula part; formulaic's syntax errors as ModelSpecError."""
    try:
        formula = formulaic.Formula(expr)
    except Exception as exc:  # FormulaSyntaxError, FormulaParsingError, ...
        raise ModelSpecError(f"Cannot read the formula {text!r}: {plain_message(exc)}") from None
    terms = formula.rhs if hasattr(formula, "rhs") else formula
    return [str(t) for t in terms]


def _split_double_bar(lhs: str, source: str, text: str) -> list[str]:
    """``x + z || g``: intercept alone, then each other term without intercept."""
    names = _formulaic_terms(lhs, text)
    exprs = []
    if "1" in names:
        exprs.append("1")
    for name in names:
        if name != "1":
            exprs.append(f"0 + {name}")
    if not exprs:
        raise ModelSpecError(f"Random-effect term {source!r} has no columns.")
    return exprs


def _call_inner(text: str, name: str):
    """The argument text of a whole-string call ``name(...)`` (None when ``text`` is not one call)."""
    text = text.strip()
    if not (text.startswith(name + "(") and text.endswith(")")):
        return None
    inner = text[len(name) + 1:-1]
    try:
        return inner if len(_split_top(inner, ")")) == 1 else None
    except ModelSpecError:
        return None


def _offset_expr(piece: str):
    """``offset(expr)`` -> ``expr`` (None for any other term)."""
    inner = _call_inner(piece, "offset")
    if inner is None:
        return None
    if not inner.strip():
        raise ModelSpecError("offset() needs an expression, e.g. offset(log(exposure)).")
    return inner.strip()


def _cbind_args(lhs: str):
    """``cbind(a, b)`` -> ``["a", "b"]`` (None for any other response)."""
    inner = _call_inner(lhs, "cbind")
    if inner is None:
        return None
    args = [a.strip() for a in _split_top(inner, ",")]
    if len(args) != 2 or not all(args):
        raise ModelSpecError(
            f"The response {lhs!r} must be cbind(successes, failures) with two columns or "
            "expressions, e.g. cbind(incidence, size - incidence).")
    return args


def parse_formula(text: str, columns=None) -> ParsedFormula:
    """Split an lme4 formula into response, fixed part, offsets and random terms.

    Parameters
    ----------
    text : str
        A formula such as ``"Reaction ~ Days + (Days | Subject)"``.
    columns : iterable of str, optional
        The data's columns. With them, names are checked against the data
        (which takes precedence over function names) and ``variables`` lists
        the columns used.

    Returns
    -------
    ParsedFormula

    Examples
    --------
    >>> p = parse_formula("y ~ x + (1 | a/b)")
    >>> [t.group for t in p.random]
    ['a', 'a:b']
    """
    if not isinstance(text, str):
        raise ModelSpecError("The formula must be a string such as 'y ~ x + (1 | g)'.")
    sides = _split_top(text, "~")
    if len(sides) != 2 or not sides[0].strip():
        raise ModelSpecError(f"Formula {text!r} needs a response: 'y ~ terms'.")
    used, fixed_used = [], []

    def tr(expr: str, source: str, into=None) -> str:
        out = translate(expr, columns, source)
        used.extend(out.columns)
        if into is not None:
            into.extend(out.columns)
        return out.text

    lhs, rhs = sides[0].strip(), sides[1].strip()
    cbind = _cbind_args(lhs)
    response_parts = tuple(tr(a, lhs) for a in cbind) if cbind else ()
    response = lhs if cbind else tr(lhs, lhs)
    fixed_parts, random, offsets = [], [], []
    for piece in _split_top(rhs, "+"):
        bar = _bar_content(piece)
        if bar is None:
            offset = _offset_expr(piece)
            if offset is not None:
                offsets.append(tr(offset, piece.strip(), fixed_used))
            elif piece.strip():
                fixed_parts.append(piece.strip())
            continue
        lhs, group, double = bar
        source = piece.strip()
        if not lhs:
            raise ModelSpecError(f"Random-effect term {source!r} has nothing left of '|'.")
        groups = _expand_groups(group, source)
        lhs_used = []
        lhs = tr(lhs, source, lhs_used)
        exprs = _split_double_bar(lhs, source, text) if double else [lhs]
        missing = [f for f in groups[-1] if columns is not None and f not in set(columns)]
        if missing:
            raise unknown_columns(missing, columns, source)
        for factors in groups:
            used.extend(factors)
            for expr in exprs:
                _formulaic_terms(expr, text)
                random.append(RandomTerm(expr=expr, factors=factors, source=source,
                                         variables=tuple(dict.fromkeys(lhs_used))))
    if not random:
        raise ModelSpecError(
            f"Formula {text!r} has no random-effect term such as '(1 | group)'; "
            "use an ordinary linear model for fixed effects only."
        )
    fixed = " + ".join(fixed_parts) if fixed_parts else "1"
    # '-1' alone is a removal that needs something to remove from.
    if fixed.replace(" ", "") in ("-1", "0"):
        fixed = "0"
    fixed = tr(fixed, text, fixed_used)
    _formulaic_terms(fixed, text)
    for part in response_parts or (response,):
        _formulaic_terms(part, text)
    return ParsedFormula(response=response, fixed=fixed, random=tuple(random), text=text,
                         offsets=tuple(offsets), variables=tuple(dict.fromkeys(used)),
                         fixed_variables=tuple(dict.fromkeys(fixed_used)),
                         response_parts=response_parts)


# The bar-syntax helpers other stages use (results/predict.py reads ``re_form`` with them).
split_top = _split_top
bar_content = _bar_content
expand_groups = _expand_groups
