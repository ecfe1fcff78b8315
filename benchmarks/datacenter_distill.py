"""Can a trained policy learn what the rollout planner (`datacenter_rollout.py`) does? One step of
policy iteration, distilled: the rollout's estimates become the training targets of the policy the
shipped config trains (`configs/datacenter_ppo.yaml`: per provider an MLP actor anchored on
`pooled_handoff`'s plan, logits = actor(obs) + 3 x plan one-hot).

Each of `--runs` runs records its own `--days` training days, fits, and is judged:
1. Record: on training days (run r: seeds RECORD_SEED + r x DAYS ..), every `--every`-th slot
   the rollout estimates, for every provider, the utility gain over the plan (all providers, 24
   slots, `--futures` redrawn futures) of each single change of its keep level, hand-off target and
   step level, and plays the best change if clear (the plan plays the other slots). The providers'
   observations and the gains go to one file per day in `--data`; days already there are reused,
   so a stopped run resumes and runs can share recordings.
2. Fit: each provider's actor regresses those gains (USD, clipped below at `--clip`; zero for the
   battery and power cap branches the rollout leaves alone) from its observation, by least
   squares. Where the recorded days never had a plan value (SD3.5 at 10 steps, say), copies of the
   rows with that plan and zero gains teach the actor to keep it. Scaled by 3 / tau, the fitted
   actor is the anchored policy that leaves the plan where a change is predicted to gain more than
   tau USD.
3. Judge: tau is chosen on the validation days (training split, seeds 500000..500004, as
   `evaluation.select: best` uses), then the policy plays the gap table's held-out days (seeds
   100..104) and the studies' (1000000..1000009) against `pooled_handoff`.

`--save DIR` writes run 0's policy folder: `aigcsched evaluate datacenter -p checkpoint:DIR --set
observe_lookahead=true --set lookahead_plan=pooled_handoff`, or `algorithm.init_policy` to fine-tune it.

Usage: python benchmarks/datacenter_distill.py [--data DIR] [--runs 5] [--days 6] [--workers 2]
       [--every 1] [--futures 8] [--epochs 400] [--taus 0.03 0.05 0.07 0.1 0.15 0.2] [--save DIR]
       (defaults: 15-18 minutes of recording and about a minute of fitting per run on 2 cores)
"""

from __future__ import annotations

import argparse
import copy
import json
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
import torch
from datacenter_rollout import candidate_gains, clear_best
from pydantic import ValidationError
from rich.console import Console
from rich.table import Table

from aigcsched.envs import DataCenterConfig, DataCenterVectorEnv
from aigcsched.envs.datacenter.battery_plan import BatteryPlanner
from aigcsched.envs.datacenter.config import ACTION_BRANCHES
from aigcsched.envs.datacenter.lookahead import branch_one_hot, pooled_handoff_plan
from aigcsched.platform.config import ConfigError, load_experiment, parse_overrides, validation_message
from aigcsched.platform.rllib_setup import agent_modules, module_spec
from aigcsched.platform.study import mean_ci
from aigcsched.platform.trained_policy import TrainedPolicy, save_policy

CONFIG = Path(__file__).resolve().parent.parent / "configs" / "datacenter_ppo.yaml"
BRANCHES = ("keep", "target", "level")  # what the rollout changes
VALIDATION, GAP_DAYS, STUDY_DAYS = (500_000, 5), (100, 5), (1_000_000, 10)


