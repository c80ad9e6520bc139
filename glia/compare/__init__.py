"""Comparing design methods: statistics over repeated design runs."""

from glia.compare._stats import bootstrap_ci, sims_to_reach

__all__ = ["bootstrap_ci", "sims_to_reach"]
