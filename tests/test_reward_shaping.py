import copy

import gymnasium as gym
import numpy as np
import pytest
import torch
from pydantic import ValidationError
from ray.rllib.algorithms.ppo import PPOConfig
from ray.rllib.core import DEFAULT_MODULE_ID
from ray.rllib.core.columns import Columns
from ray.rllib.env.single_agent_episode import SingleAgentEpisode

from aigcsched.algorithms.reward_shaping import (
    GROUPS,
    LENGTHS,
    TARGETS,
    DiffusionRewardModel,
    DiffusionRewardShaping,
    EpisodeOutcomeLabeller,
    LabelledRows,
    RewardShapingConfig,
    add_reward_shaping,
    decomposition_loss,
    is_reward_model_id,
    pearson,
    reward_model_id,
)
from aigcsched.envs.rllib_adapter import DataCenterRLlibEnv

RM = reward_model_id(DEFAULT_MODULE_ID)


@pytest.fixture(scope="module", autouse=True)
def one_torch_thread():
    # Tiny networks: one thread is faster than two contending ones on a busy 2-core machine.
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


class SparseCountEnv(gym.Env):
    """8 steps; pays (number of 1-actions) / 8 at the last step only."""

    LENGTH = 8

    def __init__(self, config=None):
        self.observation_space = gym.spaces.Box(0.0, 1.0, (3,), np.float32)
        self.action_space = gym.spaces.Discrete(2)

    def _obs(self):
        return np.array([self.t / self.LENGTH, self.ones / self.LENGTH, 1.0], np.float32)

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self.t = self.ones = 0
        return self._obs(), {}

    def step(self, action):
        self.t, self.ones = self.t + 1, self.ones + int(action)
        done = self.t >= self.LENGTH
        return self._obs(), self.ones / self.LENGTH if done else 0.0, done, False, {}


class RecordingDataCenterEnv(DataCenterRLlibEnv):
    """The datacenter env, recording every finished episode's return (summed over agents) itself."""

    returns: list[float] = []

    def reset(self, *, seed=None, options=None):
        self._return = 0.0
        return super().reset(seed=seed, options=options)

    def step(self, action_dict):
        obs, rewards, terminateds, truncateds, infos = super().step(action_dict)
        self._return += sum(rewards.values())
        if terminateds["__all__"] or truncateds["__all__"]:
            RecordingDataCenterEnv.returns.append(self._return)
        return obs, rewards, terminateds, truncateds, infos


def reward_model(obs_dim=3, n_actions=2, **model_config):
    return DiffusionRewardModel(
        observation_space=gym.spaces.Box(-1.0, 1.0, (obs_dim,), np.float32),
        action_space=gym.spaces.Discrete(n_actions),
        learner_only=True,
        model_config={"steps": 5, "width": 64, **model_config},
    )


def episode(id_, obs, actions, rewards, t_started=0, terminated=False):
    return SingleAgentEpisode(
        id_=id_,
        observations=list(obs),
        actions=list(actions),
        rewards=list(rewards),
        terminated=terminated,
        t_started=t_started,
        len_lookback_buffer=0,
    )


def test_bad_settings_are_clear_errors_and_kind_none_is_a_no_op():
    from ray.rllib.algorithms.appo import APPOConfig

    for values, match in [
        ({"kind": "magic"}, "kind"),
        ({"kind": "diffusion", "eta": 0.0}, "eta"),
        ({"kind": "diffusion", "eta": float("nan")}, "eta"),
        ({"kind": "diffusion", "steps": 0}, "steps"),
        ({"kind": "diffusion", "steps": 2.5}, "steps"),
        ({"kind": "diffusion", "width": True}, "width"),
        ({"kind": "diffusion", "warmup_steps": -1}, "warmup_steps"),
        ({"kind": "diffusion", "lr": -1e-3}, "lr"),
        ({"kind": "none", "eta": -1.0}, "eta"),
        ({"kind": "diffusion", "etta": 0.4}, "etta"),
    ]:
        with pytest.raises(ValidationError, match=match):
            RewardShapingConfig(**values)
        with pytest.raises(ValidationError, match=match):
            add_reward_shaping(PPOConfig(), values)  # a plain dict goes through the same validation
    with pytest.raises(ValueError, match="PPO and SAC"):
        add_reward_shaping(APPOConfig(), RewardShapingConfig(kind="diffusion"))
    config = PPOConfig()
    assert add_reward_shaping(config, RewardShapingConfig(kind="none")) is config
    assert config.learner_class is PPOConfig().learner_class and "reward_shaping" not in config.learner_config_dict
    shaped = add_reward_shaping(PPOConfig(), RewardShapingConfig(kind="diffusion_potential", eta=0.2))
    assert shaped.learner_config_dict["reward_shaping"]["kind"] == "diffusion_potential"
    assert shaped.learner_config_dict["reward_shaping"]["eta"] == 0.2
    not_twice = add_reward_shaping(shaped, RewardShapingConfig(kind="diffusion"))
    assert not_twice.learner_class is shaped.learner_class  # not wrapped twice


