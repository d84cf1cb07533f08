"""The report's view of denoising trajectories (:mod:`maskdiff.trajectories` computes them): per case a
table with a row per step and a column per model or decoding rule, each cell the step's full
prediction (green when its answer is correct) over the text committed after the step. Kept apart
from the computation so the report notebook draws it without importing torch."""

from __future__ import annotations

import html
from pathlib import Path

from .io import read_json

MASK_GLYPH = "·"  # a still-masked position, in maskdiff.trajectories' texts (the document names its glyph)


def read_trajectories(path: str | Path) -> dict:
    return read_json(path)


_STYLE = """<style>
#denoising-trajectories table.trajectory {border-collapse: collapse; margin: 0.4em 0 1.2em 0; font-size: 12px}
#denoising-trajectories table.trajectory th, #denoising-trajectories table.trajectory td {
  border: 1px solid #ccc; padding: 2px 6px; text-align: left; vertical-align: top}
#denoising-trajectories td.correct {background: #c9efc9}
#denoising-trajectories td.wrong {background: #fff}
#denoising-trajectories td small {color: #666}
</style>"""


def _esc(text: str) -> str:
    return html.escape(text) if text else "&nbsp;"


def grid_html(views: dict) -> str:
    """One table: a row per denoising step, a column per view (model and decoding rule); each cell the
    step's full prediction (green when it is correct) over the text committed after the step."""
    names = list(views)
    head = "".join(
        f"<th>{_esc(n)}<br><small>final answer {'correct' if views[n]['final_correct'] else 'wrong'}"
        f"{'; Answer Backslide' if views[n]['backslide'] else ''}</small></th>" for n in names)
    rows = []
    for t in range(max(len(v["steps"]) for v in views.values())):
        cells = []
        for n in names:
            steps = views[n]["steps"]
            if t >= len(steps):
                cells.append("<td></td>")
                continue
            s = steps[t]
            cells.append(f'<td class="{"correct" if s["correct"] else "wrong"}"><code>{_esc(s["prediction"])}</code>'
                         f'<br><small><code>{_esc(s["committed"])}</code></small></td>')
        rows.append(f"<tr><th>{t + 1}</th>{''.join(cells)}</tr>")
    return f'<table class="trajectory"><tr><th>step</th>{head}</tr>{"".join(rows)}</table>'


def trajectories_html(doc: dict | None) -> str:
    """The report's section body: per task, each case's grid (base model and the trained models),
    then one problem with RCR next to LCR; an explicit sentence when there is nothing to show."""
    parts = [_STYLE, '<div id="denoising-trajectories">']
    if not doc or not any(t["cases"] for t in doc["tasks"].values()):
        parts.append("<p><em>No trajectory cases (evaluation.trajectory_cases is 0, or no trajectories file).</em></p></div>")
        return "".join(parts)
    glyph = doc.get("mask_glyph", MASK_GLYPH)
    parts.append(f"<p>Each cell: the step's full prediction x0-hat (green: its answer is correct), and below it "
                 f"the text committed after the step ({_esc(glyph)} = still masked; the text ends at the first "
                 f"end-of-sequence token). Decoding cell {_esc(doc['cell'])}; cases from the {_esc(doc['source'])} "
                 f"split.</p>")
    for task, t in doc["tasks"].items():
        parts.append(f"<h4>{_esc(task)}: {t['backslide_found']} Answer Backslide problems among the first "
                     f"{t['scanned']} validation problems (base model)</h4>")
        for case in t["cases"]:
            kind = "Answer Backslide" if case["backslide"] else "not an Answer Backslide case (too few found)"
            parts.append(f"<p><b>{_esc(case['id'])}</b> ({kind}), answer <code>{_esc(case['target'])}</code>; prompt "
                         f"<code>{_esc(case['prompt'][-160:])}</code></p>{grid_html(case['views'])}")
        if t.get("remasking"):
            r = t["remasking"]
            parts.append(f"<p><b>RCR next to LCR</b> on {_esc(r['id'])} (base model): RCR may remask a committed "
                         f"token whose running confidence is low, LCR never does.</p>{grid_html(r['views'])}")
    parts.append("</div>")
    return "".join(parts)
