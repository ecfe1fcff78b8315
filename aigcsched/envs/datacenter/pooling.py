"""Hand-offs and service that treat the providers' GPUs as one pool.

A job earns the revenue of the model that runs it, so where a job runs and at how many steps
decide together what the pool earns. With the default sites, SDXL at 20 steps (quality 0.52)
earns more per job than SD1.5 at any step count (0.43), and runs half again as many jobs per
slot as at 30 steps: the hindsight LP (`aigcsched.algorithms.datacenter_optimum`) hands almost
every SD1.5 job away and runs the SDXL and SD3.5 sites at 20 steps. A rule that picks each site's
steps by value per job alone (`best_value_service`: 30 steps) leaves those sites no room for it.

`PooledRoutes` plans a slot for its expected arrivals as if they arrived every slot (a steady
flow): each provider's option (keep level, target) sends its new jobs' shares to sites; a
route is one option per provider. A route's value is the sum over sites of the site's expected
load times the best value per job (revenue less GPU energy at this slot's price) among the step
levels and power caps whose jobs per slot cover that load; load beyond a site's most jobs per
slot costs `OVERFLOW_COST` per job. Hand-off fees are transfers between providers and leave the
pool's sum unchanged; `HANDOFF_TIE_COST` only breaks ties towards fewer hand-offs. The best route
is searched over all routes when there are at most `MAX_EXACT_ROUTES` (1,000 with 3 providers),
else by `SWEEPS` sweeps over pairs of providers, each pair's options searched jointly (a chain of
hand-offs, A to B and B to C, pays only as a pair), or over single providers where a sweep over
pairs would score more than `MAX_SWEEP_ROUTES` routes (from 8 providers on).

Each site then serves at the step level and cap the route chose for it, except where that does not
cover the jobs due this slot (or the site gets no load): there `best_value_service`'s choice.

Arrays have any leading axes of episodes in front of K, so `DataCenterEnv` ((K,) arrays) and
`DataCenterVectorEnv` ((B, K)) get the same numbers.
"""

from __future__ import annotations

import itertools
import math

import numpy as np

from aigcsched.envs.datacenter.config import DataCenterConfig

OVERFLOW_COST = 1e-3  # USD per expected job beyond a site's most jobs per slot: above any job's value
HANDOFF_TIE_COST = 1e-7  # USD per job handed: among routes of equal value, the one that hands off least
MAX_EXACT_ROUTES = 4096  # all routes searched at once up to this many (1,000 with 3 providers)
MAX_SWEEP_ROUTES = 20_000  # else routes scored per sweep over pairs (one provider at a time above it)
SWEEPS = 2