def test_a_zero_weight_is_rejected_naming_eta():
    with pytest.raises(ValidationError, match="eta") as err:
        RewardShapingConfig(kind="diffusion", eta=0)
    assert [e["loc"] for e in err.value.errors()] == [("eta",)]
    assert "kind: none" in RewardShapingConfig.model_fields["eta"].description  # what to write instead


def test_curiosity_adds_rllibs_novelty_piece_to_the_learner_pipeline():
    from ray.rllib.connectors.common.add_observations_from_episodes_to_batch import AddObservationsFromEpisodesToBatch
    from ray.rllib.examples.connectors.classes.euclidian_distance_based_curiosity import (
        EuclidianDistanceBasedCuriosity,
    )

    base = PPOConfig().environment(SparseCountEnv).rl_module(model_config={"fcnet_hiddens": [8]}).debugging(seed=0)
    config = add_reward_shaping(copy.deepcopy(base), RewardShapingConfig(kind="curiosity", eta=0.05))
    assert config.learner_class is base.learner_class and "reward_shaping" not in config.learner_config_dict
    learner = config.build_learner(env=SparseCountEnv())
    pieces = learner._learner_connector.connectors
    found = [i for i, p in enumerate(pieces) if isinstance(p, EuclidianDistanceBasedCuriosity)]
    assert len(found) == 1 and pieces[found[0]].intrinsic_reward_coeff == 0.05 and RM not in learner.module
    # Its bonus goes into the episodes' rewards, so it must run before any batch column is built from them.
    assert found[0] < [type(p) for p in pieces].index(AddObservationsFromEpisodesToBatch)


def test_curiosity_keeps_adding_its_bonus_after_the_example_pieces_eleventh_call():
    from ray.rllib.env.single_agent_episode import SingleAgentEpisode

    from aigcsched.algorithms.reward_shaping.configure import ContinuingCuriosity

    piece = ContinuingCuriosity(intrinsic_reward_coeff=1.0)
    for call in range(15):
        # each episode visits a new point, so its distance to the stored ones is positive
        obs = [np.full(2, float(call + 1), dtype=np.float32), np.zeros(2, dtype=np.float32)]
        episode = SingleAgentEpisode(observations=obs, actions=[0], rewards=[0.0], len_lookback_buffer=0)
        piece(rl_module=None, batch={}, episodes=[episode])
        bonus = episode.get_rewards()[0]
        assert (bonus > 0) == (call > 0), (call, bonus)  # the first episode has nothing stored to compare with


