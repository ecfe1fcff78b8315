"""Tables and plots of results (matplotlib, headless)."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

COLUMNS = (
    ("reward", "reward", 2),
    ("quality", "quality", 2),
    ("tardiness", "tardiness (s)", 3),
    ("late_fraction", "late fraction", 3),
)


def _markdown(results: dict[str, dict[str, float]], columns: tuple, heading: str) -> str:
    lines = [heading, "", "| policy | " + " | ".join(c[1] for c in columns) + " |", "|---|" + "---:|" * len(columns)]
    for name, m in results.items():
        lines.append(f"| {name} | " + " | ".join(f"{m[k]:.{d}f}" for k, _, d in columns) + " |")
    return "\n".join(lines) + "\n"


def eval_markdown(results: dict[str, dict[str, float]], caption: str) -> str:
    """A markdown table of per-request means per policy."""
    return _markdown(results, COLUMNS, f"Per-request means, {caption}.")


DATACENTER_COLUMNS = (
    ("utility", "utility (USD)", 1),
    ("energy_cost", "energy cost (USD)", 1),
    ("violation_rate", "violation rate", 4),
    ("renewable_share", "renewable share", 3),
    ("quality", "quality", 3),
    ("handed_over", "handed over", 3),
)


def datacenter_eval_markdown(results: dict[str, dict[str, float]], caption: str) -> str:
    """A markdown table of per-day totals of all providers per policy."""
    return _markdown(results, DATACENTER_COLUMNS, f"Per-day totals of all providers (means), {caption}.")


MEC_COLUMNS = (("mean_delay", "delay per task (s)", 3), ("mean_parts", "parts per task", 2), ("tasks", "tasks", 0))


def mec_eval_markdown(results: dict[str, dict[str, float]], caption: str) -> str:
    """A markdown table of per-task means per policy."""
    return _markdown(results, MEC_COLUMNS, f"Per-task means over all stations, {caption}.")


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
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path
