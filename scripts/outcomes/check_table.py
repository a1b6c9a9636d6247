"""The README's table of boundary checks: ``regions A --check B --format json`` for each pair.

python scripts/outcomes/check_table.py A1:B1 A2:B2 ...
"""

from __future__ import annotations

import contextlib
import io
import json
import sys

from hpsearch import cli


def main(pairs: list[str]) -> None:
    print(
        "| fitted on | checked on | edge (one parameter) | boundary | boundary: correct | accuracy "
        "| per outcome (correct of trials) | the edge alone |"
    )
    print("| --- | --- | --- | --- | ---: | ---: | --- | ---: |")
    for pair in pairs:
        a, b = pair.split(":")
        buf = io.StringIO()
        with contextlib.redirect_stdout(buf):
            assert cli.main(["regions", a, "--check", b, "--format", "json"]) == 0
        d = json.loads(buf.getvalue())
        c = d["check"]
        edge = f"{d['edge']['text']}" if d["edge"] else "none"
        kinds = ", ".join(f"{k} {v['correct']}/{v['trials']}" for k, v in c["kinds"].items())
        alone = f"{100 * c['edge']['accuracy']:.0f} %" if c["edge"] else "—"
        model = "tree" if d.get("boundary", "decision tree").startswith("decision tree") else "edge per category"
        print(
            f"| {d['study']} | {c['study']} | {edge} | {model} | {c['correct']} of {c['trials']} | "
            f"{100 * c['accuracy']:.0f} % | {kinds} | {alone} |"
        )


if __name__ == "__main__":
    main(sys.argv[1:])
