"""The per-server scored edge module decides as it did before its speed-up (commit 6787fde).

The reference below is that module's forward and value head, frozen as functions of a module's
parameters, with torch's Categorical as its distribution (what the module's distribution class
was). Float tolerance: the new forward sums the same terms in another order, so logits agree to a
few float32 roundings of the row's largest term, and an argmax may differ only where the reference's
own top two logits tie to within that (exact ties at a few steps, where Q(s) is flat in float32).
The value head is unchanged, bit for bit. Sampling draws from the same distribution with other
random numbers (an inverse CDF, not torch.multinomial's exponential race): tested statistically.
One change since, in the reference too: the weights are bounded so that lateness never scores
(`never_reward_lateness`), tested on its own below.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from ray.rllib.core.columns import Columns
from ray.rllib.core.rl_module.rl_module import RLModule, RLModuleSpec

from aigcsched.algorithms import edge_module
from aigcsched.algorithms.edge_module import EdgeSchedulerModule, _PairScores, edge_model_config
from aigcsched.envs import EdgeConfig, EdgeVectorEnv
from aigcsched.platform.problems.edge import EDGE

TOL = 1e-5
SCENARIOS = [
    {"n_servers": 10, "n_strong": 6, "max_steps": 200},
    {"n_servers": 4, "n_strong": 2, "max_steps": 200},
    {"n_servers": 10, "n_strong": 6, "max_steps": 50},
    {"n_servers": 4, "n_strong": 2, "max_steps": 50},
]


# --- the reference: the module's forward before the speed-up, verbatim but for `m.` -------------


def reference_parts(m, obs):
    J = m.n_servers
    busy, cap = obs[..., :J] / 20.0, obs[..., J : 2 * J] / 15.0
    due_in, probe = obs[..., 2 * J] / 20.0, obs[..., 2 * J + 1]
    kind = torch.nn.functional.one_hot(torch.argmin((probe[..., None] - m.probes).abs(), dim=-1), 3).float()
    return busy, cap, due_in, kind


def reference_logits(m, obs):
    J = m.n_servers
    busy_s, cap = obs[..., :J], obs[..., J : 2 * J]
    due_s = obs[..., 2 * J]
    busy, capn, due_in, kind = reference_parts(m, obs)
    finish = busy_s[..., None] + m.steps / cap[..., None]
    tardiness = torch.relu(finish - due_s[..., None, None])
    g = (
        kind[..., 0, None, None] * tardiness
        + kind[..., 1, None, None] * tardiness**2
        + kind[..., 2, None, None] * torch.sqrt(tardiness + 1e-12)
    )
    basis = torch.stack(
        [m.quality_feature.expand_as(finish), g / 10.0, tardiness / 10.0, finish / 30.0, torch.ones_like(finish)],
        dim=-1,
    )
    slack = due_in[..., None] - busy
    ten_steps = 10.0 / cap
    load = torch.stack([busy.mean(-1), busy.min(-1).values, busy.max(-1).values], dim=-1)
    server_x = torch.cat(
        [
            torch.stack([busy, capn, slack, ten_steps], dim=-1),
            kind[..., None, :].expand(*busy.shape, 3),
            load[..., None, :].expand(*busy.shape, 3),
        ],
        dim=-1,
    )
    w = m.weights_net(server_x)
    # lateness never scores: per second, w_penalty / 10 <= 0 and w_tardy / 10 + w_finish / 30 <= 0
    w1 = torch.clamp(w[..., 1], max=0.0)
    w2 = torch.minimum(w[..., 2], -w[..., 3] / 3.0)
    w = torch.stack([w[..., 0], w1, w2, w[..., 3], w[..., 4]], dim=-1)
    logits = m.model_config["logit_scale"] * (basis * w[..., None, :]).sum(-1)
    return logits.reshape(*logits.shape[:-2], J * m.max_steps)


def reference_values(m, obs):
    busy, cap, due_in, kind = reference_parts(m, obs)
    x = torch.cat([busy, cap, due_in[..., None], obs[..., -1:] / 10.0, kind], dim=-1)
    return m.model_config["value_scale"] * m.critic(x).squeeze(-1)


def reference_ppo_loss(m, obs, prev_logits, actions, old_logp):
    """PPOTorchLearner's loss (clip 0.2, kl_coeff 0.2, entropy_coeff 0.01 so that its gradient counts)."""
    cat = torch.distributions.Categorical
    flat = actions[..., 0] * m.max_steps + actions[..., 1]
    curr, prev = cat(logits=reference_logits(m, obs)), cat(logits=prev_logits)
    ratio = torch.exp(curr.log_prob(flat) - old_logp)
    # the KL from log-probabilities (finite; torch's Categorical KL is inf where a q underflows)
    kl = (prev.probs * (torch.log_softmax(prev_logits, -1) - torch.log_softmax(curr.logits, -1))).sum(-1)
    return _loss(ratio, kl, curr.entropy(), reference_values(m, obs))


