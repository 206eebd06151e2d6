"""Split an lme4 formula into its fixed part and its random-effect bar terms.

Only the bars ``( expr | group )`` and ``( expr || group )`` are recognised
here; every Wilkinson expression (the fixed part and the left side of each
bar) is handed to formulaic unchanged.
"""
from __future__ import annotations

from dataclasses import dataclass

import formulaic

from ..errors import ModelSpecError


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
    """

    expr: str
    factors: tuple
    source: str

    @property
    def group(self) -> str:
        """Grouping-factor name: ``g`` or ``a:b``."""
        return ":".join(self.factors)


@dataclass(frozen=True)
class ParsedFormula:
    """A formula split into response, fixed part and random terms."""

    response: str
    fixed: str
    random: tuple
    text: str


def _split_top(text: str, sep: str) -> list[str]:
    """Split ``text`` at occurrences of ``sep`` outside parentheses."""
    parts, depth, start, i = [], 0, 0, 0
    while i < len(text):
        ch = text[i]
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
        names = tuple(n.strip().strip("()").strip() for n in lev.split(":"))
        if not all(names) or not all(n.replace("_", "").replace(".", "").isalnum() for n in names):
            raise ModelSpecError(
                f"Grouping factor {group!r} in {source!r} must be data columns "
                "joined by ':' or '/'."
            )
        prefix = prefix + list(names)
        out.append(tuple(prefix))
    return out


def _split_double_bar(lhs: str, source: str) -> list[str]:
    """``x + z || g``: intercept alone, then each other term without intercept."""
    terms = formulaic.Formula(lhs).rhs if hasattr(formulaic.Formula(lhs), "rhs") else formulaic.Formula(lhs)
    names = [str(t) for t in terms]
    exprs = []
    if "1" in names:
        exprs.append("1")
    for name in names:
        if name != "1":
            exprs.append(f"0 + {name}")
    if not exprs:
        raise ModelSpecError(f"Random-effect term {source!r} has no columns.")
    return exprs


def parse_formula(text: str) -> ParsedFormula:
    """Split an lme4 formula into response, fixed part and random terms.

    Parameters
    ----------
    text : str
        A formula such as ``"Reaction ~ Days + (Days | Subject)"``.

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
    response, rhs = sides[0].strip(), sides[1].strip()
    fixed_parts, random = [], []
    for piece in _split_top(rhs, "+"):
        bar = _bar_content(piece)
        if bar is None:
            if piece.strip():
                fixed_parts.append(piece.strip())
            continue
        lhs, group, double = bar
        source = piece.strip()
        if not lhs:
            raise ModelSpecError(f"Random-effect term {source!r} has nothing left of '|'.")
        groups = _expand_groups(group, source)
        exprs = _split_double_bar(lhs, source) if double else [lhs]
        for factors in groups:
            for expr in exprs:
                random.append(RandomTerm(expr=expr, factors=factors, source=source))
    if not random:
        raise ModelSpecError(
            f"Formula {text!r} has no random-effect term such as '(1 | group)'; "
            "use an ordinary linear model for fixed effects only."
        )
    fixed = " + ".join(fixed_parts) if fixed_parts else "1"
    # '-1' alone is a removal that needs something to remove from.
    if fixed.replace(" ", "") in ("-1", "0"):
        fixed = "0"
    return ParsedFormula(response=response, fixed=fixed, random=tuple(random), text=text)
