"""A reader of GitHub-flavoured Markdown tables, as a renderer sees them.

It follows the GFM spec (section "Tables"): a row is split on pipes that are
not escaped with a backslash, *also inside code spans*; the leading and
trailing pipe are optional; cells are trimmed; ``\\|`` becomes ``|`` in the
cell's content; a body row with more cells than the header loses the excess
and one with fewer is padded with empty cells. A table ends at a blank line.
No dependency: the tests must not need a markdown package.
"""
import re

_DELIMITER_CELL = re.compile(r"^\s*:?-+:?\s*$")


def split_row(line: str) -> list:
    """The cells of one table row, unescaped, as GFM splits them."""
    text = line.strip()
    cells, current, i = [], "", 0
    while i < len(text):
        ch = text[i]
        if ch == "\\" and i + 1 < len(text):
            current += text[i:i + 2]
            i += 2
            continue
        if ch == "|":
            cells.append(current)
            current = ""
        else:
            current += ch
        i += 1
    cells.append(current)
    if text.startswith("|"):
        cells = cells[1:]
    if text.endswith("|") and not text.endswith("\\|"):
        cells = cells[:-1]
    return [c.strip().replace("\\|", "|") for c in cells]


def tables(markdown: str) -> list:
    """Every table in ``markdown`` as a list of rows (header first) of
    rendered cell strings, each row as wide as the header."""
    lines = markdown.splitlines()
    out, i = [], 0
    while i + 1 < len(lines):
        header, delim = lines[i], lines[i + 1]
        delim_cells = split_row(delim) if "|" in delim or "-" in delim else []
        head_cells = split_row(header) if "|" in header else []
        if head_cells and delim_cells and len(delim_cells) == len(head_cells) and all(
                _DELIMITER_CELL.match(c) for c in delim_cells):
            rows, i = [head_cells], i + 2
            while i < len(lines) and lines[i].strip():
                cells = split_row(lines[i])[:len(head_cells)]
                rows.append(cells + [""] * (len(head_cells) - len(cells)))
                i += 1
            out.append(rows)
        else:
            i += 1
    return out
