"""What a study means: tables, the regions where training fails, a narrower space, figures, and why it blows up.

- ``show``: best, worst and diverged tables of a results directory
- ``regions``: failure rates per parameter bin, 2-D maps, the fitted boundary in words
- ``narrow``: a narrower space file around the best trials, away from the failure edge
- ``plots``: the PNG figures
- ``edge``: the learning-rate edge of a space predicted before any study runs
"""
