"""The `edge` learner's cost per sample: the per-server scored module against the one it replaced.

(a) One PPO minibatch (default B=1024) through each module: forward_train, the PPO loss RLlib's
    PPOTorchLearner computes (logp ratio, clipped surrogate, KL to the sampling distribution with
    kl_coeff 0.2, entropy, value loss), backward; and the env runners' step at B=64 (forward, sample,
    logp). Same weights, same observations, interleaved repeats; medians of process CPU time (the
    machine is shared: wall times of other processes' load would dominate).
(b) Whole `algo.train()` iterations of configs/edge_ppo.yaml (with --set overrides), the same config
    with the reference module swapped in, alternated iteration by iteration in one process; env
    steps per wall second and per CPU second of this process (which samples and learns: no env
    runner processes in the project config), and RLlib's learner / sampling timers (smoothed).

The reference is today's module before the speed-up, copied below unchanged but for its name; it is
here for this comparison only.
Usage: python benchmarks/edge_learner_speed.py [--batch 1024] [--repeats 10] [--iterations 4]
       [--set algorithm.num_epochs=4 ...] [--threads N] [--skip-train]
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import torch
from ray.rllib.core.columns import Columns
from ray.rllib.core.distribution.torch.torch_distribution import TorchCategorical, TorchDeterministic
from ray.rllib.core.rl_module.apis import ValueFunctionAPI
from ray.rllib.core.rl_module.rl_module import RLModuleSpec
from ray.rllib.core.rl_module.torch import TorchRLModule
from rich.console import Console
from rich.table import Table

from aigcsched.algorithms.edge_module import N_BASIS, EdgeSchedulerModule, edge_model_config
from aigcsched.envs import EdgeConfig, EdgeVectorEnv
from aigcsched.platform.config import load_experiment, parse_overrides

nn = torch.nn
CONFIG = Path(__file__).resolve().parents[1] / "configs" / "edge_ppo.yaml"

# --- reference: the module as it was before the speed-up (benchmark only) ------------------------


def reference_joint_categorical(max_steps: int) -> type[TorchCategorical]:
    """A categorical over flat pair indices j * max_steps + (s - 1) whose samples are (j, s - 1)."""

    class JointServerStepsCategorical(TorchCategorical):
        def sample(self, *, sample_shape=()):
            flat = super().sample(sample_shape=sample_shape)
            return torch.stack([flat // max_steps, flat % max_steps], dim=-1)

        def logp(self, value, **kwargs):
            value = value.long()
            return super().logp(value[..., 0] * max_steps + value[..., 1])

        def to_deterministic(self):
            flat = torch.argmax(self.logits, dim=-1)
            return TorchDeterministic(loc=torch.stack([flat // max_steps, flat % max_steps], dim=-1))

    return JointServerStepsCategorical


class ReferenceEdgeSchedulerModule(TorchRLModule, ValueFunctionAPI):
    """Today's EdgeSchedulerModule before the speed-up (commit 6787fde), verbatim but for its name."""

    def setup(self):
        mc = self.model_config
        self.n_servers, self.max_steps = mc["n_servers"], mc["max_steps"]
        expected = (2 * self.n_servers + 2,)
        if self.observation_space.shape != expected:
            raise ValueError(f"observation shape {self.observation_space.shape} != {expected} (capabilities observed?)")
        if not isinstance(self.action_space, gym.spaces.MultiDiscrete) or list(self.action_space.nvec) != [
            self.n_servers,
            self.max_steps,
        ]:
            raise ValueError(f"action space {self.action_space} does not match the model config")
        hidden = mc["hidden"]
        quality = torch.tensor(mc["quality"], dtype=torch.float32)
        self.register_buffer("steps", torch.arange(1, self.max_steps + 1, dtype=torch.float32))
        # Quality centred and scaled to about [-1, 1] so that no feature dwarfs the others.
        self.register_buffer("quality_feature", (quality - quality.mean()) / (quality.max() - quality.min()) * 2)
        self.register_buffer("probes", torch.tensor(mc["probe_penalties"], dtype=torch.float32))
        server_in = 4 + 3 + 3  # own (busy, capability, slack, time of 10 steps), kind one-hot, load summary
        self.weights_net = nn.Sequential(
            nn.Linear(server_in, hidden),
            nn.Tanh(),
            nn.Linear(hidden, hidden),
            nn.Tanh(),
            nn.Linear(hidden, N_BASIS),
        )
        nn.init.zeros_(self.weights_net[-1].weight)  # start uniform over all pairs
        nn.init.zeros_(self.weights_net[-1].bias)
        self.action_dist_cls = reference_joint_categorical(self.max_steps)
        if not self.inference_only:
            self.critic = nn.Sequential(
                nn.Linear(2 * self.n_servers + 2 + 3, hidden),
                nn.Tanh(),
                nn.Linear(hidden, hidden),
                nn.Tanh(),
                nn.Linear(hidden, 1),
            )

    # Observation parts, in seconds and steps/s, scaled to about unit size.
    def _parts(self, obs):
        J = self.n_servers
        busy, cap = obs[..., :J] / 20.0, obs[..., J : 2 * J] / 15.0
        due_in, probe = obs[..., 2 * J] / 20.0, obs[..., 2 * J + 1]
        kind = torch.nn.functional.one_hot(torch.argmin((probe[..., None] - self.probes).abs(), dim=-1), 3).float()
        return busy, cap, due_in, kind

    def _logits(self, obs):
        J = self.n_servers
        busy_s, cap = obs[..., :J], obs[..., J : 2 * J]
        due_s = obs[..., 2 * J]
        busy, capn, due_in, kind = self._parts(obs)
        # Exact consequences of each (server, steps) pair, shape (B, J, S).
        finish = busy_s[..., None] + self.steps / cap[..., None]
        tardiness = torch.relu(finish - due_s[..., None, None])
        g = (
            kind[..., 0, None, None] * tardiness
            + kind[..., 1, None, None] * tardiness**2
            + kind[..., 2, None, None] * torch.sqrt(tardiness + 1e-12)
        )
        basis = torch.stack(
            [
                self.quality_feature.expand_as(finish),
                g / 10.0,
                tardiness / 10.0,
                finish / 30.0,
                torch.ones_like(finish),
            ],
            dim=-1,
        )
        slack = due_in[..., None] - busy
        ten_steps = 10.0 / cap  # seconds that 10 steps take on each server
        load = torch.stack([busy.mean(-1), busy.min(-1).values, busy.max(-1).values], dim=-1)
        server_x = torch.cat(
            [
                torch.stack([busy, capn, slack, ten_steps], dim=-1),
                kind[..., None, :].expand(*busy.shape, 3),
                load[..., None, :].expand(*busy.shape, 3),
            ],
            dim=-1,
        )
        w = self.weights_net(server_x)  # (B, J, N_BASIS)
        logits = self.model_config["logit_scale"] * (basis * w[..., None, :]).sum(-1)
        return logits.reshape(*logits.shape[:-2], J * self.max_steps)

    def _forward(self, batch: dict[str, Any], **kwargs) -> dict[str, Any]:
        return {Columns.ACTION_DIST_INPUTS: self._logits(batch[Columns.OBS])}

    def compute_values(self, batch: dict[str, Any], embeddings: Any = None):
        obs = batch[Columns.OBS]
        busy, cap, due_in, kind = self._parts(obs)
        x = torch.cat([busy, cap, due_in[..., None], obs[..., -1:] / 10.0, kind], dim=-1)
        return self.model_config["value_scale"] * self.critic(x).squeeze(-1)


