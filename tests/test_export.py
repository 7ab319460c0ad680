"""The downloadable forms of a figure's numbers: CSV and JSON."""

from __future__ import annotations

import json

import numpy as np
import pytest

from explorer import export


def test_exports():
    csv_text = export.matrix_csv(np.array([[1.0, np.nan]]), ["a"], ["x", "y"], corner="q")
    assert csv_text.splitlines() == ["q,x,y", "a,1,"]
    with pytest.raises(ValueError):
        export.matrix_csv(np.zeros((2, 2)), ["a"], ["x", "y"])
    assert export.rows_csv(["a", "b"], [(1, "x,y")]).splitlines() == ["a,b", '1,"x,y"']
    data = json.loads(export.to_json({"m": np.array([[1.5, np.nan]]), "i": np.int64(3), "b": np.bool_(True)}))
    assert data == {"m": [[1.5, None]], "i": 3, "b": True}