def record_day(seed: int, data: Path, args: argparse.Namespace) -> str:
    """Play the training day of `seed` with the rollout; store observations, plans and gains."""
    out = data / f"day_{seed}.npz"
    cfg = DataCenterConfig(**{**scenario(args), "day_split": "train"})
    branches = [ACTION_BRANCHES.index(b) for b in BRANCHES]
    rng, planner = np.random.default_rng([seed, 1]), BatteryPlanner(cfg)
    env = DataCenterVectorEnv(1, cfg)
    obs, _ = env.reset(seed=seed)
    nvec = cfg.action_nvec
    offset = np.cumsum((0, *nvec[:-1]))  # each branch's first logit
    rows: dict[str, list] = {"obs": [], "plan": [], "gain": []}
    start = time.time()
    for t in range(cfg.episode_slots):
        state = env.state()
        plan = pooled_handoff_plan(cfg, state, planner(state))[0]
        if t % args.every:  # consecutive slots are much alike: the plan plays between recorded ones
            obs = env.step(plan[None])[0]
            continue
        cand, mean, se = candidate_gains(env, t, plan, branches, rng, args)
        gain = np.full((cfg.n_asps, sum(nvec)), np.nan, dtype=np.float32)  # per logit; NaN: not tried
        for b in branches:
            gain[np.arange(cfg.n_asps), offset[b] + plan[:, b]] = 0.0
        for c in range(1, len(cand)):
            k, b = np.argwhere(cand[c] != plan)[0]
            gain[k, offset[b] + cand[c][k, b]] = mean[c]
        played = cand[clear_best(mean, se, args.margin)]
        rows["obs"].append(obs[0].copy())
        rows["plan"].append(plan)
        rows["gain"].append(gain)
        obs = env.step(played[None])[0]
    seconds = time.time() - start
    arrays = {k: np.asarray(v) for k, v in rows.items()}
    np.savez_compressed(out, day=env.days[0], seconds=seconds, scenario=json.dumps(scenario(args)), **arrays)
    return f"seed {seed}: day {env.days[0]} recorded in {seconds:.0f} s"


def scenario(args: argparse.Namespace) -> dict:
    """The scenario's fields: the embedded typical days (the traces the rollout figures use) and `--set`."""
    return {"data_dir": "embedded", **parse_overrides(args.set)}


def load_days(files: list[Path], args: argparse.Namespace) -> tuple[np.ndarray, np.ndarray, float]:
    """(N, K, obs_size) observations as the policy sees them, (N, K, sum(nvec)) gains, and the
    seconds the recording took on one core. Exits if a day was recorded on another scenario."""
    days = [np.load(f) for f in files]
    want = scenario(args)
    for f, d in zip(files, days, strict=True):
        if json.loads(str(d["scenario"])) != want:
            raise SystemExit(f"{f} was recorded on the scenario {d['scenario']}, not {want}: use another --data")
    nvec = DataCenterConfig(**want).action_nvec
    obs = np.concatenate([np.concatenate([d["obs"], branch_one_hot(d["plan"], nvec)], axis=-1) for d in days])
    return obs, np.concatenate([d["gain"] for d in days]), float(sum(d["seconds"] for d in days))


def fit_policy(exp, obs: np.ndarray, gain: np.ndarray, seed: int, args: argparse.Namespace) -> TrainedPolicy:
    """The shipped config's modules, each actor fitted to its provider's gains (USD) by least squares."""
    torch.manual_seed(seed)
    cfg, agents = exp.scenario(), agent_modules(exp)
    obs_space, act_space = exp.problem.spaces(cfg)
    modules = {}
    for k, (agent, module_id) in enumerate(agents.items()):
        spec = module_spec(exp)
        spec.observation_space, spec.action_space = obs_space, act_space
        module = spec.build()
        x, y = unseen_plans_kept(obs[:, k], gain[:, k], cfg.action_nvec, args.min_support)
        x, y = torch.tensor(x), torch.tensor(y)
        # a tried branch has a gain for every value; an untried one (NaN) is fitted as 0: the plan's logits
        y = torch.nan_to_num(y, nan=0.0).clamp(min=args.clip)
        opt = torch.optim.Adam(module.actor.parameters(), lr=args.lr)
        for _ in range(args.epochs):
            for j in torch.randperm(len(x)).split(256):
                loss = (module.actor(x[j]) - y[j]).pow(2).mean()
                opt.zero_grad()
                loss.backward()
                opt.step()
        module.eval()
        modules[module_id] = module
        assert agent == module_id  # per-provider modules, as the shipped config trains
    return TrainedPolicy(modules, agents, cfg, {"uri": "distilled rollout"})


