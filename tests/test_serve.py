"""The scheduling endpoint on Ray Serve, called over real HTTP on loopback.

One Ray + Serve start for the module, two applications on it:
  - `/`: the greedy heuristic, guarded by a bearer token, small body limit;
  - `/model`: the `champion` of a model registered in the module's MLflow store (an untrained
    edge scheduler module for 3 servers), loaded by the replicas as `aigcsched serve` loads it.
"""

from __future__ import annotations

import http.client
import itertools
import json
import os
import socket
import threading
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from urllib.parse import urlsplit

import numpy as np
import pytest

from aigcsched.algorithms.heuristics import greedy_policy
from aigcsched.envs.edge import PENALTY_KINDS, EdgeConfig, SchedulingState, observation_from_state
from aigcsched.platform.problems.edge import EDGE
from aigcsched.serve.client import EndpointError, SchedulerClient

TOKEN = "test-token-0123456789"
MAX_BODY = 256 * 1024
APP = "aigcsched-test"
MODEL = "aigcsched-edge-serve-test"
MODEL_URI = f"models:/{MODEL}@champion"
SCENARIO = EdgeConfig(n_servers=3, n_strong=1, observe_capabilities=True)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def endpoint(tracking_store, register_edge_model):
    import ray
    from ray import serve

    from aigcsched.platform import registry
    from aigcsched.serve.api import token_digest
    from aigcsched.serve.deployment import ServeOptions, drop_cluster_state, ray_env, replica_urls, start
    from aigcsched.serve.policy import PolicySource, local_tracking_uri

    # Two versions with different weights, the champion the older one: serving the latest is wrong.
    champion = register_edge_model(MODEL, SCENARIO, seed=1)
    register_edge_model(MODEL, SCENARIO, seed=2)
    registry.promote(MODEL, champion)
    port = free_port()
    greedy = ServeOptions(
        port=port,
        app_name=APP,
        max_body_bytes=MAX_BODY,
        health_check_period_s=1.0,
        replica_cpus=0.5,
    )
    model = ServeOptions(port=port, app_name=APP + "-model", route_prefix="/model", replica_cpus=0.5)
    started_ray = not ray.is_initialized()
    if started_ray:
        env = ray_env(greedy)  # what `aigcsched serve` runs with (direct ingress above `port`)
        saved = {k: os.environ.get(k) for k in env}
        os.environ.update({k: v for k, v in env.items() if saved[k] is None})
        # "local": a fresh instance even when a `ray start` cluster runs on this machine
        ray.init(address="local", num_cpus=2, include_dashboard=False, log_to_driver=False)
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k)
    base = start(PolicySource(heuristic="greedy"), greedy, token_digest(TOKEN))
    # As `aigcsched serve --model` does: the replicas read the command's store, wherever they run.
    # Polls the registry every second (5 s by default) so that following the alias takes a short test.
    model_source = PolicySource(model_uri=MODEL_URI, tracking_uri=local_tracking_uri(), follow_every_s=1.0)
    model_base = start(model_source, model)
    yield {"base": base, "model": model_base, "direct": replica_urls(greedy), "options": greedy}
    serve.shutdown()
    for app in (APP, APP + "-model"):
        drop_cluster_state(app)
    if started_ray:
        ray.shutdown()


@pytest.fixture
def client(endpoint):
    return SchedulerClient(endpoint["base"], token=TOKEN)


def random_bodies(n: int, seed: int, n_servers=None) -> list[dict]:
    rng = np.random.default_rng(seed)
    bodies = []
    for i in range(n):
        j = n_servers or int(rng.integers(1, 12))
        servers = {
            f"gpu-{k}": {
                "capability": float(rng.uniform(6, 18)),
                "busy_for_s": float(rng.choice([0.0, rng.uniform(0, 15)])),
            }
            for k in range(j)
        }
        request = {"id": f"r{i}", "due_in_s": float(rng.uniform(0, 20)), "penalty": PENALTY_KINDS[i % 3]}
        bodies.append({"servers": servers, "request": request})
    return bodies


