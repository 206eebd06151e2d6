"""Translate one part of an lme4 (R) formula into what formulaic evaluates.

formulaic evaluates function calls as Python. R's meaning is kept:

* ``^`` inside a call (``I(x^2)``, ``log(x^2)``) is a power (``**``), never
  Python's XOR. Outside calls ``^`` is the formula operator
  (``(a + b)^2``: interactions up to order 2), as in R, and must be followed
  by a whole number.
* R names: ``as.numeric(x)`` → ``as_numeric(x)``, ``log(x, base)`` →
  ``r_log(x, base)``, ``TRUE``/``FALSE``, ``%%`` and ``%/%``.
* Data columns take precedence over function and contrast names: a column
  named ``Treatment`` is the column; a call ``log(...)`` whose name is also
  a column is written ``_lmm.log(...)``.
* Column names that are not Python names (``Days.sq``) are back-quoted
  inside calls; back-quoted names (`` `subject id` ``) are columns.
* Unknown functions and unknown names raise :class:`ModelSpecError` naming
  them.
"""
from __future__ import annotations

import keyword
import re
from dataclasses import dataclass

from ..errors import ModelSpecError
from .rfunctions import NAMESPACE_NAME, R_CALLS, known_function, known_value

_NUMBER = re.compile(r"(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?L?")
_NAME = re.compile(r"[A-Za-z_.][A-Za-z0-9_.]*")
_OPERATORS = ("%in%", "%/%", "%%", "**", "||", "&&", "==", "!=", "<=", ">=")
_PYTHON_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")
# formulaic names whose meaning differs from what their name says.
_REFUSED = {"exp10": "formulaic's exp10(x) computes x**10, not 10**x; write I(10^x) or I(x^10)."}


@dataclass
class Token:
    kind: str  # name, quoted (backticks), string, number, op
    text: str  # as written
    space: str  # whitespace before it
    out: str | None = None  # replacement text


@dataclass(frozen=True)
class Translated:
    """A translated formula part: ``text`` for formulaic, the data columns it uses."""

    text: str
    columns: tuple


def tokenize(text: str) -> list[Token]:
    """Split formula text into tokens, keeping the whitespace before each."""
    tokens, i, n = [], 0, len(text)
    while i < n:
        j = i
        while j < n and text[j].isspace():
            j += 1
        space, i = text[i:j], j
        if i >= n:
            break
        ch = text[i]
        if ch in "`'\"":
            end = i + 1
            while end < n and text[end] != ch:
                end += 2 if (text[end] == "\\" and ch != "`") else 1
            if end >= n:
                raise ModelSpecError(f"Unclosed quote {ch} in formula part {text!r}.")
            kind = "quoted" if ch == "`" else "string"
            tokens.append(Token(kind, text[i:end + 1], space))
            i = end + 1
            continue
        m = _NUMBER.match(text, i) if (ch.isdigit() or (ch == "." and text[i + 1:i + 2].isdigit())) else None
        if m:
            tokens.append(Token("number", m.group(0), space, out=m.group(0).rstrip("L")))
            i = m.end()
            continue
        m = _NAME.match(text, i)
        if m:
            tokens.append(Token("name", m.group(0), space))
            i = m.end()
            continue
        op = next((o for o in _OPERATORS if text.startswith(o, i)), ch)
        tokens.append(Token("op", op, space))
        i += len(op)
    return tokens


def _next_op(tokens: list, k: int) -> str | None:
    return tokens[k + 1].text if k + 1 < len(tokens) and tokens[k + 1].kind == "op" else None


def _prev(tokens: list, k: int) -> Token | None:
    return tokens[k - 1] if k > 0 else None


def _is_call(tokens: list, k: int) -> bool:
    return tokens[k].kind in ("name", "quoted") and _next_op(tokens, k) == "("


def _call_name(tok: Token, columns: set, source: str) -> str:
    """The Python spelling of a called function, checked to exist."""
    name = tok.text.strip("`")
    name = R_CALLS.get(name, name)
    if name == "offset":
        raise ModelSpecError(
            f"offset() in {source!r} must be a term of its own in the fixed part, "
            "e.g. 'y ~ x + offset(log(t)) + (1 | g)'.")
    if name in _REFUSED:
        raise ModelSpecError(
            f"Function {name!r} in {source!r} is not supported in formulas: {_REFUSED[name]}")
    root = name.split(".")[0]
    if name in columns or (root in columns and root in ("np", "numpy", "contr")):
        return f"{NAMESPACE_NAME}.{name}"  # the function, not the column of that name
    if "." in name and root in ("np", "numpy", "contr"):
        return name
    if "." in name and root in columns:
        return name  # a method of the column, e.g. x.clip(0)
    if not known_function(name):
        raise ModelSpecError(
            f"Function {tok.text.strip('`')!r} in {source!r} is not supported in formulas. "
            "Supported: arithmetic, I(), log, exp, sqrt, abs, sin, cos, tan, pi, factor, "
            "as.numeric, as.integer, scale, center, poly, C and numpy functions as np.<name>; "
            "or compute the column in the DataFrame first.")
    return name