def unseen_plans_kept(
    obs: np.ndarray, gain: np.ndarray, nvec: tuple[int, ...], min_support: int
) -> tuple[np.ndarray, np.ndarray]:
    """One provider's rows plus, for each plan value of a tried branch seen in fewer than
    `min_support` rows, copies of the rows with that value as the plan and a gain of 0 for every
    change of the branch: where the recorded days never had such a plan, the fitted policy keeps it
    (the rollout's gains there are unknown, and extrapolated ones mislead)."""
    rng = np.random.default_rng(0)
    prior = obs.shape[1] - sum(nvec)
    xs, ys = [obs], [gain]
    for o, n in zip(np.cumsum((0, *nvec[:-1])), nvec, strict=True):
        if np.isnan(gain[0, o : o + n]).all():
            continue  # a branch the rollout leaves alone
        counts = obs[:, prior + o : prior + o + n].sum(axis=0)
        for v in np.flatnonzero(counts < min_support):
            rows = rng.choice(len(obs), size=len(obs) // n, replace=False)
            x, y = obs[rows].copy(), gain[rows].copy()
            x[:, prior + o : prior + o + n] = np.eye(n, dtype=np.float32)[v]
            y[:, o : o + n] = 0.0
            xs.append(x)
            ys.append(y)
    return np.concatenate(xs), np.concatenate(ys)


def with_threshold(policy: TrainedPolicy, tau: float, anchor: float) -> TrainedPolicy:
    """The policy whose logits are anchor x plan + (anchor / tau) x predicted gain: it changes the
    plan where a change is predicted to gain more than tau USD."""
    modules = copy.deepcopy(policy.modules)
    for module in modules.values():
        head = module.actor[-1]
        with torch.no_grad():
            head.weight *= anchor / tau
            head.bias *= anchor / tau
    return TrainedPolicy(modules, policy.agent_module, policy.cfg, {"uri": f"distilled rollout, tau {tau}"})


def utility(policy, exp, split: str, seeds: tuple[int, int]) -> float:
    cfg = exp.scenario().model_copy(update={"day_split": split})
    return exp.problem.evaluate(exp.problem.bind(policy), cfg, seeds[1], seeds[0])["utility"]


def record(seeds: range, args: argparse.Namespace, console: Console) -> None:
    """Record the days of `seeds` that `--data` lacks, `--workers` at once."""
    args.data.mkdir(parents=True, exist_ok=True)
    todo = [s for s in seeds if not (args.data / f"day_{s}.npz").exists()]
    console.print(f"{len(seeds) - len(todo)} of {len(seeds)} days already recorded in {args.data}")
    with ProcessPoolExecutor(args.workers) as pool:
        for line in pool.map(record_day, todo, [args.data] * len(todo), [args] * len(todo)):
            console.print(line)


def judge_run(exp, run: int, args: argparse.Namespace) -> dict:
    """Run `run`: fit on its recorded days, tau chosen on the validation days, then the held-out days."""
    seeds = range(args.record_seed + run * args.days, args.record_seed + (run + 1) * args.days)
    obs, gain, seconds = load_days([args.data / f"day_{s}.npz" for s in seeds], args)
    start = time.time()
    fitted = fit_policy(exp, obs, gain, run, args)
    scored = []
    for tau in args.taus:
        policy = with_threshold(fitted, tau, exp.algorithm.anchor_scale)
        scored.append((utility(policy, exp, "train", VALIDATION), tau, policy))
    valid, tau, policy = max(scored, key=lambda s: s[0])
    row = {"run": run, "record_s": seconds / args.workers, "fit_s": time.time() - start, "tau": tau}
    row |= {"validation": valid, "gap": utility(policy, exp, "heldout", GAP_DAYS)}
    row |= {"study": utility(policy, exp, "heldout", STUDY_DAYS), "policy": policy}
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=Path("outputs/distill"), help="folder of recorded days")
    parser.add_argument("--runs", type=int, default=5, help="runs, each on its own recorded days and fit seed")
    parser.add_argument("--days", type=int, default=6, help="training days recorded per run")
    parser.add_argument("--record-seed", type=int, default=0, help="run r records seeds RECORD_SEED + r x DAYS..")
    parser.add_argument("--workers", type=int, default=2, help="days recorded at once, one process each")
    parser.add_argument("--every", type=int, default=1, help="record every EVERY-th slot (the plan plays the others)")
    parser.add_argument("--futures", type=int, default=8, help="the rollout's redrawn futures per candidate")
    parser.add_argument("--horizon", type=int, default=24, help="the rollout's simulated slots per candidate")
    parser.add_argument("--margin", type=float, default=0.005, help="USD a change must gain for the rollout to play it")
    parser.add_argument(
        "--taus", type=float, nargs="+", default=[0.03, 0.05, 0.07, 0.1, 0.15, 0.2], help="thresholds, USD"
    )
    parser.add_argument("--clip", type=float, default=-0.1, help="gains below this (USD) are fitted as this")
    parser.add_argument("--epochs", type=int, default=400)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--min-support", type=int, default=100, help="recorded slots a plan value needs to be left")
    parser.add_argument("--set", nargs="*", default=[], metavar="KEY=VALUE", help="scenario fields (one --data each)")
    parser.add_argument("--save", type=Path, default=None, help="write run 0's policy folder here")
    args = parser.parse_args()
    if min(args.taus) <= 0 or args.every < 1 or args.futures < 2 or args.runs < 1 or args.days < 1:
        parser.error("needs --taus > 0, --every, --runs, --days >= 1 and --futures >= 2 (for a standard error)")
    try:
        DataCenterConfig(**scenario(args))
    except ConfigError as e:
        parser.error(str(e))
    except ValidationError as e:
        parser.error(validation_message(e))
    torch.set_num_threads(1)
    console = Console(width=140)
    record(range(args.record_seed, args.record_seed + args.runs * args.days), args, console)

    exp = load_experiment(CONFIG, {f"env.config.{k}": v for k, v in scenario(args).items()})
    heuristic = exp.problem.policy_makers()["pooled_handoff"](exp.scenario(), 0)
    base = {
        "validation": utility(heuristic, exp, "train", VALIDATION),
        "gap": utility(heuristic, exp, "heldout", GAP_DAYS),
        "study": utility(heuristic, exp, "heldout", STUDY_DAYS),
    }
    title = f"distilled rollout vs pooled_handoff, {args.days} recorded days per run (USD per day, all providers)"
    table = Table(title=title)
    columns = ("run", "record s", "fit s", "tau", "validation", "gap days", "x", "studies' days", "x")
    for col in columns:
        table.add_column(col, justify="right")
    table.add_row(
        "pooled_handoff", "", "", "", *(f"{base[n]:.2f}" for n in ("validation", "gap")), "", f"{base['study']:.2f}", ""
    )
    rows = []
    for run in range(args.runs):
        row = judge_run(exp, run, args)
        rows.append(row)
        table.add_row(
            str(run),
            f"{row['record_s']:.0f}",
            f"{row['fit_s']:.0f}",
            f"{row['tau']:g}",
            f"{row['validation']:.2f}",
            f"{row['gap']:.2f}",
            f"{row['gap'] / base['gap']:.4f}",
            f"{row['study']:.2f}",
            f"{row['study'] / base['study']:.4f}",
        )
        console.print(f"run {run}: gap days {row['gap']:.2f}, studies' days {row['study']:.2f}", style="dim")
        if run == 0 and args.save:
            save_policy(row["policy"], args.save)
            console.print(f"saved run 0's policy to {args.save}")
    cells = []
    for key in ("gap", "study"):
        values = [r[key] for r in rows]
        mean, half = mean_ci(values)
        cells += [f"{mean:.2f} +- {half:.2f}" if len(values) > 1 else f"{mean:.2f}", f"{mean / base[key]:.4f}"]
    table.add_row("mean (95% CI)", "", "", "", "", *cells)
    console.print(table)


if __name__ == "__main__":
    main()