class PooledRoutes:
    """The route tables of one config; `__call__` gives a state's (keep, target, mode, site load)."""

    def __init__(self, cfg: DataCenterConfig, capacity: np.ndarray):
        k = cfg.n_asps
        keep_share = np.asarray(cfg.keep_levels, dtype=np.float64)
        options = list(itertools.product(range(len(keep_share)), range(k - 1)))  # (keep level, target)
        self.keep = np.array([o[0] for o in options])
        self.target = np.array([o[1] for o in options])
        others = np.array([[j for j in range(k) if j != i] for i in range(k)])
        # share[o, option, e]: the share of o's new jobs that site e runs
        self.share = np.zeros((k, len(options), k))
        for o in range(k):
            self.share[o, :, o] = keep_share[self.keep]
            self.share[o, np.arange(len(options)), others[o][self.target]] += 1.0 - keep_share[self.keep]
        self.handed = 1.0 - keep_share[self.keep]  # (options,)
        self.start = int(np.argmax(np.where(self.target == 0, keep_share[self.keep], -1.0)))  # keep all
        n = len(options)
        if n**k <= MAX_EXACT_ROUTES:
            blocks = [tuple(range(k))]
        else:  # pairs, or one provider at a time where even the pairs are too many
            size = 2 if math.comb(k, 2) * n**2 <= MAX_SWEEP_ROUTES else 1
            blocks = list(itertools.combinations(range(k), size)) * SWEEPS
        # per block of providers: every combination of their options
        self.blocks = [(list(b), np.array(list(itertools.product(range(n), repeat=len(b))))) for b in blocks]
        # per site, its (level, cap) modes by jobs per slot, fewest first
        self.capacity = capacity.reshape(k, -1)  # (K, M): jobs per slot of each site's modes
        self.order = np.argsort(self.capacity, axis=-1, kind="stable")
        self.sorted_capacity = np.take_along_axis(self.capacity, self.order, axis=-1)

    def __call__(self, arrivals: np.ndarray, value: np.ndarray) -> tuple[np.ndarray, ...]:
        """(keep level, target, mode, expected load) per provider, (..., K) each, for expected
        arrivals (..., K) and values per job (..., K, M) of each site's modes; a site's mode (an index
        into its M) is the best value among those that cover its load, else the most jobs per slot."""
        best, best_mode = self._suffix_best(value)
        choice = np.full(arrivals.shape, self.start)
        k = choice.shape[-1]
        for block, combos in self.blocks:
            # (b, R, K) and (b, R): each provider of the block under each combination
            shares = self.share[np.array(block)[:, None], combos.T]
            handed = self.handed[combos.T]
            rest = np.ones(k, dtype=bool)
            rest[block] = False
            rest_load = self._load(arrivals * rest, choice)
            rest_handed = (arrivals * rest * self.handed[choice]).sum(axis=-1)
            mine = arrivals[..., block]
            load = rest_load[..., None, :] + np.einsum("...j,jre->...re", mine, shares)  # (..., R, K)
            score = self._value(load, best) - HANDOFF_TIE_COST * (
                rest_handed[..., None] + np.einsum("...j,jr->...r", mine, handed)
            )
            choice[..., block] = combos[np.argmax(score, axis=-1)]
        load = self._load(arrivals, choice)
        at = np.minimum(self._covering(load), best_mode.shape[-1] - 1)
        mode = np.take_along_axis(best_mode, at[..., None], axis=-1)[..., 0]
        return self.keep[choice], self.target[choice], mode, load

    def _suffix_best(self, value: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(..., K, M) for modes sorted by jobs per slot: the best value per job and its mode among
        the modes from each one on (those with at least as many jobs per slot)."""
        ordered = np.take_along_axis(value, np.broadcast_to(self.order, value.shape), axis=-1)
        best, mode = ordered.copy(), np.broadcast_to(self.order, value.shape).copy()
        for i in range(ordered.shape[-1] - 2, -1, -1):
            later = best[..., i + 1] > best[..., i]
            best[..., i] = np.where(later, best[..., i + 1], best[..., i])
            mode[..., i] = np.where(later, mode[..., i + 1], mode[..., i])
        return best, mode

    def _covering(self, load: np.ndarray) -> np.ndarray:
        """(..., K) the first sorted mode whose jobs per slot cover each site's load (M: none)."""
        at = np.empty(load.shape, dtype=np.int64)
        for e, capacity in enumerate(self.sorted_capacity):
            at[..., e] = np.searchsorted(capacity, load[..., e], side="left")
        return at

    def _load(self, arrivals: np.ndarray, choice: np.ndarray) -> np.ndarray:
        """(..., K) expected jobs each site runs per slot under one option per provider (..., K)."""
        k = choice.shape[-1]
        shares = self.share[np.arange(k), choice]  # (..., origin, site)
        return np.einsum("...o,...oe->...e", arrivals, shares)

    def _value(self, load: np.ndarray, best: np.ndarray) -> np.ndarray:
        """(..., R) what the sites earn per slot at loads (..., R, K), best (..., K, M) as sorted."""
        m = best.shape[-1]
        at = np.minimum(self._covering(load), m - 1)
        rows = np.arange(best.size // m).reshape(best.shape[:-1]) * m  # each (..., site)'s first in best's flat order
        per_job = best.reshape(-1).take(rows[..., None, :] + at)  # one gather, not a broadcast take_along_axis
        overflow = np.maximum(load - self.sorted_capacity[:, -1], 0.0)
        return (per_job * load - OVERFLOW_COST * overflow).sum(axis=-1)
