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
quality against lateness now and capacity later; it is not told the reward's weights. One thing
it may not learn: past the due time, a later finish never scores higher (`never_reward_lateness`).

Needs the observation with capabilities (`observe_capabilities=True`).

Cost: B x J x S pair scores per batch (2,000 per observation), forward and backward, in the
learner's every minibatch. The terms in Q(s), the finish time and the constant are per-server
coefficients times a row over s (one matrix product), the penalty is computed on the rows of its
kind only, and the backward of the scores and of the distribution's logp, entropy and KL is written
out; see `_PairScores` and `joint_categorical`. The same decisions as the plain formula, to float
rounding (tests/test_edge_module.py); benchmarks/edge_learner_speed.py times both.
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
# g(t) = sqrt(t + SQRT_EPS) for the sqrt penalty: finite slope at t = 0.
SQRT_EPS = 1e-12


class _PairScores(torch.autograd.Function):
    """Pair logits from per-server coefficients c (..., J, N_BASIS), scaled and in feature units:
        logit(j, s) = c0 Q(s) + c1 g(t) + c2 t + c3 f + c4,  f = m_j + s / c_j,  t = max(0, f - o_t).
    c0 Q(s) + c3 f + c4 = c4 + c3 m_j + [c0, c3 / c_j] @ [Q(s); s] is one matrix product, t and g(t)
    are the only (..., J, S) tensors, g(t) only on the rows of its penalty kind; the backward is five
    sums over s, where autograd would multiply and reduce a 5-wide basis."""

    @staticmethod
    def forward(ctx, coef, busy, cap, due, kind, rows):
        # busy, cap (..., J, 1); due (..., 1, 1); kind (..., 3) one-hot; rows (2, S) = [Q(s); s]
        c_quality, c_penalty, c_tardy, c_finish, c_const = (c.unsqueeze(-1) for c in coef.unbind(-1))
        # Tardiness as the reference computes it, same rounding (sqrt(t + eps) is steep at t = 0).
        tardiness = torch.addcdiv(busy, rows[1], cap).sub_(due).clamp_min_(0.0)
        per_pair = torch.cat([c_quality, c_finish / cap], dim=-1).reshape(-1, 2)
        logits = torch.addmm((c_const + c_finish * busy).reshape(-1, 1), per_pair, rows).view(tardiness.shape)
        # g = t on linear rows: its weight joins t's
        logits.addcmul_(c_tardy + c_penalty * kind[..., 0, None, None], tardiness)
        # g = t^2 or sqrt(t + eps), computed on the rows of that kind only
        pair_shape = tardiness.shape[-2:]
        flat_t, flat_logits = tardiness.view(-1, *pair_shape), logits.view(-1, *pair_shape)
        flat_kind, flat_penalty = kind.reshape(-1, 3), c_penalty.reshape(-1, pair_shape[0], 1)
        penalties = []
        for k, g_of_t in ((1, lambda t: t.mul_(t)), (2, lambda t: t.add_(SQRT_EPS).sqrt_())):
            index = flat_kind[:, k].nonzero().squeeze(-1)
            if len(index):
                g = g_of_t(flat_t.index_select(0, index))
                flat_logits.index_add_(0, index, g * flat_penalty.index_select(0, index))
                penalties += [index, g]
        ctx.save_for_backward(busy, cap, kind, rows, tardiness, *penalties)
        return logits

    @staticmethod
    def backward(ctx, grad):
        busy, cap, kind, rows, tardiness, *penalties = ctx.saved_tensors
        total = grad.sum(-1)
        by_rows = (grad.reshape(-1, grad.shape[-1]) @ rows.T).view(*total.shape, 2)  # sums with Q(s) and s
        by_tardy = torch.linalg.vecdot(grad, tardiness)
        by_penalty = kind[..., 0, None] * by_tardy
        flat_grad, flat_penalty = grad.reshape(-1, *grad.shape[-2:]), by_penalty.view(-1, by_penalty.shape[-1])
        for index, g in zip(penalties[::2], penalties[1::2], strict=True):
            flat_penalty.index_add_(0, index, torch.linalg.vecdot(flat_grad.index_select(0, index), g))
        by_finish = busy[..., 0] * total + by_rows[..., 1] / cap[..., 0]
        d_coef = torch.stack([by_rows[..., 0], by_penalty, by_tardy, by_finish, total], dim=-1)
        return d_coef, None, None, None, None, None


