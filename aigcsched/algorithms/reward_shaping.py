"""Diffusion-aided reward shaping for sparse rewards (RLlib new API stack, PPO and SAC/DSAC).

After Fu et al. 2026, "Joint Energy Management and Coordinated AIGC Workload Scheduling for
Distributed Data Centers: A Diffusion-Aided Reward Shaping Approach": when a provider's utility
arrives only at settlement (`reward_mode: sparse`), a conditional diffusion model synthesizes
complementary per-step reward signals through multi-step denoising, and the RL learner trains on
the shaped rewards.

    config = add_reward_shaping(PPOConfig().environment(...), kind="diffusion", eta=0.4)
    algo = config.build_algo()

Everything lives on the learner; the env runners never build, run or see any of it, so the
episode returns they report stay the environment's own.

- `DiffusionRewardModel`: a DDPM over a scalar reward conditioned on (flattened observation,
  action one-hot(s)), trained with the epsilon-prediction loss on running-normalized targets.
  r_hat(s, a) is its reverse chain run deterministically (x_T = 0, posterior means), de-normalized.
  During training the action is replaced by a null (all-zero) encoding with probability 1/2, as in
  classifier-free guidance, so the same network also predicts r_hat(s, null) ~ E_a[r | s], the
  potential Phi(s) = eta * r_hat(s, null). Its denoiser is the project's `DiffusionActor` with a
  1-d "action" (the reward). One model per policy module, added by the learner to its
  MultiRLModule as `_reward_model_<module id>` (learner_only): per module because modules may have
  different spaces and reward scales, and a shared policy already gets one shared model. As in
  RLlib's intrinsic-curiosity example it implements `SelfSupervisedLossAPI`, so the Learner
  computes its loss, gives it its own Adam, checkpoints it with the policies and places it on the
  learner's device; no agent maps to it and the algorithm's loss never trains it.
- `EpisodeOutcomeLabeller` (first learner connector piece, before PPO's
  AddOneTsToEpisodesAndTruncate, so it sees the episodes' real ends and no artificial step):
  labels come from observed outcomes only. Steps are buffered per episode (original episode id,
  "_<i>" suffixes stripped, plus module id) with their rewards; when the episode's last step
  arrives, every buffered step gets target = (sum of the episode's rewards) / (episode length),
  the settled utility spread over the steps that led to it, and the rows go to a FIFO dataset.
  Under replay (SAC/DSAC) transitions arrive sampled and out of order: an episode is labelled
  with the steps seen so far when its final transition is sampled, dividing the rewards seen by
  the true length (final step index + 1). That is exact when the reward is paid only at the
  episode's end (the sparse case) and approximate otherwise (and with n_step > 1).
- `DiffusionRewardShaping` (learner connector piece after NumpyToTensor; in PPO right before
  GeneralAdvantageEstimation, in SAC/DSAC last, before the loss): rewrites each policy module's
  batch rewards, `diffusion`: r + eta * r_hat(s, a); `diffusion_potential`: r + gamma^n Phi(s') -
  Phi(s) with Phi(terminal) = 0 (potential-based, leaves the optimal policy unchanged; n = the
  replay's n_step, 1 for PPO), and adds a batch of labelled rows for the reward model's update.
  Shaping starts when the model has labelled rows >= `warmup_steps` and at least one update.

Logged under `result["learners"]["_reward_model_<module id>"]`: `reward_model_loss`,
`shaping_bonus_mean` (shaped minus original reward over the batch's real steps),
`r_hat_target_corr` (Pearson, r_hat vs target on the labelled rows of the update),
`labelled_rows` (lifetime) and `shaping_active`.

Not kept in checkpoints: the labelled rows and unfinished episode buffers (they refill); the model,
its optimizer, normalization statistics and counters are. With several learners each keeps its own
rows. Stateful (recurrent) policy modules are not supported.
"""

from __future__ import annotations

import math
import numbers
import re
from collections import OrderedDict
from typing import Any