def test_reward_model_learns_a_synthetic_reward_and_its_action_free_mean():
    torch.manual_seed(0)
    rng = np.random.default_rng(0)
    obs = rng.uniform(-1, 1, (256, 3)).astype(np.float32)
    actions = rng.integers(0, 3, 256)
    target = 10.0 + 2.0 * obs[:, 0] + 1.5 * (actions == 1) - obs[:, 1] * (actions == 2)
    model = reward_model(n_actions=3)
    model.observe_targets(target.astype(np.float32))
    assert float(model.target_mean) == pytest.approx(target.mean()) and int(model.num_labelled) == 256
    batch = {
        Columns.OBS: torch.from_numpy(obs),
        Columns.ACTIONS: torch.from_numpy(actions),
        TARGETS: torch.tensor(target),
    }
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)
    losses = []
    for _ in range(150):
        loss = model.denoising_loss(model.forward_train(batch))
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert np.mean(losses[-20:]) < 0.5 * np.mean(losses[:20])
    with torch.no_grad():
        r_hat = model.predict(batch[Columns.OBS], batch[Columns.ACTIONS])
        phi = model.predict(batch[Columns.OBS])  # the null action: E_a[r | s]
        assert torch.equal(r_hat, model.predict(batch[Columns.OBS], batch[Columns.ACTIONS]))  # deterministic
    assert pearson(r_hat, batch[TARGETS]) > 0.9
    assert pearson(phi, torch.tensor(10.0 + 2.0 * obs[:, 0] + 0.5 - obs[:, 1] / 3)) > 0.9


def train_on_one_deciding_action(labels, iterations=200):
    """A toy episode of 8 steps (the observation: the step's one-hot) whose return is 1 when the
    action at step 3 is 1, else 0; no other action matters. A reward model trained on 200 random
    episodes; returns it with the steps' observations."""
    torch.manual_seed(0)
    rng = np.random.default_rng(0)
    length, obs = 8, np.eye(8, dtype=np.float32)
    model = DiffusionRewardModel(
        observation_space=gym.spaces.Box(0.0, 1.0, (length,), np.float32),
        action_space=gym.spaces.Discrete(2),
        learner_only=True,
        model_config={"steps": 5, "width": 32, "labels": labels, "null_action": False},
    )
    rows = LabelledRows()
    for _ in range(200):
        actions = rng.integers(0, 2, length)
        model.observe_targets(rows.add_episode(obs, actions, float(actions[3]), length))
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)
    for _ in range(iterations):
        if labels == "uniform":
            columns, names = rows.sample(256, rng), (Columns.OBS, Columns.ACTIONS, TARGETS)
        else:
            columns = rows.sample_subsets(256, 4, rng)  # 64 subsets of 4 of an episode's 8 steps
            names = (Columns.OBS, Columns.ACTIONS, TARGETS, GROUPS, LENGTHS)
        batch = {name: torch.from_numpy(column) for name, column in zip(names, columns, strict=True)}
        fwd_out = model.forward_train(batch)
        loss = model.uniform_loss(fwd_out) if labels == "uniform" else model.decomposition_loss(fwd_out, batch)[0]
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    return model, torch.from_numpy(obs)


@pytest.mark.parametrize("labels", ["decomposition", "uniform"])
def test_decomposition_credits_the_one_action_that_decides_the_return(labels):
    model, obs = train_on_one_deciding_action(labels)
    with torch.no_grad():
        won = model.predict(obs, torch.ones(8, dtype=torch.long))  # every action 1: return 1
        rng = np.random.default_rng(1)
        episodes = [rng.integers(0, 2, 8) for _ in range(40)]
        sums = torch.stack([model.predict(obs, torch.from_numpy(a)).sum() for a in episodes])
    returns = torch.tensor([float(a[3]) for a in episodes])
    others = float(won.sum() - won[3])
    if labels == "uniform":
        # return / length on every step: the deciding step gets no more than its share
        assert float(won[3]) < others, won
        return
    assert float(won[3]) > 0.5 and float(won[3]) > others, won
    # the sum over an episode tracks its return
    assert pearson(sums, returns) > 0.95 and float((sums - returns).abs().mean()) < 0.15


def test_decomposition_loss_is_the_subset_error_less_its_sampling_variance():
    r_hat = torch.tensor([1.0, 3.0, 0.0, 2.0, 4.0])
    targets = torch.tensor([1.5, 1.5, 1.0, 1.0, 1.0])
    groups, lengths = torch.tensor([7, 7, 2, 2, 2]), torch.tensor([4, 4, 6, 6, 6])
    loss, plain = decomposition_loss(r_hat, targets, groups, lengths, bias_correction=True)
    # group 7: mean 2, error 0.25, s^2 = 2, correction (1 - 2/4) * 2 / 2 = 0.5; group 2: mean 2, error 1,
    # s^2 = 4, correction (1 - 3/6) * 4 / 3
    assert float(plain) == pytest.approx((0.25 + 1.0) / 2)
    assert float(loss) == pytest.approx((0.25 - 0.5 + 1.0 - 2.0 / 3.0) / 2)
    assert torch.equal(decomposition_loss(r_hat, targets, groups, lengths, bias_correction=False)[0], plain)


