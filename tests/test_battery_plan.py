"""The planned battery (`battery_plan`): its commands against every schedule, enumerated."""

import itertools

import numpy as np
import pytest

from aigcsched.envs import DataCenterConfig, DataCenterState
from aigcsched.envs.datacenter.battery_plan import CHARGE, DISCHARGE, IDLE, BatteryPlanner, net_load_kw
from aigcsched.envs.datacenter.energy import EnergyBalance, SiteInputs

# Hourly slots; battery power below, near and above the sites' net loads (idle GPUs at PUE 1.2:
# ~11.7, ~12.5, ~12.5 kW, the last one less 8 kW of renewables).
HOURLY = {"slot_minutes": 60, "battery_kw": (10.0, 20.0, 40.0), "battery_kwh": (30.0, 40.0, 60.0)}
PUE = 1.2
RENEWABLE_KW = [0.0, 0.0, 8.0]


def day_state(cfg: DataCenterConfig, day_prices: np.ndarray, slot: int, soc: np.ndarray, net_kw) -> DataCenterState:
    k = cfg.n_asps
    return DataCenterState(
        slot=slot,
        queue=np.zeros(k),
        due=np.zeros(k),
        expected_arrivals=np.zeros(k),
        capacity=np.ones((k, len(cfg.step_levels))),
        kwh_per_job=np.ones((k, len(cfg.step_levels))),
        pue=np.full(k, PUE),
        price=day_prices[:, slot % 24].copy(),
        day_prices=day_prices,
        soc=soc,
        handoff_fee=0.0,
        net_kw=net_kw,
    )


def play(cfg: DataCenterConfig, day_prices: np.ndarray, commands) -> tuple[np.ndarray, np.ndarray]:
    """Energy cost plus wear (USD) per site of battery commands per slot (a list of (K,) commands
    or a function of (slot, soc kWh, net kW seen so far)), by the env's own energy balance with every
    GPU idle; and each site's net load (kW)."""
    balance, k = EnergyBalance(cfg), cfg.n_asps
    soc = [b * cfg.battery_soc_init for b in cfg.battery_kwh]
    total, net = np.zeros(k), None
    for t in range(cfg.episode_slots):
        site = SiteInputs([PUE] * k, RENEWABLE_KW, day_prices[:, t % 24].tolist(), [0.0] * k, [0.0] * k)
        battery = commands[t] if isinstance(commands, list) else commands(t, np.array(soc), net)
        energy = balance.balance(site, [0.0] * k, [len(cfg.power_cap_levels) - 1] * k, list(battery), soc)
        total += np.add(energy.cost, energy.wear)
        net = np.subtract(energy.load_kwh, energy.renewable_kwh) * (60 / cfg.slot_minutes)
    return total, net


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_the_plan_costs_what_the_best_schedule_does(seed):
    cfg = DataCenterConfig(episode_slots=6, **HOURLY)
    rng = np.random.default_rng(seed)
    day_prices = rng.uniform(0.0, 250.0, size=(cfg.n_asps, 24))
    _, net = play(cfg, day_prices, [[IDLE] * cfg.n_asps] * cfg.episode_slots)  # the same every slot
    assert net[0] > cfg.battery_kw[0] and net[1] < cfg.battery_kw[1] and 0 < net[2] < net[1]
    # every schedule of the same command at every site: each site's best is its own
    costs = np.array(
        [play(cfg, day_prices, [[a] * 3 for a in seq])[0] for seq in itertools.product(range(3), repeat=6)]
    )
    planner = BatteryPlanner(cfg)
    kwh = np.asarray(cfg.battery_kwh)

    def planned(t, soc, _):
        return planner(day_state(cfg, day_prices, t, soc / kwh, net))

    cost, _ = play(cfg, day_prices, planned)
    assert cost == pytest.approx(costs.min(axis=0), abs=1e-9)
    assert (costs.min(axis=0) < costs[0]).all()  # better than idling: something to find


def test_it_cycles_only_where_the_spread_pays_for_the_loss_and_wear():
    cfg = DataCenterConfig(episode_slots=24, **HOURLY)
    planner = BatteryPlanner(cfg)
    # a cycle pays when the dear price > the cheap one / efficiency + wear (30 USD/MWh): 52.2 at 20
    cheap, dear = [0, 1, 2, 3, 4], [16, 17, 18, 19, 20]
    day_prices = np.full((3, 24), 150.0)  # 150 -> 199 does not pay either
    day_prices[:, cheap] = 20.0
    day_prices[:2, dear] = [180.0, 185.0, 190.0, 195.0, 199.0]
    day_prices[2] = 40.0
    day_prices[2, cheap], day_prices[2, dear] = 20.0, 47.0  # does not pay
    kwh = np.asarray(cfg.battery_kwh)
    commands = []

    def planned(t, soc, net):
        net = net if net is not None else np.full(3, 12.0)
        commands.append(planner(day_state(cfg, day_prices, t, soc / kwh, net)))
        return commands[-1]

    play(cfg, day_prices, planned)
    commands = np.array(commands)  # (slot, site)
    for site in (0, 1):  # charged at the cheap hours, used at the dearest
        charged, used = np.flatnonzero(commands[:, site] == CHARGE), np.flatnonzero(commands[:, site] == DISCHARGE)
        assert len(charged) and set(charged) <= set(cheap)
        assert 20 in used and set(used) <= set(dear)
    # where it does not pay: never charged; the starting charge goes out at the dearest hours first
    assert (commands[:, 2] != CHARGE).all()
    assert set(dear) <= set(np.flatnonzero(commands[:, 2] == DISCHARGE))


def test_net_load_is_the_recent_mean_in_kw():
    cfg = DataCenterConfig()  # 5-minute slots
    assert net_load_kw(np.zeros((0, 3)), cfg) is None
    history = np.arange(1.0, 101.0)[:, None] * np.array([1.0, 2.0, 0.0])  # kWh per slot
    recent = history[-48:].mean(axis=0) * 12
    assert np.allclose(net_load_kw(history, cfg), recent)
    assert np.allclose(net_load_kw(np.stack([history, 2 * history]), cfg), [recent, 2 * recent])
