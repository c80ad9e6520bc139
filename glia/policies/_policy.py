"""What every policy class shares: a short name for reports, and a seeded generator."""

from __future__ import annotations

from typing import ClassVar, TypeVar, cast

import numpy as np

from glia._errors import unknown_name
from glia.sim import ClusterView

__all__ = ["Policy", "resolve"]


class Policy:
    """Base of the design interfaces (:class:`Router`, :class:`ReplicaScheduler`,
    :class:`Autoscaler`)."""

    name: ClassVar[str] = ""
    """Short name used in reports; defaults to the class name."""

    rng: np.random.Generator

    def __init_subclass__(cls, **kwargs: object) -> None:
        super().__init_subclass__(**kwargs)
        if not cls.__dict__.get("name"):
            cls.name = cls.__name__

    def setup(self, cluster: ClusterView, rng: np.random.Generator) -> None:
        """Called once before the first request; override to size per-replica state (call
        ``super().setup`` to keep ``self.rng``)."""
        self.rng = rng


P = TypeVar("P", bound=Policy)


def resolve(kind: str, spec: str | P | type[P], base: type[P], catalogue: dict[str, type[P]]) -> P:
    """A ``base`` policy from a baseline name in ``catalogue``, a class or an instance
    (``kind`` names it in the error for an unknown name)."""
    if isinstance(spec, base):
        return spec
    if isinstance(spec, type) and issubclass(spec, base):
        return spec()
    name = cast(str, spec)  # what is left: a name
    try:
        return catalogue[name]()
    except KeyError:
        raise unknown_name(kind, name, catalogue) from None
