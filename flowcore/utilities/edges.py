"""Edge annotations: wrap a task argument to say how its edge behaves.

Annotations nest and merge their flags; on a conflict the inner one wins, as in
Prefect 1 (``unmapped(mapped(x))`` is mapped):

>>> unmapped([1, 2]).annotations, flatten(mapped(3)).annotations
({'mapped': False}, {'flattened': True, 'mapped': True})
>>> unmapped(mapped(3)).annotations
{'mapped': True}
"""

from __future__ import annotations

from typing import Any

__all__ = ["EdgeAnnotation", "flatten", "mapped", "unmapped"]


class EdgeAnnotation:
    """Base class: ``value`` plus the ``annotations`` it sets on its edge."""

    annotations: dict[str, bool] = {}
    value: Any

    def __init__(self, value: Any) -> None:
        self.annotations = dict(type(self).annotations)
        if isinstance(value, EdgeAnnotation):
            self.annotations.update(value.annotations)
            value = value.value
        self.value = value

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.value!r})"


class mapped(EdgeAnnotation):
    """Map over this argument even without ``.map``: ``t(x=mapped(xs), y=1)``."""

    annotations = {"mapped": True}


class unmapped(EdgeAnnotation):
    """Pass this argument whole to every mapped child."""

    annotations = {"mapped": False}


class flatten(EdgeAnnotation):
    """Flatten this upstream's result (a list of lists) one level before use."""

    annotations = {"flattened": True}
