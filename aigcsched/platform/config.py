"""Experiment configs (YAML validated by pydantic), `--set KEY=VALUE` overrides and readable errors.

Every setting is validated here, once, where the config is read; the problem-specific rules come
from the problem's descriptor (`aigcsched.platform.problems`).
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Annotated, Literal

import yaml
from pydantic import BaseModel, Discriminator, Field, Tag, ValidationError, model_validator

from aigcsched.algorithms.diffusion.schedule import SCHEDULES
from aigcsched.algorithms.diffusion.settings import DiffusionActorConfig
from aigcsched.algorithms.reward_shaping import RewardShapingConfig
from aigcsched.platform.errors import ConfigError
from aigcsched.platform.problems import DEFAULT_PROBLEM, PROBLEMS, Problem, get_problem


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
        # the algorithm section's form (a union tag) is no key of the user's
        where = ".".join(str(p) for p in e["loc"] if p not in ("PPO", "off_policy"))
        msg = e["msg"].removeprefix("Value error, ")
        if e["type"] == "extra_forbidden":
            msg = "unknown key"
            if e["loc"][:2] == ("algorithm", "off_policy") and e["loc"][-1] in PPOSection.model_fields:
                msg = "a PPO key; the replay-based algorithms (DSAC, DQN, SAC) do not take it"
        if where == "algorithm.name" and e["type"] == "literal_error":
            msg = f"unknown algorithm {e['input']!r}; choose from {', '.join(ALGORITHMS)}"
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
    """The validated scenario config of a problem (by name) from plain values."""
    return build_model(get_problem(problem).config_class, values, f"{problem} config")


# --- Experiment configs ------------------------------------------------------------------------


class _Section(BaseModel):
    model_config = {"extra": "forbid"}


class EnvSection(_Section):
    id: str = Field(DEFAULT_PROBLEM, description=f"problem: {', '.join(PROBLEMS)}")
    config: dict = Field(
        default_factory=dict, description="scenario fields of the problem's config (see the scenario tables below)"
    )


_DIFFUSION = DiffusionActorConfig.model_fields
MODULES = ("edge_scheduler", "mec_scheduler", "default", "diffusion", "mlp")


class _AlgorithmBase(_Section):
    """Settings every algorithm has."""

    module: Literal[MODULES] | None = Field(
        None,
        description="the actor: edge_scheduler (edge's per-server scored actor), mec_scheduler (mec's look-ahead "
        "plus learned per-server weights of booked work), default (RLlib's MLP), "
        "diffusion (denoising chain over action logits), mlp (the diffusion module's MLP twin); "
        "none: the problem's default for PPO (edge_scheduler on edge, else default); DSAC always uses the "
        "diffusion actor, DQN and SAC RLlib's default",
    )
    shared_policy: bool = Field(
        False,
        description="multi-agent problems: one policy for all agents (agent id in the observation) instead of one each",
    )
    central_critic: bool = Field(
        False,
        description="multi-agent problems on the agent-slots sampler, PPO with the diffusion or mlp module: the value "
        "function sees the episode's global state (MAPPO-style); the actor still sees only its agent's observation",
    )
    lr: float = Field(1e-3, gt=0, description="learning rate (of actor, critics and alpha for SAC-type algorithms)")
    gamma: float = Field(0.9, ge=0, le=1, description="discount factor")
    train_batch_size: int = Field(4096, ge=1, description="env steps sampled per training iteration")
    hidden: int = Field(64, ge=1, description="width of the module's hidden layers")
    diffusion_steps: int = _DIFFUSION["n_steps"]
    diffusion_schedule: Literal[SCHEDULES] = _DIFFUSION["schedule"]
    diffusion_x0_clip: float | None = _DIFFUSION["x0_clip"]
    init_policy: str | None = Field(
        None,
        description="start from a saved policy of the same modules (models:/NAME/VERSION, models:/NAME@ALIAS, "
        "checkpoint:PATH or run:RUN_ID): its weights replace the new modules' before the first iteration "
        "(fine-tuning, e.g. of a policy distilled from a planner); none: the modules' own start",
    )

    @property
    def off_policy(self) -> bool:
        return self.name != "PPO"

    @model_validator(mode="after")
    def _check_init_policy(self):
        forms = ("models:/", "checkpoint:", "run:")
        if self.init_policy is not None and not self.init_policy.startswith(forms):
            raise ValueError(f"init_policy must start with one of {', '.join(forms)}, got {self.init_policy!r}")
        return self


class PPOSection(_AlgorithmBase):
    name: Literal["PPO"] = Field("PPO", description="PPO (on-policy), with any actor module")
    lambda_: float = Field(0.9, ge=0, le=1, description="GAE lambda")
    minibatch_size: int = Field(
        1024, ge=1, description="rows per SGD minibatch: env steps, or a module's agent steps on multi-agent problems"
    )
    num_epochs: int = Field(4, ge=1, description="passes over each training batch")
    entropy_coeff: float = Field(0.0, ge=0, description="weight of the entropy bonus")
    explorers: float | None = Field(
        None,
        gt=0,
        le=1,
        description="agent-slots sampler, module diffusion, mlp or mec_scheduler: the share of agent slots that "
        "sample their action at each step; the others take their greedy action (as when evaluated greedily) and "
        "are left out of the loss, so each sampled step is scored among agents that act greedily. None: all sample",
    )
    clip_param: float = Field(0.2, gt=0, description="PPO's policy ratio clip")
    vf_clip_param: float = Field(1e6, gt=0, description="large: values are in reward units (~600), not ~1")
    logit_scale: float = Field(10.0, gt=0, description="edge_scheduler: scale of the pair scores")
    value_scale: float = Field(100.0, gt=0, description="edge_scheduler: scale of the value head")
    anchor_scale: float = Field(
        0.0,
        ge=0,
        description="start from the problem's heuristic (residual policy learning, Silver et al. 2018): logits = "
        "anchor_scale x the heuristic's prior + a learned residual that starts at zero, so the untrained policy's "
        "most likely action is the heuristic's. edge_scheduler: myopic's reward of each (server, steps) pair in "
        "quality points; diffusion and mlp: the prior the env appends with env.config.observe_lookahead (mec: "
        "minus the seconds each action finishes after myopic's; datacenter: a one-hot of combined's choice per "
        "branch); mec_scheduler: the look-ahead, plus the learned weights of booked work (needs > 0). 0: no anchor",
    )

    booked_work_start: float = Field(
        0.0,
        gt=-1,
        lt=1,
        description="mec_scheduler: the weight of booked work every server starts at (0: the untrained policy is "
        "sequential_myopic deciding in turn; 0.25: spreading_myopic's weight)",
    )

    @model_validator(mode="after")
    def _check(self) -> PPOSection:
        if self.minibatch_size > self.train_batch_size:
            raise ValueError(f"minibatch_size ({self.minibatch_size}) must be <= train_batch_size")
        return self


class OffPolicySection(_AlgorithmBase):
    name: Literal["DSAC", "DQN", "SAC"] = Field(
        description="DSAC (SAC with the diffusion actor); RLlib's DQN or SAC (references); replay-based, "
        "Discrete actions only"
    )
    replay_batch_size: int = Field(256, ge=1, description="transitions per gradient step")
    replay_capacity: int = Field(100_000, ge=1, description="replay buffer size, in transitions")
    learning_starts: int = Field(1000, ge=0, description="env steps sampled before learning")
    initial_alpha: float = Field(0.05, gt=0, description="DSAC/SAC: entropy temperature (initial if learned)")
    learn_alpha: bool = Field(True, description="DSAC: learn alpha towards the target entropy")
    target_entropy_ratio: float = Field(0.5, ge=0, le=1, description="DSAC/SAC: target entropy = ratio * log|A|")
    training_intensity: float | None = Field(
        None,
        gt=0,
        description="replayed transitions per sampled env step (RLlib's training_intensity); "
        "none: one update of replay_batch_size per sampled env step",
    )

    @model_validator(mode="after")
    def _check(self) -> OffPolicySection:
        needed = "diffusion" if self.name == "DSAC" else "default"
        if self.module is None:
            self.module = needed
        elif self.module != needed:
            what = (
                "DSAC's actor is the diffusion actor"
                if needed == "diffusion"
                else f"{self.name} uses RLlib's default module"
            )
            raise ValueError(f"{what}: set algorithm.module: {needed}")
        return self


ALGORITHMS = ("PPO", "DSAC", "DQN", "SAC")


def _algorithm_kind(value) -> str:
    """The algorithm section's form: PPO's (also when no name is given) or the replay-based one's."""
    name = value.get("name", "PPO") if isinstance(value, dict) else getattr(value, "name", "PPO")
    return "off_policy" if name in OffPolicySection.model_fields["name"].annotation.__args__ else "PPO"


