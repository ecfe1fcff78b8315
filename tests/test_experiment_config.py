from pathlib import Path

import pytest

from aigcsched.platform.config import ConfigError, load_experiment

CONFIG = Path(__file__).resolve().parents[1] / "configs" / "edge_ppo.yaml"


def test_reference_config_loads():
    exp = load_experiment(CONFIG)
    assert exp.scenario().observe_capabilities and exp.algorithm.module == "edge_scheduler"
    assert exp.flat()["algorithm.lr"] == exp.algorithm.lr


@pytest.mark.parametrize(
    "override, message",
    [
        ({"algorithm.lr": -1}, "algorithm.lr: Input should be greater than 0"),
        ({"algorithm.lr": "fast"}, "algorithm.lr: Input should be a valid number"),
        ({"algorithm.colour": 1}, "algorithm.colour: unknown key"),
        ({"resources.num_env_runners": -1}, "resources.num_env_runners"),
        ({"env.config.n_strong": 20}, "n_strong (20) must be <= n_servers (10)"),
        ({"env.config.n_strongg": 2}, "unknown edge config key(s) n_strongg"),
        ({"env.id": "moon"}, "unknown env 'moon'"),
        ({"evaluation.seed": 10}, "evaluation seeds 10..19 overlap the training seeds"),
        ({"stop": {}}, "give at least one stop criterion"),
        ({"algorithm.minibatch_size": 10**6}, "minibatch_size (1000000) must be <= train_batch_size"),
        ({"algorithm.lr.x": 1}, "lr is not a section"),
    ],
)
def test_bad_experiment_configs_name_the_key(override, message):
    with pytest.raises(ConfigError) as err:
        load_experiment(CONFIG, override)
    assert message in str(err.value) and "\n" not in str(err.value)


def test_missing_or_malformed_file(tmp_path):
    with pytest.raises(ConfigError, match="config file not found"):
        load_experiment(tmp_path / "nope.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("algorithm: [1, 2\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_experiment(bad)


def test_gain_over_the_best_baseline_takes_the_scores_direction():
    from aigcsched.platform.promotion import best_baseline

    # mec: lower delay is better, so the best baseline is b (2.5 s) and 2.0 s is 20% better
    mec = load_experiment(None, {"env.id": "mec", "evaluation.baselines": ["least_loaded", "myopic"]})
    results = {"trained": {"mean_delay": 2.0}, "least_loaded": {"mean_delay": 4.0}, "myopic": {"mean_delay": 2.5}}
    assert best_baseline(mec, results) == ("myopic", pytest.approx(0.2))
    # edge: higher reward is better; a negative gain is a loss
    edge = load_experiment(None, {"evaluation.baselines": ["greedy", "myopic"]})
    results = {"trained": {"reward": 54.0}, "greedy": {"reward": 57.0}, "myopic": {"reward": 60.0}}
    assert best_baseline(edge, results) == ("myopic", pytest.approx(-0.1))
    assert best_baseline(load_experiment(None, {"evaluation.baselines": []}), results) is None