# --- (a) one minibatch ---------------------------------------------------------------------------


def observations(cfg: EdgeConfig, n: int, seed: int = 0, warm: int = 50) -> torch.Tensor:
    """Observations of n episodes after `warm` random decisions (busy servers, late pairs)."""
    env = EdgeVectorEnv(num_envs=n, config=cfg)
    obs, _ = env.reset(seed=seed)
    rng = np.random.default_rng(seed)
    for _ in range(warm):
        obs, *_ = env.step(np.stack([rng.integers(0, cfg.n_servers, n), rng.integers(0, cfg.max_steps, n)], -1))
    return torch.as_tensor(obs)


def build(module_class, cfg: EdgeConfig, state: dict | None = None):
    from aigcsched.platform.problems.edge import EDGE

    spec = RLModuleSpec(module_class=module_class, model_config=edge_model_config(cfg))
    spec.observation_space, spec.action_space = EDGE.spaces(cfg)
    module = spec.build()
    if state is None:
        with torch.no_grad():  # a trained-like last layer (the module starts it at zero)
            module.weights_net[-1].weight.normal_(0.0, 0.3)
    else:
        module.load_state_dict(state)
    return module


def ppo_step(module, batch: dict, prev_logits, actions, old_logp, advantages, targets) -> None:
    """forward_train, PPOTorchLearner's loss (defaults: clip 0.2, kl_coeff 0.2, entropy_coeff 0), backward."""
    out = module.forward_train(batch)
    dist_class = module.get_train_action_dist_cls()
    curr = dist_class.from_logits(out[Columns.ACTION_DIST_INPUTS])
    prev = module.get_exploration_action_dist_cls().from_logits(prev_logits)
    ratio = torch.exp(curr.logp(actions) - old_logp)
    kl = prev.kl(curr).mean()
    entropy = curr.entropy()
    surrogate = torch.min(advantages * ratio, advantages * torch.clamp(ratio, 0.8, 1.2))
    values = module.compute_values(batch, embeddings=out.get(Columns.EMBEDDINGS))
    vf_loss = torch.clamp((values - targets) ** 2, 0, 1e6)
    loss = torch.mean(-surrogate + vf_loss - 0.0 * entropy) + 0.2 * kl
    module.zero_grad(set_to_none=True)
    loss.backward()


