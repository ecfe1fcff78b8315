"""The HTTP contract under fuzzing: Schemathesis reads the app's own OpenAPI schema and sends what
it allows and what it forbids to every route (examples, boundary values, random bodies, unlisted
methods, calls without the token, stateful sequences such as register -> dispatch -> done), then
runs all its checks on every answer: no 5xx, every status and body documented, valid input
accepted, invalid input refused, `Allow` matching the routes, the token enforced.

The app is the one `aigcsched serve` hosts, built by `make_api` around the in-process service (the
greedy heuristic, a token), called in-process through ASGI: no Ray, no sockets.
"""

from __future__ import annotations

import collections
import contextlib

import pytest

TOKEN = "fuzz-token-0123456789"
SEED = 20
EXAMPLES = 15  # per operation and phase: the whole run takes about 10 s on 2 cores


@pytest.fixture(scope="module")
def service():
    from aigcsched.serve.api import LocalService
    from aigcsched.serve.policy import PolicySource

    return LocalService(PolicySource(heuristic="greedy").load())


def run_fuzzer(service) -> tuple[list[str], collections.Counter]:
    """Failures (one line each: operation, check, title) and calls made per (operation, status)."""
    import schemathesis
    from schemathesis.config import SchemathesisConfig
    from schemathesis.engine import Status, events, from_schema

    from aigcsched.serve.api import make_api, token_digest
    from aigcsched.serve.policy import ApiError

    auth = {"Authorization": f"Bearer {TOKEN}"}
    # The body size limit cannot be said in JSON Schema: a 413 is a documented, correct answer to
    # any body, valid or not (the checks' defaults leave it out of both lists).
    accepted = ["2xx", "3xx", "401", "403", "404", "409", "413", "429", "5xx"]
    rejected = ["400", "401", "403", "404", "405", "406", "409", "413", "415", "422", "428", "429", "5xx"]
    config = SchemathesisConfig.from_dict(
        {
            "seed": SEED,
            "headers": auth,
            "workers": 1,
            "generation": {"max-examples": EXAMPLES, "database": "none"},
            "cache": {"enabled": False},  # every run from the seed alone, and nothing left in the checkout
            "checks": {
                "enabled": True,
                "positive_data_acceptance": {"expected-statuses": accepted},
                "negative_data_rejection": {"expected-statuses": rejected},
            },
        }
    )
    app = make_api(service, digest=token_digest(TOKEN))
    schema = schemathesis.openapi.from_asgi("/openapi.json", app, config=config, headers=auth)

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


def test_the_api_keeps_its_openapi_contract_under_fuzzing(service):
    failures, calls = run_fuzzer(service)
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
    per_operation = collections.Counter()
    for (operation, _), n in calls.items():
        per_operation[operation] += n
    assert all(per_operation[op] >= 3 for op in operations), per_operation  # every route
    for op, ok in (
        ("POST /v1/edge/decide", 200),
        ("POST /v1/edge/decide-batch", 200),
        ("PUT /v1/clusters/{cluster}", 200),
        ("POST /v1/clusters/{cluster}/requests", 201),
    ):
        assert calls[op, ok] >= 5 and calls[op, 422] >= 5, calls  # valid bodies decided, invalid refused
    assert calls["POST /v1/clusters/{cluster}/requests/{request_id}/done", 200] >= 1, calls
    assert calls["OPTIONS /v1/clusters/{cluster}", 405] >= 1, calls  # and methods the routes do not have