class _LogProb(torch.autograd.Function):
    """log q[a] of logits z, with q and log q given: d/dz = onehot(a) - q."""

    @staticmethod
    def forward(ctx, logits, log_probs, probs, index):
        ctx.save_for_backward(probs, index)
        return log_probs.gather(-1, index).squeeze(-1)

    @staticmethod
    def backward(ctx, grad):
        probs, index = ctx.saved_tensors
        grad = grad.unsqueeze(-1)
        return (probs * -grad).scatter_add_(-1, index, grad), None, None, None


class _Entropy(torch.autograd.Function):
    """H = -sum q log q: d/dz = -q (log q + H)."""

    @staticmethod
    def forward(ctx, logits, log_probs, probs):
        entropy = -(probs * log_probs).sum(-1)
        ctx.save_for_backward(log_probs, probs, entropy)
        return entropy

    @staticmethod
    def backward(ctx, grad):
        if not bool(grad.any()):  # PPO's entropy_coeff is 0 by default: nothing to propagate
            return None, None, None
        log_probs, probs, entropy = ctx.saved_tensors
        return probs * (log_probs + entropy.unsqueeze(-1)) * -grad.unsqueeze(-1), None, None


class _KL(torch.autograd.Function):
    """KL(p || q) of a given value, differentiated in q's logits z only: d/dz = q - p (p sums to 1)."""

    @staticmethod
    def forward(ctx, logits, p, q, kl):
        ctx.save_for_backward(p, q)
        return kl.clone()

    @staticmethod
    def backward(ctx, grad):
        p, q = ctx.saved_tensors
        return (q - p).mul_(grad.unsqueeze(-1)), None, None, None


