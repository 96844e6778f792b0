"""Old import path of :mod:`slimbert.train.finetune`, kept so code written against it still runs."""

from slimbert.train.finetune import TrainOptions, train_classifier

__all__ = ["TrainOptions", "train_classifier"]
