"""The report's figures, drawn with matplotlib's Agg backend (no display) and written atomically.

Each function takes the report dict (report.py) and a PNG path, and returns the path, or None
when the report holds nothing to draw (no MC run, no latencies, one variant without a size...).
"""

from __future__ import annotations

from pathlib import Path

from .report_data import MC_GENERAL, headline_mode, mc_acc, sql_ex

DPI = 100  # 6.4 × 4 in figures → 640 × 400 px, small enough to embed in the HTML


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save(fig, path: Path) -> Path:
    from training.io import atomic_path

    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=DPI, bbox_inches="tight")
    _pyplot().close(fig)
    return Path(path)


def plot_accuracy(report: dict, path: Path) -> Path | None:
    """Grouped bars: per variant, each MC set's accuracy and each SQL set's execution accuracy (%)."""
    variants = list(report.get("variants", {}))
    series: dict[str, list[float | None]] = {}
    mc_sets = sorted({s for v in report.get("variants", {}).values() for s in v.get("mc", {})},
                     key=lambda s: (s != MC_GENERAL, s))
    for name in mc_sets:
        series[f"MC {name}"] = [mc_acc(report, v, name) for v in variants]
    for split in report.get("sql_splits", []):
        series[f"SQL EX {split}"] = [sql_ex(report, v, split) for v in variants]
    if report.get("baseline"):
        variants = variants + ["baseline"]
        for label, values in series.items():
            split = label[len("SQL EX "):] if label.startswith("SQL EX ") else None
            values.append(sql_ex(report, "baseline", split) if split else None)
    series = {k: v for k, v in series.items() if any(x is not None for x in v)}
    if not series:
        return None
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(max(6.4, 1.2 * len(variants) * max(1, len(series)) / 2), 4))
    width = 0.8 / len(series)
    for k, (label, values) in enumerate(series.items()):
        xs = [i + (k - (len(series) - 1) / 2) * width for i in range(len(variants))]
        bars = ax.bar(xs, [v if v is not None else 0 for v in values], width, label=label)
        for bar, v in zip(bars, values):
            if v is not None:
                ax.annotate(f"{v:.0f}", (bar.get_x() + bar.get_width() / 2, bar.get_height()),
                            ha="center", va="bottom", fontsize=7)
    ax.set_xticks(range(len(variants)), variants)
    ax.set_ylabel("accuracy (%)")
    ax.set_ylim(0, 105)
    ax.set_title("Accuracy per variant")
    ax.legend(fontsize=8)
    ax.grid(axis="y", alpha=0.3)
    return _save(fig, path)


def plot_size_accuracy(report: dict, path: Path) -> Path | None:
    """Size on disk (MB) against accuracy (%): what each quantization costs and saves."""
    split = (report.get("sql_splits") or [None])[0]
    points = {"SQL EX " + str(split): [], "MC " + MC_GENERAL: []}
    for name, v in report.get("variants", {}).items():
        size = v.get("size_mb")
        if size is None:
            continue
        for label, value in (("SQL EX " + str(split), sql_ex(report, name, split) if split else None),
                             ("MC " + MC_GENERAL, mc_acc(report, name, MC_GENERAL))):
            if value is not None:
                points[label].append((size, value, name))
    points = {k: v for k, v in points.items() if v}
    if not points:
        return None
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6.4, 4))
    for (label, pts), marker in zip(points.items(), ("o", "s")):
        ax.scatter([p[0] for p in pts], [p[1] for p in pts], marker=marker, label=label)
        for size, value, name in pts:
            ax.annotate(name, (size, value), textcoords="offset points", xytext=(4, 4), fontsize=8)
    ax.set_xlabel("size on disk (MB)")
    ax.set_ylabel("accuracy (%)")
    ax.set_title("Size vs accuracy per quantization")
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    return _save(fig, path)


def plot_latency(report: dict, path: Path) -> Path | None:
    """Box plot of one request's /v1/sql latency (s) per variant, headline set and mode."""
    mode = headline_mode(report)
    data, labels = [], []
    for name, by_split in report.get("sql_records", {}).items():
        if name == "baseline":
            continue  # in-process and sub-millisecond: not comparable with a served request
        latencies = [r["latency_ms"] / 1000 for split in by_split.values() for r in split.get(mode, [])]
        if latencies:
            data.append(latencies)
            labels.append(name)
    if not data:
        return None
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6.4, 4))
    ax.boxplot(data, showmeans=True)
    ax.set_xticks(range(1, len(labels) + 1), labels)
    ax.set_ylabel("latency per question (s)")
    ax.set_title(f"Text-to-SQL latency ({mode}, one request at a time)")
    ax.grid(axis="y", alpha=0.3)
    return _save(fig, path)


def plot_loss(metrics_path: Path, path: Path) -> Path | None:
    """The training run's loss curve (train and validation) from its metrics.jsonl."""
    if not Path(metrics_path).exists():
        return None
    from training.train import plot_losses  # the same figure `hearth train` draws

    plot_losses(Path(metrics_path), Path(path))
    return Path(path)


def draw_all(report: dict, folder: Path, metrics_path: Path | None = None) -> dict[str, Path]:
    """Every figure there is data for, as {name: path} under `folder`."""
    folder = Path(folder)
    figures = {
        "accuracy": plot_accuracy(report, folder / "accuracy.png"),
        "size_accuracy": plot_size_accuracy(report, folder / "size_accuracy.png"),
        "latency": plot_latency(report, folder / "latency.png"),
        "loss": plot_loss(metrics_path, folder / "loss.png") if metrics_path else None,
    }
    return {k: v for k, v in figures.items() if v is not None}
