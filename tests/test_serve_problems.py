"""The `mec` and `datacenter` endpoints: a body built from an env's state is answered exactly as the
policy acts on the env's observation in that state (heuristics and registered models), the agent
count a model takes, and bad bodies. Calls go straight to the ASGI app, in process (Ray Serve hosts
the same app; benchmarks/serve_load_problems.py checks its answers against these)."""

from __future__ import annotations

import asyncio
import json

import numpy as np
import pytest

from aigcsched.algorithms.datacenter_heuristics import make_datacenter_heuristic
from aigcsched.algorithms.mec_heuristics import make_policy
from aigcsched.envs import physics
from aigcsched.envs.datacenter import DataCenterConfig, DataCenterEnv
from aigcsched.envs.mec import MECConfig, MECEnv
from aigcsched.platform.config import ConfigError
from aigcsched.platform.policies import resolve_policy
from aigcsched.platform.problems.datacenter_serving import EXAMPLE as DATACENTER_EXAMPLE
from aigcsched.platform.problems.datacenter_serving import observe, site_of
from aigcsched.platform.problems.mec_serving import EXAMPLE as MEC_EXAMPLE
from aigcsched.serve.api import make_api
from aigcsched.serve.cluster import ClusterBook
from aigcsched.serve.policy import PolicySource
from aigcsched.serve.problems import ProblemDecider, load_decider

MEC_MODEL, DC_MODEL = "aigcsched-mec", "aigcsched-datacenter"  # the models `serve --problem P` loads by default
MEC_SCENARIO = MECConfig(n_servers=3, observe_lookahead=True)  # the look-ahead block built from the body too
DC_SCENARIO = DataCenterConfig(observe_lookahead=True, agent_id_in_obs=True)


class Local:
    """`api.LocalService` around a decider of any problem."""

    app_name = "local"

    def __init__(self, decider):
        self.decider, self.book = decider, ClusterBook()

    async def clusters(self, method: str, *args):
        if method in ("register", "dispatch"):
            args = (*args, self.decider)
        return getattr(self.book, method)(*args)


def call(app, method: str, path: str, body=None, raw: bytes | None = None) -> tuple[int, object]:
    """One HTTP exchange with an ASGI app, in process."""
    data = raw if raw is not None else (b"" if body is None else json.dumps(body).encode())
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": method,
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "root_path": "",
        "scheme": "http",
        "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(data)).encode())],
        "client": ("127.0.0.1", 1),
        "server": ("127.0.0.1", 80),
    }
    received, status, chunks = False, [], []

    async def receive():
        nonlocal received
        if received:
            await asyncio.Event().wait()  # the client stays connected
        received = True
        return {"type": "http.request", "body": data, "more_body": False}

    async def send(message):
        if message["type"] == "http.response.start":
            status.append(message["status"])
        elif message["type"] == "http.response.body":
            chunks.append(message.get("body", b""))

    asyncio.run(app(scope, receive, send))
    payload = b"".join(chunks)
    return status[0], json.loads(payload) if payload else None


def app_of(**source) -> tuple[object, ProblemDecider]:
    decider = load_decider(PolicySource(**source))
    return make_api(Local(decider)), decider


@pytest.fixture(scope="module")
def models(tracking_store, register_policy):
    """Untrained real models of mec (3 stations) and datacenter (3 providers), registered and promoted."""
    from aigcsched.platform import registry

    uris = {}
    for name, cfg in ((MEC_MODEL, MEC_SCENARIO), (DC_MODEL, DC_SCENARIO)):
        registry.promote(name, register_policy(name, cfg, seed=1))
        uris[name] = f"models:/{name}@champion"
    return uris


# --- mec ------------------------------------------------------------------------------------------


