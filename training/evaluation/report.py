"""Write an evaluation report: report.json, report.md and a self-contained report.html.

    paths = write_report(report, "var/eval/x", metrics_path="var/runs/x/metrics.jsonl")

The content is built once as a list of blocks (headings, paragraphs, tables, figures) and rendered
to Markdown (figures linked from plots/) and HTML (figures embedded as data: URIs, so the one file
can be mailed or attached to a ticket). Every file is written atomically (training/io.py): a
reader never sees half a report.
"""

from __future__ import annotations

import base64
import html
from pathlib import Path

from .report_data import HEADLINE, headline_mode, headline_rows

Block = tuple  # ("h1"|"h2"|"p", text) | ("table", headers, rows) | ("img", title, path)

FIGURE_TITLES = {
    "accuracy": "Accuracy per variant",
    "size_accuracy": "Size vs accuracy per quantization",
    "latency": "Text-to-SQL latency",
    "loss": "Training loss",
}


def _cell(value) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.1f}" if abs(value) >= 1 or value == 0 else f"{value:.3f}"
    return str(value)


def _gate_blocks(gate: dict) -> list[Block]:
    verdict = "PASSED" if gate["passed"] else "FAILED"
    blocks: list[Block] = [("h2", f"Promotion gate: {verdict}")]
    if gate.get("reasons"):
        blocks.append(("ul", gate["reasons"]))
    if gate.get("checks"):
        blocks.append(("p", "Checks:"))
        blocks.append(("ul", gate["checks"]))
    return blocks


def _sql_blocks(report: dict) -> list[Block]:
    headers = ["variant", "set", "mode", "n", "EX %", "EX⊇ %", "valid %", "rejected %", "refusal %",
               "rescues", "p50 ms", "p95 ms", "empty-gold EX % (n)"]
    rows, notes = [], []
    sources = [(name, v.get("sql", {})) for name, v in report.get("variants", {}).items()]
    sources += [("baseline", {s: {"baseline": x} for s, x in (report.get("baseline") or {}).get("sql", {}).items()})]
    for name, by_split in sources:
        for split, by_mode in by_split.items():
            for mode, s in by_mode.items():
                lat = s.get("latency_ms") or {}
                empty = s.get("empty_gold") or {}
                rows.append([name, split, mode, s["n"], s.get("ex_pct"), s.get("ex_subset_pct"), s.get("valid_pct"),
                             s.get("rejected_pct"), s.get("refusal_pct"), s["rescues"]["n"], lat.get("p50"),
                             lat.get("p95"), f"{_cell(empty.get('ex_pct'))} ({empty.get('n', 0)})"])
                parts = [f"{k} {_cell(c['ex_pct'])}% ({c['n']})" for k, c in s.get("by_category", {}).items()]
                if s.get("rejected_by_rule"):
                    parts.append(f"rejected by rule: {s['rejected_by_rule']}")
                if s.get("attempt_rejections_by_rule"):
                    parts.append(f"failed attempts by rule: {s['attempt_rejections_by_rule']}")
                if parts:
                    notes.append(f"{name} / {split} / {mode}: " + "; ".join(parts))
    if not rows:
        return []
    return [("h2", "Text-to-SQL"), ("table", headers, rows),
            ("p", "EX: execution accuracy on items whose gold result is not empty (those are counted apart: any "
                  "query selecting nothing matches them). EX⊇: extra predicted columns allowed. rejected: no "
                  "attempt passed validation. rescues: answered after a self-correction. refusal: status "
                  "unanswerable on unanswerable questions (higher is better)."),
            ("ul", notes)]


def _mc_blocks(report: dict) -> list[Block]:
    rows = []
    for name, v in report.get("variants", {}).items():
        for mc_set, r in v.get("mc", {}).items():
            acc, norm = r.get("acc"), r.get("acc_norm")
            rows.append([name, mc_set, r.get("n"), None if acc is None else 100 * acc,
                         None if norm is None else 100 * norm])
    if not rows:
        return []
    return [("h2", "Multiple choice"), ("table", ["variant", "set", "n", "acc %", "acc_norm %"], rows)]