def explore_step(module, batch: dict) -> None:
    """What an env runner does per env step: forward_exploration, sample, logp."""
    with torch.no_grad():
        logits = module.forward_exploration(batch)[Columns.ACTION_DIST_INPUTS]
        dist = module.get_exploration_action_dist_cls().from_logits(logits)
        dist.logp(dist.sample())


def time_minibatch(batch_size: int, infer_size: int, repeats: int, console: Console) -> dict:
    cfg = EdgeConfig(observe_capabilities=True)
    torch.manual_seed(0)
    ref = build(ReferenceEdgeSchedulerModule, cfg)
    new = build(EdgeSchedulerModule, cfg, ref.state_dict())
    obs = observations(cfg, batch_size)
    batch, infer_batch = {Columns.OBS: obs}, {Columns.OBS: observations(cfg, infer_size, seed=1)}
    with torch.no_grad():
        prev_logits = ref.forward_exploration(batch)[Columns.ACTION_DIST_INPUTS]
        prev = ref.get_exploration_action_dist_cls().from_logits(prev_logits)
        actions = prev.sample()
        old_logp = prev.logp(actions)
    gen = torch.Generator().manual_seed(0)
    advantages, targets = torch.randn(batch_size, generator=gen), 100 * torch.randn(batch_size, generator=gen)
    args = (batch, prev_logits, actions, old_logp, advantages, targets)
    cases = {
        f"PPO minibatch, forward+loss+backward, B={batch_size}": lambda m: ppo_step(m, *args),
        f"env runner step, forward+sample+logp, B={infer_size}": lambda m: explore_step(m, infer_batch),
    }
    results = {}
    for name, run in cases.items():
        times = {"reference": [], "new": []}
        for i in range(repeats + 2):  # two warm-up rounds
            for label, module in (("reference", ref), ("new", new)):
                start = time.process_time()
                run(module)
                if i >= 2:
                    times[label].append(time.process_time() - start)
        results[name] = {k: statistics.median(v) for k, v in times.items()}
        console.log(f"{name}: {results[name]['reference'] * 1e3:.1f} ms -> {results[name]['new'] * 1e3:.1f} ms")
    return results


# --- (b) whole training iterations ---------------------------------------------------------------