def expected(policy, cfg: EdgeConfig, body: dict) -> dict:
    """The policy called directly on the body's state, turned into a decision by hand."""
    busy = np.array([[s["busy_for_s"] for s in body["servers"].values()]])
    cap = np.array([[s["capability"] for s in body["servers"].values()]])
    state = SchedulingState(
        busy,
        cap,
        np.array([body["request"]["due_in_s"]]),
        np.array([PENALTY_KINDS.index(body["request"]["penalty"])]),
    )
    server, steps = np.asarray(policy(observation_from_state(state, cfg), state)).reshape(2)
    steps += 1
    return {
        "server": list(body["servers"])[server],
        "steps": int(steps),
        "expected_finish_s": pytest.approx(busy[0, server] + steps / cap[0, server]),
        "expected_quality": pytest.approx(cfg.quality_table()[steps]),
    }


def raw_post(url: str, body: bytes, headers: dict, chunked: bool = False) -> tuple[int, dict]:
    parts = urlsplit(url)
    conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=30)
    try:
        if chunked:
            conn.putrequest("POST", parts.path)
            for k, v in {**headers, "Transfer-Encoding": "chunked"}.items():
                conn.putheader(k, v)
            conn.endheaders()
            for i in range(0, len(body), 8192):
                piece = body[i : i + 8192]
                conn.send(f"{len(piece):x}\r\n".encode() + piece + b"\r\n")
            conn.send(b"0\r\n\r\n")
        else:
            conn.request("POST", parts.path, body=body, headers=headers)
        resp = conn.getresponse()
        return resp.status, json.loads(resp.read() or b"{}")
    finally:
        conn.close()


# --- stateless decisions ---------------------------------------------------------------------


def test_decisions_match_the_policy_called_directly(client):
    cfg = EdgeConfig()
    policy = greedy_policy(cfg)
    bodies = random_bodies(48, seed=1)
    with ThreadPoolExecutor(16) as pool:  # concurrent: @serve.batch puts them in shared batches
        answers = list(pool.map(lambda b: client.decide(b["servers"], b["request"]), bodies))
    for body, answer in zip(bodies, answers, strict=True):
        assert answer == {**expected(policy, cfg, body), "policy": "heuristic:greedy", "model_version": None}


def test_batch_equals_singles_in_order(client):
    bodies = random_bodies(70, seed=2)  # mixed server counts
    batch = client.decide_batch(bodies)
    singles = [client.decide(b["servers"], b["request"]) for b in bodies]
    assert batch == singles


def test_the_replica_answers_directly_as_through_the_proxy(endpoint, client):
    (url,) = endpoint["direct"]  # one replica, its own port above the proxy's
    direct = SchedulerClient(url, token=TOKEN)
    bodies = random_bodies(30, seed=6)
    assert direct.decide_batch(bodies) == client.decide_batch(bodies)
    assert [direct.decide(b["servers"], b["request"]) for b in bodies[:5]] == client.decide_batch(bodies[:5])
    with pytest.raises(EndpointError) as e:
        SchedulerClient(url).decide(bodies[0]["servers"], bodies[0]["request"])
    assert e.value.status == 401


def test_model_info_and_decisions_of_a_registered_model(endpoint):
    import mlflow

    from aigcsched.platform import registry

    champion = mlflow.MlflowClient().get_model_version_by_alias(MODEL, "champion")
    versions = {v.version for v in mlflow.MlflowClient().search_model_versions(f"name='{MODEL}'")}
    latest = max(versions, key=int)
    assert champion.version != latest  # so that a server loading the latest version fails below
    served = SchedulerClient(endpoint["model"])
    info = served.model()
    assert info == {
        "problem": "edge",
        "name": MODEL,
        "version": str(champion.version),
        "alias": "champion",
        "run_id": champion.run_id,
        "uri": MODEL_URI,
        "policy": f"{MODEL_URI} (version {champion.version})",
        "n_servers": 3,
        "n_agents": None,
        "follows": True,
    }
    policy = EDGE.bind(registry.load_policy(MODEL_URI))
    bodies = random_bodies(40, seed=3, n_servers=3)
    answers = served.decide_batch(bodies)
    for body, answer in zip(bodies, answers, strict=True):
        assert answer == {
            **expected(policy, policy.cfg, body),
            "policy": info["policy"],
            "model_version": info["version"],
        }
    with ThreadPoolExecutor(8) as pool:  # singles go through @serve.batch: the same decisions
        assert list(pool.map(lambda b: served.decide(b["servers"], b["request"]), bodies)) == answers
    chosen = [(a["server"], a["steps"]) for a in answers]
    assert len(set(chosen)) > 5  # the decisions depend on the state, so the comparison means something
    other = EDGE.bind(registry.load_policy(f"models:/{MODEL}/{latest}"))
    assert chosen != [(e["server"], e["steps"]) for e in (expected(other, other.cfg, b) for b in bodies)]

    # The cluster actor loads the same model: a first booking on idle servers is its decision.
    servers = {f"gpu-{k}": {"capability": c} for k, c in enumerate((15.0, 9.0, 7.5))}
    served.register_cluster("model", servers)
    request = {"id": "m1", "due_in_s": 6.0, "penalty": "quadratic"}
    booking = served.dispatch("model", request)
    idle = {k: {**s, "busy_for_s": 0.0} for k, s in servers.items()}
    want = expected(policy, policy.cfg, {"servers": idle, "request": request})
    assert {k: booking[k] for k in want} == want and booking["policy"] == info["policy"]
    served.delete_cluster("model")