import gymnasium as gym
import numpy as np
import torch
from ray.rllib.algorithms.algorithm_config import AlgorithmConfig
from ray.rllib.algorithms.ppo import PPOConfig
from ray.rllib.algorithms.sac import SACConfig
from ray.rllib.connectors.common.add_observations_from_episodes_to_batch import AddObservationsFromEpisodesToBatch
from ray.rllib.connectors.connector_v2 import ConnectorV2
from ray.rllib.connectors.learner import AddNextObservationsFromEpisodesToTrainBatch, GeneralAdvantageEstimation
from ray.rllib.core import DEFAULT_MODULE_ID
from ray.rllib.core.columns import Columns
from ray.rllib.core.learner.torch.torch_learner import TorchLearner
from ray.rllib.core.rl_module.apis import SelfSupervisedLossAPI
from ray.rllib.core.rl_module.torch import TorchRLModule
from torch.nn import functional as F

from aigcsched.algorithms.diffusion.denoiser import DiffusionActor

SHAPING_KINDS = ("none", "diffusion", "diffusion_potential")
REWARD_MODEL_PREFIX = "_reward_model_"
SETTINGS_KEY = "reward_shaping"  # in config.learner_config_dict
TARGETS = "reward_targets"  # batch column of the reward model: the labels
DATASET_ROWS = 50_000  # labelled rows kept per reward model (FIFO); also the cap on unfinished rows
NULL_ACTION_PROB = 0.5  # share of training rows whose action is dropped (for Phi(s))
X0_CLIP = 5.0  # the chain's x0 estimates, in normalized units (std of the targets)


def reward_model_id(module_id: str) -> str:
    return REWARD_MODEL_PREFIX + module_id


def is_reward_model_id(module_id: str) -> bool:
    return module_id.startswith(REWARD_MODEL_PREFIX)


def original_episode_id(episode_id: str) -> str:
    """The episode id without the "_<i>" suffixes PPO's AddOneTsToEpisodesAndTruncate appends."""
    return re.sub(r"(_\d+)+$", "", episode_id)


def observation_size(space: gym.Space) -> int:
    if not isinstance(space, gym.spaces.Box):
        raise ValueError(f"reward shaping needs a Box observation space, got {space}")
    return int(np.prod(space.shape))


def action_sizes(space: gym.Space) -> list[int]:
    """Sizes of the one-hot blocks encoding an action: [n] (Discrete) or nvec (1-d MultiDiscrete)."""
    if isinstance(space, gym.spaces.Discrete):
        return [int(space.n)]
    if isinstance(space, gym.spaces.MultiDiscrete) and space.nvec.ndim == 1:
        return [int(n) for n in space.nvec]
    raise ValueError(f"reward shaping needs a Discrete or 1-d MultiDiscrete action space, got {space}")


def potential_shaping(phi, phi_next, terminateds, discount):
    """gamma^n Phi(s') - Phi(s), with Phi of a terminal state = 0 (Ng et al. 1999)."""
    return discount * phi_next * (1.0 - terminateds.float()) - phi


def pearson(x: torch.Tensor, y: torch.Tensor) -> float | None:
    """Pearson correlation, or None where either side is constant."""
    x, y = x.double() - x.double().mean(), y.double() - y.double().mean()
    denom = float(torch.sqrt((x * x).sum() * (y * y).sum()))
    return float((x * y).sum()) / denom if denom > 1e-12 else None


