"""The paper's evaluation set for `edge` as PNG figures and a markdown report.

Figures (Feng et al., Sec. V): learning curve; 50 arrival instances; per-request quality and
tardiness distributions; inter-arrival sweep; number of strong servers. Every policy sees the
same seeded episodes.
"""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from aigcsched.algorithms.heuristics import Policy  # noqa: E402
from aigcsched.envs import EdgeConfig  # noqa: E402
from aigcsched.platform.problems.edge import EDGE, evaluate_policy  # noqa: E402
from aigcsched.platform.reports import plot_learning_curve, results_markdown  # noqa: E402

INTERARRIVALS = (1.0, 2.0, 5.0, 10.0, 15.0, 20.0)
STRONG_SERVERS = (2, 4, 6, 8)
SEED = 2_000_000  # disjoint from training (0..) and the training-time evaluation (1,000,000..)


def _policies(factories: dict, cfg: EdgeConfig) -> dict[str, Policy]:
    return {name: make(cfg) for name, make in factories.items()}


def reproduce_edge(
    factories: dict,
    cfg: EdgeConfig,
    out: Path,
    instances: int = 50,
    sweep_episodes: int = 5,
    history: dict | None = None,
    progress=lambda msg: None,
) -> Path:
    """Write figures and `report.md` into `out`; `factories` map policy names to cfg -> Policy."""
    out.mkdir(parents=True, exist_ok=True)
    sections = ["# edge: the paper's evaluation, reproduced", ""]
    if history:
        plot_learning_curve(history, out / "learning_curve.png")
        sections += ["## Learning curve", "", "![learning curve](learning_curve.png)", ""]

    progress(f"{instances} arrival instances")
    results = {
        n: evaluate_policy(p, cfg, instances, SEED, record_requests=True) for n, p in _policies(factories, cfg).items()
    }
    _plot_instances(results, out / "instances.png")
    _plot_distributions(results, out / "per_request.png")
    sections += [
        f"## {instances} arrival instances (seeds {SEED}..{SEED + instances - 1})",
        "",
        results_markdown(
            {n: r.means() for n, r in results.items()}, EDGE.columns, f"Per-request means over {instances} instances."
        ),
        "![instances](instances.png)",
        "",
        "## Per-request quality and tardiness",
        "",
        "![per request](per_request.png)",
        "",
    ]
    if "greedy" in results:
        g = results["greedy"].means()["quality"]
        sections += [
            "Mean quality relative to greedy: "
            + ", ".join(f"{n} {100 * (r.means()['quality'] / g - 1):+.1f}%" for n, r in results.items())
            + "",
            "",
        ]

    for title, key, values, fname in (
        ("Mean inter-arrival time (s)", "mean_interarrival_s", INTERARRIVALS, "interarrival.png"),
        ("Strong servers (of 10)", "n_strong", STRONG_SERVERS, "strong_servers.png"),
    ):
        progress(f"sweep over {key}")
        sweep = {}
        for v in values:
            c = cfg.model_copy(update={key: v})
            sweep[v] = {
                n: evaluate_policy(p, c, sweep_episodes, SEED).means() for n, p in _policies(factories, c).items()
            }
        _plot_sweep(sweep, title, out / fname)
        sections += [f"## {title}", "", _sweep_markdown(sweep, title), f"![{key}]({fname})", ""]
    report = out / "report.md"
    report.write_text("\n".join(sections))
    return report


def _plot_instances(results, path):
    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    for name, r in results.items():
        x = np.arange(1, len(r.quality) + 1)
        axes[0].plot(x, r.quality, marker=".", label=name)
        axes[1].plot(x, r.tardiness, marker=".", label=name)
    for ax, label in zip(axes, ("mean quality", "mean tardiness (s)"), strict=True):
        ax.set_xlabel("arrival instance")
        ax.set_ylabel(label)
        ax.grid(alpha=0.3)
    axes[0].legend()
    fig.suptitle("per-instance means")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _plot_distributions(results, path):
    """Empirical CDFs: one policy's point mass does not flatten the others' shapes."""
    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    for name, r in results.items():
        late = r.requests["tardiness"].ravel()
        axes[0].ecdf(r.requests["quality"].ravel(), label=name)
        axes[1].ecdf(late, label=f"{name} ({(late > 0).mean():.0%} late)")
    axes[0].set_xlabel("quality per request")
    axes[1].set_xlabel("tardiness per request (s)")
    axes[1].set_xscale("symlog", linthresh=0.1)
    for ax in axes:
        ax.set_ylabel("fraction of requests <= x")
        ax.legend(fontsize=8)
        ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _plot_sweep(sweep, title, path):
    xs = list(sweep)
    names = list(next(iter(sweep.values())))
    fig, axes = plt.subplots(1, 3, figsize=(13, 3.8))
    for ax, metric in zip(axes, ("reward", "quality", "tardiness"), strict=True):
        for n in names:
            ax.plot(xs, [sweep[x][n][metric] for x in xs], marker="o", label=n)
        ax.set_xlabel(title)
        ax.set_ylabel(f"mean {metric}")
        if metric != "quality":  # random's heavy penalties would flatten the other curves
            ax.set_yscale("symlog", linthresh=1.0 if metric == "tardiness" else 10.0)
        ax.grid(alpha=0.3)
    axes[0].legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _sweep_markdown(sweep, title):
    names = list(next(iter(sweep.values())))
    lines = [
        f"| {title} | " + " | ".join(f"{n} reward / quality / tardiness" for n in names) + " |",
        "|---|" + "---|" * len(names),
    ]
    for x, row in sweep.items():
        lines.append(
            f"| {x:g} | "
            + " | ".join(f"{row[n]['reward']:.2f} / {row[n]['quality']:.2f} / {row[n]['tardiness']:.2f}" for n in names)
            + " |"
        )
    return "\n".join(lines) + "\n"