AlgorithmSection = Annotated[
    Annotated[PPOSection, Tag("PPO")] | Annotated[OffPolicySection, Tag("off_policy")],
    Discriminator(_algorithm_kind),
]


class ResourcesSection(_Section):
    num_env_runners: int = Field(0, ge=0, description="remote env runners; 0: sample in the driver process")
    num_envs_per_env_runner: int = Field(64, ge=1, description="episodes sampled at once per runner (sub-envs)")
    sampler: Literal["auto", "agent_slots", "multi_agent"] = Field(
        "auto",
        description="multi-agent problems: agent_slots samples a policy shared by all agents on the batched env, "
        "one vector slot per (episode, agent); multi_agent uses RLlib's MultiAgentEnvRunner on copies of the "
        "ParallelEnv; auto: agent_slots for a shared policy where the problem has a batched env, else multi_agent",
    )
    num_gpus_per_learner: float = Field(0, ge=0, description="GPUs of the learner (fractions share one)")
    num_cpus: int | None = Field(2, ge=1, description="CPUs of a local Ray instance (ignored with --address)")


class StopSection(_Section):
    iterations: int | None = Field(None, ge=1, description="stop after this many training iterations")
    env_steps: int | None = Field(None, ge=1, description="stop after this many sampled env steps")
    minutes: float | None = Field(None, gt=0, description="stop after this many minutes")

    @model_validator(mode="after")
    def _check(self) -> StopSection:
        if self.iterations is None and self.env_steps is None and self.minutes is None:
            raise ValueError("give at least one stop criterion: iterations, env_steps or minutes")
        return self


