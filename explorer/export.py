"""Downloadable forms of the numbers behind a figure: CSV for tables and matrices, JSON for the rest.

Pure functions returning ``str``; a page hands them to a download button (lazily, so nothing is
serialised unless someone clicks).

May import: nothing.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Sequence
from typing import Any

import numpy as np


def matrix_csv(matrix: np.ndarray, row_labels: Sequence[str], col_labels: Sequence[str], corner: str = "") -> str:
    """A ``[R, C]`` matrix as CSV with a header row of column labels and a first column of row labels."""
    matrix = np.asarray(matrix)
    if matrix.ndim != 2 or matrix.shape != (len(row_labels), len(col_labels)):
        raise ValueError(
            f"A matrix of shape {matrix.shape} needs {matrix.shape[0] if matrix.ndim == 2 else '?'} row labels "
            f"and matching column labels; got {len(row_labels)} and {len(col_labels)}."
        )
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow([corner, *col_labels])
    for label, row in zip(row_labels, matrix, strict=True):
        writer.writerow([label, *(_cell(x) for x in row)])
    return out.getvalue()


def rows_csv(header: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """Rows of values as CSV under ``header``."""
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(list(header))
    for row in rows:
        if len(row) != len(header):
            raise ValueError(f"Every row needs {len(header)} values, got {len(row)}.")
        writer.writerow([_cell(x) for x in row])
    return out.getvalue()


def _cell(value: Any) -> Any:
    if isinstance(value, (float, np.floating)):
        return "" if np.isnan(value) else f"{float(value):.6g}"
    if isinstance(value, np.integer):
        return int(value)
    return value


def _jsonable(value: Any) -> Any:
    if isinstance(value, np.ndarray):
        return _jsonable(value.tolist())
    if isinstance(value, (np.floating, float)):
        value = float(value)
        return None if np.isnan(value) or np.isinf(value) else value
    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, np.bool_):
        return bool(value)
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    return value


def to_json(data: dict[str, Any]) -> str:
    """JSON with numpy arrays as nested lists and NaN/inf as null (strict JSON readers reject NaN)."""
    return json.dumps(_jsonable(data), ensure_ascii=False, allow_nan=False)


def attention_rows_csv(weights: np.ndarray, names: Sequence[str], labels: Sequence[str]) -> str:
    """Several heads' ``[n, T, T]`` attention in long form: one row per head, query and key."""
    length = len(labels)
    return rows_csv(
        ["head", "query_position", "query", "key_position", "key", "weight"],
        [
            (name, q, labels[q], k, labels[k], float(weights[i, q, k]))
            for i, name in enumerate(names)
            for q in range(length)
            for k in range(length)
        ],
    )