def test_labeller_spreads_each_episodes_reward_over_its_steps():
    model = reward_model()
    rows = LabelledRows()
    labeller = EpisodeOutcomeLabeller(datasets={DEFAULT_MODULE_ID: rows})

    def call(*episodes):
        labeller(rl_module={RM: model}, batch={}, episodes=list(episodes))

    obs = np.arange(21, dtype=np.float32).reshape(7, 3)
    # Two chunks of one episode, ids suffixed as by PPO's AddOneTsToEpisodesAndTruncate.
    call(episode("ep_0", obs[:4], [0, 1, 1], [0.0, 0.0, 0.0]))
    assert rows.size == 0
    call(episode("ep_1", obs[3:], [1, 0, 0], [0.0, 0.0, 6.0], t_started=3, terminated=True))
    got_obs, got_actions, targets = rows.sample(100, np.random.default_rng(0))
    order = np.argsort(got_obs[:, 0])
    assert np.array_equal(got_obs[order], obs[:6]) and np.array_equal(got_actions[order], [0, 1, 1, 1, 0, 0])
    assert np.allclose(targets, 1.0)  # 6 paid at the end of 6 steps
    assert int(model.num_labelled) == 6 and float(model.target_mean) == pytest.approx(1.0)

    # Replay: transitions sampled out of order and twice; exact for a reward paid only at the end.
    replay = LabelledRows()
    labeller = EpisodeOutcomeLabeller(datasets={DEFAULT_MODULE_ID: replay})
    call(episode("r", obs[4:6], [1], [0.0], t_started=4))
    call(episode("r", obs[1:3], [0], [0.0], t_started=1), episode("r", obs[4:6], [1], [0.0], t_started=4))
    call(episode("r", obs[5:7], [0], [6.0], t_started=5, terminated=True))
    assert replay.size == 3 and np.allclose(replay.sample(10, np.random.default_rng(0))[2], 1.0)

    # Unfinished episodes are capped: the least recently seen one is dropped.
    capped = LabelledRows()
    labeller = EpisodeOutcomeLabeller(datasets={DEFAULT_MODULE_ID: capped}, max_open_rows=4)
    call(episode("a", obs[:4], [0, 0, 0], [1.0, 1.0, 1.0]))
    call(episode("b", obs[:4], [0, 0, 0], [0.0, 0.0, 0.0]))
    call(episode("a", obs[3:5], [0], [1.0], t_started=3, terminated=True))
    assert capped.size == 1 and np.allclose(capped.sample(10, np.random.default_rng(0))[2], 0.25)


def test_labelled_rows_keep_the_most_recent_rows():
    rows = LabelledRows(capacity=5)
    for start in (0, 3, 6):
        values = np.arange(start, start + 3)
        rows.add(values[:, None].astype(np.float32), values, values.astype(np.float32))
    assert rows.size == 5 and sorted(rows.sample(10, np.random.default_rng(0))[2]) == [4, 5, 6, 7, 8]
    # subsets: each group from one episode (the first one's remaining rows 4, 5, or the second's 6, 7, 8)
    obs, _, _, groups, lengths = rows.sample_subsets(8, 2, np.random.default_rng(0))
    assert len(set(groups)) == 4 and len(obs) <= 8
    for g in set(groups):
        values = set(obs[groups == g, 0])
        assert len(values) == min(2, np.sum(groups == g)) and (values <= {4, 5} or values <= {6, 7, 8})
    assert np.all(lengths == 3)


