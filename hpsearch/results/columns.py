"""The columns of the result files: one place that says which hold what."""

from __future__ import annotations

from hpsearch.results.sharpness import COLUMNS as SHARPNESS_COLUMNS

CURVE_COLUMNS = ["train_loss", "train_accuracy", "val_loss", "val_accuracy"]
#: trials.csv columns that are not parameters (every other column is a parameter)
RESULT_COLUMNS = (
    "number",
    "state",
    "outcome",
    "prune_reason",
    "fail_reason",
    "value",
    "best_epoch",
    "hidden",
    *CURVE_COLUMNS,
    "epochs_run",
    "stopped_early",
    "test_accuracy",
    "div_epoch",
    "div_step",
    "div_where",
    *SHARPNESS_COLUMNS,
    "chance",
    "trial_seed",
    "worker",
    "retry_of",
    "retried_as",
    "seconds",
    "datetime_start",
)
INT_COLUMNS = {
    "number",
    "best_epoch",
    "div_epoch",
    "div_step",
    "epochs_run",
    "batch_size",
    "n_layers",
    "retried_as",
    "retry_of",
    "epochs",
    "stop_epoch",
    "sharpness_step",
    "stopped_early",
    "patience",
}
#: trials.csv columns that hold numbers (besides the numeric parameters meta.json names)
NUMERIC_COLUMNS = {
    "number",
    "value",
    "best_epoch",
    *CURVE_COLUMNS,
    "epochs_run",
    "stopped_early",
    "test_accuracy",
    "div_epoch",
    "chance",
    "div_step",
    "trial_seed",
    "retry_of",
    "retried_as",
    "seconds",
}
SHORT = {
    "val_accuracy": "val_acc",
    "val_loss": "val_loss",
    "batch_size": "batch",
    "normalizer": "norm",
    "test_accuracy": "test_acc",
    "weight_decay": "wd",
    "optimizer": "optim",
}