def _check_formula_power(tokens: list, k: int, source: str) -> None:
    nxt = tokens[k + 1] if k + 1 < len(tokens) else None
    if nxt is None or nxt.kind != "number" or not nxt.out.isdigit() or int(nxt.out) < 1:
        raise ModelSpecError(
            f"In {source!r}, '^' outside a function means interactions up to a given order "
            "and must be followed by a whole number, as in '(a + b)^2'. For a power of a "
            "variable write I(x^2).")
    prev = tokens[k - 1] if k > 0 else None
    if prev is not None and prev.kind in ("name", "quoted"):
        name = prev.text.strip("`")
        raise ModelSpecError(
            f"In {source!r}, '{name}^{nxt.out}' is ambiguous: in an R formula it means '{name}' "
            f"alone (its interactions with itself), not a power. Write I({name}^{nxt.out}) "
            f"for the power or poly({name}, {nxt.out}) for orthogonal polynomials.")


def translate(expr: str, columns=None, source: str | None = None) -> Translated:
    """Translate one formula part from R to formulaic's Python evaluation.

    Parameters
    ----------
    expr : str
        A response, fixed part or left side of a bar, e.g. ``"age + I(age^2)"``.
    columns : iterable of str, optional
        The data's column names (they take precedence over function names).
        Without them every name that is not a function is taken for a column
        and nothing is checked against the data.
    source : str, optional
        Text quoted in messages (default ``expr``).

    Examples
    --------
    >>> translate("I(age^2) + log(conc)", ["age", "conc"]).text
    'I(age**2) + log(conc)'
    """
    source = expr if source is None else source
    check = columns is not None
    listed = list(columns or ())
    columns = set(listed)
    tokens = tokenize(expr)
    stack: list[tuple] = []  # (context "py"/"formula", index of the call name or None, index of "(")
    used: list[str] = []
    python_ops: set = set()

    def in_python() -> bool:
        return bool(stack) and stack[-1][0] == "py"

    for k, tok in enumerate(tokens):
        if tok.kind == "op":
            if tok.text in "([{":
                call = k > 0 and _is_call(tokens, k - 1)
                py = call or tok.text == "{" or in_python()
                stack.append(("py" if py else "formula", k - 1 if call else None, k))
            elif tok.text in ")]}":
                if not stack:
                    raise ModelSpecError(f"Unbalanced parentheses in {source!r}.")
                stack.pop()
            elif not in_python():
                if tok.text == "^":
                    _check_formula_power(tokens, k, source)
            else:
                python_ops.add((tok.text, stack[-1][2]))  # with the parenthesis it is in
                tok.out = {"^": "**", "%%": "%", "%/%": "//", "&&": "&", "||": "|", "!": "~"}.get(tok.text)
                call_tok = tokens[stack[-1][1]] if stack[-1][1] is not None else None
                if tok.text == "," and call_tok is not None and call_tok.out in ("log", f"{NAMESPACE_NAME}.log"):
                    call_tok.out = call_tok.out[:-3] + "r_log"  # R's log(x, base)
            continue
        if tok.kind in ("string", "number"):
            continue
        if _is_call(tokens, k):
            tok.out = _call_name(tok, columns, source)
            if tok.out == tok.text and "." in tok.text and tok.text.split(".")[0] in columns:
                used.append(tok.text.split(".")[0])
            continue
        name = tok.text[1:-1] if tok.kind == "quoted" else tok.text
        if name in columns or (not check and tok.kind == "quoted"):
            used.append(name)
            if in_python() and (not _PYTHON_NAME.match(name) or keyword.iskeyword(name)):
                tok.out = f"`{name}`"
            continue
        if not in_python():
            if name == ".":
                raise ModelSpecError(f"'.' (all other columns) in {source!r} is not supported; name the columns.")
            if check:
                raise unknown_columns([name], listed, source)
            used.append(name)
            continue
        prev = tokens[k - 1] if k > 0 else None
        if _next_op(tokens, k) == "=" and prev is not None and prev.text in ("(", ","):
            continue  # keyword argument name
        if name in ("TRUE", "FALSE", "T", "F"):
            tok.out = "True" if name in ("TRUE", "T") else "False"
        elif "." in name and name.split(".")[0] in columns:
            used.append(name.split(".")[0])  # an attribute of the column, e.g. x.values
        elif tok.kind == "quoted" or not known_value(name.split(".")[0]):
            if check:
                raise unknown_columns([name], listed, source)
            used.append(name)
    if stack:
        raise ModelSpecError(f"Unbalanced parentheses in {source!r}.")
    logical = {where for op, where in python_ops if op in ("&", "|", "&&", "||")}
    compared = {where for op, where in python_ops if op in ("<", ">", "<=", ">=", "==", "!=")}
    if logical & compared:  # in the same parentheses
        raise ModelSpecError(
            f"In {source!r}, put parentheses around each comparison combined with '&' or '|', "
            "e.g. I((x > 1) & (z < 2)); without them Python and R read the expression differently.")
    text = "".join(t.space + (t.out if t.out is not None else t.text) for t in tokens)
    return Translated(text=text.strip(), columns=tuple(dict.fromkeys(used)))


def unknown_columns(names: list, columns, source: str) -> ModelSpecError:
    """The error for names that are neither data columns nor functions."""
    return ModelSpecError(
        f"Column(s) {list(names)} used in {source!r} are not in the data "
        f"(available: {list(columns)}).")
