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

  With `labels: decomposition` the reward model's batch is instead groups of `subset` steps, each a
  random subset of one stored episode (randomized return decomposition), with the episode's length.
- `diffusion_replace`: the batch rewards become r_hat(s, a) alone (for rewards paid only at the end,
  whose sum over the episode r_hat reproduces).

Logged per update, besides the loss: `decomposition_loss` (the plain decomposition loss of r_hat on
subsets of stored episodes, normalized units, for either objective), and on the episodes finished
since the last update, which the model has not trained on: `held_out_return_corr` (Pearson of the
summed r_hat with the episode's return) and `r_hat_episode_spread` (the standard deviation of r_hat
within an episode, averaged over them; 0 means the model assigns no credit within an episode).
"""

from __future__ import annotations

import re
from collections import OrderedDict, deque

import numpy as np
import torch
from ray.rllib.connectors.connector_v2 import ConnectorV2
from ray.rllib.core import DEFAULT_MODULE_ID
from ray.rllib.core.columns import Columns

from aigcsched.algorithms.reward_shaping.model import (
    GROUPS,
    LENGTHS,
    TARGETS,
    RewardModel,
    decomposition_loss,
    reward_model_id,
)
from aigcsched.algorithms.reward_shaping.settings import DIFFUSION_KINDS

DATASET_ROWS = 50_000  # labelled rows kept per reward model (FIFO); also the cap on unfinished rows
FRESH_EPISODES = 64  # newly finished episodes kept per update for the held-out metrics
METRIC_ROWS = 4096  # rows of episode subsets for the logged decomposition loss under uniform labels


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
    """The most recent `capacity` labelled rows (FIFO ring): flattened obs, action, target, and the
    episode each row came from (a serial number) with its length. Also the episodes finished since
    the last `take_fresh` (at most FRESH_EPISODES), for the held-out metrics."""

    def __init__(self, capacity: int = DATASET_ROWS):
        self.capacity, self.size, self._next = capacity, 0, 0
        self._arrays: list[np.ndarray] | None = None
        self._episodes = 0
        self.fresh: deque[tuple[np.ndarray, np.ndarray, float]] = deque(maxlen=FRESH_EPISODES)

    def add(self, obs: np.ndarray, actions: np.ndarray, targets: np.ndarray, length: int | None = None) -> None:
        """The rows of one episode of `length` steps (default: the number of rows)."""
        length = len(targets) if length is None else length
        episode = np.full(len(targets), self._episodes, np.int64)
        self._episodes += 1
        columns = [a[-self.capacity :] for a in (obs, actions, targets, episode, np.full(len(targets), length))]
        if self._arrays is None:
            self._arrays = [np.zeros((self.capacity, *a.shape[1:]), a.dtype) for a in columns]
        idx = (self._next + np.arange(len(columns[2]))) % self.capacity
        for array, column in zip(self._arrays, columns, strict=True):
            array[idx] = column
        self._next = int(idx[-1] + 1) % self.capacity if len(idx) else self._next
        self.size = min(self.size + len(idx), self.capacity)

    def add_episode(self, obs: np.ndarray, actions: np.ndarray, episode_return: float, length: int) -> np.ndarray:
        """A finished episode's rows, each labelled return / length; returns the targets."""
        targets = np.full(len(obs), episode_return / length, dtype=np.float32)
        self.add(obs, actions, targets, length)
        self.fresh.append((obs, actions, episode_return))
        return targets

    def take_fresh(self) -> list[tuple[np.ndarray, np.ndarray, float]]:
        fresh = list(self.fresh)
        self.fresh.clear()
        return fresh

    def sample(self, n: int, rng: np.random.Generator) -> list[np.ndarray] | None:
        """Up to n distinct rows at random (obs, action, target), or None when empty."""
        n = min(n, self.size)
        if n == 0:
            return None
        idx = rng.choice(self.size, n, replace=False)
        return [a[idx] for a in self._arrays[:3]]

    def sample_subsets(self, n: int, k: int, rng: np.random.Generator) -> list[np.ndarray] | None:
        """About n rows in groups: max(1, n // k) episodes drawn at random (again only when fewer are
        stored), of each up to k distinct steps at random. Returns obs, action, target, group (0, 1, ...
        per row) and episode length, or None when empty."""
        if self.size == 0:
            return None
        serials = self._arrays[3][: self.size]
        order = np.argsort(serials, kind="stable")
        _, starts, counts = np.unique(serials[order], return_index=True, return_counts=True)
        groups = max(1, n // k)
        chosen = rng.choice(len(starts), groups, replace=groups > len(starts))
        idx, group = [], []
        for g, e in enumerate(chosen):
            rows = order[starts[e] + rng.choice(counts[e], min(k, counts[e]), replace=False)]
            idx.append(rows)
            group.append(np.full(len(rows), g, np.int64))
        idx = np.concatenate(idx)
        obs, actions, targets, _, lengths = (a[idx] for a in self._arrays)
        return [obs, actions, targets, np.concatenate(group), lengths]


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
        module_id = key[1]
        obs, actions = np.stack([o for o, _, _ in rows]), np.stack([a for _, a, _ in rows])
        targets = self.datasets[module_id].add_episode(obs, actions, float(sum(r for _, _, r in rows)), length)
        rl_module[reward_model_id(module_id)].unwrapped().observe_targets(targets)


class DiffusionRewardShaping(ConnectorV2):
    """Learner piece on the tensor batch: shapes each policy module's rewards (`kind` diffusion,
    diffusion_potential or diffusion_replace) once its reward model is past warm-up, and adds the
    reward model's batch (rows, or with `labels` decomposition groups of `subset` steps)."""

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
        labels: str = "uniform",
        subset: int = 64,
    ):
        super().__init__(input_observation_space, input_action_space)
        # `bonus` tells the two kinds apart by "diffusion" alone, so anything else must not get in.
        if kind not in DIFFUSION_KINDS:
            raise ValueError(f"unknown shaping kind {kind!r}; choose from {', '.join(DIFFUSION_KINDS)}")
        self.kind, self.eta, self.gamma, self.warmup_steps = kind, eta, gamma, warmup_steps
        if labels not in ("uniform", "decomposition"):
            raise ValueError(f"labels must be uniform or decomposition, got {labels!r}")
        self.datasets, self.labels, self.subset = datasets, labels, subset
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
                stats |= self.add_model_batch(model, rm_id, batch, self.datasets[module_id], longest)
                stats |= held_out_metrics(model, self.datasets[module_id].take_fresh())
            if metrics is not None:
                metrics.log_dict(stats, key=rm_id, window=1)
                # A lifetime count: the latest (largest) value, also across the updates of an iteration.
                metrics.log_value((rm_id, "labelled_rows"), int(model.num_labelled), reduce="max")
        return batch

    def add_model_batch(self, model: RewardModel, rm_id: str, batch: dict, rows: LabelledRows, n: int) -> dict:
        """The reward model's batch of about n rows into `batch`; returns the statistics of its fit."""
        stats, device = {}, model.target_mean.device
        if self.labels == "uniform":
            sampled = rows.sample(n, self._rng)
            if sampled is None:
                return stats
            obs, actions, targets = (torch.from_numpy(a).to(device) for a in sampled)
            batch[rm_id] = {Columns.OBS: obs, Columns.ACTIONS: actions, TARGETS: targets}
            corr = pearson(model.predict(obs, actions), targets)
            if corr is not None:
                stats["r_hat_target_corr"] = corr
            subsets = rows.sample_subsets(min(n, METRIC_ROWS), self.subset, self._rng)
        else:
            subsets = rows.sample_subsets(n, self.subset, self._rng)
            if subsets is None:
                return stats
            obs, actions, targets, groups, lengths = (torch.from_numpy(a).to(device) for a in subsets)
            batch[rm_id] = {
                Columns.OBS: obs,
                Columns.ACTIONS: actions,
                TARGETS: targets,
                GROUPS: groups,
                LENGTHS: lengths,
            }
        if subsets is not None:
            obs, actions, targets, groups, lengths = (torch.from_numpy(a).to(device) for a in subsets)
            r_hat = model.generate(model.condition(obs, actions))
            _, plain = decomposition_loss(r_hat, model.normalize(targets), groups, lengths, bias_correction=False)
            stats["decomposition_loss"] = float(plain)
        return stats

    def bonus(self, model: RewardModel, module_batch: dict) -> torch.Tensor:
        """Shaped minus original reward of every row of a module's batch."""
        if self.kind == "diffusion":
            return self.eta * model.predict(module_batch[Columns.OBS], module_batch[Columns.ACTIONS])
        if self.kind == "diffusion_replace":
            r_hat = model.predict(module_batch[Columns.OBS], module_batch[Columns.ACTIONS])
            return r_hat - module_batch[Columns.REWARDS]
        phi = self.eta * model.predict(module_batch[Columns.OBS])
        phi_next = self.eta * model.predict(module_batch[Columns.NEXT_OBS])
        n_step = module_batch.get("n_step")  # SAC's replay: the target discounts by gamma^n
        discount = self.gamma ** n_step.float() if n_step is not None else self.gamma
        return potential_shaping(phi, phi_next, module_batch[Columns.TERMINATEDS], discount)


def held_out_metrics(model: RewardModel, episodes: list[tuple[np.ndarray, np.ndarray, float]]) -> dict:
    """On finished episodes the model has not trained on: Pearson correlation of the summed r_hat
    with the return (with at least 3 episodes and neither side constant) and the mean within-episode
    standard deviation of r_hat."""
    if not episodes:
        return {}
    device = model.target_mean.device
    obs = torch.from_numpy(np.concatenate([o for o, _, _ in episodes])).to(device)
    actions = torch.from_numpy(np.concatenate([a for _, a, _ in episodes])).to(device)
    r_hat = model.predict(obs, actions).split([len(o) for o, _, _ in episodes])
    stats = {"r_hat_episode_spread": float(np.mean([float(r.std(unbiased=False)) for r in r_hat]))}
    if len(episodes) >= 3:
        corr = pearson(torch.stack([r.sum() for r in r_hat]), torch.tensor([ret for _, _, ret in episodes]))
        if corr is not None:
            stats["held_out_return_corr"] = corr
    return stats