def mec_body(env: MECEnv) -> dict:
    """The body describing the env's current slot (stations s0, s1, ...)."""
    inst, t, n = env.instance, env.slot, env.cfg.n_servers
    backlog = np.maximum(env.free_at - env.now, 0.0)
    stations = []
    for i in range(n):
        task = None
        if inst.has_task[t, i]:
            task = {"mbit": float(inst.task_mbit[t, i]), "steps": int(inst.task_steps[t, i])}
        links = [float(inst.link_mbps[i, j]) for j in range(n) if j != i]
        station = {"capacity_steps_per_s": float(inst.capacity[i]), "backlog_s": float(backlog[i])}
        stations.append({"id": f"s{i}", **station, "links_mbps": links, "task": task})
    return {"stations": stations}


def check_mec_episode(app, policy, cfg: MECConfig, seed: int, slots: int = 8) -> int:
    """Play `slots` slots of an episode with `policy`; every slot, the endpoint's answer to the
    slot's body must be the policy's shares on the env and the delays the env then books. Returns
    how many tasks were split over several servers."""
    env = MECEnv(cfg)
    obs, _ = env.reset(seed=seed)
    split = 0
    for _ in range(slots):
        status, answer = call(app, "POST", "/v1/mec/decide", mec_body(env))
        assert status == 200, answer
        shares = {a: policy(env, a, obs[a]) for i, a in enumerate(env.agents) if env.instance.has_task[env.slot, i]}
        obs, _, _, _, infos = env.step_shares(shares)
        for i, (agent, got) in enumerate(zip(env.possible_agents, answer["stations"], strict=True)):
            if agent not in shares:
                assert got == {"id": f"s{i}", "servers": [], "shares": [], "expected_delay_s": None}
                continue
            used = np.flatnonzero(shares[agent] > 0)
            assert got["servers"] == [f"s{j}" for j in used]
            assert got["shares"] == pytest.approx(shares[agent][used], abs=1e-9)
            assert got["expected_delay_s"] == pytest.approx(infos[agent]["delay"], abs=1e-9)
            split += len(used) > 1
    return split


@pytest.mark.parametrize("name", ["myopic", "sequential_myopic", "anticipating_myopic", "spreading_myopic", "smcoedge"])
def test_a_mec_heuristic_answers_as_on_the_env_for_any_station_count(name):
    app, _ = app_of(heuristic=name, problem="mec")
    for n, seed in ((4, 0), (2, 1)):
        assert check_mec_episode(app, make_policy(name), MECConfig(n_servers=n), seed) > 0


def test_a_registered_mec_model_answers_as_on_the_env(models):
    uri = models[MEC_MODEL]
    app, decider = app_of(model_uri=uri)
    check_mec_episode(app, resolve_policy(uri, MEC_SCENARIO), MEC_SCENARIO, seed=2)
    status, info = call(app, "GET", "/v1/model")
    assert status == 200 and info["problem"] == "mec" and info["n_agents"] == 3 and info["version"] == "1"
    # another station count: 422 naming both
    env = MECEnv(MECConfig(n_servers=4))
    env.reset(seed=0)
    status, answer = call(app, "POST", "/v1/mec/decide", mec_body(env))
    assert status == 422 and answer["detail"] == (
        f"the policy {decider.label} was trained for 3 stations; the body has 4 stations"
    )
    small = MECEnv(MECConfig(n_servers=3))
    small.reset(seed=0)
    status, answer = call(app, "POST", "/v1/mec/decide-batch", [mec_body(small), mec_body(env)])
    assert status == 422 and answer["detail"].startswith("item 1: the policy")
    status, answer = call(app, "POST", "/v1/mec/decide-batch", [mec_body(small)] * 2)
    assert status == 200 and len(answer) == 2 and answer[0] == answer[1]
    assert answer[0]["model_version"] == "1" and info["follows"] == decider.follows


def _station(**change) -> dict:
    return {**MEC_EXAMPLE["stations"][0], **change}


