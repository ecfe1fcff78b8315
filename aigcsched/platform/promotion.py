"""After training: the held-out evaluation, registration, and the one rule for the `champion` alias.

The rule, for every problem: a new version becomes the champion only when its held-out score
beats the best baseline of its own evaluation (when the experiment has baselines) and the current
champion, evaluated again on the same episodes of the same scenario (when there is one). A
champion that does not fit the scenario (another problem, other shapes) cannot be compared and
stays. A version that is not promoted carries the reason in its `promotion` tag;
`aigcsched models promote` is the manual override.
"""

from __future__ import annotations

import json
import tempfile
from typing import Any

import mlflow
from rich.console import Console

from aigcsched.platform import registry
from aigcsched.platform.config import ConfigError, ExperimentConfig
from aigcsched.platform.policies import resolve_policy
from aigcsched.platform.reports import results_markdown
from aigcsched.platform.trained_policy import TrainedPolicy, save_policy


def held_out_results(exp: ExperimentConfig, trained: TrainedPolicy | None = None) -> dict[str, dict[str, float]]:
    """Means over the experiment's held-out episodes of its baselines and, when given, of the
    trained policy (named "trained")."""
    problem, cfg, ev = exp.problem, exp.evaluation_scenario(), exp.evaluation
    policies = {b: resolve_policy(b, cfg, seed=ev.seed) for b in ev.baselines}
    if trained is not None:
        policies = {"trained": problem.bind(trained)} | policies
    return {name: problem.evaluate(p, cfg, ev.episodes, ev.seed) for name, p in policies.items()}


def best_baseline(exp: ExperimentConfig, results: dict[str, dict[str, float]]) -> tuple[str, float] | None:
    """The best baseline and the trained policy's gain over it, relative to its magnitude (> 0: better)."""
    if not exp.evaluation.baselines:
        return None
    score = exp.problem.score
    best = max(exp.evaluation.baselines, key=lambda b: score.sign * results[b][score.metric])
    reference = results[best][score.metric]
    return best, score.sign * (results["trained"][score.metric] - reference) / abs(reference)


def evaluate_and_register(policy: TrainedPolicy, exp: ExperimentConfig, console: Console) -> dict[str, Any]:
    """Held-out evaluation of the trained policy against the baselines, logged to the active run;
    then registration and maybe promotion. Returns results, version, promoted, reason."""
    problem, ev = exp.problem, exp.evaluation
    metric = problem.score.metric
    results = held_out_results(exp, policy)
    metrics = {f"eval.{p}.{m}": v for p, r in results.items() for m, v in r.items()}
    versus = best_baseline(exp, results)
    if versus is not None:
        best, gain = versus
        metrics["eval.gain_vs_best_baseline"] = gain
        mlflow.set_tag("aigcsched.best_baseline", best)
        console.print(
            f"held-out: trained {metric} {results['trained'][metric]:,.3f}, best heuristic ({best}) "
            f"{results[best][metric]:,.3f}: {gain:+.1%}"
        )
    mlflow.log_metrics(metrics)
    mlflow.log_text(json.dumps(results, indent=2), "evaluation.json")
    caption = f"{ev.episodes} held-out episodes (seeds {ev.seed}..{ev.seed + ev.episodes - 1})"
    note = problem.scenario_note(exp.evaluation_scenario())
    caption += f"; {note}" if note else ""
    mlflow.log_text(
        results_markdown(results, problem.columns, f"{problem.table_title.capitalize()}, {caption}."), "evaluation.md"
    )
    outcome = {"results": results, "version": None, "promoted": False, "reason": ""}
    if not exp.tracking.register_model:
        return outcome
    name = exp.tracking.model_name
    with tempfile.TemporaryDirectory() as tmp:
        save_policy(policy, tmp)
        info = registry.log_policy_model(tmp, policy.cfg, name)
    version = str(info.registered_model_version)
    score = results["trained"][metric]
    client = mlflow.MlflowClient()
    for key, value in {
        registry.PROBLEM_TAG: problem.name,
        registry.METRIC_TAG: metric,
        registry.SCORE_TAG: f"{score:.4f}",
        registry.SEEDS_TAG: f"{ev.seed}+{ev.episodes}",
    }.items():
        client.set_model_version_tag(name, version, key, value)
    baseline = None if versus is None else (versus[0], results[versus[0]][metric])
    promoted, reason = maybe_promote(name, version, score, exp, baseline)
    if not promoted:
        client.set_model_version_tag(name, version, registry.PROMOTION_TAG, reason)
    mlflow.set_tag("aigcsched.model_version", version)
    console.print(f"registered {name} version {version}; {reason}")
    return {**outcome, "version": version, "promoted": promoted, "reason": reason}


def maybe_promote(
    name: str, version: str, score: float, exp: ExperimentConfig, baseline: tuple[str, float] | None = None
) -> tuple[bool, str]:
    """Move `champion` to `version` when its held-out `score` beats `baseline` (the best baseline's
    name and score on the same episodes, if any) and the champion's (see the module doc)."""
    problem, ev, metric = exp.problem, exp.evaluation, exp.problem.score.metric
    if baseline is not None and not problem.score.better(score, baseline[1]):
        best, reference = baseline
        return False, f"not promoted: {metric} {score:.3f} does not beat the best baseline ({best}) {reference:.3f}"
    current = registry.champion_version(name)
    if current is None:
        registry.promote(name, version)
        return True, f"promoted to {registry.CHAMPION} (there was none)"
    stays = f"{registry.CHAMPION} stays at version {current.version}"
    try:
        champion = registry.load_policy(f"models:/{name}/{current.version}")
        champion.check_fits(exp.scenario())
    except ConfigError as e:
        return False, f"{stays}: cannot compare ({e})"
    cfg = exp.evaluation_scenario()
    old = problem.evaluate(problem.bind(champion), cfg, ev.episodes, ev.seed)[metric]
    if problem.score.better(score, old):
        registry.promote(name, version)
        return True, f"promoted to {registry.CHAMPION}: {metric} {score:.3f} vs {old:.3f} (v{current.version})"
    return False, f"{stays}: {metric} {score:.3f} vs its {old:.3f}"