def _loss(ratio, kl, entropy, values):
    surrogate = torch.min(_ADV * ratio, _ADV * torch.clamp(ratio, 0.8, 1.2))
    vf = torch.clamp((values - _TARGETS) ** 2, 0, 1e6)
    return torch.mean(-surrogate + vf - 0.01 * entropy) + 0.2 * kl.mean()


_GEN = torch.Generator().manual_seed(0)
_ADV, _TARGETS = torch.randn(512, generator=_GEN), 50 * torch.randn(512, generator=_GEN)


def new_ppo_loss(m, obs, prev_logits, actions, old_logp):
    out = m.forward_train({Columns.OBS: obs})
    curr = m.get_train_action_dist_cls().from_logits(out[Columns.ACTION_DIST_INPUTS])
    prev = m.get_exploration_action_dist_cls().from_logits(prev_logits)
    ratio = torch.exp(curr.logp(actions) - old_logp)
    values = m.compute_values({Columns.OBS: obs}, embeddings=out.get(Columns.EMBEDDINGS))
    return _loss(ratio, prev.kl(curr), curr.entropy(), values)


# --- fixtures -------------------------------------------------------------------------------------


def build(cfg: EdgeConfig, weight_std: float = 0.3, seed: int = 0) -> EdgeSchedulerModule:
    spec = RLModuleSpec(module_class=EdgeSchedulerModule, model_config=edge_model_config(cfg))
    spec.observation_space, spec.action_space = EDGE.spaces(cfg)
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        module = spec.build()
        with torch.no_grad():  # the module starts its last layer at zero (uniform over pairs)
            module.weights_net[-1].weight.normal_(0.0, weight_std)
            module.weights_net[-1].bias.normal_(0.0, weight_std)
    return module


def observations(cfg: EdgeConfig, seed: int = 0) -> torch.Tensor:
    """512 observations: episodes after 0, 20, 200 random decisions (idle to overloaded servers,
    every penalty kind), and uniformly random ones."""
    rng = np.random.default_rng(seed)
    out = []
    for warm in (0, 20, 200):
        env = EdgeVectorEnv(num_envs=128, config=cfg)
        obs, _ = env.reset(seed=seed + warm)
        for _ in range(warm):
            actions = np.stack([rng.integers(0, cfg.n_servers, 128), rng.integers(0, cfg.max_steps, 128)], -1)
            obs, *_ = env.step(actions)
        out.append(obs)
    J = cfg.n_servers
    random = np.concatenate(
        [
            rng.uniform(0, 60, (128, J)),
            rng.uniform(5, 20, (128, J)),
            rng.uniform(0, 25, (128, 1)),
            rng.choice(cfg.probe_penalties(), (128, 1)),
        ],
        axis=-1,
    )
    return torch.as_tensor(np.concatenate([*out, random]), dtype=torch.float32)


@pytest.fixture(scope="module", params=SCENARIOS, ids=lambda s: f"J{s['n_servers']}-S{s['max_steps']}")
def case(request):
    cfg = EdgeConfig(observe_capabilities=True, **request.param)
    return cfg, observations(cfg)


# --- tests ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("weight_std", [0.0, 0.3, 2.0])
def test_same_logits_argmax_and_values(case, weight_std):
    cfg, obs = case
    m = build(cfg, weight_std)
    batch = {Columns.OBS: obs}
    with torch.no_grad():
        ref = reference_logits(m, obs)
        ref_values = reference_values(m, obs)
        outs = [m.forward_inference(batch), m.forward_exploration(batch), m.forward_train(batch)]
        values = m.compute_values(batch)
    scale = ref.abs().amax(-1, keepdim=True).clamp_min(1.0)  # the row's largest term bounds its rounding
    for out in outs:
        new = out[Columns.ACTION_DIST_INPUTS]
        assert new.shape == ref.shape
        assert ((new - ref).abs() <= TOL * scale).all(), float(((new - ref).abs() / scale).max())
        same = new.argmax(-1) == ref.argmax(-1)
        # where the argmax differs, the reference's own top logits tie to within the tolerance
        top2 = ref.topk(2, dim=-1).values
        tie = (top2[:, 0] - top2[:, 1]) <= 2 * TOL * scale[:, 0]
        assert (same | tie).all()
        if weight_std > 0:  # the argmax check bites: a quarter of the rows have a clear top logit
            assert (~tie).float().mean() >= 0.25
        picked = ref.gather(-1, new.argmax(-1, keepdim=True))[:, 0]
        assert ((ref.amax(-1) - picked) <= 2 * TOL * scale[:, 0]).all()
    # the critic is unchanged: bit for bit
    assert torch.equal(values, ref_values)


