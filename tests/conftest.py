import pytest


@pytest.fixture(scope="module")
def local_ray():
    import ray

    # A local instance of our own, never whichever cluster another process left in /tmp/ray.
    ray.init(address="local", num_cpus=2, include_dashboard=False)
    yield
    ray.shutdown()
