"""What a study means: tables, the regions where training fails, a narrower space, figures, and why it blows up.

- ``show``: best and worst tables of the trials that learned, and the failed ones by kind
- ``regions``: failure rates per parameter bin and kind, 2-D maps, the fitted boundary in words, tested
  on another study (``--check``), as JSON (``--format json``); ``_binning`` cuts a parameter into rows,
  ``_boundary`` fits the one-parameter edges and the tree
- ``narrow``: a narrower space file around the best trials, away from the failure edge
- ``plots``: the PNG figures
- ``edge``: the learning-rate edge of a space predicted before any study runs
"""
