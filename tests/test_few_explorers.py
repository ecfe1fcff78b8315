"""Exploring a few agent slots at a time (`algorithm.explorers`): the others act greedily and are
left out of PPO's loss."""

from pathlib import Path

import numpy as np
import pytest
import torch
from ray.rllib.algorithms.ppo.torch.ppo_torch_learner import PPOTorchLearner
from ray.rllib.core.columns import Columns
from ray.rllib.core.distribution.torch.torch_distribution import TorchCategorical, TorchMultiCategorical

from aigcsched.algorithms import few_explorers
from aigcsched.algorithms.few_explorers import EXPLORED, FewExplorersPPOLearner, pick_actions
from aigcsched.platform.config import ConfigError, load_experiment
from aigcsched.platform.training import train

CONFIGS = Path(__file__).resolve().parents[1] / "configs"


def test_unexplored_rows_take_the_greedy_action_and_explored_rows_sample():
    torch.manual_seed(0)
    logits = torch.zeros(4000, 6)
    logits[:, 2] = 0.5  # the greedy action, but not much more likely than the others
    out = pick_actions({Columns.ACTION_DIST_INPUTS: logits}, TorchCategorical, share=0.3)
    explored = out[EXPLORED].bool()
    assert out[EXPLORED].dtype == torch.float32 and 0.27 < explored.float().mean() < 0.33
    actions = out[Columns.ACTIONS]
    assert (actions[~explored] == 2).all()
    assert (actions[explored] != 2).float().mean() > 0.5  # sampled: mostly other actions
    expected = TorchCategorical.from_logits(logits).logp(actions)
    assert torch.equal(out[Columns.ACTION_LOGP], expected)


def test_a_multi_discrete_row_explores_or_not_as_a_whole():
    torch.manual_seed(1)
    dist = TorchMultiCategorical.get_partial_dist_cls(input_lens=[3, 3, 3])
    logits = torch.zeros(2000, 9)
    logits[:, [0, 4, 8]] = 1.0  # greedy: (0, 1, 2)
    out = pick_actions({Columns.ACTION_DIST_INPUTS: logits}, dist, share=0.5)
    explored = out[EXPLORED].bool()
    actions = out[Columns.ACTIONS]
    assert actions.shape == (2000, 3)
    assert (actions[~explored] == torch.tensor([0, 1, 2])).all()
    assert (actions[explored] != torch.tensor([0, 1, 2])).any(dim=1).float().mean() > 0.5


def test_the_loss_counts_only_the_explored_steps(monkeypatch):
    seen = {}

    def base_loss(self, *, module_id, config, batch, fwd_out):
        seen.update(batch)
        return torch.tensor(0.0)

    monkeypatch.setattr(PPOTorchLearner, "compute_loss_for_module", base_loss)
    learner = FewExplorersPPOLearner.__new__(FewExplorersPPOLearner)  # no module needed: the base is stubbed
    batch = {EXPLORED: torch.tensor([1.0, 0.0, 1.0, 1.0]), Columns.LOSS_MASK: torch.tensor([True, True, True, False])}
    learner.compute_loss_for_module(module_id="p", config=None, batch=batch, fwd_out={})
    assert seen[Columns.LOSS_MASK].tolist() == [True, False, True, False]  # PPO's own mask kept
    learner.compute_loss_for_module(module_id="p", config=None, batch={EXPLORED: torch.tensor([0.0, 1.0])}, fwd_out={})
    assert seen[Columns.LOSS_MASK].tolist() == [False, True]
    # a minibatch without a sampled step: a zero loss that keeps the graph, not PPO's 0 / 0
    seen.clear()
    logits = torch.ones(3, 4, requires_grad=True)
    loss = learner.compute_loss_for_module(
        module_id="p", config=None, batch={EXPLORED: torch.zeros(3)}, fwd_out={Columns.ACTION_DIST_INPUTS: logits}
    )
    assert not seen and loss.item() == 0.0 and loss.requires_grad


def test_mec_trains_with_a_few_explorers_and_the_flags_reach_the_loss(store, monkeypatch):
    shares = []
    original = FewExplorersPPOLearner.compute_loss_for_module

    def recording(self, *, module_id, config, batch, fwd_out):
        shares.append(float(batch[EXPLORED].float().mean()))
        return original(self, module_id=module_id, config=config, batch=batch, fwd_out=fwd_out)

    monkeypatch.setattr(few_explorers.FewExplorersPPOLearner, "compute_loss_for_module", recording)
    values = {
        "env.config.n_servers": 3,
        "env.config.episode_slots": 10,
        "resources.num_envs_per_env_runner": 2,
        "algorithm.hidden": 16,
        "algorithm.diffusion_steps": 2,
        "algorithm.train_batch_size": 200,
        "algorithm.minibatch_size": 200,
        "algorithm.num_epochs": 1,
        "algorithm.central_critic": True,
        "algorithm.explorers": 0.5,
        "evaluation.episodes": 1,
        "tracking.experiment": "mec-test",
        "tracking.register_model": False,
        "stop": {"iterations": 1},
    }
    outcome = train(load_experiment(CONFIGS / "mec_ppo.yaml", values))
    assert np.isfinite(outcome.evaluation["trained"]["mean_delay"])
    assert shares and all(0.3 < s < 0.7 for s in shares)  # about half the slots sampled


@pytest.mark.parametrize(
    "override",
    [
        {"resources.sampler": "multi_agent"},
        {"algorithm.module": "default", "algorithm.anchor_scale": 0.0},
    ],
)
def test_explorers_need_a_project_module_on_the_agent_slots_sampler(override):
    with pytest.raises(ConfigError, match="algorithm.explorers needs PPO with module diffusion, mlp or mec_scheduler"):
        load_experiment(CONFIGS / "mec_ppo.yaml", {"algorithm.explorers": 0.2, **override})
    with pytest.raises(ConfigError, match="algorithm.explorers"):
        load_experiment(CONFIGS / "mec_ppo.yaml", {"algorithm.explorers": 1.5})