def test_replicas_follow_the_alias_without_failing_a_request(endpoint):
    """Move `champion` while a client keeps deciding: no call fails, and soon the answers (and the
    cluster actor's bookings) come from the new version; then move it back."""
    import mlflow

    from aigcsched.platform import registry

    served = SchedulerClient(endpoint["model"])
    old = served.model()["version"]
    versions = {str(v.version) for v in mlflow.MlflowClient().search_model_versions(f"name='{MODEL}'")}
    new = next(v for v in sorted(versions, key=int) if v != old)
    bodies = random_bodies(50, seed=7, n_servers=3)
    answers, failures, stop = [], [], threading.Event()

    def keep_deciding():
        for i in itertools.count():
            if stop.is_set():
                return
            body = bodies[i % len(bodies)]
            try:
                answers.append(served.decide(body["servers"], body["request"])["model_version"])
            except Exception as e:  # any failure is the finding
                failures.append(repr(e))

    served.register_cluster("follow", {f"gpu-{k}": {"capability": c} for k, c in enumerate((15.0, 9.0, 7.5))})
    client = threading.Thread(target=keep_deciding)
    client.start()
    try:
        for i, target in enumerate((new, old)):
            registry.promote(MODEL, target)
            deadline = time.monotonic() + 30  # the bound; the poll is every second here
            while time.monotonic() < deadline and not (answers and answers[-1] == target):
                time.sleep(0.1)
            assert answers[-1] == target, f"still version {answers[-1]} 30 s after champion moved to {target}"
            booking = served.dispatch("follow", {"id": f"f{i}", "due_in_s": 9.0, "penalty": "linear"})
            assert booking["model_version"] == target
            assert served.model()["version"] == target
    finally:
        stop.set()
        client.join()
        served.delete_cluster("follow")
    assert failures == []
    switches = [b for a, b in itertools.pairwise(answers) if a != b]
    assert switches == [new, old]  # once each way, no flapping between versions
    assert len(answers) > 20


def test_following_keeps_serving_through_registry_errors(caplog):
    """The registry fails; then names version 2, which cannot be loaded, and version 3, which takes
    another server count; then version 4. The policy in use serves until version 4 is loaded, each
    problem is logged once, a refused version is not loaded again, and one swap happens."""
    import asyncio

    from aigcsched.serve.policy import Decider, HeuristicPolicy, follow

    def versioned(version, fixed_count=False):
        policy = HeuristicPolicy("greedy")
        policy.info = {**policy.info, "version": version, "uri": "models:/m@champion"}
        policy.any_server_count = not fixed_count
        return policy

    down = OSError("registry down")
    answers = itertools.chain([down, down, "1", "2", "2", "3", "3"], itertools.repeat("4"))
    loads = {"2": ValueError("bad artifact"), "3": versioned("3", fixed_count=True), "4": versioned("4")}
    loaded = []

    class Source:
        follow_every_s, model_uri = 0.001, "models:/m@champion"

        def current_version(self):
            answer = next(answers)
            if isinstance(answer, Exception):
                raise answer
            return answer

        def pinned(self, version):
            def load():
                loaded.append(version)
                if isinstance(loads[version], Exception):
                    raise loads[version]
                return loads[version]

            return type("Pinned", (), {"load": staticmethod(load), "heuristic": None, "problem": None})()

    served = [Decider(versioned("1"), follows=True)]

    async def swap(decider, source):
        served.append(decider)

    async def main():
        task = asyncio.create_task(follow(Source(), lambda: served[-1], swap))
        while len(served) < 2:
            await asyncio.sleep(0.001)
        await asyncio.sleep(0.02)  # a few more polls that see version 4 in use: no more swaps
        task.cancel()

    with caplog.at_level("WARNING", logger="aigcsched.serve.policy"):
        asyncio.run(main())
    assert [d.version for d in served] == ["1", "4"] and loaded == ["2", "3", "4"]
    warnings = [r.getMessage() for r in caplog.records]
    for problem in ("registry down", "version 2: ValueError: bad artifact", "version 3: ConfigError: it takes 10"):
        assert sum(problem in w for w in warnings) == 1, warnings
    assert "now serving models:/m@champion (version 4)" in warnings[-1]


