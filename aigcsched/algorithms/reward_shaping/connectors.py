"""The learner connector pieces of diffusion shaping, and the labelled rows they share.

- `EpisodeOutcomeLabeller` (first piece, before PPO's AddOneTsToEpisodesAndTruncate, so it sees the
  episodes' real ends and no artificial step): labels come from observed outcomes only. Steps are
  buffered per episode (original episode id, "_<i>" suffixes stripped, plus module id) with their
  rewards; when the episode's last step arrives, every buffered step gets target = (sum of the
  episode's rewards) / (episode length), the settled utility spread over the steps that led to it,
  and the rows go to a FIFO dataset (`LabelledRows`). Under replay (SAC/DSAC) transitions arrive
  sampled and out of order: an episode is labelled with the steps seen so far when its final
  transition is sampled, dividing the rewards seen by the true length (final step index + 1). That
  is exact when the reward is paid only at the episode's end (the sparse case) and approximate
  otherwise (and with n_step > 1).
- `DiffusionRewardShaping` (after NumpyToTensor; in PPO right before GeneralAdvantageEstimation,
  in SAC/DSAC last, before the loss): rewrites each policy module's batch rewards, `diffusion`:
  r + eta * r_hat(s, a); `diffusion_potential`: r + gamma^n Phi(s') - Phi(s) with Phi(terminal) = 0
  (potential-based, leaves the optimal policy unchanged; n = the replay's n_step, 1 for PPO), and
  adds a batch of labelled rows for the reward model's update. Shaping starts when the model has
  labelled rows >= `warmup_steps` and at least one update.
"""

from __future__ import annotations

import re
from collections import OrderedDict

import numpy as np
import torch
from ray.rllib.connectors.connector_v2 import ConnectorV2
from ray.rllib.core import DEFAULT_MODULE_ID
from ray.rllib.core.columns import Columns

from aigcsched.algorithms.reward_shaping.model import TARGETS, DiffusionRewardModel, reward_model_id
from aigcsched.algorithms.reward_shaping.settings import DIFFUSION_KINDS

DATASET_ROWS = 50_000  # labelled rows kept per reward model (FIFO); also the cap on unfinished rows


def original_episode_id(episode_id: str) -> str:
    """The episode id without the "_<i>" suffixes PPO's AddOneTsToEpisodesAndTruncate appends."""
    return re.sub(r"(_\d+)+$", "", episode_id)


def potential_shaping(phi, phi_next, terminateds, discount):
    """gamma^n Phi(s') - Phi(s), with Phi of a terminal state = 0 (Ng et al. 1999)."""
    return discount * phi_next * (1.0 - terminateds.float()) - phi


def pearson(x: torch.Tensor, y: torch.Tensor) -> float | None:
    """Pearson correlation, or None where either side is constant."""
    x, y = x.double() - x.double().mean(), y.double() - y.double().mean()
    denom = float(torch.sqrt((x * x).sum() * (y * y).sum()))
    return float((x * y).sum()) / denom if denom > 1e-12 else None


class LabelledRows:
    """The most recent `capacity` labelled rows (FIFO ring): flattened obs, action, target."""

    def __init__(self, capacity: int = DATASET_ROWS):
        self.capacity, self.size, self._next = capacity, 0, 0
        self._arrays: list[np.ndarray] | None = None

    def add(self, obs: np.ndarray, actions: np.ndarray, targets: np.ndarray) -> None:
        columns = [a[-self.capacity :] for a in (obs, actions, targets)]
        if self._arrays is None:
            self._arrays = [np.zeros((self.capacity, *a.shape[1:]), a.dtype) for a in columns]
        idx = (self._next + np.arange(len(columns[2]))) % self.capacity
        for array, column in zip(self._arrays, columns, strict=True):
            array[idx] = column
        self._next = int(idx[-1] + 1) % self.capacity if len(idx) else self._next
        self.size = min(self.size + len(idx), self.capacity)

    def sample(self, n: int, rng: np.random.Generator) -> list[np.ndarray] | None:
        """Up to n distinct rows at random, or None when empty."""
        n = min(n, self.size)
        if n == 0:
            return None
        idx = rng.choice(self.size, n, replace=False)
        return [a[idx] for a in self._arrays]


