"""Old import path of :mod:`slimbert.train.distill`, kept so code written against it still runs."""

from slimbert.train.distill import DistillOptions, distill

__all__ = ["DistillOptions", "distill"]