def test_a_fixed_version_does_not_follow():
    from aigcsched.serve.policy import PolicySource

    assert PolicySource(model_uri=MODEL_URI).follows
    assert PolicySource(model_uri=f"models:/{MODEL}/latest").follows
    assert not PolicySource(model_uri=f"models:/{MODEL}/3").follows
    assert not PolicySource(model_uri=MODEL_URI, follow_every_s=0).follows
    assert not PolicySource(heuristic="greedy").follows


def test_a_model_takes_only_its_server_count(endpoint):
    served = SchedulerClient(endpoint["model"])
    label = served.model()["policy"]
    body = random_bodies(1, seed=4, n_servers=4)[0]
    with pytest.raises(EndpointError) as e:
        served.decide(body["servers"], body["request"])
    assert e.value.status == 422
    assert e.value.detail == f"the policy {label} takes exactly 3 servers per decision, got 4"
    with pytest.raises(EndpointError) as e:
        served.decide_batch(random_bodies(2, seed=5, n_servers=3) + [body])
    assert e.value.status == 422
    assert e.value.detail == f"item 2: the policy {label} takes exactly 3 servers per decision, got 4"
    with pytest.raises(EndpointError) as e:
        served.register_cluster("two", {"a": {"capability": 10}, "b": {"capability": 9}})
    assert e.value.status == 422
    assert e.value.detail == f"the policy {label} takes exactly 3 servers per decision, got 2"


# --- stateful dispatching --------------------------------------------------------------------


def test_stateful_flow_books_and_corrects_queues(client):
    servers = {"fast": {"capability": 20.0}, "slow": {"capability": 5.0}}
    view = client.register_cluster("flow", servers)
    assert [s["busy_for_s"] for s in view["servers"]] == [0.0, 0.0]
    a = client.dispatch("flow", {"id": "a", "due_in_s": 5.0, "penalty": "linear"})
    assert (a["server"], a["steps"], a["expected_start_s"]) == ("fast", 100, 0.0)
    b = client.dispatch("flow", {"id": "b", "due_in_s": 5.0, "penalty": "linear"})
    assert (b["server"], b["steps"]) == ("slow", 25)  # fast is booked for 5 s now
    c = client.dispatch("flow", {"id": "c", "due_in_s": 30.0, "penalty": "sqrt"})
    assert c["server"] == "fast" and 4.5 < c["expected_start_s"] <= 5.0  # queued behind a
    fast = client.cluster("flow")["servers"][0]
    assert [q["id"] for q in fast["queue"]] == ["a", "c"]
    assert fast["busy_for_s"] == pytest.approx(fast["queue"][1]["expected_finish_s"])

    # a finished 1 s ago, much earlier than booked: c started then, the queue moves up by ~5 s
    after = client.done("flow", "a", finished_ago_s=1.0)
    assert [q["id"] for q in after["queue"]] == ["c"]
    assert after["busy_for_s"] == pytest.approx(c["steps"] / 20.0 - 1.0, abs=0.5)
    with pytest.raises(EndpointError) as e:
        client.done("flow", "a")
    assert e.value.status == 404
    with pytest.raises(EndpointError) as e:
        client.dispatch("flow", {"id": "b", "due_in_s": 5.0, "penalty": "linear"})
    assert e.value.status == 409
    client.delete_cluster("flow")
    with pytest.raises(EndpointError) as e:
        client.cluster("flow")
    assert e.value.status == 404