@pytest.mark.parametrize("terminated", [True, False], ids=["terminated", "truncated"])
def test_potential_shaping_terms_telescope_over_an_episode(terminated):
    torch.manual_seed(1)
    model = reward_model(steps=3, width=16)
    model.observe_targets(np.array([0.5, 3.0], np.float32))
    model.num_updates += 1
    gamma, eta, n = 0.9, 0.4, 6
    states = torch.randn(n + 1, 3)
    batch = {
        Columns.OBS: states[:-1],
        Columns.NEXT_OBS: states[1:],
        Columns.ACTIONS: torch.randint(0, 2, (n,)),
        Columns.REWARDS: torch.zeros(n),
        Columns.TERMINATEDS: torch.tensor([False] * (n - 1) + [terminated]),
    }
    piece = DiffusionRewardShaping(
        kind="diffusion_potential", eta=eta, gamma=gamma, warmup_steps=0, datasets={"p": LabelledRows()}
    )
    out = piece(rl_module={reward_model_id("p"): model}, batch={"p": dict(batch)}, episodes=[])
    shaping = out["p"][Columns.REWARDS]
    with torch.no_grad():
        phi = eta * model.predict(states)
    assert torch.all(shaping != 0)
    discounted = float((gamma ** torch.arange(n) * shaping).sum())
    # sum_t gamma^t (gamma Phi(s_t+1) - Phi(s_t)) = gamma^n Phi(s_n) - Phi(s_0), Phi(terminal) = 0
    expected = -float(phi[0]) + (0.0 if terminated else gamma**n * float(phi[n]))
    assert discounted == pytest.approx(expected, abs=1e-5)


def test_learner_pipeline_shapes_rewards_only_when_on_and_leaves_the_episodes_alone():
    from ray.rllib.env.single_agent_env_runner import SingleAgentEnvRunner

    base = (
        PPOConfig()
        .environment(SparseCountEnv)
        .env_runners(num_env_runners=0)
        .rl_module(model_config={"fcnet_hiddens": [8]})
        .debugging(seed=0)
    )
    runner = SingleAgentEnvRunner(config=base)
    sampled = runner.sample(num_episodes=3, random_actions=True)
    runner.stop()
    env_rewards = [e.get_rewards().copy() for e in sampled]

    def run(config):
        learner = config.build_learner(env=SparseCountEnv())
        episodes = copy.deepcopy(sampled)
        if "reward_shaping" in config.learner_config_dict:
            learner.module[RM].num_updates += 1  # as after a first update
        batch = learner._learner_connector(
            rl_module=learner.module, batch={}, episodes=episodes, shared_data={}, metrics=learner.metrics
        )
        return learner, batch

    # Rows: each episode's 8 steps, then PPO's artificial step (reward 0, loss mask False).
    unshaped = np.concatenate([np.append(r, 0.0) for r in env_rewards])
    learner, batch = run(add_reward_shaping(copy.deepcopy(base), RewardShapingConfig(kind="none")))
    assert RM not in learner.module and set(batch) == {DEFAULT_MODULE_ID}
    assert np.array_equal(batch[DEFAULT_MODULE_ID][Columns.REWARDS].numpy(), unshaped)

    diffusion = RewardShapingConfig(kind="diffusion", eta=0.4, warmup_steps=0)
    learner, batch = run(add_reward_shaping(copy.deepcopy(base), diffusion))
    policy_batch, model = batch[DEFAULT_MODULE_ID], learner.module[RM]
    mask = policy_batch[Columns.LOSS_MASK].numpy()
    with torch.no_grad():
        r_hat = model.predict(policy_batch[Columns.OBS], policy_batch[Columns.ACTIONS]).numpy()
    shaped = policy_batch[Columns.REWARDS].numpy()
    assert np.allclose(shaped[mask], unshaped[mask] + 0.4 * r_hat[mask], atol=1e-6)
    assert np.array_equal(shaped[~mask], np.zeros(3)) and not np.allclose(shaped, unshaped)
    # The reward model's batch: the 24 labelled steps, each with its episode's return / 8.
    targets = np.sort(batch[RM][TARGETS].numpy())
    assert np.allclose(targets, np.sort(np.repeat([r.sum() / 8 for r in env_rewards], 8)))
    assert all(np.array_equal(e.get_rewards(), r) for e, r in zip(sampled, env_rewards, strict=True))
    # The reward model is checkpointed with the policy, its optimizer too.
    state = learner.get_state()
    assert RM in state["rl_module"] and any(RM in name for name in state["optimizer"])