class DiffusionRewardModel(TorchRLModule, SelfSupervisedLossAPI):
    """Conditional DDPM over a scalar reward; model_config: `steps` (T) and `width` (two layers)."""

    def setup(self):
        cfg = self.model_config or {}
        self.sizes = action_sizes(self.action_space)
        self.n_steps = int(cfg.get("steps", 5))
        width = int(cfg.get("width", 64))
        cond_dim = observation_size(self.observation_space) + sum(self.sizes)
        self.chain = DiffusionActor(
            cond_dim, 1, n_steps=self.n_steps, hidden=(width, width), stochastic=False, x0_clip=X0_CLIP
        )
        # Forward-noising constants sqrt(abar_t), sqrt(1 - abar_t), derived from the chain's own.
        sqrt_abar = 1.0 / self.chain.sqrt_recip_abar
        self.register_buffer("sqrt_abar", sqrt_abar, persistent=False)
        self.register_buffer("sqrt_1m_abar", self.chain.sqrt_recipm1_abar * sqrt_abar, persistent=False)
        # Running statistics of the targets (Chan et al.'s parallel Welford) and counters; buffers,
        # so they are checkpointed with the weights.
        for name in ("target_count", "target_mean", "target_m2"):
            self.register_buffer(name, torch.zeros((), dtype=torch.float64))
        self.register_buffer("num_labelled", torch.zeros((), dtype=torch.int64))
        self.register_buffer("num_updates", torch.zeros((), dtype=torch.int64))

    # --- targets

    def observe_targets(self, targets: np.ndarray) -> None:
        """Fold newly labelled targets into the running mean / variance and the row count."""
        n = len(targets)
        if n == 0:
            return
        mean, m2 = float(np.mean(targets)), float(np.var(targets)) * n
        count = float(self.target_count)
        delta, total = mean - float(self.target_mean), count + n
        self.target_mean.fill_(float(self.target_mean) + delta * n / total)
        self.target_m2.fill_(float(self.target_m2) + m2 + delta**2 * count * n / total)
        self.target_count.fill_(total)
        self.num_labelled += n

    def _std(self) -> torch.Tensor:
        var = self.target_m2 / self.target_count.clamp(min=1.0)
        return var.sqrt().clamp(min=1e-6).float()

    def ready(self, warmup_steps: int) -> bool:
        return int(self.num_labelled) >= warmup_steps and int(self.num_updates) > 0

    # --- network

    def condition(self, obs: torch.Tensor, actions: torch.Tensor | None, keep: torch.Tensor | None = None):
        """[flattened obs, action one-hots]; the null action (actions None, or keep == 0) is all zeros."""
        obs = obs.reshape(obs.shape[0], -1).float()
        if actions is None:
            return torch.cat([obs, obs.new_zeros(obs.shape[0], sum(self.sizes))], dim=-1)
        actions = actions.long().reshape(obs.shape[0], len(self.sizes))
        onehots = torch.cat([F.one_hot(actions[:, i], n) for i, n in enumerate(self.sizes)], dim=-1).float()
        if keep is not None:
            onehots = onehots * keep[:, None]
        return torch.cat([obs, onehots], dim=-1)

    def predict(self, obs: torch.Tensor, actions: torch.Tensor | None = None) -> torch.Tensor:
        """r_hat(s, a), or r_hat(s, null) without actions: the deterministic reverse chain, de-normalized."""
        x0 = self.chain(self.condition(obs, actions)).squeeze(-1)
        return self.target_mean.float() + self._std() * x0

    def _forward(self, batch: dict[str, Any], **kwargs) -> dict[str, Any]:
        return {"r_hat": self.predict(batch[Columns.OBS], batch.get(Columns.ACTIONS))}

    def _forward_train(self, batch: dict[str, Any], **kwargs) -> dict[str, Any]:
        x0 = ((batch[TARGETS].float() - self.target_mean.float()) / self._std()).unsqueeze(-1)
        n = x0.shape[0]
        i = torch.randint(0, self.n_steps, (n,), device=x0.device)  # chain index t - 1
        noise = torch.randn_like(x0)
        xt = self.sqrt_abar[i, None] * x0 + self.sqrt_1m_abar[i, None] * noise
        keep = (torch.rand(n, device=x0.device) >= NULL_ACTION_PROB).float()
        cond = self.condition(batch[Columns.OBS], batch[Columns.ACTIONS], keep)
        return {"eps_pred": self.chain.eps(xt, i, cond), "eps": noise}

    @staticmethod
    def denoising_loss(fwd_out: dict[str, Any]) -> torch.Tensor:
        return F.mse_loss(fwd_out["eps_pred"], fwd_out["eps"])

    def compute_self_supervised_loss(self, *, learner, module_id, config, batch, fwd_out, **kwargs):
        loss = self.denoising_loss(fwd_out)
        learner.metrics.log_value((module_id, "reward_model_loss"), loss.detach(), window=1)
        self.num_updates += 1
        return loss


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
        if kind not in SHAPING_KINDS[1:]:
            raise ValueError(f"unknown shaping kind {kind!r}; choose from {', '.join(SHAPING_KINDS[1:])}")
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