def test_concurrent_dispatches_never_double_book(client):
    caps = {"g0": 17.0, "g1": 12.0, "g2": 8.0, "g3": 6.5}
    client.register_cluster("busy", {k: {"capability": v} for k, v in caps.items()})
    requests = [{"id": f"q{i}", "due_in_s": 40.0, "penalty": PENALTY_KINDS[i % 3]} for i in range(60)]
    t0 = time.monotonic()

    def book(request):
        answer = client.dispatch("busy", request)
        return answer, time.monotonic() - t0  # times in answers are relative to about now

    with ThreadPoolExecutor(16) as pool:
        bookings = list(pool.map(book, requests))
    by_server: dict[str, list[tuple[float, float]]] = {}
    for b, at in bookings:
        duration = b["steps"] / caps[b["server"]]
        assert b["expected_finish_s"] - b["expected_start_s"] == pytest.approx(duration)
        by_server.setdefault(b["server"], []).append((at + b["expected_start_s"], at + b["expected_finish_s"]))
    for slots in by_server.values():  # no two bookings of one server overlap in time
        slots.sort()
        for (_, end), (start, _) in itertools.pairwise(slots):
            assert start >= end - 0.25  # slack: when each answer was made vs received
    steps = {b["request"]: b["steps"] for b, _ in bookings}
    view = client.cluster("busy")
    assert sorted(q["id"] for s in view["servers"] for q in s["queue"]) == sorted(steps)  # each once
    for server in view["servers"]:  # each starts exactly when the one before it ends
        for prev, cur in itertools.pairwise(server["queue"]):
            gap = cur["expected_finish_s"] - prev["expected_finish_s"]
            assert gap == pytest.approx(steps[cur["id"]] / caps[server["id"]], abs=1e-6)
    client.delete_cluster("busy")


def test_cluster_state_survives_a_replica_restart(endpoint, client):
    import ray

    from aigcsched.serve.deployment import replica_urls

    client.register_cluster("keep", {"a": {"capability": 10.0}, "b": {"capability": 10.0}})
    client.dispatch("keep", {"id": "k1", "due_in_s": 100.0, "penalty": "linear"})
    client.dispatch("keep", {"id": "k2", "due_in_s": 100.0, "penalty": "linear"})
    before = {s["id"]: [q["id"] for q in s["queue"]] for s in client.cluster("keep")["servers"]}

    def replicas():
        names = ray.util.list_named_actors(all_namespaces=True)
        return {a["name"] for a in names if a["name"].startswith(f"SERVE_REPLICA::{APP}#")}

    old = replicas()
    assert len(old) == 1
    # Another process holds the next free port of the range: the new replica must pass it by.
    squatter = socket.socket()
    for port in endpoint["options"].direct_ports():
        try:
            squatter.bind(("127.0.0.1", port))
            squatter.listen()
            break
        except OSError:
            continue
    ray.kill(ray.get_actor(next(iter(old)), namespace="serve"), no_restart=True)
    deadline = time.time() + 60
    while time.time() < deadline:
        if replicas() - old:
            try:
                after = client.cluster("keep")
                break
            except (EndpointError, OSError):
                pass
        time.sleep(0.5)
    else:
        pytest.fail("no new replica answered within 60 s")
    squatter.close()
    assert replicas() and not replicas() & old  # a different replica answers
    assert {s["id"]: [q["id"] for q in s["queue"]] for s in after["servers"]} == before
    # the new replica has its own direct port again, and sees the same queues there
    (url,) = replica_urls(endpoint["options"])
    direct = SchedulerClient(url, token=TOKEN).cluster("keep")
    assert {s["id"]: [q["id"] for q in s["queue"]] for s in direct["servers"]} == before
    client.delete_cluster("keep")


# --- bad input, limits, token ----------------------------------------------------------------

GOOD = {
    "servers": {"a": {"capability": 10.0, "busy_for_s": 0.0}},
    "request": {"id": "r", "due_in_s": 5.0, "penalty": "linear"},
}


def with_server(**fields):
    return {**GOOD, "servers": {"a": {**GOOD["servers"]["a"], **fields}}}


def with_request(**fields):
    return {**GOOD, "request": {**GOOD["request"], **fields}}