def joint_categorical(max_steps: int) -> type[TorchCategorical]:
    """A categorical over flat pair indices j * max_steps + (s - 1) whose samples are (j, s - 1).

    Same distribution, logp, entropy and kl as torch's Categorical (to float rounding), with the
    softmax computed once per distribution and the gradients in the logits written out: PPO asks
    for all three over all pairs, and torch normalises, exponentiates and masks for each, and
    differentiates every step of it."""

    class JointServerStepsCategorical(TorchCategorical):
        def __init__(self, logits=None, probs=None):
            if logits is None:  # not made by this module; torch's class handles probs
                super().__init__(logits=logits, probs=probs)
                return
            self.logits, self.probs, self._one_hot = logits, None, None
            self._log_probs = self._probs = self._torch_dist = None

        @property
        def _dist(self):  # torch's Categorical, only for what is not overridden here
            if self._torch_dist is None:
                self._torch_dist = torch.distributions.Categorical(logits=self.logits, validate_args=False)
            return self._torch_dist

        @_dist.setter
        def _dist(self, value):
            self._torch_dist = value

        # q and log q as constants: the Functions above supply their gradients in the logits.
        def _log_q(self):
            if self._log_probs is None:
                with torch.no_grad():
                    self._log_probs = torch.log_softmax(self.logits.detach(), dim=-1)
            return self._log_probs

        def _q(self):
            if self._probs is None:
                with torch.no_grad():
                    self._probs = torch.softmax(self.logits.detach(), dim=-1)
            return self._probs

        def _differentiable(self):
            return torch.is_grad_enabled() and self.logits.requires_grad

        def sample(self, *, sample_shape=()):
            sample_shape = torch.Size(sample_shape or ())
            if self.probs is not None or sample_shape.numel() != 1:
                flat = super().sample(sample_shape=sample_shape)
            else:
                # Inverse CDF in float64, one uniform per row. torch.multinomial (torch's Categorical)
                # draws one exponential per pair instead (an exponential race): 2,000 per row, half
                # of an env runner's step at 64 envs. Same distribution, other draws.
                with torch.no_grad():
                    probs = self._q().reshape(-1, self.logits.shape[-1])
                    if not bool((probs.max() < float("inf")) & (probs.min() >= 0)):  # as torch.multinomial
                        raise RuntimeError("probability tensor contains either `inf`, `nan` or element < 0")
                    cdf = probs.double().cumsum_(-1)
                    u = torch.rand(len(cdf), 1, dtype=cdf.dtype, device=cdf.device).mul_(cdf[:, -1:])
                    flat = torch.searchsorted(cdf, u, right=True).clamp_(max=cdf.shape[-1] - 1)
                    flat = flat.reshape(*sample_shape, *self.logits.shape[:-1])
            return torch.stack([flat // max_steps, flat % max_steps], dim=-1)

        def logp(self, value, **kwargs):
            value = value.long()
            index = value[..., 0] * max_steps + value[..., 1]
            if self.probs is not None:
                return super().logp(index)
            if not self._differentiable():
                return self._log_q().gather(-1, index.unsqueeze(-1)).squeeze(-1)
            return _LogProb.apply(self.logits, self._log_q(), self._q(), index.unsqueeze(-1))

        def entropy(self):
            if self.probs is not None:
                return super().entropy()
            # log_softmax of finite logits is finite: torch's clamp of -inf changes nothing
            if not self._differentiable():
                return -(self._q() * self._log_q()).sum(-1)
            return _Entropy.apply(self.logits, self._log_q(), self._q())

        def kl(self, other):
            mine = isinstance(other, JointServerStepsCategorical) and self.probs is None and other.probs is None
            if not mine or self._differentiable() or self.logits.dim() != 2:  # PPO's case: (B, pairs)
                return super().kl(other)
            # From log-probabilities, finite wherever the logits are: torch's Categorical takes the
            # log of q, which underflows to 0 for unlikely pairs (2,000 per row), and returned inf,
            # which PPO read as divergence and answered by raising its KL coefficient every iteration.
            p = self._q()
            with torch.no_grad():
                kl = (self._log_q() - other._log_q()).mul_(p).sum(-1)
            return _KL.apply(other.logits, p, other._q(), kl)

        def to_deterministic(self):
            flat = torch.argmax(self.logits, dim=-1)
            return TorchDeterministic(loc=torch.stack([flat // max_steps, flat % max_steps], dim=-1))

    return JointServerStepsCategorical


def never_reward_lateness(coef):
    """Pair-score coefficients (..., N_BASIS) with w_penalty <= 0 and w_tardy + w_finish <= 0 (per
    second, `_PairScores`' units): past the due time c1 g(t) + c2 t + c3 f then falls as the finish
    moves later, on every server, for every penalty kind (g rises with t). Before the due time the
    finish-time term is free: it is how the scores value steps against a server's time.
    Why: the residual is a network of the servers' queues; on a queue far longer than any seen in
    training it once set c2 + c3 > 0 for that server, which then kept drawing requests while its
    queue grew without end (RESULTS, edge robustness). Where the bounds hold, nothing changes, and
    there the gradient is the unconstrained one (relu'(0) = 0: the anchored start is unchanged).
    Where the bounds bite the gradient is zero, and an unanchored residual starts on them:
    unanchored short runs (configs/studies/edge_actors.yaml) stall more often (3 of 5 seeds near
    59.5 per request, 62.8 without the bound) but no longer run away (1 of 5 at -2.9e7 without it)."""
    penalty, tardy, finish = coef[..., 1], coef[..., 2], coef[..., 3]
    bounded = torch.stack([penalty - torch.relu(penalty), tardy - torch.relu(tardy + finish)], dim=-1)
    return torch.cat([coef[..., :1], bounded, coef[..., 3:]], dim=-1)


def edge_model_config(
    cfg: EdgeConfig,
    hidden: int = 64,
    logit_scale: float = 10.0,
    value_scale: float = 100.0,
    anchor_scale: float = 0.0,
) -> dict:
    """The env facts the module needs (so it loads without the env) plus its own sizes."""
    if not cfg.observe_capabilities:
        raise ValueError("the edge scheduler module needs observe_capabilities=True")
    return {
        "n_servers": cfg.n_servers,
        "max_steps": cfg.max_steps,
        "quality": cfg.quality_table()[1:].tolist(),
        "probe_penalties": cfg.probe_penalties().tolist(),
        "tardiness_weight": cfg.tardiness_weight,
        "hidden": hidden,
        "logit_scale": logit_scale,
        "value_scale": value_scale,
        "anchor_scale": anchor_scale,
    }


def myopic_coefficients(model_config: dict) -> list[float]:
    """Pair-score coefficients (module units, see `_PairScores`) whose logits are myopic's reward
    Q(s) - w g(t) in quality points, up to a constant per request: the anchor of a residual policy."""
    quality = model_config["quality"]
    # the quality basis is (Q - mean) / (max - min) * 2, so Q = mean + basis * (max - min) / 2
    return [(max(quality) - min(quality)) / 2.0, -model_config["tardiness_weight"], 0.0, 0.0, 0.0]


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
        # Per-basis factors folded into the weights: scale and the units of g / 10, t / 10, f / 30.
        # Not saved: derived from the model config, so checkpoints keep today's keys.
        units = torch.tensor([1.0, 1 / 10.0, 1 / 10.0, 1 / 30.0, 1.0], dtype=torch.float32)
        self.register_buffer("basis_scale", mc["logit_scale"] * units, persistent=False)
        # Residual policy learning (Silver et al. 2018): logits = anchor_scale x myopic's reward of
        # the pair + the learned scores, which start at zero; the untrained policy's mode is myopic's.
        scale = mc.get("anchor_scale", 0.0)  # absent from the configs of modules saved before anchors
        anchor = scale * torch.tensor(myopic_coefficients(mc)) if scale else torch.zeros(N_BASIS)
        self.register_buffer("anchor", anchor, persistent=False)
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

    def _critic_input(self, obs, parts):
        busy, cap, due_in, kind = parts
        return torch.cat([busy, cap, due_in[..., None], obs[..., -1:] / 10.0, kind], dim=-1)

    def _coefficients(self, obs, parts):
        """Per-server pair-score coefficients (..., J, N_BASIS) in `_PairScores`' units: the anchor
        plus the learned residual, a function of each server's situation, within `never_reward_lateness`."""
        J = self.n_servers
        busy, capn, due_in, kind = parts
        cap_s = obs[..., J : 2 * J]
        slack = due_in[..., None] - busy
        ten_steps = 10.0 / cap_s  # seconds that 10 steps take on each server
        load = torch.stack([busy.mean(-1), busy.min(-1).values, busy.max(-1).values], dim=-1)
        server_x = torch.cat(
            [
                torch.stack([busy, capn, slack, ten_steps], dim=-1),
                kind[..., None, :].expand(*busy.shape, 3),
                load[..., None, :].expand(*busy.shape, 3),
            ],
            dim=-1,
        )
        coef = self.weights_net(server_x) * self.basis_scale + self.anchor  # scale and feature units folded in
        return never_reward_lateness(coef)

    def _logits(self, obs, parts):
        """logit(j, s) = scale * (w0 Q(s) + w1 g(t) / 10 + w2 t / 10 + w3 f / 30 + w4), f = m_j + s / c_j,
        t = max(0, f - o_t), without materialising the (B, J, S, 5) basis: the terms in Q(s), f and 1
        are per-server coefficients times a row over s; only t and g(t) are per pair."""
        J = self.n_servers
        busy_s, cap_s, due_s = obs[..., :J, None], obs[..., J : 2 * J, None], obs[..., 2 * J, None, None]
        coef = self._coefficients(obs, parts)
        kind = parts[3]
        rows = torch.stack([self.quality_feature, self.steps])  # from the buffers a checkpoint sets
        logits = _PairScores.apply(coef, busy_s, cap_s, due_s, kind, rows)
        return logits.reshape(*logits.shape[:-2], J * self.max_steps)

    def _forward(self, batch: dict[str, Any], **kwargs) -> dict[str, Any]:
        obs = batch[Columns.OBS]
        return {Columns.ACTION_DIST_INPUTS: self._logits(obs, self._parts(obs))}

    def _forward_train(self, batch: dict[str, Any], **kwargs) -> dict[str, Any]:
        # The critic's input rides along as the embeddings, so that the loss's value call reuses it.
        obs = batch[Columns.OBS]
        parts = self._parts(obs)
        logits = self._logits(obs, parts)
        return {Columns.ACTION_DIST_INPUTS: logits, Columns.EMBEDDINGS: self._critic_input(obs, parts)}

    def compute_values(self, batch: dict[str, Any], embeddings: Any = None):
        if embeddings is None:
            obs = batch[Columns.OBS]
            embeddings = self._critic_input(obs, self._parts(obs))
        return self.model_config["value_scale"] * self.critic(embeddings).squeeze(-1)