@pytest.mark.parametrize(
    "stations, where",
    [
        ([_station(backlog_s=True), *MEC_EXAMPLE["stations"][1:]], "backlog_s"),  # no bool as a number
        ([_station(capacity_steps_per_s="30"), *MEC_EXAMPLE["stations"][1:]], "capacity_steps_per_s"),
        ([_station(backlog_s=-1.0), *MEC_EXAMPLE["stations"][1:]], "backlog_s"),
        ([_station(task={"mbit": 2.0, "steps": 0}), *MEC_EXAMPLE["stations"][1:]], "steps"),
        ([_station(links_mbps=[450.0, 0.0]), *MEC_EXAMPLE["stations"][1:]], "links_mbps"),
        ([_station(links_mbps=[450.0]), *MEC_EXAMPLE["stations"][1:]], "links_mbps needs 2 rates"),
        ([_station(id="bs-1"), *MEC_EXAMPLE["stations"][1:]], "'bs-1' appears more than once"),
        ([_station(speed=3.0), *MEC_EXAMPLE["stations"][1:]], "speed"),
        (MEC_EXAMPLE["stations"][:1], "at least 2"),
        ([_station()] * 21, "at most 20"),  # the myopic rules' work grows as N^3
    ],
)
def test_bad_mec_bodies_are_422_naming_the_field(stations, where):
    app, _ = app_of(heuristic="myopic", problem="mec")
    status, answer = call(app, "POST", "/v1/mec/decide", {"stations": stations})
    assert status == 422 and where in json.dumps(answer["detail"])


def test_non_finite_numbers_are_422_not_500():
    app, _ = app_of(heuristic="myopic", problem="mec")
    raw = json.dumps(MEC_EXAMPLE).replace("1.5", "NaN").encode()
    status, answer = call(app, "POST", "/v1/mec/decide", raw=raw)
    assert status == 422 and answer["detail"][0]["loc"][-1] == "backlog_s"


# --- datacenter -----------------------------------------------------------------------------------


def datacenter_body(env: DataCenterEnv, sites: bool = False) -> dict:
    """The body describing the env's state before its next slot (providers p0, p1, ...); `sites`:
    with each provider's constants."""
    cfg, t, inp = env.cfg, env._t, env._inputs
    q = env._q
    by_class, late = q[:, 1:].sum(axis=(1, 3)), q[:, 0].sum(axis=(1, 2))
    hour = int(np.floor(env.day * 24 + t * cfg.slot_minutes / 60))  # the weather of the slot's hour
    temperature = np.array([tr.temperature[hour % len(tr.temperature)] for tr in env._traces])
    pue = physics.pue(temperature, cfg.pue_min, cfg.pue_free_cooling_c, cfg.pue_slope_per_c)
    np.testing.assert_array_equal(pue, inp.pue[:, t])
    soc = np.array(env._soc) / env._battery_kwh
    net = env.state().net_kw
    return {
        "slot_of_day": t,
        "providers": [
            {
                "id": f"p{k}",
                "queue": {"by_class": [int(n) for n in by_class[k]], "late": int(late[k])},
                "busy_gpus": float(env._busy[k]),
                "battery_soc": float(soc[k]),
                "prices": {
                    "now_usd_mwh": float(inp.price[k, t]),
                    "ahead_usd_mwh": [float(p) for p in inp.forecast[k, t]],
                    "day_usd_mwh": [float(p) for p in inp.day_prices[k]],
                },
                "weather": {"temperature_c": float(temperature[k]), "renewable_kw": float(inp.renewable_kw[k, t])},
                "local_hour": float(inp.local_hour[k, t]),
                "arrivals": {"last_slot": int(env._last_arrivals[k]), "expected": float(inp.rate[k, t])},
                **({"net_load_kw": float(net[k])} if net is not None else {}),
                **({"site": site_of(cfg, k).model_dump()} if sites else {}),
            }
            for k in range(cfg.n_asps)
        ],
    }


