"""Configuration from the command line: `--set KEY=VALUE` overrides and readable errors."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, Field, ValidationError, model_validator

from aigcsched.algorithms.datacenter_heuristics import DATACENTER_HEURISTICS
from aigcsched.algorithms.diffusion.schedule import SCHEDULES
from aigcsched.algorithms.heuristics import HEURISTICS
from aigcsched.algorithms.mec_heuristics import MEC_POLICIES
from aigcsched.envs import PROBLEMS


class ConfigError(ValueError):
    """Bad user input: the message is one line, fit to print as it is."""


def parse_overrides(items: list[str] | None) -> dict:
    """['a=1', 'b=[2, 20]'] -> {'a': 1, 'b': [2, 20]}; values are read as YAML scalars / lists."""
    out = {}
    for item in items or []:
        key, sep, raw = item.partition("=")
        key = key.strip()
        if not sep or not key:
            raise ConfigError(f"--set expects KEY=VALUE, got {item!r}")
        try:
            out[key] = yaml.safe_load(raw) if raw.strip() else raw
        except yaml.YAMLError as e:
            raise ConfigError(f"--set {key}: cannot read value {raw!r} ({e.problem})") from None
    return out


def validation_message(err: ValidationError) -> str:
    """One line naming each offending key."""
    parts = []
    for e in err.errors():
        where = ".".join(str(p) for p in e["loc"])
        msg = e["msg"].removeprefix("Value error, ")
        if e["type"] == "extra_forbidden":
            msg = "unknown key"
        parts.append(f"{where}: {msg}" if where else msg)
    return "; ".join(parts)


def build_model(model: type[BaseModel], values: dict, what: str) -> BaseModel:
    """Validate `values` into `model`, raising ConfigError with a one-line message."""
    unknown = sorted(set(values) - set(model.model_fields))
    if unknown:
        known = ", ".join(model.model_fields)
        raise ConfigError(f"unknown {what} key(s) {', '.join(unknown)}; known keys: {known}")
    try:
        return model(**values)
    except ValidationError as e:
        raise ConfigError(f"invalid {what}: {validation_message(e)}") from None


def env_config(problem: str, values: dict) -> BaseModel:
    """The validated config of a problem (`edge`, ...) from plain values."""
    if problem not in PROBLEMS:
        raise ConfigError(f"unknown env {problem!r}; choose from {', '.join(PROBLEMS)}")
    return build_model(PROBLEMS[problem][1], values, f"{problem} config")


# --- Experiment configs (YAML validated by pydantic) -------------------------------------------


class _Section(BaseModel):
    model_config = {"extra": "forbid"}


class EnvSection(_Section):
    id: str = Field("edge", description="problem name: edge, datacenter or mec")
    config: dict = Field(default_factory=dict, description="scenario fields of the problem's config")


ALGORITHMS = ("PPO", "DSAC", "DQN", "SAC")
OFF_POLICY = ("DSAC", "DQN", "SAC")  # replay-based; RLlib's new stack takes Discrete actions only
MODULES = ("edge_scheduler", "default", "diffusion", "mlp")


class AlgorithmSection(_Section):
    name: Literal["PPO", "DSAC", "DQN", "SAC"] = Field(
        "PPO", description="PPO; DSAC (SAC with the diffusion actor); RLlib's DQN or SAC (references)"
    )
    module: Literal["edge_scheduler", "default", "diffusion", "mlp"] = Field(
        "edge_scheduler",
        description="PPO's actor: edge_scheduler (edge's per-server scored actor), default (RLlib's MLP), "
        "diffusion (denoising chain over action logits), mlp (the diffusion module's MLP twin); "
        "DSAC always uses the diffusion actor, DQN and SAC RLlib's default",
    )
    shared_policy: bool = Field(
        False,
        description="multi-agent envs: one policy for all agents (agent id in the observation) instead of one each",
    )
    lr: float = Field(1e-3, gt=0, description="learning rate (of actor, critics and alpha for SAC-type algorithms)")
    gamma: float = Field(0.9, ge=0, le=1)
    lambda_: float = Field(0.9, ge=0, le=1)
    train_batch_size: int = Field(4096, ge=1, description="env steps per training iteration")
    minibatch_size: int = Field(1024, ge=1, description="PPO")
    num_epochs: int = Field(4, ge=1, description="PPO")
    entropy_coeff: float = Field(0.0, ge=0)
    clip_param: float = Field(0.2, gt=0)
    vf_clip_param: float = Field(1e6, gt=0, description="large: values are in reward units (~600), not ~1")
    hidden: int = Field(64, ge=1, description="width of the module's hidden layers")
    logit_scale: float = Field(10.0, gt=0)
    value_scale: float = Field(100.0, gt=0)
    diffusion_steps: int = Field(5, ge=1, description="T, denoising steps of the diffusion actor")
    diffusion_schedule: Literal[SCHEDULES] = Field("vp", description="beta schedule of the diffusion actor")
    diffusion_x0_clip: float | None = Field(
        None, gt=0, description="clip each step's denoised logits to [-c, c] (D2SAC clips to 1); none: no clip"
    )
    # off-policy (DSAC, DQN, SAC)
    replay_batch_size: int = Field(256, ge=1, description="DSAC/DQN/SAC: transitions per gradient step")
    replay_capacity: int = Field(100_000, ge=1, description="DSAC/DQN/SAC: replay buffer size, in transitions")
    learning_starts: int = Field(1000, ge=0, description="DSAC/DQN/SAC: env steps sampled before learning")
    initial_alpha: float = Field(0.05, gt=0, description="DSAC/SAC: entropy temperature (initial if learned)")
    learn_alpha: bool = Field(True, description="DSAC: learn alpha towards the target entropy")
    target_entropy_ratio: float = Field(0.5, ge=0, le=1, description="DSAC/SAC: target entropy = ratio * log|A|")
    training_intensity: float | None = Field(
        None,
        gt=0,
        description="DSAC/DQN/SAC: replayed transitions per sampled env step (RLlib's training_intensity); "
        "none: one update of replay_batch_size per sampled env step",
    )

    @model_validator(mode="after")
    def _check(self) -> AlgorithmSection:
        if self.name == "PPO" and self.minibatch_size > self.train_batch_size:
            raise ValueError(f"minibatch_size ({self.minibatch_size}) must be <= train_batch_size")
        if self.name in ("DQN", "SAC") and self.module != "default":
            raise ValueError(f"{self.name} uses RLlib's default module: set algorithm.module: default")
        if self.name == "DSAC" and self.module != "diffusion":
            raise ValueError("DSAC's actor is the diffusion actor: set algorithm.module: diffusion")
        return self


class RewardShapingSection(_Section):
    kind: Literal["none", "diffusion", "diffusion_potential", "curiosity"] = Field(
        "none",
        description="none; diffusion: r + eta * r_hat(s, a); diffusion_potential: r + gamma Phi(s') - Phi(s); "
        "curiosity: RLlib's distance-based novelty bonus (the peer method)",
    )
    eta: float = Field(0.4, ge=0, description="weight of the shaping term (the paper's 0.4)")
    steps: int = Field(5, ge=1, description="denoising steps of the reward model")
    width: int = Field(64, ge=1, description="hidden width of the reward model")
    warmup_steps: int = Field(1000, ge=0, description="labelled steps (of finished episodes) before shaping starts")


class ResourcesSection(_Section):
    num_env_runners: int = Field(0, ge=0, description="0: sample in the driver process")
    num_envs_per_env_runner: int = Field(64, ge=1, description="sub-envs of the batched env per runner")
    num_gpus_per_learner: float = Field(0, ge=0)
    num_cpus: int | None = Field(2, ge=1, description="CPUs of a local Ray instance (ignored with --address)")


class StopSection(_Section):
    iterations: int | None = Field(None, ge=1)
    env_steps: int | None = Field(None, ge=1)
    minutes: float | None = Field(None, gt=0)

    @model_validator(mode="after")
    def _check(self) -> StopSection:
        if self.iterations is None and self.env_steps is None and self.minutes is None:
            raise ValueError("give at least one stop criterion: iterations, env_steps or minutes")
        return self


DEFAULT_BASELINES = {
    "edge": ("greedy", "myopic"),
    "datacenter": ("local", "handoff", "arbitrage", "combined"),
    "mec": ("least_loaded", "smcoedge", "myopic"),
}


class EvaluationSection(_Section):
    episodes: int = Field(10, ge=1)
    seed: int = Field(1_000_000, ge=0, description="held-out seeds seed..seed+episodes-1")
    baselines: list[str] = Field(
        default_factory=lambda: list(DEFAULT_BASELINES["edge"]), description="heuristics to compare with (per env)"
    )
    actions: Literal["greedy", "sampled"] = Field(
        "greedy",
        description="datacenter, mec: the trained policy acts greedily (most likely action) or samples its "
        "distribution, held out and once registered; a policy shared by all stations is a mixed strategy, "
        "and greedy sends stations that see alike to the same server",
    )


class TrackingSection(_Section):
    experiment: str = Field("aigcsched-edge", min_length=1)
    model_name: str = Field("aigcsched-edge", min_length=1, description="registered model name")
    register_model: bool = True
    checkpoint_every: int = Field(5, ge=1, description="iterations between checkpoints")


class ExperimentConfig(_Section):
    env: EnvSection = Field(default_factory=EnvSection)
    algorithm: AlgorithmSection = Field(default_factory=AlgorithmSection)
    resources: ResourcesSection = Field(default_factory=ResourcesSection)
    stop: StopSection = Field(default_factory=lambda: StopSection(minutes=5))
    evaluation: EvaluationSection = Field(default_factory=EvaluationSection)
    tracking: TrackingSection = Field(default_factory=TrackingSection)
    reward_shaping: RewardShapingSection = Field(default_factory=RewardShapingSection)
    seed: int = Field(0, ge=0, description="training seed (sub-env i starts from seed + i)")

    @model_validator(mode="after")
    def _check(self) -> ExperimentConfig:
        scenario = env_config(self.env.id, self.env.config)  # raises ConfigError naming the bad key
        alg = self.algorithm
        if self.env.id != "edge" and alg.module == "edge_scheduler":
            raise ValueError(f"edge_scheduler is edge's module; {self.env.id} takes default, diffusion or mlp")
        if self.env.id == "edge" and alg.name != "PPO":
            raise ValueError(f"{alg.name} needs a Discrete action; edge's is (server, steps): use PPO")
        if self.env.id == "datacenter":
            if alg.name != "PPO":
                raise ValueError(f"{alg.name} needs a Discrete action; datacenter's has 5 branches: use PPO")
            # evaluation runs on the held-out days, so training must not see them
            if scenario.day is not None or scenario.day_split != "train":
                raise ValueError("datacenter trains on env.config.day_split: train (with day unset)")
        if self.env.id == "mec" and alg.name in OFF_POLICY and scenario.action_mode != "subset":
            raise ValueError(f"{alg.name} needs a Discrete action: set env.config.action_mode: subset")
        known = {"edge": HEURISTICS, "datacenter": DATACENTER_HEURISTICS, "mec": MEC_POLICIES}[self.env.id]
        if "baselines" not in self.evaluation.model_fields_set:
            self.evaluation.baselines = list(DEFAULT_BASELINES[self.env.id])
        # checked here, not after a long training
        unknown = [b for b in self.evaluation.baselines if b not in known]
        if unknown:
            raise ValueError(f"unknown {self.env.id} baseline(s) {', '.join(unknown)}; choose from {', '.join(known)}")
        if not self.multi_agent and alg.shared_policy:
            raise ValueError("algorithm.shared_policy applies to multi-agent envs (datacenter, mec) only")
        if not self.multi_agent and self.evaluation.actions != "greedy":
            raise ValueError("evaluation.actions: sampled applies to multi-agent envs (datacenter, mec) only")
        if self.reward_shaping.kind != "none" and alg.name not in ("PPO", "DSAC"):
            raise ValueError(f"reward_shaping works with PPO and DSAC, not {alg.name}")
        train = range(
            self.seed,
            self.seed + self.resources.num_envs_per_env_runner * max(1, self.resources.num_env_runners),
        )
        held_out = range(self.evaluation.seed, self.evaluation.seed + self.evaluation.episodes)
        if train.start < held_out.stop and held_out.start < train.stop:
            raise ValueError(f"evaluation seeds {held_out.start}..{held_out.stop - 1} overlap the training seeds")
        return self

    @property
    def multi_agent(self) -> bool:
        return self.env.id in ("datacenter", "mec")

    def scenario(self):
        """The validated env config of this experiment (a shared datacenter policy sees agent ids)."""
        values = dict(self.env.config)
        if self.env.id == "datacenter" and self.algorithm.shared_policy:
            values["agent_id_in_obs"] = True  # mec's observation always holds the station index
        return env_config(self.env.id, values)

    def evaluation_scenario(self):
        """The env config evaluation runs on: datacenter's held-out days, else the training one."""
        if self.env.id == "datacenter":
            return self.scenario().model_copy(update={"day_split": "heldout"})
        return self.scenario()

    def flat(self) -> dict:
        """Dotted keys -> values, for MLflow params."""
        return _flatten(self.model_dump())


