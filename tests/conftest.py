import pytest

# The slowest files, slowest first (`make test`'s --durations): run first, each on a worker of its own,
# they do not leave one worker running them alone at the end. pytest-xdist's loadfile would otherwise
# send the files with the most tests first, and these few-test files last.
SLOWEST_FILES = ("test_multinode.py", "test_fault_tolerance.py", "test_study.py", "test_quiet.py", "test_serve.py")


def pytest_collection_modifyitems(items):
    rank = {name: i for i, name in enumerate(SLOWEST_FILES)}
    items.sort(key=lambda item: rank.get(item.path.name, len(rank)))  # stable: the rest keep their order


@pytest.fixture(scope="session", autouse=True)
def no_downloaded_traces(tmp_path_factory):
    """An empty trace download cache: tests read the embedded typical days unless they pass a
    data_dir, never what the user downloaded (set before any Ray worker starts, which inherits it)."""
    mp = pytest.MonkeyPatch()
    mp.setenv("AIGCSCHED_DATA_DIR", str(tmp_path_factory.mktemp("no-traces")))
    yield
    mp.undo()


@pytest.fixture(scope="module")
def local_ray():
    import ray

    # A local instance of our own, never whichever cluster another process left in /tmp/ray.
    ray.init(address="local", num_cpus=2, include_dashboard=False)
    yield
    ray.shutdown()


@pytest.fixture(scope="module")
def tracking_store(tmp_path_factory):
    """A fresh MLflow store (also the working directory, where MLflow puts artifacts) for a test module."""
    import mlflow

    root = tmp_path_factory.mktemp("mlflow")
    mp = pytest.MonkeyPatch()
    mp.chdir(root)
    mp.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{root}/mlflow.db")
    mlflow.set_tracking_uri(f"sqlite:///{root}/mlflow.db")
    mlflow.set_experiment("Default")  # not the active experiment of an earlier module's store
    try:
        yield root
    finally:
        mp.undo()
        mlflow.set_tracking_uri(None)


@pytest.fixture(scope="module")
def store(tracking_store):
    """One local Ray and a fresh MLflow store (also the working directory) for a test module."""
    import ray

    try:
        ray.init(address="local", num_cpus=2, include_dashboard=False)
        yield tracking_store
    finally:
        ray.shutdown()


@pytest.fixture(scope="session")
def register_policy():
    """`register(name, cfg, seed=0, shared=True) -> version`: an untrained policy of the scenario's
    problem registered in the current MLflow store, as training registers one (edge: its per-server
    scored module; multi-agent problems: RLlib's default MLP, one module shared by all agents).
    A real model without training; edge's last layer is drawn from `seed` (the module starts it at
    zero, which always picks the first pair)."""

    def register(name: str, cfg, seed: int = 0) -> str:
        import tempfile

        import mlflow
        import torch
        from ray.rllib.core.rl_module.rl_module import RLModuleSpec

        from aigcsched.algorithms.edge_module import EdgeSchedulerModule, edge_model_config
        from aigcsched.envs import EdgeConfig
        from aigcsched.platform import registry
        from aigcsched.platform.problems import problem_of
        from aigcsched.platform.trained_policy import TrainedPolicy, save_policy

        problem = problem_of(cfg)
        obs_space, action_space = problem.spaces(cfg)
        with torch.random.fork_rng():
            torch.manual_seed(seed)
            if isinstance(cfg, EdgeConfig):
                spec = RLModuleSpec(module_class=EdgeSchedulerModule, model_config=edge_model_config(cfg))
            else:
                from ray.rllib.algorithms.ppo.torch.default_ppo_torch_rl_module import DefaultPPOTorchRLModule

                spec = RLModuleSpec(module_class=DefaultPPOTorchRLModule, model_config={"fcnet_hiddens": [8]})
            spec.observation_space, spec.action_space = obs_space, action_space
            module = spec.build()
            if isinstance(cfg, EdgeConfig):
                with torch.no_grad():
                    module.weights_net[-1].weight.normal_(0.0, 0.3)
        policy = TrainedPolicy({"m": module}, {agent: "m" for agent in problem.agents(cfg)}, cfg)
        mlflow.set_experiment("registered-test-models")  # in the current store, whatever was active before
        with mlflow.start_run(), tempfile.TemporaryDirectory() as tmp:
            save_policy(policy, tmp)
            return str(registry.log_policy_model(tmp, cfg, name).registered_model_version)

    return register


@pytest.fixture(scope="session")
def register_edge_model(register_policy):
    return register_policy