def check_datacenter_day(app, policy, cfg: DataCenterConfig, slots: int = 6, sites: bool = False) -> set:
    """Play `slots` slots (from 10:00 local-ish, busy hours) with `policy`; every slot the body's
    observations must be the env's, and the endpoint's answer the policy's actions. Returns the
    distinct actions seen."""
    from aigcsched.envs.datacenter import BATTERY_ACTIONS

    env = DataCenterEnv(cfg)
    obs, _ = env.reset(seed=3)
    seen = set()
    for t in range(slots * 12):
        if t % 12 == 0:  # one slot an hour: queues, battery and prices all move between checks
            body = datacenter_body(env, sites)
            built, _ = observe(cfg, _parse(body))
            np.testing.assert_array_equal(built, np.stack([obs[a] for a in env.agents]))
            status, answer = call(app, "POST", "/v1/datacenter/decide", body)
            assert status == 200, answer
        actions = policy(obs, env.state())
        if t % 12 == 0:
            for k, (agent, got) in enumerate(zip(env.agents, answer["providers"], strict=True)):
                keep, target, level, battery, cap = (int(v) for v in actions[agent])
                others = [f"p{j}" for j in range(cfg.n_asps) if j != k]
                assert got == {
                    "id": f"p{k}",
                    "keep_share": cfg.keep_levels[keep],
                    "handoff_to": others[target] if cfg.keep_levels[keep] < 1 else None,
                    "steps": cfg.step_levels[level],
                    "battery": BATTERY_ACTIONS[battery],
                    "power_cap": cfg.power_cap_levels[cap],
                }
                seen.add((keep, target, level, battery, cap))
        obs, *_ = env.step(actions)
    return seen


def _parse(body: dict):
    from aigcsched.platform.problems.datacenter_serving import DataCenterDecideRequest

    return DataCenterDecideRequest.model_validate(body)


def test_a_datacenter_heuristic_answers_as_on_the_env():
    app, _ = app_of(heuristic="combined", problem="datacenter")
    cfg = DataCenterConfig()
    seen = check_datacenter_day(app, make_datacenter_heuristic("combined", cfg), cfg)
    assert len(seen) > 1  # the state moved the decisions


@pytest.mark.parametrize("name", ["planned_handoff", "pooled_handoff"])
def test_the_planned_battery_is_served_as_on_the_env(name):
    """Planned afresh from each body (its slot of the day and net load), the battery is the env's
    planner's, kept from hour to hour; so is a model's observation of it. (The service may differ:
    a body carries no job ages, so every queued job counts as due.) The pool's hand-offs follow
    the expected arrivals and prices alone: they are the env's too."""
    from aigcsched.envs.datacenter import BATTERY_ACTIONS

    app, _ = app_of(heuristic=name, problem="datacenter")
    cfg = DataCenterConfig(observe_lookahead=True, lookahead_plan=name)
    battery = slice(cfg.obs_size - 6, cfg.obs_size - 3)  # the plan's battery one-hot, before the power cap's
    env = DataCenterEnv(cfg)
    obs, _ = env.reset(seed=3)
    policy = make_datacenter_heuristic(name, cfg)
    seen, handed = set(), 0
    for t in range(6 * 12):
        actions = policy(obs, env.state())
        if t % 12 == 0:  # one slot an hour
            body = datacenter_body(env)
            built, _ = observe(cfg, _parse(body))
            np.testing.assert_array_equal(built[:, battery], np.stack([obs[a] for a in env.agents])[:, battery])
            status, answer = call(app, "POST", "/v1/datacenter/decide", body)
            assert status == 200, answer
            commands = [BATTERY_ACTIONS[actions[a][3]] for a in env.agents]
            assert [p["battery"] for p in answer["providers"]] == commands
            seen.update(commands)
            if name == "pooled_handoff":
                keep = [float(cfg.keep_levels[actions[a][0]]) for a in env.agents]
                assert [p["keep_share"] for p in answer["providers"]] == keep
                targets = [p["handoff_to"] for p in answer["providers"]]
                others = [[j for j in range(cfg.n_asps) if j != i] for i in range(cfg.n_asps)]
                ids = [p["id"] for p in body["providers"]]
                expected = [ids[others[i][actions[a][1]]] if keep[i] < 1.0 else None for i, a in enumerate(env.agents)]
                assert targets == expected
                handed += sum(k < 1.0 for k in keep)
        obs, *_ = env.step(actions)
    assert len(seen) > 1
    assert handed > 0 or name != "pooled_handoff"
    without = {k: v for k, v in DATACENTER_EXAMPLE.items() if k != "slot_of_day"}
    status, answer = call(app, "POST", "/v1/datacenter/decide", without)
    assert (
        status == 422 and answer["detail"] == "this policy plans the battery for the rest of the day: give slot_of_day"
    )
    providers = [{**p, "net_load_kw": 20.0} for p in DATACENTER_EXAMPLE["providers"]]
    status, answer = call(app, "POST", "/v1/datacenter/decide", {"slot_of_day": 300, "providers": providers})
    assert status == 422 and answer["detail"] == "slot_of_day is 300, the scenario's day has 288 slots"
    providers[1].pop("net_load_kw")
    status, answer = call(app, "POST", "/v1/datacenter/decide", {"slot_of_day": 3, "providers": providers})
    assert status == 422 and "provider(s) 'pjm' have no net_load_kw" in json.dumps(answer["detail"])


