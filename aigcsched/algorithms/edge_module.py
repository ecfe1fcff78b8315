"""The `edge` scheduler as an RLlib RLModule: the paper's two-branch actor (server, steps) as
one joint distribution over (server, steps) pairs, scored per server with shared weights, and a
critic.

Why this shape: an MLP head with 200 step logits has to learn, from scratch, where each server's
due time falls on the step axis. Here every (server j, steps s) pair is scored as
    logit(j, s) = scale * sum_k w_k(x_j) * phi_k(j, s)
where phi are exact per-pair consequences computed from the observation (quality Q(s), the
tardiness t = max(0, m_j + s / c_j - o_t), the penalty g(t) of the request's kind, the finish
time) and w(x_j) is a small MLP of server j's situation (its busy time and capability, the
request, the load on the other servers) shared by all servers. The network learns how to trade
quality against lateness now and capacity later; it is not told the reward's weights.

Needs the observation with capabilities (`observe_capabilities=True`).
"""

from __future__ import annotations

from typing import Any

import gymnasium as gym
from ray.rllib.core.columns import Columns
from ray.rllib.core.distribution.torch.torch_distribution import TorchCategorical, TorchDeterministic
from ray.rllib.core.rl_module.apis import ValueFunctionAPI
from ray.rllib.core.rl_module.torch import TorchRLModule
from ray.rllib.utils.framework import try_import_torch

from aigcsched.envs import EdgeConfig

torch, nn = try_import_torch()

N_BASIS = 5  # quality, penalty, tardiness, finish time, constant


def joint_categorical(max_steps: int) -> type[TorchCategorical]:
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


def edge_model_config(cfg: EdgeConfig, hidden: int = 64, logit_scale: float = 10.0, value_scale: float = 100.0) -> dict:
    """The env facts the module needs (so it loads without the env) plus its own sizes."""
    if not cfg.observe_capabilities:
        raise ValueError("the edge scheduler module needs observe_capabilities=True")
    return {
        "n_servers": cfg.n_servers,
        "max_steps": cfg.max_steps,
        "quality": cfg.quality_table()[1:].tolist(),
        "probe_penalties": cfg.probe_penalties().tolist(),
        "hidden": hidden,
        "logit_scale": logit_scale,
        "value_scale": value_scale,
    }


class EdgeSchedulerModule(TorchRLModule, ValueFunctionAPI):
    """Per-server scored joint (server, steps) actor with an MLP critic; see the module docstring."""

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
        self.action_dist_cls = joint_categorical(self.max_steps)
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
