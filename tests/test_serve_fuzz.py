"""The HTTP contract under fuzzing: Schemathesis reads the app's own OpenAPI schema and sends what
it allows and what it forbids to every route (examples, boundary values, random bodies, unlisted
methods, calls without the token, stateful sequences such as register -> dispatch -> done), then
runs all its checks on every answer: no 5xx, every status and body documented, valid input
accepted, invalid input refused, `Allow` matching the routes, the token enforced.

The app is the one `aigcsched serve` hosts, built by `make_api` around the in-process service (a
heuristic, a token), called in-process through ASGI: no Ray, no sockets. An endpoint answers only its
own problem's decide routes (the others are a documented 422 even for a valid body), so each
problem is fuzzed on an app serving it: edge (greedy) on every route but the other problems'
decide routes, mec (myopic) and datacenter (combined) on their own decide routes and /v1/model.
"""

from __future__ import annotations

import collections
import contextlib

import pytest

TOKEN = "fuzz-token-0123456789"
SEED = 20
EXAMPLES = 15  # per operation and phase: the edge run takes about 10 s on 2 cores
PROBLEM_EXAMPLES = 6  # mec and datacenter (most of the time is the coverage phase: datacenter ~7 s, mec ~2 s)


def local_service(problem: str, heuristic: str):
    from aigcsched.serve.api import LocalService
    from aigcsched.serve.policy import PolicySource
    from aigcsched.serve.problems import load_decider

    return LocalService(decider=load_decider(PolicySource(heuristic=heuristic, problem=problem)))


def run_fuzzer(
    service, path_regex: str, examples: int, stateful: bool = True, accept_422: bool = False
) -> tuple[list[str], collections.Counter]:
    """Failures (one line each: operation, check, title) and calls made per (operation, status)."""
    import schemathesis
    from schemathesis.config import SchemathesisConfig
    from schemathesis.engine import Status, events, from_schema

    from aigcsched.serve.api import make_api, token_digest
    from aigcsched.serve.policy import ApiError

    auth = {"Authorization": f"Bearer {TOKEN}"}
    # The body size limit cannot be said in JSON Schema: a 413 is a documented, correct answer to
    # any body, valid or not (the checks' defaults leave it out of both lists).
    accepted = ["2xx", "3xx", "401", "403", "404", "409", "413", "429", "5xx"] + (["422"] if accept_422 else [])
    rejected = ["400", "401", "403", "404", "405", "406", "409", "413", "415", "422", "428", "429", "5xx"]
    config = SchemathesisConfig.from_dict(
        {
            "seed": SEED,
            "headers": auth,
            "workers": 1,
            "generation": {"max-examples": examples, "database": "none"},
            "phases": {"stateful": {"enabled": stateful}},
            "cache": {"enabled": False},  # every run from the seed alone, and nothing left in the checkout
            "checks": {
                "enabled": True,
                "positive_data_acceptance": {"expected-statuses": accepted},
                "negative_data_rejection": {"expected-statuses": rejected},
            },
        }
    )
    app = make_api(service, digest=token_digest(TOKEN))
    schema = schemathesis.openapi.from_asgi("/openapi.json", app, config=config, headers=auth).include(
        path_regex=path_regex
    )

    @schema.hook
    def map_case(context, case):
        """Random cluster names are never registered: register the one a booking names (directly,
        as an earlier PUT would), so that bookings succeed and their answers are checked too, and
        the stateful phase follows the booking's link to /done."""
        name = (case.path_parameters or {}).get("cluster")
        if case.operation.path.endswith("/requests") and isinstance(name, str) and name not in service.book.clusters:
            with contextlib.suppress(ApiError):  # a bad name, or the cluster limit: the call will say so
                service.book.register(name, [("gpu-a", 15.0), ("gpu-b", 8.0)], service.decider)
        return case

    failures, calls = [], collections.Counter()
    for event in from_schema(schema).execute():
        if isinstance(event, events.ScenarioFinished):
            for case_id, interaction in event.recorder.interactions.items():
                case = event.recorder.cases[case_id].value
                status = interaction.response.status_code if interaction.response else None
                calls[f"{case.method} {case.operation.path}", status] += 1
            for nodes in event.recorder.checks.values():
                for node in nodes:
                    if node.status == Status.FAILURE:
                        title = node.failure_info.failure.title if node.failure_info else ""
                        failures.append(f"{event.recorder.label}: {node.name}: {title}")
        elif isinstance(event, (events.NonFatalError, events.FatalError)):
            failures.append(f"error: {event}")
        elif isinstance(event, events.EngineFinished):
            failures += [f"after run: {f.title}" for f in event.failures]
    return sorted(set(failures)), calls


def per_operation(calls: collections.Counter) -> collections.Counter:
    out = collections.Counter()
    for (operation, _), n in calls.items():
        out[operation] += n
    return out


def test_the_edge_api_keeps_its_openapi_contract_under_fuzzing():
    failures, calls = run_fuzzer(local_service("edge", "greedy"), r"^/(?!v1/(mec|datacenter)/)", EXAMPLES)
    assert failures == []
    operations = {
        "GET /healthz",
        "GET /v1/model",
        "POST /v1/edge/decide",
        "POST /v1/edge/decide-batch",
        "PUT /v1/clusters/{cluster}",
        "GET /v1/clusters/{cluster}",
        "DELETE /v1/clusters/{cluster}",
        "POST /v1/clusters/{cluster}/requests",
        "POST /v1/clusters/{cluster}/requests/{request_id}/done",
    }
    counts = per_operation(calls)
    assert all(counts[op] >= 3 for op in operations), counts  # every route
    for op, ok in (
        ("POST /v1/edge/decide", 200),
        ("POST /v1/edge/decide-batch", 200),
        ("PUT /v1/clusters/{cluster}", 200),
        ("POST /v1/clusters/{cluster}/requests", 201),
    ):
        assert calls[op, ok] >= 5 and calls[op, 422] >= 5, calls  # valid bodies decided, invalid refused
    assert calls["POST /v1/clusters/{cluster}/requests/{request_id}/done", 200] >= 1, calls
    assert calls["OPTIONS /v1/clusters/{cluster}", 405] >= 1, calls  # and methods the routes do not have


@pytest.mark.parametrize("problem, heuristic", [("mec", "myopic"), ("datacenter", "combined")])
def test_the_multi_agent_routes_keep_the_contract_under_fuzzing(problem, heuristic):
    service = local_service(problem, heuristic)
    # Bodies couple their fields (one link rate per other station, a batch of one agent count, ...), which
    # JSON Schema cannot say: a schema-valid body may be a documented 422. No links: no stateful phase.
    failures, calls = run_fuzzer(
        service, rf"^/v1/({problem}/|model$)", PROBLEM_EXAMPLES, stateful=False, accept_422=True
    )
    assert failures == []
    counts = per_operation(calls)
    for op in ("GET /v1/model", f"POST /v1/{problem}/decide", f"POST /v1/{problem}/decide-batch"):
        assert counts[op] >= 3, counts
    for op in (f"POST /v1/{problem}/decide", f"POST /v1/{problem}/decide-batch"):
        assert calls[op, 422] >= 3, calls  # invalid bodies refused
    assert calls[f"POST /v1/{problem}/decide", 200] >= 1, calls  # and valid ones decided