# five providers, each site unlike the default scenario's (regions only pick the simulated traces)
FIVE_SITES = DataCenterConfig(
    data_dir="embedded",
    regions=("CAISO", "PJM", "ERCOT", "NYISO", "PJM"),
    models=("a", "b", "c", "d", "e"),
    n_gpus=(16, 48, 32, 8, 24),
    sec_per_step=(0.05, 0.12, 0.2, 0.08, 0.3),
    gpu_power_w=(300.0, 700.0, 700.0, 400.0, 1000.0),
    gpu_idle_w=(40.0, 75.0, 90.0, 55.0, 120.0),
    quality_max=(0.4, 0.6, 0.7, 0.45, 0.8),
    quality_mid_steps=(8.0, 10.0, 12.0, 6.0, 14.0),
    quality_scale_steps=(3.0, 3.5, 4.0, 2.0, 5.0),
    base_rate=(1500.0, 2500.0, 900.0, 600.0, 700.0),
    pv_kwp=(30.0, 20.0, 25.0, 0.0, 10.0),
    wind_kw=(10.0, 15.0, 20.0, 5.0, 0.0),
    battery_kwh=(100.0, 200.0, 50.0, 0.0, 80.0),
    battery_kw=(50.0, 100.0, 25.0, 0.0, 40.0),
)


@pytest.mark.parametrize("heuristic", ["combined", "value_handoff"])
def test_a_datacenter_heuristic_answers_for_any_provider_count_from_the_sites(heuristic):
    app, _ = app_of(heuristic=heuristic, problem="datacenter")
    seen = check_datacenter_day(app, make_datacenter_heuristic(heuristic, FIVE_SITES), FIVE_SITES, sites=True)
    assert len(seen) > 1
    two = [{**p, "site": site_of(DataCenterConfig(), 0).model_dump()} for p in DATACENTER_EXAMPLE["providers"][:2]]
    status, answer = call(app, "POST", "/v1/datacenter/decide", {"providers": two})
    assert status == 200 and [p["id"] for p in answer["providers"]] == ["caiso", "pjm"], answer
    # without sites, the default scenario's three; sites for some providers only: refused, naming them
    status, answer = call(
        app, "POST", "/v1/datacenter/decide", {"providers": [two[0], DATACENTER_EXAMPLE["providers"][1]]}
    )
    assert status == 422 and answer["detail"] == "provider(s) 'pjm' have no site: give every provider its site, or none"
    bad = {**two[1], "site": {**two[1]["site"], "gpu_idle_w": 500.0}}
    status, answer = call(app, "POST", "/v1/datacenter/decide", {"providers": [two[0], bad]})
    assert status == 422 and "gpu_idle_w must not exceed gpu_power_w" in json.dumps(answer["detail"])