class RewardShapingLearner:
    """Mixin for a TorchLearner (PPO's, SAC's, DSAC's): adds a reward model per policy module, the
    two connector pieces, and the reward model's own optimizer step."""

    def _shaping(self) -> dict:
        return self.config.learner_config_dict[SETTINGS_KEY]

    def _make_module(self):
        module = super()._make_module()
        required = self.rl_module_required_apis()
        self._shaped_ids = [
            mid
            for mid in module.keys()
            if not is_reward_model_id(mid) and all(isinstance(module[mid], api) for api in required)
        ]
        if not self._shaped_ids:
            raise ValueError(f"reward shaping found no module implementing {[api.__name__ for api in required]}")
        settings = self._shaping()
        for mid in self._shaped_ids:
            policy = module[mid]
            if policy.is_stateful():
                raise ValueError(f"reward shaping does not support stateful (recurrent) modules, got {mid!r}")
            if reward_model_id(mid) not in module:
                model = DiffusionRewardModel(
                    observation_space=policy.observation_space,
                    action_space=policy.action_space,
                    learner_only=True,
                    model_config={"steps": settings["steps"], "width": settings["width"]},
                )
                module.add_module(reward_model_id(mid), model)
        self._map_module_to_device(module)
        return module

    def build(self) -> None:
        super().build()
        settings, pipeline = self._shaping(), self._learner_connector
        if pipeline is None or not self.config.add_default_connectors_to_learner_pipeline:
            raise ValueError("reward shaping needs the learner connector pipeline with RLlib's default pieces")
        datasets = {mid: LabelledRows(settings["dataset_rows"]) for mid in self._shaped_ids}
        # First: the episodes as sampled (real ends, ids, no artificial step).
        pipeline.prepend(EpisodeOutcomeLabeller(datasets=datasets, max_open_rows=settings["dataset_rows"]))
        classes = [type(c) for c in pipeline.connectors]
        needs_next_obs = settings["kind"] == "diffusion_potential"  # Phi(s'); SAC's pipeline has s' already
        if needs_next_obs and AddNextObservationsFromEpisodesToTrainBatch not in classes:
            pipeline.insert_after(AddObservationsFromEpisodesToBatch, AddNextObservationsFromEpisodesToTrainBatch())
        shaping = DiffusionRewardShaping(
            kind=settings["kind"],
            eta=settings["eta"],
            gamma=self.config.gamma,
            warmup_steps=settings["warmup_steps"],
            datasets=datasets,
            seed=self.config.seed,
        )
        if GeneralAdvantageEstimation in classes:
            pipeline.insert_before(GeneralAdvantageEstimation, shaping)
        else:
            pipeline.append(shaping)

    def configure_optimizers_for_module(self, module_id, config=None) -> None:
        if not is_reward_model_id(module_id):
            return super().configure_optimizers_for_module(module_id, config)
        params = self.get_parameters(self.module[module_id])
        self.register_optimizer(
            module_id=module_id,
            optimizer_name="reward_model",
            optimizer=torch.optim.Adam(params),
            params=params,
            lr_or_lr_schedule=self._shaping()["lr"],
        )

    def should_module_be_updated(self, module_id, multi_agent_batch=None):
        return is_reward_model_id(module_id) or super().should_module_be_updated(module_id, multi_agent_batch)

    def compute_gradients(self, loss_per_module, **kwargs):
        # The algorithm's own gradient step sees only its modules (SAC's looks up a loss per
        # optimizer); each reward model's loss is back-propagated separately into its own net.
        own = {mid: loss for mid, loss in loss_per_module.items() if is_reward_model_id(mid)}
        rest = {mid: loss for mid, loss in loss_per_module.items() if mid not in own}
        grads = super().compute_gradients(rest, **kwargs) if rest else {}
        # TorchLearner returns every parameter's grad, None for a reward model without a batch yet.
        grads = {pid: g for pid, g in grads.items() if g is not None}
        for mid, loss in own.items():
            for _, optimizer in self.get_optimizers_for_module(mid):
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                grads.update(
                    {pid: p.grad for pid, p in self.filter_param_dict_for_optimizer(self._params, optimizer).items()}
                )
        return grads


