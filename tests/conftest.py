import pytest


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
def register_edge_model():
    """`register(name, cfg, seed=0) -> version`: an untrained edge scheduler module registered in
    the current MLflow store, as training registers one. A real model without training; its last
    layer is drawn from `seed` (the module starts it at zero, which always picks the first pair)."""

    def register(name: str, cfg, seed: int = 0) -> str:
        import tempfile

        import mlflow
        import torch
        from ray.rllib.core.rl_module.rl_module import RLModuleSpec

        from aigcsched.algorithms.edge_module import EdgeSchedulerModule, edge_model_config
        from aigcsched.envs import EdgeEnv
        from aigcsched.platform import registry

        env = EdgeEnv(cfg)
        with torch.random.fork_rng():
            torch.manual_seed(seed)
            module = RLModuleSpec(
                module_class=EdgeSchedulerModule,
                observation_space=env.observation_space,
                action_space=env.action_space,
                model_config=edge_model_config(cfg),
            ).build()
            with torch.no_grad():
                module.weights_net[-1].weight.normal_(0.0, 0.3)
        mlflow.set_experiment("registered-test-models")  # in the current store, whatever was active before
        with mlflow.start_run(), tempfile.TemporaryDirectory() as tmp:
            registry.save_policy(module, cfg, tmp)
            return str(registry.log_policy_model(tmp, cfg, name).registered_model_version)

    return register
