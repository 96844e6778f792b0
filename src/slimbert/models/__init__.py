"""Models: loading torch classifiers and encoders by path or alias, weights, scorers,
baselines and the behavioural suite every model is checked on."""