_SHAPING_LEARNERS: dict[type, type] = {}


def shaping_learner_class(base: type) -> type:
    """`base` (a TorchLearner subclass) with RewardShapingLearner mixed in (one class per base)."""
    if issubclass(base, RewardShapingLearner):
        return base
    if not issubclass(base, TorchLearner):
        raise ValueError(f"reward shaping needs a torch Learner, got {base.__name__}")
    if base not in _SHAPING_LEARNERS:
        _SHAPING_LEARNERS[base] = type(f"{base.__name__}WithRewardShaping", (RewardShapingLearner, base), {})
    return _SHAPING_LEARNERS[base]


def _number(name: str, value: Any, *, integer: bool = False, minimum: float = 0.0, strict: bool = True):
    ok_type = isinstance(value, numbers.Integral if integer else numbers.Real)
    if isinstance(value, bool) or not ok_type or not math.isfinite(value):
        kind = "an integer" if integer else "a finite number"
        raise ValueError(f"{name} must be {kind}, got {value!r}")
    if value < minimum or (strict and value == minimum):
        raise ValueError(f"{name} must be {'>' if strict else '>='} {minimum}, got {value!r}")
    return value


def add_reward_shaping(
    config: AlgorithmConfig,
    *,
    kind: str,
    eta: float = 0.4,
    steps: int = 5,
    width: int = 64,
    warmup_steps: int = 1000,
    lr: float = 1e-3,
) -> AlgorithmConfig:
    """Turn on diffusion-aided reward shaping in a PPOConfig or SACConfig / DSACConfig (single- or
    multi-agent); returns the same config. `kind`: none (no-op), diffusion (r + eta r_hat(s, a)) or
    diffusion_potential (r + gamma Phi(s') - Phi(s), Phi = eta r_hat(s, null)). `steps` (T) and
    `width` size the reward model's denoiser, `lr` its Adam. Warm-up is counted in labelled rows
    (steps of finished episodes, the only ones that carry a target): a module's rewards are shaped
    once its reward model has `warmup_steps` of them over its lifetime and has taken an update.
    Call it after the rest of the config (it sets the learner class).
    """
    if kind not in SHAPING_KINDS:
        raise ValueError(f"unknown reward shaping kind {kind!r}; choose from {', '.join(SHAPING_KINDS)}")
    settings = {
        "kind": kind,
        "eta": float(_number("eta", eta)),
        "steps": int(_number("steps", steps, integer=True, minimum=1, strict=False)),
        "width": int(_number("width", width, integer=True, minimum=1, strict=False)),
        "warmup_steps": int(_number("warmup_steps", warmup_steps, integer=True, strict=False)),
        "lr": float(_number("lr", lr)),
        "dataset_rows": DATASET_ROWS,
    }
    if kind == "none":
        return config
    if not isinstance(config, PPOConfig | SACConfig):
        raise ValueError(f"reward shaping works with PPO and SAC/DSAC configs, got {type(config).__name__}")
    if not config.enable_rl_module_and_learner or config.framework_str != "torch":
        raise ValueError("reward shaping needs RLlib's new API stack (RLModule and Learner) with torch")
    if config.num_aggregator_actors_per_learner:
        raise ValueError("reward shaping needs the learner connector on the learner (no aggregator actors)")
    return config.learners(
        learner_class=shaping_learner_class(config.learner_class), learner_config_dict={SETTINGS_KEY: settings}
    )
