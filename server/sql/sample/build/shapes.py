"""Every question shape of the sample: shapes_basic.py's, then shapes_advanced.py's.

questions.py defines what a shape is and how one is filled; the two shape modules build on it,
and this module gathers them, so questions.py never has to import its own users.
"""

from __future__ import annotations

from server.sql.sample.build import shapes_advanced, shapes_basic
from server.sql.sample.build.questions import Shape


def all_shapes() -> list[Shape]:
    shapes = shapes_basic.SHAPES + shapes_advanced.SHAPES
    ids = [s.id for s in shapes]
    if len(ids) != len(set(ids)):
        raise ValueError("duplicate shape ids")
    return shapes
