"""CSV tables in and out: the one writer (a header of columns, one line per row, written
atomically through :func:`nnviz.io.atomic_path`) and its reader."""
import csv
import numbers

from . import io


def _value(v, digits):
    if isinstance(v, numbers.Integral) and not isinstance(v, bool):
        return int(v)
    if isinstance(v, numbers.Real) and not isinstance(v, bool):
        return repr(float(v)) if digits is None else format(float(v), f".{digits}g")
    return v


def write_csv(path, columns, rows, digits=8):
    """``rows`` (dicts, read by ``columns``, or sequences in their order) under a header of
    ``columns``, atomically; numbers as Python numbers, floats with ``digits`` significant
    digits (None: every digit, as ``repr``). The one CSV writer of nnviz: evaluation tables,
    loss curves (``digits=None``). Returns ``path``."""
    with io.atomic_path(path) as tmp:
        with open(tmp, "w", newline="", encoding="utf-8") as f:
            w = csv.writer(f, lineterminator="\n")
            w.writerow(columns)
            for row in rows:
                values = [row[c] for c in columns] if isinstance(row, dict) else row
                w.writerow([_value(v, digits) for v in values])
    return path


def read_csv(path):
    """The rows of a CSV file with a header, as dicts of strings."""
    with open(path, newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))
