"""RLlib callbacks that log each problem's metrics from the env runners every iteration.

Apart from the problems' descriptors so that reading a descriptor does not import RLlib.
"""

from __future__ import annotations

import numpy as np
from ray.rllib.callbacks.callbacks import RLlibCallback

from aigcsched.platform.problems.datacenter import DAY_METRICS, episode_metrics
from aigcsched.platform.problems.edge import REQUEST_METRICS
from aigcsched.platform.problems.mec import tally_metrics


class RequestMetrics(RLlibCallback):
    """Per-request means of what was sampled this iteration (episodes are 2000 steps long, so
    episode returns alone would report once in many iterations)."""

    def on_sample_end(self, *, env_runner=None, metrics_logger=None, samples=None, **kwargs):
        rewards, quality, tardiness = [], [], []
        for episode in samples or []:
            rewards.append(np.asarray(episode.get_rewards(), dtype=np.float64))
            infos = [i for i in episode.get_infos() if "quality" in i]
            quality += [i["quality"] for i in infos]
            tardiness += [i["tardiness"] for i in infos]
        if not quality:
            return
        tardiness = np.asarray(tardiness)
        values = (np.concatenate(rewards).mean(), np.mean(quality), tardiness.mean(), (tardiness > 0).mean())
        for key, value in zip(REQUEST_METRICS, values, strict=True):
            metrics_logger.log_value(key, float(value), reduce="mean", window=1)


# --- the problem ---------------------------------------------------------------------------------


class MECMetrics(RLlibCallback):
    """Mean delay and parts per task of each finished episode, from the env's tally (exact in every
    reward mode, also the sparse one); averaged over the last `num_envs_per_env_runner` episodes."""

    def on_episode_end(self, *, episode=None, env_runner=None, metrics_logger=None, env=None, env_index=0, **kw):
        tally = env.envs[env_index].unwrapped.par_env.tally.values()
        totals = (sum(t[key] for t in tally) for key in ("tasks", "delay_s", "parts"))
        window = env_runner.config.num_envs_per_env_runner
        for key, value in tally_metrics(*totals).items():
            metrics_logger.log_value(f"episode_{key}", value, reduce="mean", window=window)


class DataCenterMetrics(RLlibCallback):
    """System metrics of each finished episode, read from the env's ledger; averaged over the
    last `num_envs_per_env_runner` episodes (about one iteration's worth when a batch is one day
    per sub-env)."""

    def on_episode_end(self, *, episode=None, env_runner=None, metrics_logger=None, env=None, env_index=0, **kw):
        ledger = env.envs[env_index].unwrapped.par_env.ledger
        if not len(ledger["utility"]):
            return
        m = episode_metrics(ledger, 0.0)
        window = env_runner.config.num_envs_per_env_runner
        for key in DAY_METRICS:
            metrics_logger.log_value(f"episode_{key}", m[key], reduce="mean", window=window)