@pytest.mark.parametrize(
    "body, field",
    [
        (with_server(capability=0), "capability"),
        (with_server(capability=-3), "capability"),
        (with_server(capability=5e-324), "capability"),  # would make the finish time infinite
        (with_server(capability=True), "capability"),  # strict: no bool, no string as a number
        (with_server(capability="12"), "capability"),
        (with_server(busy_for_s=-1), "busy_for_s"),
        (with_server(busy_for_s=1e12), "busy_for_s"),
        ({**GOOD, "servers": {"": GOOD["servers"]["a"]}}, "[key]"),
        ({**GOOD, "servers": {"x" * 129: GOOD["servers"]["a"]}}, "[key]"),
        (with_server(gpu="a100"), "gpu"),
        (with_request(penalty="cubic"), "penalty"),
        (with_request(due_in_s=-0.5), "due_in_s"),
        (with_request(due_in_s="soon"), "due_in_s"),
        (with_request(due_in_s=False), "due_in_s"),
        ({"servers": {}, "request": GOOD["request"]}, "servers"),
        ({"servers": [GOOD["servers"]["a"]], "request": GOOD["request"]}, "servers"),
        ({"servers": {f"s{i}": GOOD["servers"]["a"] for i in range(257)}, "request": GOOD["request"]}, "servers"),
        ({"servers": GOOD["servers"]}, "request"),
    ],
)
def test_schema_errors_are_422_naming_the_field(client, body, field):
    with pytest.raises(EndpointError) as e:
        client.request("POST", "/v1/edge/decide", body)
    assert e.value.status == 422
    assert any(field in err["loc"] for err in e.value.detail), e.value.detail


REQ = b'"request": {"id": "r", "due_in_s": 1, "penalty": "sqrt"}'


@pytest.mark.parametrize(
    "raw, status",
    [
        (b'{"servers": {"a": {"capability": NaN}}, ' + REQ + b"}", 422),
        (b'{"servers": {"a": {"capability": Infinity}}, ' + REQ + b"}", 422),
        (b'{"servers": {"a": {"capability": 1e999}}, ' + REQ + b"}", 422),
        (b"{not json", 422),
        (b"", 422),
        (b"[]", 422),
        (b"\x80\x04\x95pickle", 400),  # not even UTF-8: FastAPI cannot read it as JSON at all
    ],
)
def test_malformed_bodies_are_4xx(client, raw, status):
    with pytest.raises(EndpointError) as e:
        client.request("POST", "/v1/edge/decide", raw=raw)
    assert e.value.status == status


def asgi_post(app, path: str, raw: bytes, content_type: str) -> tuple[int, object]:
    """One POST to an ASGI app, in process."""
    import asyncio

    scope = {
        "type": "http",
        "http_version": "1.1",
        "method": "POST",
        "path": path,
        "raw_path": path.encode(),
        "root_path": "",
        "query_string": b"",
        "headers": [(b"content-type", content_type.encode()), (b"content-length", str(len(raw)).encode())],
    }
    sent = []

    async def receive():
        return {"type": "http.request", "body": raw, "more_body": False}

    async def send(message):
        sent.append(message)

    asyncio.run(app(scope, receive, send))
    return sent[0]["status"], json.loads(b"".join(m.get("body", b"") for m in sent[1:]))


def test_json_bodies_skipping_fastapis_dict_path_are_answered_as_on_it():
    """`Content-Type: application/json` bodies are validated straight from the bytes (api.JsonBodyRoute);
    with a charset parameter they take FastAPI's own path: the same answers, and the same errors."""
    from aigcsched.serve.api import LocalService, make_api
    from aigcsched.serve.policy import HeuristicPolicy

    cfg = EdgeConfig()
    app = make_api(LocalService(HeuristicPolicy("greedy", cfg)))
    bodies = random_bodies(40, seed=7)  # mixed server counts: several policy calls in one batch
    raw = json.dumps(bodies).encode()
    status, batch = asgi_post(app, "/v1/edge/decide-batch", raw, "application/json")
    assert status == 200
    assert asgi_post(app, "/v1/edge/decide-batch", raw, "application/json; charset=utf-8") == (200, batch)
    singles = [asgi_post(app, "/v1/edge/decide", json.dumps(b).encode(), "application/json") for b in bodies]
    assert [answer for _, answer in singles] == batch
    policy = greedy_policy(cfg)
    for body, answer in zip(bodies, batch, strict=True):
        assert answer == {**expected(policy, cfg, body), "policy": "heuristic:greedy", "model_version": None}
    nan = b'{"servers": {"a": {"capability": NaN}}, ' + REQ + b"}"
    for path, bad in (
        ("/v1/edge/decide", json.dumps(with_server(capability="12")).encode()),
        ("/v1/edge/decide", nan),
        ("/v1/edge/decide", b"{not json"),
        ("/v1/edge/decide-batch", b"[]"),
        ("/v1/edge/decide-batch", json.dumps([GOOD, with_request(penalty="cubic")]).encode()),
    ):
        status, error = asgi_post(app, path, bad, "application/json")
        assert status == 422 and error["detail"], error
        assert asgi_post(app, path, bad, "application/json; charset=utf-8") == (status, error)


