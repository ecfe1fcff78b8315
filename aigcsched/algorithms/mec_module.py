"""The `mec` scheduler as an RLlib RLModule: myopic's look-ahead plus learned per-server weights of
the processing time each action books, and a critic.

Each subset action a (server subset and split rule) of a station's task is scored as
    logit(a) = anchor_scale * (lookahead_a + sum_j w_j * booked_aj)
where lookahead_a <= 0 is how many seconds later than the best action's a's task would finish
(myopic's prior, `observe_lookahead`) and booked_aj the seconds of processing a would book on server
j (`observe_booked_work`), both exact consequences the env computes. w_j = tanh(f(server j's
features)), f one small MLP shared by all servers (so a weight follows a server's situation, not
its index), in (-1, 1) and 0 at the start: the untrained policy is myopic (deciding in turn,
sequential_myopic; with `lookahead_anticipation`, anticipating_myopic). Within (-1, 1) a booked
second never counts for more than a second of the station's own delay.

Why this shape: a task booked on a fast server takes it from the tasks after it. A fixed weight of
0.25 on every server (`spreading_myopic`) already lowers the delay of stations deciding in turn by
1-3% below sequential_myopic's (RESULTS.md); an MLP residual over 30 action logits has to find
such a trade per action, from scratch, and did not.
"""

from __future__ import annotations

import math
from typing import Any

import gymnasium as gym
from ray.rllib.core.columns import Columns
from ray.rllib.core.distribution.torch.torch_distribution import TorchCategorical
from ray.rllib.core.rl_module.apis import ValueFunctionAPI
from ray.rllib.core.rl_module.rl_module import RLModuleSpec
from ray.rllib.core.rl_module.torch import TorchRLModule
from ray.rllib.utils.framework import try_import_torch

from aigcsched.algorithms.few_explorers import FewExplorersMixin

torch, nn = try_import_torch()

SERVER_FEATURES = 10  # see MECSchedulerModule.server_features


def _mlp(width: int, hidden: int, out: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Linear(width, hidden), nn.Tanh(), nn.Linear(hidden, hidden), nn.Tanh(), nn.Linear(hidden, out)
    )


class MECSchedulerModule(FewExplorersMixin, TorchRLModule, ValueFunctionAPI):
    """Observation: the station's view (3 + 4N entries), the booked-work block (A x N, action-major),
    the look-ahead (A); see MECEnv. model_config: n_servers, hidden, anchor_scale (> 0), start_weight
    (every server's w at the start, 0 by default)."""

    def setup(self):
        mc = self.model_config
        if not isinstance(self.action_space, gym.spaces.Discrete):
            raise ValueError(f"the mec scheduler needs the Discrete subset action, got {self.action_space}")
        self.n_servers, self.n_actions = int(mc["n_servers"]), int(self.action_space.n)
        self.scale = float(mc["anchor_scale"])
        self.view = 3 + 4 * self.n_servers
        size = int(self.observation_space.shape[0])
        want = self.view + self.n_actions * (self.n_servers + 1)
        if size != want:
            raise ValueError(
                f"the mec scheduler reads {want} observation entries (observe_booked_work and "
                f"observe_lookahead), got {size}"
            )
        self.weights = _mlp(SERVER_FEATURES, mc["hidden"], 1)
        nn.init.zeros_(self.weights[-1].weight)
        # w = start on every server: 0 is myopic's choice
        nn.init.constant_(self.weights[-1].bias, math.atanh(mc.get("start_weight", 0.0)))
        self.action_dist_cls = TorchCategorical
        if not self.inference_only:
            self.critic = _mlp(size, mc["hidden"], 1)

    def server_features(self, obs):
        """(B, N, SERVER_FEATURES): server j's backlog, capacity, link from the station and whether
        it is the station's own, then what every server shares: the task (has one, Mbit, steps), the
        mean backlog and capacity, and the station's place in the slot's order."""
        n = self.n_servers
        backlog, cap, link, own = (obs[:, 3 + k * n : 3 + (k + 1) * n] for k in range(4))
        place = (own * torch.arange(n, dtype=obs.dtype) / max(n - 1, 1)).sum(-1, keepdim=True)
        shared = torch.cat([obs[:, :3], backlog.mean(-1, keepdim=True), cap.mean(-1, keepdim=True), place], -1)
        per_server = torch.stack([backlog, cap, link, own], -1)
        return torch.cat([per_server, shared[:, None, :].expand(-1, n, -1)], -1)

    def server_weights(self, obs):
        """w (B, N) in (-1, 1): one MLP, shared by the servers, of each server's features."""
        return torch.tanh(self.weights(self.server_features(obs)).squeeze(-1))

    def _forward(self, batch: dict[str, Any], **kwargs) -> dict[str, Any]:
        obs = batch[Columns.OBS].float()
        booked = obs[:, self.view : -self.n_actions].reshape(-1, self.n_actions, self.n_servers)
        lookahead = obs[:, -self.n_actions :]
        score = lookahead + torch.einsum("ban,bn->ba", booked, self.server_weights(obs))
        return {Columns.ACTION_DIST_INPUTS: self.scale * score}

    def compute_values(self, batch: dict[str, Any], embeddings: Any = None):
        return self.critic(batch[Columns.OBS].float()).squeeze(-1)


def mec_scheduler_spec(n_servers: int, hidden: int, anchor_scale: float, start_weight: float = 0.0) -> RLModuleSpec:
    if anchor_scale <= 0:
        raise ValueError("the mec scheduler scores on myopic's look-ahead: algorithm.anchor_scale must be > 0")
    if not -1 < start_weight < 1:
        raise ValueError(f"the mec scheduler's weights lie in (-1, 1); start_weight {start_weight}")
    return RLModuleSpec(
        module_class=MECSchedulerModule,
        model_config={
            "n_servers": n_servers,
            "hidden": hidden,
            "anchor_scale": anchor_scale,
            "start_weight": start_weight,
        },
    )
