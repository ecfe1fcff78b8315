"""Pooled hand-offs and service (`pooled_handoff`) against `planned_handoff`, on the default
scenario and on scenarios beyond it.

Both heuristics plan the battery the same way (`battery_plan`); `pooled_handoff` plans each slot's
hand-offs, step levels and power caps for the providers' GPUs as one pool
(`aigcsched/envs/datacenter/pooling.py`), where `planned_handoff` picks each site's steps by value
per job and hands off only into room left at those steps. Utility in USD per day (all providers),
higher is better, with the ratio pooled / planned measured in the same run, and the share of jobs
late. Scenarios: the default one on training days (seeds 0..N-1), on the optimality-gap table's
held-out days (from seed 100) and on the studies' (from seed 1000000); then, on the training days,
a busier day (1.3x the arrivals), a lighter one (0.7x), sites whose models are equally good (the
pool gains only from cheaper energy and spare GPUs), hand-offs that land at once, and a fourth
provider.

Usage: python benchmarks/datacenter_pooling.py [--train-days 20] [--held-out-days 5] [--study-days 10]
"""

from __future__ import annotations

import argparse

from rich.console import Console
from rich.table import Table

from aigcsched.algorithms.datacenter_heuristics import planned_handoff_policy, pooled_handoff_policy
from aigcsched.envs import DataCenterConfig
from aigcsched.platform.problems.datacenter import DATACENTER, evaluate_datacenter

DEFAULT = DataCenterConfig()
FOURTH_PROVIDER = {  # an SDXL site of 16 GPUs in NYISO
    "regions": (*DEFAULT.regions, "NYISO"),
    "models": (*DEFAULT.models, "SDXL"),
    "n_gpus": (*DEFAULT.n_gpus, 16),
    "sec_per_step": (*DEFAULT.sec_per_step, 0.11),
    "gpu_power_w": (*DEFAULT.gpu_power_w, 700.0),
    "gpu_idle_w": (*DEFAULT.gpu_idle_w, 75.0),
    "quality_max": (*DEFAULT.quality_max, 0.55),
    "quality_mid_steps": (*DEFAULT.quality_mid_steps, 10.0),
    "quality_scale_steps": (*DEFAULT.quality_scale_steps, 3.5),
    "base_rate": (*DEFAULT.base_rate, 900.0),
    "pv_kwp": (*DEFAULT.pv_kwp, 20.0),
    "wind_kw": (*DEFAULT.wind_kw, 15.0),
    "battery_kwh": (*DEFAULT.battery_kwh, 100.0),
    "battery_kw": (*DEFAULT.battery_kw, 50.0),
}
SCENARIOS = {
    "busier (1.3x arrivals)": {"base_rate": tuple(1.3 * r for r in DEFAULT.base_rate)},
    "lighter (0.7x arrivals)": {"base_rate": tuple(0.7 * r for r in DEFAULT.base_rate)},
    "equally good models": {"quality_max": (0.55, 0.55, 0.55)},
    "hand-offs land at once": {"handoff_delay_slots": 0},
    "a fourth provider": FOURTH_PROVIDER,
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--train-days", type=int, default=20, help="training days (seeds 0..N-1)")
    parser.add_argument("--held-out-days", type=int, default=5, help="held-out days from seed 100 (the gap table's)")
    parser.add_argument("--study-days", type=int, default=10, help="held-out days from seed 1000000 (the studies')")
    args = parser.parse_args()
    if min(args.train_days, args.held_out_days, args.study_days) < 1:
        parser.error("days must be >= 1")
    held = DATACENTER.evaluation_scenario(DEFAULT)
    runs = {
        f"default, {args.train_days} training days": (DEFAULT, args.train_days, 0),
        f"default, {args.held_out_days} held-out days from 100": (held, args.held_out_days, 100),
        f"default, {args.study_days} held-out days from 1000000": (held, args.study_days, 1_000_000),
        **{
            f"{name}, {args.train_days} training days": (DataCenterConfig(**fields), args.train_days, 0)
            for name, fields in SCENARIOS.items()
        },
    }
    table = Table(title="utility $/day, share of jobs late")
    for column in ("scenario", "planned_handoff", "pooled_handoff", "x planned", "late (planned / pooled)"):
        table.add_column(column, justify="left" if column == "scenario" else "right")
    console = Console(width=140)
    for name, (cfg, days, seed) in runs.items():
        planned = evaluate_datacenter(planned_handoff_policy(cfg), cfg, days, seed)
        pooled = evaluate_datacenter(pooled_handoff_policy(cfg), cfg, days, seed)
        table.add_row(
            name,
            f"{planned['utility']:.2f}",
            f"{pooled['utility']:.2f}",
            f"{pooled['utility'] / planned['utility']:.4f}",
            f"{planned['violation_rate']:.4f} / {pooled['violation_rate']:.4f}",
        )
        console.print(f"{name}: done", style="dim")
    console.print(table)


if __name__ == "__main__":
    main()