class EpisodeOutcomeLabeller(ConnectorV2):
    """Learner piece: labels each finished episode's steps with its reward sum / length.

    `datasets` maps each shaped policy module id to its `LabelledRows`. Unfinished episodes are kept
    in buffers of at most `max_open_rows` steps in all; the least recently seen are dropped first.
    """

    def __init__(self, input_observation_space=None, input_action_space=None, *, datasets, max_open_rows=DATASET_ROWS):
        super().__init__(input_observation_space, input_action_space)
        self.datasets: dict[str, LabelledRows] = datasets
        self.max_open_rows = max_open_rows
        # (original episode id, module id) -> {step index t: (obs, action, reward)}; a dict per
        # episode, so a transition replayed twice counts once.
        self._open: OrderedDict[tuple[str, str], dict[int, tuple]] = OrderedDict()
        self._open_rows = 0

    def __call__(self, *, rl_module, batch, episodes, **kwargs):
        for episode in self.single_agent_episode_iterator(episodes, agents_that_stepped_only=False):
            module_id = episode.module_id or DEFAULT_MODULE_ID
            if module_id not in self.datasets:
                continue
            key = (original_episode_id(episode.id_), module_id)
            steps = self._open.pop(key, {})
            self._open[key] = steps  # now the most recently seen
            n = len(episode)
            if n:
                obs = np.asarray(episode.get_observations(slice(0, n)), dtype=np.float32).reshape(n, -1)
                actions = np.asarray(episode.get_actions(slice(0, n)))
                rewards = np.asarray(episode.get_rewards(slice(0, n)), dtype=np.float64)
                before = len(steps)
                for i in range(n):
                    steps[episode.t_started + i] = (obs[i], actions[i], rewards[i])
                self._open_rows += len(steps) - before
            if episode.is_done:
                self._label(rl_module, key, length=episode.t_started + n)
        while self._open_rows > self.max_open_rows:
            _, dropped = self._open.popitem(last=False)
            self._open_rows -= len(dropped)
        return batch

    def _label(self, rl_module, key: tuple[str, str], length: int) -> None:
        steps = self._open.pop(key)
        self._open_rows -= len(steps)
        if not steps or length < 1:
            return
        rows = [steps[t] for t in sorted(steps)]
        target = sum(r for _, _, r in rows) / length
        targets = np.full(len(rows), target, dtype=np.float32)
        module_id = key[1]
        self.datasets[module_id].add(np.stack([o for o, _, _ in rows]), np.stack([a for _, a, _ in rows]), targets)
        rl_module[reward_model_id(module_id)].unwrapped().observe_targets(targets)


class DiffusionRewardShaping(ConnectorV2):
    """Learner piece on the tensor batch: shapes each policy module's rewards (`kind` diffusion or
    diffusion_potential) once its reward model is past warm-up, and adds the reward model's batch."""

    def __init__(
        self,
        input_observation_space=None,
        input_action_space=None,
        *,
        kind: str,
        eta: float,
        gamma: float,
        warmup_steps: int,
        datasets: dict[str, LabelledRows],
        seed: int | None = None,
    ):
        super().__init__(input_observation_space, input_action_space)
        # `bonus` tells the two kinds apart by "diffusion" alone, so anything else must not get in.
        if kind not in DIFFUSION_KINDS:
            raise ValueError(f"unknown shaping kind {kind!r}; choose from {', '.join(DIFFUSION_KINDS)}")
        self.kind, self.eta, self.gamma, self.warmup_steps = kind, eta, gamma, warmup_steps
        self.datasets = datasets
        self._rng = np.random.default_rng(seed)

    def __call__(self, *, rl_module, batch, episodes, metrics=None, **kwargs):
        shaped = [mid for mid in self.datasets if mid in batch]
        # The reward model's batch is never longer than the longest policy batch, so PPO's
        # minibatch cycling (which runs until every module covered its epochs) is unchanged.
        longest = max((len(batch[mid][Columns.REWARDS]) for mid in shaped), default=0)
        for module_id in shaped:
            rm_id = reward_model_id(module_id)
            model = rl_module[rm_id].unwrapped()
            module_batch = batch[module_id]
            mask = module_batch.get(Columns.LOSS_MASK)  # PPO: False on the artificial last step
            active = model.ready(self.warmup_steps)
            stats = {"shaping_active": float(active)}
            with torch.no_grad():
                if active:
                    bonus = self.bonus(model, module_batch)
                    if mask is not None:
                        bonus = bonus * mask.float()
                    # A new tensor: nothing shared with the episodes is modified.
                    module_batch[Columns.REWARDS] = module_batch[Columns.REWARDS] + bonus
                    stats["shaping_bonus_mean"] = float(bonus[mask].mean() if mask is not None else bonus.mean())
                else:
                    stats["shaping_bonus_mean"] = 0.0
                rows = self.datasets[module_id].sample(longest, self._rng)
                if rows is not None:
                    device = model.target_mean.device
                    obs, actions, targets = (torch.from_numpy(a).to(device) for a in rows)
                    batch[rm_id] = {Columns.OBS: obs, Columns.ACTIONS: actions, TARGETS: targets}
                    corr = pearson(model.predict(obs, actions), targets)
                    if corr is not None:
                        stats["r_hat_target_corr"] = corr
            if metrics is not None:
                metrics.log_dict(stats, key=rm_id, window=1)
                # A lifetime count: the latest (largest) value, also across the updates of an iteration.
                metrics.log_value((rm_id, "labelled_rows"), int(model.num_labelled), reduce="max")
        return batch

    def bonus(self, model: DiffusionRewardModel, module_batch: dict) -> torch.Tensor:
        """Shaped minus original reward of every row of a module's batch."""
        if self.kind == "diffusion":
            return self.eta * model.predict(module_batch[Columns.OBS], module_batch[Columns.ACTIONS])
        phi = self.eta * model.predict(module_batch[Columns.OBS])
        phi_next = self.eta * model.predict(module_batch[Columns.NEXT_OBS])
        n_step = module_batch.get("n_step")  # SAC's replay: the target discounts by gamma^n
        discount = self.gamma ** n_step.float() if n_step is not None else self.gamma
        return potential_shaping(phi, phi_next, module_batch[Columns.TERMINATEDS], discount)
