"""Old import path of :mod:`slimbert.train.label`, kept so code written against it still runs."""

from slimbert.train.label import LabelOptions, label_corpus

__all__ = ["LabelOptions", "label_corpus"]
