"""report.json / report.md / report.html and the plots, from a hand-made report and metrics.jsonl."""

from __future__ import annotations

import json
import struct

from training.evaluation.gate import check_gate
from training.evaluation.plots import plot_accuracy
from training.evaluation.report import write_report
from training.recipe import GateConfig

from .reports import make_report

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def png_size(path) -> tuple[int, int]:
    data = path.read_bytes()
    assert data[:8] == PNG_SIGNATURE and data[12:16] == b"IHDR", f"{path} is not a PNG"
    return struct.unpack(">II", data[16:24])


def test_report_files_tables_and_plots(tmp_path) -> None:
    report = make_report(q8=58.0)
    report["gate"] = check_gate(report, GateConfig(), "Q8_0").to_dict()
    run = tmp_path / "run"
    run.mkdir()
    (run / "metrics.jsonl").write_text("".join(
        json.dumps({"step": s, "loss": 2.0 / s} | ({"val_loss": 2.2 / s} if s % 2 == 0 else {})) + "\n"
        for s in range(1, 7)))
    out = tmp_path / "eval"
    paths = write_report(report, out, run / "metrics.jsonl")

    assert json.loads((out / "report.json").read_text()) == json.loads(json.dumps(report))
    for name in ("accuracy", "size_accuracy", "latency", "loss"):
        assert paths[f"plot_{name}"] == out / "plots" / f"{name}.png"
        width, height = png_size(paths[f"plot_{name}"])
        assert width >= 300 and height >= 200
    assert not [p for p in out.rglob("*") if p.name.endswith(".tmp")]  # atomic writes left nothing behind

    md = (out / "report.md").read_text()
    assert "| variant | SQL EX sample % | seen % | unseen % | defog EX % | idk refusal % | MC general % |" in md
    assert "| Q8_0 | 58.0 | 63.0 | 53.0 | - | 20.0 | 49.0 | 3.2 | 145.0 |" in md
    assert "| baseline | 40.0 | 40.0 | 0.0 | - | - | - | - | - |" in md
    assert "## Promotion gate: FAILED" in md and "a drop of 2.0 points (allowed 1.0)" in md
    assert "rejected by rule: {'columns_exist': 1}" in md
    assert "![Training loss](plots/loss.png)" in md

    html = (out / "report.html").read_text()
    assert html.count("src='data:image/png;base64,") == 4  # self-contained: every figure embedded
    assert "plots/" not in html
    assert "<td>Q8_0</td><td>58.0</td>" in html


def test_no_figure_without_data(tmp_path) -> None:
    report = {"variants": {"base": {"path": "x.gguf", "kind": "gguf"}}, "sql_records": {}}
    paths = write_report(report, tmp_path)
    assert set(paths) == {"json", "md", "html"}
    assert plot_accuracy(report, tmp_path / "a.png") is None and not (tmp_path / "a.png").exists()
    assert "| base | - | - | - | - | - | - | - | - |" in (tmp_path / "report.md").read_text()


def test_report_json_keeps_the_variant_order(tmp_path) -> None:
    report = make_report()
    write_report(report, tmp_path)
    assert list(json.loads((tmp_path / "report.json").read_text())["variants"]) == ["base", "adapted", "Q8_0", "Q4_K_M"]