def time_training(overrides: dict, iterations: int, console: Console) -> dict:
    import ray

    from aigcsched.platform.rllib_setup import algorithm_config

    exp = load_experiment(CONFIG, overrides)
    config = algorithm_config(exp)
    spec = config.rl_module_spec
    ref_config = algorithm_config(exp).rl_module(
        rl_module_spec=RLModuleSpec(module_class=ReferenceEdgeSchedulerModule, model_config=spec.model_config)
    )
    ray.init(address="local", num_cpus=exp.resources.num_cpus, include_dashboard=False, log_to_driver=False)
    try:
        algos = {"reference": ref_config.build_algo(), "new": config.build_algo()}
        stats = {label: {"wall": [], "cpu": [], "steps": [], "learner": [], "sampling": []} for label in algos}
        for i in range(iterations + 1):  # the first iteration of each is a warm-up
            for label, algo in algos.items():
                start, start_cpu = time.perf_counter(), time.process_time()
                result = algo.train()
                wall, cpu = time.perf_counter() - start, time.process_time() - start_cpu
                if i == 0:
                    continue
                timers = result.get("timers", {})
                s = stats[label]
                s["wall"].append(wall)
                s["cpu"].append(cpu)
                s["steps"].append(result["env_runners"]["num_env_steps_sampled"])
                # RLlib's timers are smoothed over iterations; good enough for the split
                s["learner"].append(timers.get("learner_update_timer", float("nan")))
                s["sampling"].append(timers.get("env_runner_sampling_timer", float("nan")))
                console.log(f"{label}: iteration {i}, {wall:.2f} s, {s['steps'][-1] / wall:,.0f} env steps/s")
        for algo in algos.values():
            algo.stop()
    finally:
        ray.shutdown()
    return {
        label: {
            "steps/s": sum(s["steps"]) / sum(s["wall"]),
            "steps/cpu-s": sum(s["steps"]) / sum(s["cpu"]),
            "iteration s": statistics.median(s["wall"]),
            "learner s": statistics.median(s["learner"]),
            "sampling s": statistics.median(s["sampling"]),
        }
        for label, s in stats.items()
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--batch", type=int, default=1024, help="PPO minibatch size for (a)")
    parser.add_argument("--infer-batch", type=int, default=64, help="env runner batch (num_envs) for (a)")
    parser.add_argument("--repeats", type=int, default=10, help="timed repeats of each (a) case")
    parser.add_argument("--iterations", type=int, default=4, help="timed train() iterations of each module")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="experiment override")
    parser.add_argument("--skip-train", action="store_true", help="only (a)")
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's, one per core)")
    args = parser.parse_args()
    console = Console(stderr=True)
    if args.threads:
        torch.set_num_threads(args.threads)
    console.log(f"torch threads: {torch.get_num_threads()}")

    table = Table(title="edge learner: reference (today's module) against the new one")
    for col in ("case", "reference", "new", "speed-up"):
        table.add_column(col, justify="left" if col == "case" else "right")
    for name, r in time_minibatch(args.batch, args.infer_batch, args.repeats, console).items():
        ref, new = r["reference"], r["new"]
        table.add_row(name + " (CPU ms)", f"{ref * 1e3:.1f}", f"{new * 1e3:.1f}", f"{ref / new:.2f}x")
    if not args.skip_train:
        training = time_training(parse_overrides(args.set), args.iterations, console)
        ref, new = training["reference"], training["new"]
        table.add_row(
            "train() env steps/s",
            f"{ref['steps/s']:,.0f}",
            f"{new['steps/s']:,.0f}",
            f"{new['steps/s'] / ref['steps/s']:.2f}x",
        )
        table.add_row(
            "train() env steps per CPU second",
            f"{ref['steps/cpu-s']:,.0f}",
            f"{new['steps/cpu-s']:,.0f}",
            f"{new['steps/cpu-s'] / ref['steps/cpu-s']:.2f}x",
        )
        for key in ("iteration s", "learner s", "sampling s"):
            table.add_row(
                f"train() {key} (median)", f"{ref[key]:.2f}", f"{new[key]:.2f}", f"{ref[key] / new[key]:.2f}x"
            )
    Console().print(table)


if __name__ == "__main__":
    main()
