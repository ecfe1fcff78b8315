import pytest


@pytest.fixture(scope="module")
def local_ray():
    import ray

    # A local instance of our own, never whichever cluster another process left in /tmp/ray.
    ray.init(address="local", num_cpus=2, include_dashboard=False)
    yield
    ray.shutdown()


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    """One local Ray and a fresh MLflow store (also the working directory) for a test module."""
    import mlflow
    import ray

    root = tmp_path_factory.mktemp("mlflow")
    mp = pytest.MonkeyPatch()
    mp.chdir(root)
    mp.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{root}/mlflow.db")
    mlflow.set_tracking_uri(f"sqlite:///{root}/mlflow.db")
    try:
        ray.init(address="local", num_cpus=2, include_dashboard=False)
        yield root
    finally:
        ray.shutdown()
        mp.undo()
        mlflow.set_tracking_uri(None)
