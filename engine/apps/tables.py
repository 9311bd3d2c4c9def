"""The one Markdown table writer of the command-line applications."""
from __future__ import annotations


def markdown_table(rows, columns, align=None) -> str:
    """rows: dicts (missing keys print empty); columns: the keys, in order, as headers;
    align: per column "l" or "r" (default: all left). Cells padded to line up."""
    align = align or "l" * len(columns)
    cells = [[str(r.get(c, "")) for c in columns] for r in rows]
    widths = [max([len(str(c))] + [len(row[i]) for row in cells]) for i, c in enumerate(columns)]

    def line(values):
        return "| " + " | ".join(v.rjust(w) if a == "r" else v.ljust(w)
                                 for v, w, a in zip(values, widths, align)) + " |"
    rule = "|" + "|".join("-" * (w + 1) + (":" if a == "r" else "-")
                          for w, a in zip(widths, align)) + "|"
    return "\n".join([line([str(c) for c in columns]), rule] + [line(row) for row in cells])
