"""What every policy class shares: a short name for reports, and a seeded generator."""

from __future__ import annotations

from typing import ClassVar

import numpy as np

from glia.sim import ClusterView

__all__ = ["Policy"]


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
