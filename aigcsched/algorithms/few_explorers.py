"""Exploring a few agents at a time: the others act greedily, as they will when evaluated.

A policy shared by agents that decide at once is evaluated greedily, and a greedy policy can hold
conventions the agents rely on (deterministic tie-breaks each can predict of the others: what
makes `mec`'s `anticipating_myopic` good). PPO trains the sampled policy among agents that all
sample too, which is another game than the greedy one it is judged in. With `explorers` set to a
share, each agent slot samples its action with that probability at each step and takes its greedy
action otherwise; only the sampled steps enter PPO's loss (the greedy ones are not drawn from the
policy, so they are masked out, value loss included), and GAE still runs over every step, so a
sampled step's advantage is what deviating once is worth among agents that act greedily.

- `FewExplorersMixin`: a TorchRLModule mixin whose exploration forward picks the actions (and
  their log-probabilities) itself when `model_config["explorers"]` is set; RLlib's GetActions then
  passes them through, and the flag travels to the episodes as the `explored` column.
- `FewExplorersPPOLearner`: PPO's torch learner with the loss masked to the sampled steps.
"""

from __future__ import annotations

from typing import Any

import torch
from ray.rllib.algorithms.ppo.torch.ppo_torch_learner import PPOTorchLearner
from ray.rllib.core.columns import Columns

EXPLORED = "explored"  # 1.0 where the slot sampled its action, 0.0 where it took the greedy one
MODEL_CONFIG_KEY = "explorers"


def pick_actions(out: dict[str, Any], dist_class: Any, share: float) -> dict[str, Any]:
    """`out` with actions: sampled with probability `share` per row, else the greedy action; their
    log-probabilities under the (sampling) distribution, and the `explored` flags."""
    dist = dist_class.from_logits(out[Columns.ACTION_DIST_INPUTS])
    sampled, greedy = dist.sample(), dist.to_deterministic().sample()
    explored = torch.rand(sampled.shape[0], device=sampled.device) < share
    pick = explored.reshape(-1, *([1] * (sampled.dim() - 1)))  # one flag per row, also for MultiDiscrete
    actions = torch.where(pick, sampled, greedy)
    return {**out, Columns.ACTIONS: actions, Columns.ACTION_LOGP: dist.logp(actions), EXPLORED: explored.float()}


class FewExplorersMixin:
    """For a TorchRLModule whose `_forward` returns action-distribution inputs: with
    `model_config["explorers"]` set, exploration samples only that share of the rows."""

    def _forward_exploration(self, batch: dict[str, Any], **kwargs) -> dict[str, Any]:
        out = self._forward(batch, **kwargs)
        share = (self.model_config or {}).get(MODEL_CONFIG_KEY)
        if share is None:
            return out
        return pick_actions(out, self.get_exploration_action_dist_cls(), share)


class FewExplorersPPOLearner(PPOTorchLearner):
    """PPO whose loss counts only the steps at which the agent sampled its action (`explored`)."""

    def compute_loss_for_module(self, *, module_id, config, batch, fwd_out):
        if EXPLORED in batch:
            mask = batch[EXPLORED] > 0
            if Columns.LOSS_MASK in batch:
                mask = mask & batch[Columns.LOSS_MASK]
            if not bool(mask.any()):  # no sampled step in this minibatch: nothing to learn (PPO's mean is 0 / 0)
                return fwd_out[Columns.ACTION_DIST_INPUTS].sum() * 0.0
            batch = {**batch, Columns.LOSS_MASK: mask}
        return super().compute_loss_for_module(module_id=module_id, config=config, batch=batch, fwd_out=fwd_out)