def test_batch_limits(client):
    for bodies in ([], [GOOD] * 1025):
        with pytest.raises(EndpointError) as e:
            client.decide_batch(bodies)
        assert e.value.status == 422


def test_body_over_the_limit_is_413_with_or_without_content_length(endpoint):
    url = endpoint["base"] + "/v1/edge/decide-batch"
    big = json.dumps([GOOD] * 3000).encode()
    assert len(big) > MAX_BODY
    headers = {"Content-Type": "application/json", "Authorization": f"Bearer {TOKEN}"}
    assert raw_post(url, big, headers)[0] == 413
    assert raw_post(url, big, headers, chunked=True)[0] == 413
    ok = json.dumps([GOOD] * 10).encode()
    assert raw_post(url, ok, headers, chunked=True)[0] == 200


def test_unknown_cluster_and_request_are_404_and_bad_names_422(client):
    for call in (
        lambda: client.cluster("missing"),
        lambda: client.dispatch("missing", GOOD["request"]),
        lambda: client.done("missing", "r"),
    ):
        with pytest.raises(EndpointError) as e:
            call()
        assert e.value.status == 404
    client.register_cluster("known", {"a": {"capability": 5}})
    with pytest.raises(EndpointError) as e:
        client.done("known", "never-booked")
    assert e.value.status == 404
    with pytest.raises(EndpointError) as e:
        client.register_cluster("x" * 65, {"a": {"capability": 5}})
    assert e.value.status == 422
    client.delete_cluster("known")


def test_token_guards_every_route_but_healthz(endpoint, client):
    base = endpoint["base"]
    for token in (None, "wrong", TOKEN + "x", ""):
        anon = SchedulerClient(base, token=token)
        assert anon.health() == {"status": "ok", "app": APP}
        for method, path, body in (
            ("GET", "/v1/model", None),
            ("POST", "/v1/edge/decide", GOOD),
            ("POST", "/v1/edge/decide-batch", [GOOD]),
            ("GET", "/v1/clusters/c", None),
            ("PUT", "/v1/clusters/c", {"servers": {"a": {"capability": 5}}}),
            ("GET", "/docs", None),
            ("GET", "/openapi.json", None),
        ):
            with pytest.raises(EndpointError) as e:
                anon.request(method, path, body)
            assert e.value.status == 401
    assert client.model()["name"] == "greedy"
    req = urllib.request.Request(base + "/docs", headers={"Authorization": f"Bearer {TOKEN}"})
    with urllib.request.urlopen(req, timeout=10) as resp:
        assert resp.status == 200 and b"swagger" in resp.read().lower()
    docs = client.request("GET", "/openapi.json")
    assert {"/v1/edge/decide", "/v1/edge/decide-batch", "/v1/clusters/{cluster}/requests"} <= set(docs["paths"])


def test_replicas_autoscaling_and_cpus_reach_the_deployment():
    from aigcsched.serve.deployment import ServeOptions, build_app
    from aigcsched.serve.policy import PolicySource

    fixed = build_app(PolicySource(heuristic="greedy"), ServeOptions(replicas=2, replica_cpus=0.25))
    config = fixed._bound_deployment._deployment_config
    assert config.num_replicas == 2 and config.autoscaling_config is None
    assert fixed._bound_deployment.ray_actor_options["num_cpus"] == 0.25
    scaled = build_app(PolicySource(heuristic="greedy"), ServeOptions(replicas=1, max_replicas=3))
    auto = scaled._bound_deployment._deployment_config.autoscaling_config
    assert (auto.min_replicas, auto.max_replicas, auto.target_ongoing_requests) == (1, 3, 32.0)