class EvaluationSection(_Section):
    episodes: int = Field(10, ge=1, description="held-out episodes (days on datacenter)")
    seed: int = Field(1_000_000, ge=0, description="held-out seeds seed..seed+episodes-1")
    baselines: list[str] | None = Field(
        None, description="heuristics to compare with; none: the problem's strongest ones"
    )
    actions: Literal["greedy", "sampled"] = Field(
        "greedy",
        description="multi-agent problems: the trained policy acts greedily (most likely action) or samples "
        "its distribution, held out and once registered; a policy shared by all stations is a mixed strategy, "
        "and greedy sends stations that see alike to the same server",
    )
    select: Literal["last", "best"] = Field(
        "last",
        description="the policy evaluated and registered: the last one trained, or the one that scored best on the "
        "validation episodes, checked before training and every `validation_every` iterations (so a run never "
        "ends below where it started on them, up to their noise)",
    )
    validation_every: int = Field(5, ge=1, description="select: best: iterations between validations")
    validation_episodes: int = Field(5, ge=1, description="select: best: validation episodes (training scenario)")
    validation_seed: int = Field(
        500_000, ge=0, description="select: best: validation seeds seed..seed+episodes-1, apart from the held-out ones"
    )


class TrackingSection(_Section):
    experiment: str | None = Field(None, min_length=1, description="MLflow experiment; none: aigcsched-PROBLEM")
    model_name: str | None = Field(None, min_length=1, description="registered model name; none: aigcsched-PROBLEM")
    register_model: bool = Field(True, description="register the trained policy (and maybe promote it)")
    checkpoint_every: int = Field(5, ge=1, description="iterations between checkpoints")


# Run seed s trains on the episodes seeded from s x SEED_STRIDE on. RLlib seeds env runner w with
# seed + w, and a batched env seeds its episode i with that + i: with the run seed itself there,
# consecutive run seeds would train on all but one of the same episode streams.
SEED_STRIDE = 2**16


