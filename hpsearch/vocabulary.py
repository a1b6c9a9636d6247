"""The study vocabulary: every word hpsearch's study layer, files and commands share.

One module owns each of these facts and every other module reads it from here:
the metrics and their direction, the samplers and pruners, the data-pipeline keys
of a configuration, the names of the attributes hpsearch stores with a study and
its trials, the result files, and the rule for a study's name.
"""

from __future__ import annotations

from hpsearch.mlp._train import METRICS as _CORE_METRICS

#: metric → the Optuna direction that ranks it (the MLP core says which metrics it computes)
METRICS: dict[str, str] = {m: ("maximize" if how == "max" else "minimize") for m, how in _CORE_METRICS.items()}
SAMPLERS = ("random", "tpe", "qmc")
# the largest seed: numpy's legacy RandomState and scikit-learn's random_state take 0 to 2**32 - 1
SEED_MAX = 2**32 - 1
PRUNERS = ("none", "median", "hyperband")

#: keys of a configuration that belong to the data pipeline rather than to the MLP, with defaults
DATA_DEFAULTS = {"normalizer": "none", "norm_axis": "global"}
DATA_KEYS = tuple(DATA_DEFAULTS)

#: why a trial was pruned by the trainer rather than by a pruner
DIVERGED_REASONS = ("overflow", "nan")

#: how a trial ended (trials.csv ``outcome``): it learned, or which way it failed (README, "Failure kinds")
OK = "ok"
OUTCOMES = (OK, "overflow", "nan", "collapsed", "dead", "stalled")
FAILURES = OUTCOMES[1:]
#: failures recorded as PRUNED with the kind as ``prune_reason``, besides the divergences
FAILED_REASONS = FAILURES
ATTR_OUTCOME = "outcome"  # trial user attribute


def direction(metric: str) -> str:
    """``"maximize"`` or ``"minimize"`` for a metric name."""
    return METRICS[metric]


# ---------------------------------------------------------------- what is stored with a study

#: study user attributes: what a worker on another machine needs to join, and the test scores
ATTR_SPACE = "space_toml"
ATTR_SOURCE = "space_source"
ATTR_FINGERPRINT = "fingerprint"
ATTR_SETTINGS = "settings"
ATTR_TEST = "test_scores"
ATTR_TARGET = "hpsearch:n_trials"  # how many configurations the study is to finish

#: trial system attributes
SLOT = "hpsearch:slot"  # which configuration of the study (0..N-1) the trial runs
RETRY_OF = "hpsearch:retry_of"  # the interrupted trial whose configuration this one runs again
INTERRUPTED = "hpsearch:interrupted"  # a FAIL that is no result: the configuration runs again
DUPLICATE_OF = "hpsearch:duplicate_of"  # a second trial of one slot, dropped before it ran
WORKER_LOCK = "hpsearch:worker"  # absolute path of the flock its worker holds
WORKER_ID = "hpsearch:worker_id"  # host:pid of that worker
OPTUNA_RETRY_ROOT = "failed_trial"  # Optuna's RetryHeartbeatStaleTrialCallback: the first trial of a retry chain

# ---------------------------------------------------------------- files of a results directory

JOURNAL_FILE = "optuna-journal.log"
TRIALS_FILE = "trials.csv"
CURVES_FILE = "curves.csv"
DIVERGENCE_FILE = "divergence.csv"
SUMMARY_FILE = "summary.md"
META_FILE = "meta.json"
SPACE_FILE = "space.toml"
RESULT_FILES = (TRIALS_FILE, CURVES_FILE, DIVERGENCE_FILE, SUMMARY_FILE)
MODELS_DIR = "models"  # saved models: the best-epoch weights of the top runs


def model_file(number: int) -> str:
    """The file name of trial ``number``'s saved model inside ``MODELS_DIR``."""
    return f"trial-{int(number)}.npz"


# ---------------------------------------------------------------- a study's name

_NAME_MAX = 100
_RESERVED = {"CON", "PRN", "AUX", "NUL", *(f"COM{i}" for i in range(1, 10)), *(f"LPT{i}" for i in range(1, 10))}
_NAME_RULE = "letters, digits, '.', '_' and '-', starting with a letter or digit, at most 100 characters"


def study_name_problem(name) -> str | None:
    """Why ``name`` cannot name a study, or None.

    A study's name is the name of its results directory (``OUT/NAME``) and of the
    study in the storage, so it is one plain path component on every system: no
    separator, no ``.`` or ``..``, no control character, nothing a shell or Windows
    reads specially.
    """
    if not isinstance(name, str) or not name.strip():
        return f"must be a non-empty string, got {clip(repr(name), 60)}"
    shown = clip(repr(name), 60)
    if len(name) > _NAME_MAX:
        return f"is {len(name)} characters long; at most {_NAME_MAX}, got {shown}"
    if not name[0].isalnum() or not all(ch.isalnum() or ch in "._-" for ch in name) or not name.isprintable():
        return f"names the results directory, so it takes {_NAME_RULE}; got {shown}"
    if name.split(".")[0].upper() in _RESERVED:
        return f"{name!r} is a reserved device name on Windows; choose another"
    return None


def safe_name(text: str) -> str:
    """A valid study name made from ``text`` (a file's stem): other characters become '-'."""
    cleaned = "".join(ch if ch.isalnum() or ch in "._-" else "-" for ch in text)[:_NAME_MAX].strip("-.")
    if not cleaned or not cleaned[0].isalnum():
        cleaned = "study" + (f"-{cleaned.lstrip('-._')}" if cleaned.strip("-._") else "")
    return cleaned if study_name_problem(cleaned) is None else "study"


def clip(text: str, limit: int = 200) -> str:
    """``text`` cut to ``limit`` characters for a message (a 5 MB value is not echoed whole)."""
    text = str(text)
    if len(text) <= limit:
        return text
    return f"{text[: limit - 30]}… ({len(text):,} characters)"
