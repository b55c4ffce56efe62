"""Text tables of the rows the measuring callbacks record (``LayerTimer``,
``GradientStats``): one dict per epoch and layer (or parameter), ready for a CSV
writer or ``pandas.DataFrame(rows)``, and shown as aligned text for a terminal."""

from __future__ import annotations


def text_table(header: list[str], body: list[list[str]], right=()) -> str:
    """Columns padded to their widest cell, two spaces apart, a rule under the header;
    the columns whose index is in ``right`` (numbers) aligned right."""
    widths = [max(len(row[k]) for row in [header, *body]) for k in range(len(header))]

    def line(row: list[str]) -> str:
        cells = [
            cell.rjust(width) if k in right else cell.ljust(width)
            for k, (cell, width) in enumerate(zip(row, widths, strict=True))
        ]
        return "  ".join(cells).rstrip()

    rule = "-" * len(line(header))
    return "\n".join([line(header), rule, *map(line, body)])


def chosen_epoch(rows: list[dict], epoch: int | None, owner: str) -> int:
    """``epoch``, or the last recorded one when None; a ValueError naming ``owner``
    when nothing, or not that epoch, was recorded."""
    recorded = sorted({row["epoch"] for row in rows})
    if not recorded:
        raise ValueError(f"{owner}: nothing recorded yet (pass the callback to fit)")
    if epoch is None:
        return rows[-1]["epoch"]
    if epoch not in recorded:
        raise ValueError(f"{owner}: epoch {epoch} was not recorded; got {recorded}")
    return epoch


def last_block(rows: list[dict], epoch: int) -> list[dict]:
    """The rows of the last time ``epoch`` was recorded (a callback given to two
    ``fit`` calls records epoch 0 twice): going back from its last row, the block
    ends before a layer (and parameter) shows up a second time."""
    block, seen = [], set()
    for row in reversed(rows):
        key = (row["layer"], row.get("param"))
        if block and (row["epoch"] != epoch or key in seen):
            break
        if row["epoch"] == epoch:
            block.append(row)
            seen.add(key)
    return block[::-1]