def test_a_registered_datacenter_model_answers_as_on_the_env(models):
    uri = models[DC_MODEL]
    app, decider = app_of(model_uri=uri, problem="datacenter")
    check_datacenter_day(app, resolve_policy(uri, DC_SCENARIO), DC_SCENARIO)
    status, info = call(app, "GET", "/v1/model")
    assert status == 200 and info["problem"] == "datacenter" and info["n_agents"] == 3
    two = {"providers": DATACENTER_EXAMPLE["providers"][:2]}
    status, answer = call(app, "POST", "/v1/datacenter/decide", two)
    assert status == 422 and answer["detail"] == (
        f"the policy {decider.label} was trained for 3 providers; the body has 2 providers"
    )
    # sites are checked against the training scenario's
    check_datacenter_day(app, resolve_policy(uri, DC_SCENARIO), DC_SCENARIO, slots=1, sites=True)
    other = {**DATACENTER_EXAMPLE["providers"][2], "site": {**site_of(DC_SCENARIO, 2).model_dump(), "n_gpus": 64}}
    status, answer = call(
        app, "POST", "/v1/datacenter/decide", {"providers": [*DATACENTER_EXAMPLE["providers"][:2], other]}
    )
    assert status == 422 and answer["detail"] == (
        "provider 'ercot': site.n_gpus is 64, the policy was trained with 32 (omit site to use the training scenario's)"
    )


def _provider(**change) -> dict:
    return {**DATACENTER_EXAMPLE["providers"][0], **change}


@pytest.mark.parametrize(
    "first, where",
    [
        (_provider(queue={"by_class": [1, 2], "late": 0}), "queue.by_class needs 3 counts"),
        (_provider(queue={"by_class": [1, 2, 1.5], "late": 0}), "by_class"),
        (_provider(battery_soc=1.2), "battery_soc"),
        (_provider(local_hour=24.0), "local_hour"),
        (_provider(prices={**DATACENTER_EXAMPLE["providers"][0]["prices"], "day_usd_mwh": [40.0]}), "day_usd_mwh"),
        (_provider(prices={**DATACENTER_EXAMPLE["providers"][0]["prices"], "ahead_usd_mwh": []}), "ahead_usd_mwh"),
        (_provider(busy_gpus=False), "busy_gpus"),
    ],
)
def test_bad_datacenter_bodies_are_422(first, where):
    app, _ = app_of(heuristic="combined", problem="datacenter")
    status, answer = call(
        app, "POST", "/v1/datacenter/decide", {"providers": [first, *DATACENTER_EXAMPLE["providers"][1:]]}
    )
    assert status == 422 and where in json.dumps(answer["detail"])


# --- the endpoint as a whole ----------------------------------------------------------------------


def test_each_endpoint_answers_only_its_problem_and_documents_its_bodies():
    for problem, heuristic, example in (("mec", "myopic", MEC_EXAMPLE), ("datacenter", "combined", DATACENTER_EXAMPLE)):
        app, decider = app_of(heuristic=heuristic, problem=problem)
        status, answer = call(app, "POST", f"/v1/{problem}/decide", example)  # the docs' example is answered
        assert status == 200 and answer["policy"] == f"heuristic:{heuristic}" and answer["model_version"] is None
        status, answer = call(
            app,
            "POST",
            "/v1/edge/decide",
            {"servers": {"a": {"capability": 5.0}}, "request": {"id": "r", "due_in_s": 3.0, "penalty": "linear"}},
        )
        assert status == 422 and answer["detail"].startswith(f"this endpoint serves the {problem} policy heuristic:")
        status, answer = call(app, "PUT", "/v1/clusters/c1", {"servers": {"a": {"capability": 5.0}}})
        assert status == 422 and f"POST /v1/{problem}/decide" in answer["detail"]
    edge, _ = app_of(heuristic="greedy")
    status, answer = call(edge, "POST", "/v1/mec/decide", MEC_EXAMPLE)
    assert (
        status == 422 and answer["detail"] == "this endpoint serves the edge policy heuristic:greedy, not a mec policy"
    )
    status, spec = call(edge, "GET", "/openapi.json")
    for problem, example in (("mec", MEC_EXAMPLE), ("datacenter", DATACENTER_EXAMPLE)):
        for route in ("decide", "decide-batch"):
            post = spec["paths"][f"/v1/{problem}/{route}"]["post"]
            assert {"200", "400", "401", "413", "422"} <= set(post["responses"])
            assert post["responses"]["422"]["content"]["application/json"]["schema"]["$ref"].endswith("/ErrorBody")
        name = f"{'MEC' if problem == 'mec' else 'DataCenter'}DecideRequest"
        assert spec["components"]["schemas"][name]["examples"] == [example]


