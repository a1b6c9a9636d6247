"""hpsearch: hyperparameter search for from-scratch NumPy MLPs."""

__version__ = "0.1.0"