def build_blocks(report: dict, figures: dict[str, Path]) -> list[Block]:
    meta = report.get("meta", {})
    blocks: list[Block] = [("h1", f"Evaluation {meta.get('name', '')}".strip())]
    blocks.append(("p", f"Started {meta.get('started', '?')}; SQL mode in the headline: {headline_mode(report)}; "
                        f"limits: SQL {meta.get('sql_limit') or 'all'} per set, MC {meta.get('mc_limit') or 'all'} "
                        f"per set."))
    columns = [k for k, _ in HEADLINE]
    rows = headline_rows(report)
    blocks += [("h2", "Headline"), ("table", ["variant"] + [t for _, t in HEADLINE],
                                    [[r["variant"]] + [r[k] for k in columns] for r in rows])]
    if report.get("gate"):
        blocks += _gate_blocks(report["gate"])
    blocks += _sql_blocks(report) + _mc_blocks(report)
    if figures:
        blocks.append(("h2", "Figures"))
        blocks += [("img", FIGURE_TITLES.get(name, name), path) for name, path in figures.items()]
    return blocks


def render_markdown(blocks: list[Block], folder: Path) -> str:
    out = []
    for block in blocks:
        kind = block[0]
        if kind == "h1":
            out.append(f"# {block[1]}\n")
        elif kind == "h2":
            out.append(f"## {block[1]}\n")
        elif kind == "p":
            out.append(block[1] + "\n")
        elif kind == "ul":
            out.append("".join(f"- {x}\n" for x in block[1]))
        elif kind == "table":
            headers, rows = block[1], block[2]
            lines = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
            lines += ["| " + " | ".join(_cell(c) for c in row) + " |" for row in rows]
            out.append("\n".join(lines) + "\n")
        elif kind == "img":
            out.append(f"![{block[1]}]({Path(block[2]).relative_to(folder).as_posix()})\n")
    return "\n".join(out)


_STYLE = ("body{font-family:system-ui,sans-serif;margin:2em auto;max-width:72em;color:#222}"
          "table{border-collapse:collapse;margin:1em 0}td,th{border:1px solid #ccc;padding:.25em .6em;"
          "text-align:right}td:first-child,th:first-child{text-align:left}th{background:#f3f3f3}"
          "figure{margin:1em 0}img{max-width:100%}")


def render_html(blocks: list[Block]) -> str:
    esc = html.escape
    out = [f"<!doctype html><html><head><meta charset='utf-8'><title>{esc(blocks[0][1])}</title>"
           f"<style>{_STYLE}</style></head><body>"]
    for block in blocks:
        kind = block[0]
        if kind in ("h1", "h2", "p"):
            out.append(f"<{kind}>{esc(block[1])}</{kind}>")
        elif kind == "ul":
            out.append("<ul>" + "".join(f"<li>{esc(str(x))}</li>" for x in block[1]) + "</ul>")
        elif kind == "table":
            head = "".join(f"<th>{esc(h)}</th>" for h in block[1])
            body = "".join("<tr>" + "".join(f"<td>{esc(_cell(c))}</td>" for c in row) + "</tr>" for row in block[2])
            out.append(f"<table><tr>{head}</tr>{body}</table>")
        elif kind == "img":
            data = base64.b64encode(Path(block[2]).read_bytes()).decode("ascii")
            out.append(f"<figure><img alt='{esc(block[1])}' src='data:image/png;base64,{data}'>"
                       f"<figcaption>{esc(block[1])}</figcaption></figure>")
    out.append("</body></html>")
    return "\n".join(out)


def write_report(report: dict, out_dir: str | Path, metrics_path: str | Path | None = None) -> dict[str, Path]:
    """report.json, report.md, report.html and plots/*.png under `out_dir`; returns their paths."""
    import json

    from training.io import write_text

    from .plots import draw_all

    out = Path(out_dir)
    figures = draw_all(report, out / "plots", Path(metrics_path) if metrics_path else None)
    blocks = build_blocks(report, figures)
    # Not io.write_json: its sorted keys would lose the variants' order (base, adapted, quants).
    paths = {"json": write_text(out / "report.json", json.dumps(report, indent=2, default=str) + "\n"),
             "md": write_text(out / "report.md", render_markdown(blocks, out)),
             "html": write_text(out / "report.html", render_html(blocks))}
    return paths | {f"plot_{k}": v for k, v in figures.items()}