def test_a_mec_model_is_followed_and_another_station_count_refused(models, register_policy, caplog):
    """The alias moves to a 4-station version (refused: clients send 3 stations), then to a 3-station
    one (swapped in); decisions then name the new version."""
    from aigcsched.platform import registry
    from aigcsched.serve.policy import follow

    name = "followed-mec"
    registry.promote(name, register_policy(name, MEC_SCENARIO, seed=1))
    source = PolicySource(model_uri=f"models:/{name}@champion", follow_every_s=0.01)
    served = [load_decider(source)]
    assert served[0].follows and served[0].version == "1"

    async def swap(decider, _source):
        served.append(decider)

    async def follow_until(done) -> None:
        task = asyncio.create_task(follow(source, lambda: served[-1], swap))
        for _ in range(3000):  # 30 s at most: loading a model takes a second or two
            if done():
                break
            await asyncio.sleep(0.01)
        task.cancel()

    registry.promote(name, register_policy(name, MECConfig(n_servers=4, observe_lookahead=True), seed=1))
    with caplog.at_level("WARNING", logger="aigcsched.serve.policy"):
        asyncio.run(follow_until(lambda: any("version 2" in r.getMessage() for r in caplog.records)))
    assert len(served) == 1
    assert any("it takes 4 mec stations, not 3 mec stations" in r.getMessage() for r in caplog.records)
    registry.promote(name, register_policy(name, MEC_SCENARIO, seed=2))
    asyncio.run(follow_until(lambda: len(served) == 2))
    assert [d.version for d in served] == ["1", "3"] and served[1].follows
    app = make_api(Local(served[1]))
    status, answer = call(app, "POST", "/v1/mec/decide", MEC_EXAMPLE)
    assert status == 200 and answer["model_version"] == "3"
    status, info = call(app, "GET", "/v1/model")
    assert info["version"] == "3" and info["follows"] and info["n_agents"] == 3


def test_serve_loads_a_problems_champion_and_refuses_a_model_of_another_problem(models, capsys, monkeypatch):
    import ray
    from cli_runner import run_cli

    from aigcsched.serve.deployment import check_policy
    from aigcsched.serve.policy import default_model_uri

    # what `aigcsched serve --problem mec` loads before starting Ray
    served = check_policy(PolicySource(model_uri=default_model_uri("mec"), problem="mec"))
    assert served.model_info()["problem"] == "mec" and served.label == f"{models[MEC_MODEL]} (version 1)"
    args = ("serve", "--problem", "datacenter", "--model", models[MEC_MODEL])
    code, out, err = run_cli(capsys, monkeypatch, *args)
    assert (code, out) == (2, "") and err == f"error: {models[MEC_MODEL]} is a mec policy, not a datacenter one\n"
    assert not ray.is_initialized()


def test_unknown_problems_and_policies_and_mismatched_models_are_config_errors(models):
    with pytest.raises(ConfigError, match="unknown problem 'cloud'; choose from edge, datacenter, mec"):
        PolicySource(heuristic="myopic", problem="cloud")
    with pytest.raises(ConfigError, match="unknown mec policy 'greedy' to serve; choose from local, least_loaded"):
        load_decider(PolicySource(heuristic="greedy", problem="mec"))
    with pytest.raises(ConfigError, match="unknown datacenter policy 'random' to serve"):
        load_decider(PolicySource(heuristic="random", problem="datacenter"))
    with pytest.raises(ConfigError, match=f"models:/{MEC_MODEL}@champion is a mec policy, not a datacenter one"):
        load_decider(PolicySource(model_uri=models[MEC_MODEL], problem="datacenter"))
    # a datacenter heuristic without sites acts for the default scenario's providers: another count is 422
    app, _ = app_of(heuristic="local", problem="datacenter")
    status, answer = call(app, "POST", "/v1/datacenter/decide", {"providers": DATACENTER_EXAMPLE["providers"][:2]})
    assert status == 422 and answer["detail"] == (
        "the default scenario has 3 providers, the body 2: give each provider its site (GPUs, model speed, "
        "power, battery) to decide for another count"
    )


