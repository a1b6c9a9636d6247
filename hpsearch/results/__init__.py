"""A study's results: the files it writes, reading them back, and the tables people read.

- ``columns``: which columns the result files hold
- ``files``: study → frames → ``trials.csv``, ``curves.csv``, ``divergence.csv``, ``summary.md`` (atomic writes)
- ``reader``: a results directory → :class:`Results` (what every analysis command starts from)
- ``tables``: best / worst / diverged tables as text or Markdown
- ``sharpness``: lr·λ_max of diverged trials against their optimizer's stability limit (columns and stories)
"""

from hpsearch.results.columns import CURVE_COLUMNS, INT_COLUMNS, NUMERIC_COLUMNS, RESULT_COLUMNS, SHORT
from hpsearch.results.files import (
    atomic_write,
    curves_frame,
    divergence_frame,
    export,
    remove_stale_temporaries,
    trials_frame,
)
from hpsearch.results.reader import (
    Results,
    aliases,
    column,
    infer_scale,
    load_trials,
    open_results,
    read_meta,
    read_trials,
    typed,
    where,
)
from hpsearch.results.tables import (
    derive_outcome,
    display_columns,
    diverged_mask,
    failed_mask,
    kind_counts,
    kinds_text,
    ranked,
    summary_text,
    table,
)
from hpsearch.vocabulary import DIVERGED_REASONS, FAILURES, OUTCOMES

__all__ = [
    "CURVE_COLUMNS",
    "DIVERGED_REASONS",
    "FAILURES",
    "OUTCOMES",
    "derive_outcome",
    "failed_mask",
    "kind_counts",
    "kinds_text",
    "INT_COLUMNS",
    "NUMERIC_COLUMNS",
    "RESULT_COLUMNS",
    "SHORT",
    "Results",
    "aliases",
    "column",
    "infer_scale",
    "atomic_write",
    "curves_frame",
    "display_columns",
    "diverged_mask",
    "divergence_frame",
    "export",
    "load_trials",
    "open_results",
    "ranked",
    "read_meta",
    "read_trials",
    "typed",
    "remove_stale_temporaries",
    "summary_text",
    "table",
    "trials_frame",
    "where",
]
