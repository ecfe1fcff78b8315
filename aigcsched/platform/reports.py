"""Tables and plots of results (matplotlib, headless)."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def results_markdown(results: dict[str, dict[str, float]], columns, heading: str) -> str:
    """A markdown table of results per policy; `columns` are the problem's (key, header, format)."""
    lines = [
        heading,
        "",
        "| policy | " + " | ".join(c.header for c in columns) + " |",
        "|---|" + "---:|" * len(columns),
    ]
    for name, m in results.items():
        lines.append(f"| {name} | " + " | ".join(format(m[c.key], c.fmt) for c in columns) + " |")
    return "\n".join(lines) + "\n"


def plot_learning_curve(
    history: dict[str, list],
    path: Path,
    references: dict[str, float] | None = None,
    ylabel: str = "per-request mean",
    title: str = "edge: learning curve (sampled requests)",
) -> Path | None:
    """Metric histories (MLflow's, keyed by name) against training iterations."""
    series = {k: v for k, v in history.items() if v}
    if not series:
        return None
    fig, ax = plt.subplots(figsize=(7, 4))
    for name, points in series.items():
        ax.plot(
            [p.step for p in points],
            [p.value for p in points],
            label=name.replace("request_", "per-request "),
        )
    for name, value in (references or {}).items():
        ax.axhline(value, linestyle="--", linewidth=1, color="grey")
        ax.annotate(name, (0, value), textcoords="offset points", xytext=(2, 2), fontsize=8, color="grey")
    ax.set_xlabel("training iteration")
    ax.set_ylabel(ylabel)
    return save_plot(fig, ax, title, path, legend_size=None)


def save_plot(fig, ax, title: str, path: Path, legend_size: float | None = 8) -> Path:
    """The platform's plots end alike: title, light grid, legend, written as PNG and closed."""
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=legend_size)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path