def test_bodies_at_the_bounds_are_answered_with_finite_numbers():
    """Every number at its extreme (the ones a fuzzer tries first): 200, never a 500 or a NaN."""
    slow = {
        "capacity_steps_per_s": 1e-3,
        "backlog_s": 1e6,
        "links_mbps": [1e-3, 1e6],
        "task": {"mbit": 1e5, "steps": 100_000},
    }
    fast = {
        "capacity_steps_per_s": 1e6,
        "backlog_s": 0.0,
        "links_mbps": [1e6, 1e-3],
        "task": {"mbit": 1e-9, "steps": 1},
    }
    body = {"stations": [{"id": "a", **slow}, {"id": "b", **fast}, {"id": "c", **slow, "links_mbps": [1e6, 1e6]}]}
    for heuristic in ("myopic", "sequential_myopic", "smcoedge", "least_loaded"):
        app, _ = app_of(heuristic=heuristic, problem="mec")
        status, answer = call(app, "POST", "/v1/mec/decide", body)
        assert status == 200, answer
        for station in answer["stations"]:
            assert np.isfinite(station["expected_delay_s"]) and sum(station["shares"]) == pytest.approx(1.0)
    huge = _provider(
        queue={"by_class": [10**9] * 3, "late": 10**9},
        busy_gpus=1e7,
        battery_soc=1.0,
        prices={"now_usd_mwh": -1e4, "ahead_usd_mwh": [1e5] * 3, "day_usd_mwh": [-1e4] * 12 + [1e5] * 12},
        weather={"temperature_c": 70.0, "renewable_kw": 1e7},
        arrivals={"last_slot": 10**9, "expected": 1e9},
    )
    for heuristic in ("local", "handoff", "arbitrage", "combined", "deadline", "value_handoff"):
        app, _ = app_of(heuristic=heuristic, problem="datacenter")
        status, answer = call(
            app, "POST", "/v1/datacenter/decide", {"providers": [huge, *DATACENTER_EXAMPLE["providers"][1:]]}
        )
        assert status == 200 and len(answer["providers"]) == 3, answer


def test_a_policy_trained_in_turn_is_served_in_turn():
    """Served on an in-turn scenario, myopic books as `sequential_myopic` does on the stations' own
    scenario: each station after the ones before it, not all on the slot's start."""
    from aigcsched.platform.problems.mec_serving import MEC_SERVING, MECDecideRequest, heuristic_scenario

    env = MECEnv(MECConfig(n_servers=5))
    env.reset(seed=3)
    body = MECDecideRequest.model_validate(mec_body(env))
    in_turn = heuristic_scenario(5).model_copy(update={"decision": "in_turn"})
    served = MEC_SERVING.decide(make_policy("myopic"), in_turn, body)
    sequential = MEC_SERVING.decide(make_policy("sequential_myopic"), None, body)
    simultaneous = MEC_SERVING.decide(make_policy("myopic"), None, body)
    assert served == sequential
    assert served != simultaneous


def test_the_client_sends_slot_of_day_only_when_given(monkeypatch):
    from aigcsched.serve.client import SchedulerClient

    client, sent = SchedulerClient("http://127.0.0.1:9"), []
    monkeypatch.setattr(client, "request", lambda method, path, body=None: sent.append((method, path, body)))
    client.decide_datacenter(DATACENTER_EXAMPLE["providers"])
    client.decide_datacenter(DATACENTER_EXAMPLE["providers"], slot_of_day=144)
    route = ("POST", "/v1/datacenter/decide")
    assert sent == [
        (*route, {"providers": DATACENTER_EXAMPLE["providers"]}),
        (*route, {"providers": DATACENTER_EXAMPLE["providers"], "slot_of_day": 144}),
    ]
