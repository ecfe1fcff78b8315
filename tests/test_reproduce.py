from aigcsched.envs import EdgeConfig
from aigcsched.platform.policies import resolve_policy
from aigcsched.platform.reproduce import INTERARRIVALS, STRONG_SERVERS, reproduce_edge


def test_reproduce_writes_every_figure_and_table(tmp_path):
    factories = {n: (lambda c, n=n: resolve_policy(n, c, seed=0)) for n in ("greedy", "myopic")}
    report = reproduce_edge(factories, EdgeConfig(n_requests=40), tmp_path, instances=3, sweep_episodes=1)
    for png in ("instances.png", "per_request.png", "interarrival.png", "strong_servers.png"):
        assert (tmp_path / png).stat().st_size > 10_000  # a real rendered figure
    text = report.read_text()
    assert "| greedy |" in text and "| myopic |" in text
    for x in INTERARRIVALS + STRONG_SERVERS:
        assert f"\n| {x:g} |" in text
    assert "Mean quality relative to greedy: greedy +0.0%, myopic +" in text