def test_any_batch_shape():
    """One observation alone, or a (batch, time) block, scores as the rows of a batch."""
    cfg = EdgeConfig(observe_capabilities=True, n_servers=4, n_strong=2, max_steps=50)
    m = build(cfg)
    obs = observations(cfg)[:24]
    with torch.no_grad():
        rows = m.forward_inference({Columns.OBS: obs})[Columns.ACTION_DIST_INPUTS]
        single = m.forward_inference({Columns.OBS: obs[5]})[Columns.ACTION_DIST_INPUTS]
        block = m.forward_inference({Columns.OBS: obs.view(4, 6, -1)})[Columns.ACTION_DIST_INPUTS]
    torch.testing.assert_close(single, rows[5])
    torch.testing.assert_close(block, rows.view(4, 6, -1))


def test_greedy_action_is_the_argmax_pair(case):
    cfg, obs = case
    m = build(cfg)
    with torch.no_grad():
        logits = m.forward_inference({Columns.OBS: obs})[Columns.ACTION_DIST_INPUTS]
    action = m.get_inference_action_dist_cls().from_logits(logits).to_deterministic().sample()
    flat = logits.argmax(-1)
    assert torch.equal(action, torch.stack([flat // cfg.max_steps, flat % cfg.max_steps], -1))


@pytest.mark.parametrize("weight_std", [0.3, 2.0])
def test_same_ppo_loss_and_gradients(case, weight_std):
    """The loss RLlib's PPO learner computes, with the KL to the sampling weights (from
    log-probabilities): its value and every parameter's gradient."""
    cfg, obs = case
    m = build(cfg, weight_std)
    sampler = build(cfg, weight_std, seed=1)  # other weights: the policy a few updates back
    with torch.no_grad(), torch.random.fork_rng():
        torch.manual_seed(0)
        prev_logits = reference_logits(sampler, obs)
        prev = torch.distributions.Categorical(logits=prev_logits)
        flat = prev.sample()
        old_logp = prev.log_prob(flat)
    actions = torch.stack([flat // cfg.max_steps, flat % cfg.max_steps], -1)

    ref_loss = reference_ppo_loss(m, obs, prev_logits, actions, old_logp)
    m.zero_grad()
    ref_loss.backward()
    ref_grads = {n: p.grad.clone() for n, p in m.named_parameters()}

    new_loss = new_ppo_loss(m, obs, prev_logits, actions, old_logp)
    m.zero_grad()
    new_loss.backward()
    assert torch.isfinite(new_loss)
    torch.testing.assert_close(new_loss, ref_loss, rtol=1e-5, atol=1e-5)
    for name, p in m.named_parameters():
        ref = ref_grads[name]
        torch.testing.assert_close(p.grad, ref, rtol=1e-4, atol=1e-4 * float(ref.abs().max().clamp_min(1e-3)))


def test_kl_stays_finite_where_a_probability_underflows():
    """torch's Categorical KL is inf for a row where q underflows to 0 and p does not; ours is the
    KL of the log-probabilities, finite, with its gradient."""
    cfg = EdgeConfig(observe_capabilities=True, n_servers=2, n_strong=1, max_steps=3)
    dist = build(cfg).get_train_action_dist_cls()
    p_logits = torch.tensor([[0.0, -50.0, 1.0, 0.0, 2.0, 0.0], [0.0, 1.0, 2.0, 3.0, 4.0, 5.0]])
    q_logits = torch.tensor([[0.0, -200.0, 1.0, 0.0, 2.0, 0.0], [0.5, 1.0, 2.0, 3.0, 4.0, 5.0]], requires_grad=True)
    q_ref = q_logits.detach().clone().requires_grad_(True)
    kl = dist.from_logits(p_logits).kl(dist.from_logits(q_logits))
    cat = torch.distributions.Categorical
    assert torch.isinf(torch.distributions.kl_divergence(cat(logits=p_logits), cat(logits=q_ref.detach()))[0])
    log_p = torch.log_softmax(p_logits, -1)
    ref = (log_p.exp() * (log_p - torch.log_softmax(q_ref, -1))).sum(-1)
    # row 0: p puts e^-50 on the pair where q has e^-200, a contribution of about 150 e^-50
    assert torch.isfinite(kl).all() and 0 < kl[0] < 1
    torch.testing.assert_close(kl, ref)
    kl.mean().backward()
    ref.mean().backward()
    torch.testing.assert_close(q_logits.grad, q_ref.grad, rtol=1e-5, atol=1e-6)


def test_samples_follow_the_distribution():
    cfg = EdgeConfig(observe_capabilities=True, n_servers=2, n_strong=1, max_steps=3)
    dist_class = build(cfg).get_exploration_action_dist_cls()
    logits = torch.tensor([0.0, 1.0, -1.0, 2.0, -30.0, 0.5]).expand(20000, 6)
    torch.manual_seed(0)
    actions = dist_class.from_logits(logits).sample()
    assert actions.shape == (20000, 2)
    flat = actions[:, 0] * 3 + actions[:, 1]
    freq = torch.bincount(flat, minlength=6).float() / len(flat)
    probs = torch.softmax(logits[0], -1)
    assert (freq - probs).abs().max() < 0.01
    assert freq[4] == 0  # probability ~1e-14
    # the same draws from the same seed
    torch.manual_seed(0)
    assert torch.equal(dist_class.from_logits(logits).sample(), actions)


def test_checkpoint_layout_is_unchanged(tmp_path):
    """Parameter and buffer names and shapes are those the module saved before its speed-up, so its
    checkpoints load; and a saved module loads back through RLlib."""
    cfg = EdgeConfig(observe_capabilities=True)
    m = build(cfg)
    hidden = 64
    before = {
        "steps": (200,),
        "quality_feature": (200,),
        "probes": (3,),
        "weights_net.0.weight": (hidden, 10),
        "weights_net.0.bias": (hidden,),
        "weights_net.2.weight": (hidden, hidden),
        "weights_net.2.bias": (hidden,),
        "weights_net.4.weight": (5, hidden),
        "weights_net.4.bias": (5,),
        "critic.0.weight": (hidden, 25),
        "critic.0.bias": (hidden,),
        "critic.2.weight": (hidden, hidden),
        "critic.2.bias": (hidden,),
        "critic.4.weight": (1, hidden),
        "critic.4.bias": (1,),
    }
    assert {k: tuple(v.shape) for k, v in m.state_dict().items()} == before
    other = build(cfg, seed=5)
    other.load_state_dict(m.state_dict(), strict=True)
    m.save_to_path(str(tmp_path))
    loaded = RLModule.from_checkpoint(str(tmp_path))
    obs = observations(cfg)[:64]
    with torch.no_grad():
        a = m.forward_inference({Columns.OBS: obs})[Columns.ACTION_DIST_INPUTS]
        b = loaded.forward_inference({Columns.OBS: obs})[Columns.ACTION_DIST_INPUTS]
    assert torch.equal(a, b)


def test_a_later_finish_never_scores_higher_once_late(case, monkeypatch):
    """Whatever the weights (large random ones here), a pair past its due time scores no higher when
    its server's queue is longer, for the same coefficients: the residual cannot make a long queue
    attractive, which once drew every request to one server (RESULTS, edge robustness)."""
    cfg, obs = case
    m = build(cfg, weight_std=2.0)
    J = cfg.n_servers
    busy_s, cap_s, due_s = obs[..., :J, None], obs[..., J : 2 * J, None], obs[..., 2 * J, None, None]
    parts = m._parts(obs)
    kind = parts[3]
    with torch.no_grad():
        coef = m._coefficients(obs, parts)
        assert (coef[..., 1] <= 0).all()
        assert (coef[..., 2] + coef[..., 3] <= 1e-6 * coef[..., 3].abs().clamp_min(1.0)).all()  # to rounding
        rows = torch.stack([m.quality_feature, m.steps])
        now = _PairScores.apply(coef, busy_s, cap_s, due_s, kind, rows)
        later = _PairScores.apply(coef, busy_s + 100.0, cap_s, due_s, kind, rows)
    late = (busy_s + m.steps / cap_s - due_s) > 0  # late already before the extra 100 s
    assert late.any()
    # to rounding: where the bounds hold with equality, the terms in t and f cancel exactly
    scale = torch.maximum(now.abs(), later.abs()).amax((-2, -1), keepdim=True).clamp_min(1.0).expand_as(now)
    assert ((later - now)[late] <= TOL * scale[late]).all()
    # and the bounds bite: the unbounded weights would have scored some late pairs higher
    monkeypatch.setattr(edge_module, "never_reward_lateness", lambda coef: coef)
    with torch.no_grad():
        free = m._coefficients(obs, parts)
        gain = _PairScores.apply(free, busy_s + 100.0, cap_s, due_s, kind, rows) - _PairScores.apply(
            free, busy_s, cap_s, due_s, kind, rows
        )
    assert (gain[late] > 0).any()