@pytest.mark.parametrize(
    "kind, shared", [("diffusion", False), ("diffusion_potential", True)], ids=["diffusion", "potential"]
)
def test_ppo_trains_on_sparse_datacenter_and_reports_unshaped_returns(local_ray, kind, shared):
    slots, agents = 6, ("asp_0", "asp_1", "asp_2")
    policies = {"shared"} if shared else set(agents)

    def mapping(agent_id, *args, **kwargs):
        return "shared" if shared else agent_id

    config = (
        PPOConfig()
        .environment(RecordingDataCenterEnv, env_config={"episode_slots": slots, "reward_mode": "sparse"})
        .multi_agent(policies=policies, policy_mapping_fn=mapping)
        .env_runners(num_env_runners=0)
        .training(train_batch_size_per_learner=6 * slots, minibatch_size=6 * slots, num_epochs=1)
        .rl_module(model_config={"fcnet_hiddens": [16]})
        .debugging(seed=0)
    )
    algo = add_reward_shaping(config, RewardShapingConfig(kind=kind, steps=3, width=16, warmup_steps=12)).build_algo()
    try:
        assert not any(is_reward_model_id(m) for m in algo.env_runner.module.keys())  # learner only
        for iteration in (1, 2):
            seen = len(RecordingDataCenterEnv.returns)
            result = algo.train()
            returns = RecordingDataCenterEnv.returns[seen:]
            assert len(returns) == 6
            assert result["env_runners"]["episode_return_mean"] == pytest.approx(np.mean(returns))
            for policy in policies:
                learner, model = result["learners"][policy], result["learners"][reward_model_id(policy)]
                assert np.isfinite(learner["total_loss"]) and np.isfinite(model["reward_model_loss"])
                assert np.isfinite(model["r_hat_target_corr"])
                # Every step of the finished episodes is labelled: 6 per episode and agent of the policy.
                assert model["labelled_rows"] == iteration * 6 * slots * (len(agents) if shared else 1)
                # Iteration 1 trains the reward model; iteration 2 shapes with it.
                assert model["shaping_active"] == float(iteration == 2)
                assert (model["shaping_bonus_mean"] != 0.0) == (iteration == 2)
    finally:
        algo.stop()


def test_dsac_trains_with_shaping_on_mec(local_ray):
    from aigcsched.algorithms.diffusion.dsac import DSACConfig
    from aigcsched.envs.rllib_adapter import MECRLlibEnv

    config = (
        DSACConfig()
        .environment(MECRLlibEnv, env_config={"episode_slots": 8})
        .multi_agent(policies={"shared"}, policy_mapping_fn=lambda agent_id, *args, **kwargs: "shared")
        .env_runners(num_env_runners=0)
        .training(
            learn_alpha=False,
            initial_alpha=0.1,
            num_steps_sampled_before_learning_starts=16,
            train_batch_size_per_learner=32,
            replay_buffer_config={"type": "MultiAgentEpisodeReplayBuffer", "capacity": 1000},
        )
        .reporting(min_sample_timesteps_per_iteration=24)
        .rl_module(model_config={"n_steps": 2, "hidden": (16, 16), "fcnet_hiddens": [16]})
        .debugging(seed=0)
    )
    algo = add_reward_shaping(config, {"kind": "diffusion", "steps": 3, "width": 16, "warmup_steps": 8}).build_algo()
    try:
        for _ in range(2):
            result = algo.train()
        learner, model = result["learners"]["shared"], result["learners"][reward_model_id("shared")]
        for value in (learner["policy_loss"], learner["qf_loss"], learner["qf_twin_loss"], model["reward_model_loss"]):
            assert np.isfinite(float(np.asarray(value)))
        assert model["labelled_rows"] > 0 and model["shaping_active"] > 0
    finally:
        algo.stop()