def _flatten(d: dict, prefix: str = "") -> dict:
    out = {}
    for k, v in d.items():
        key = f"{prefix}{k}"
        out.update(_flatten(v, key + ".") if isinstance(v, dict) and v else {key: v})
    return out


def set_dotted(d: dict, dotted: str, value) -> None:
    """d['a']['b'] = value for 'a.b'; env.config.* keys go into the scenario dict."""
    keys = dotted.split(".")
    for k in keys[:-1]:
        node = d.setdefault(k, {})
        if not isinstance(node, dict):
            raise ConfigError(f"--set {dotted}: {k} is not a section")
        d = node
    d[keys[-1]] = value


def load_experiment(path: str | Path | None, overrides: dict | None = None) -> ExperimentConfig:
    """Read a YAML experiment file (or the defaults), apply dotted overrides, validate."""
    raw: dict = {}
    if path is not None:
        p = Path(path)
        if not p.is_file():
            raise ConfigError(f"config file not found: {p}")
        try:
            raw = yaml.safe_load(p.read_text()) or {}
        except yaml.YAMLError as e:
            raise ConfigError(f"{p}: not valid YAML ({str(e).splitlines()[0]})") from None
        if not isinstance(raw, dict):
            raise ConfigError(f"{p}: expected a mapping at the top level")
    for key, value in (overrides or {}).items():
        set_dotted(raw, key, value)
    try:
        return ExperimentConfig(**raw)
    except ValidationError as e:
        raise ConfigError(f"invalid experiment config: {validation_message(e)}") from None