class ExperimentConfig(_Section):
    env: EnvSection = Field(default_factory=EnvSection)
    algorithm: AlgorithmSection = Field(default_factory=PPOSection)
    resources: ResourcesSection = Field(default_factory=ResourcesSection)
    stop: StopSection = Field(default_factory=lambda: StopSection(minutes=5))
    evaluation: EvaluationSection = Field(default_factory=EvaluationSection)
    tracking: TrackingSection = Field(default_factory=TrackingSection)
    reward_shaping: RewardShapingConfig = Field(default_factory=RewardShapingConfig)
    seed: int = Field(
        0,
        ge=0,
        lt=2**15,  # seeds x SEED_STRIDE stay below 2**31, as numpy's global seeding needs
        description="training seed: the network's, and the training episodes' (seeded from seed x 65536 on, so "
        "that two seeds train on different episodes)",
    )

    @model_validator(mode="after")
    def _check(self) -> ExperimentConfig:
        problem = get_problem(self.env.id)
        scenario = env_config(self.env.id, self.env.config)  # raises ConfigError naming the bad key
        alg = self.algorithm
        if alg.module is None:
            alg.module = problem.default_module
        if alg.module not in problem.modules:
            owners = [p.name for p in PROBLEMS.values() if alg.module in p.modules]
            raise ValueError(
                f"{alg.module} is {' and '.join(owners)}'s module; {problem.name} takes "
                f"{', '.join(problem.modules[:-1])} or {problem.modules[-1]}"
            )
        problem.check_experiment(self, scenario)
        ev, tracking = self.evaluation, self.tracking
        if ev.baselines is None:
            ev.baselines = list(problem.default_baselines)
        known = problem.policy_makers()
        unknown = [b for b in ev.baselines if b not in known]  # checked here, not after a long training
        if unknown:
            raise ValueError(f"unknown {problem.name} baseline(s) {', '.join(unknown)}; choose from {', '.join(known)}")
        tracking.experiment = tracking.experiment or problem.experiment_name
        tracking.model_name = tracking.model_name or problem.experiment_name
        if not problem.multi_agent and alg.shared_policy:
            raise ValueError(f"algorithm.shared_policy applies to multi-agent envs; {problem.name} has one agent")
        if not problem.multi_agent and ev.actions != "greedy":
            raise ValueError(f"evaluation.actions: sampled applies to multi-agent envs; {problem.name} has one agent")
        if self.resources.sampler == "agent_slots" and not (
            problem.multi_agent and alg.shared_policy and problem.has_batched_env
        ):
            raise ValueError(
                "resources.sampler: agent_slots needs algorithm.shared_policy: true on a multi-agent problem "
                f"with a batched env ({', '.join(p.name for p in PROBLEMS.values() if p.has_batched_env)})"
            )
        if alg.central_critic and not (self.agent_slots and not alg.off_policy and alg.module in ("diffusion", "mlp")):
            raise ValueError(
                "algorithm.central_critic needs PPO with module diffusion or mlp on the agent_slots sampler "
                "(a shared policy on a problem with a batched env)"
            )
        if getattr(alg, "explorers", None) is not None and not (
            self.agent_slots and alg.module in ("diffusion", "mlp", "mec_scheduler")
        ):
            raise ValueError(
                "algorithm.explorers needs PPO with module diffusion, mlp or mec_scheduler on the agent_slots sampler "
                "(a shared policy on a problem with a batched env)"
            )
        if getattr(alg, "booked_work_start", 0.0) and alg.module != "mec_scheduler":
            raise ValueError(f"algorithm.booked_work_start applies to module mec_scheduler, not {alg.module}")
        if alg.module == "mec_scheduler" and not (
            getattr(alg, "anchor_scale", 0.0) > 0 and scenario.observe_lookahead and scenario.observe_booked_work
        ):
            raise ValueError(
                "algorithm.module mec_scheduler scores on the look-ahead and the booked work: set "
                "algorithm.anchor_scale > 0, env.config.observe_lookahead: true and "
                "env.config.observe_booked_work: true"
            )
        if getattr(alg, "anchor_scale", 0.0) > 0:
            if alg.module not in ("edge_scheduler", "mec_scheduler", "diffusion", "mlp"):
                raise ValueError(
                    "algorithm.anchor_scale needs module edge_scheduler, mec_scheduler, diffusion or mlp, "
                    f"not {alg.module}"
                )
            if alg.module != "edge_scheduler" and not problem.prior_size(scenario):
                raise ValueError(
                    f"algorithm.anchor_scale with module {alg.module} reads the heuristic's prior from the "
                    f"observation: set env.config.observe_lookahead: true ({problem.name} "
                    + ("has none)" if problem.name == "edge" else "appends it then)")
                )
        if self.reward_shaping.kind != "none" and alg.name not in ("PPO", "DSAC"):
            raise ValueError(f"reward_shaping works with PPO and DSAC, not {alg.name}")
        # agents acting in turn on the agent-slots sampler: an episode per slot, K times the episodes
        in_turn = self.agent_slots and problem.decides_in_turn(scenario)
        episodes = self.resources.num_envs_per_env_runner * (self.slots_per_env_step if in_turn else 1)
        # env runner w (0: the local one) draws episodes env_seed + w x episodes + i (`place_runner_episodes`)
        train = range(self.env_seed, self.env_seed + episodes * (self.resources.num_env_runners + 1))
        held_out = range(ev.seed, ev.seed + ev.episodes)
        if train.start < held_out.stop and held_out.start < train.stop:
            raise ValueError(f"evaluation seeds {held_out.start}..{held_out.stop - 1} overlap the training seeds")
        return self

    @property
    def env_seed(self) -> int:
        """The seed of the first training episode stream (RLlib's `seed`)."""
        return self.seed * SEED_STRIDE

    @property
    def problem(self) -> Problem:
        return get_problem(self.env.id)

    @property
    def multi_agent(self) -> bool:
        return self.problem.multi_agent

    @property
    def agent_slots(self) -> bool:
        """Sampled on the batched env, one vector slot per (episode, agent), as single-agent RLlib."""
        problem, sampler = self.problem, self.resources.sampler
        if not (problem.multi_agent and self.algorithm.shared_policy and problem.has_batched_env):
            return False
        return sampler in ("auto", "agent_slots")

    @property
    def slots_per_env_step(self) -> int:
        """RLlib steps per env step: the agents on the agent-slots sampler, else 1."""
        return len(self.problem.agents(self.scenario())) if self.agent_slots else 1

    def scenario(self):
        """The validated scenario training runs on."""
        return self.problem.training_scenario(env_config(self.env.id, self.env.config), self.algorithm.shared_policy)

    def evaluation_scenario(self):
        """The scenario held-out evaluation runs on (datacenter: its held-out days)."""
        return self.problem.evaluation_scenario(self.scenario())

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
    # a copy: a section given as a dict must not be shared with (and mutated through) the caller's
    d[keys[-1]] = copy.deepcopy(value)


def read_yaml(path: str | Path, what: str) -> dict:
    """The mapping a YAML file of kind `what` (config, study, sweep) holds; ConfigError otherwise."""
    p = Path(path)
    if not p.is_file():
        raise ConfigError(f"{what} file not found: {p}")
    try:
        raw = yaml.safe_load(p.read_text()) or {}
    except yaml.YAMLError as e:
        raise ConfigError(f"{p}: not valid YAML ({str(e).splitlines()[0]})") from None
    if not isinstance(raw, dict):
        raise ConfigError(f"{p}: expected a mapping at the top level")
    return raw


def load_experiment(path: str | Path | None, overrides: dict | None = None) -> ExperimentConfig:
    """Read a YAML experiment file (or the defaults), apply dotted overrides, validate."""
    raw = {} if path is None else read_yaml(path, "config")
    for key, value in (overrides or {}).items():
        set_dotted(raw, key, value)
    try:
        return ExperimentConfig(**raw)
    except ValidationError as e:
        raise ConfigError(f"invalid experiment config: {validation_message(e)}") from None
