"""The queue bookkeeping of the stateful API, on a clock the test controls."""

import pytest

from aigcsched.serve.cluster import ClusterBook
from aigcsched.serve.policy import ApiError, Decider, HeuristicPolicy


class Clock:
    def __init__(self):
        self.t = 100.0

    def __call__(self):
        return self.t


@pytest.fixture
def book():
    clock = Clock()
    b = ClusterBook(clock)
    b.register("c", [("fast", 20.0), ("slow", 5.0)])
    return b, clock, Decider(HeuristicPolicy("greedy"))


def test_bookings_queue_fifo_and_done_retimes(book):
    b, clock, decider = book
    first = b.dispatch("c", {"id": "r1", "due_in_s": 5.0, "penalty": "linear"}, decider)
    # greedy: shortest queue (both idle: lowest index), most steps that meet the due time
    assert first["server"] == "fast" and first["steps"] == 100 and first["expected_start_s"] == 0.0
    second = b.dispatch("c", {"id": "r2", "due_in_s": 5.0, "penalty": "linear"}, decider)
    assert second["server"] == "slow" and second["steps"] == 25
    third = b.dispatch("c", {"id": "r3", "due_in_s": 20.0, "penalty": "sqrt"}, decider)
    assert third["server"] == "fast" and third["expected_start_s"] == pytest.approx(5.0)
    assert third["expected_finish_s"] == pytest.approx(5.0 + third["steps"] / 20.0)
    fast = b.view("c")["servers"][0]
    assert [q["id"] for q in fast["queue"]] == ["r1", "r3"]

    clock.t += 2.0  # r1 finished early, 1 s ago: r3 started then
    server = b.done("c", "r1", finished_ago_s=1.0)
    assert [q["id"] for q in server["queue"]] == ["r3"]
    assert server["busy_for_s"] == pytest.approx(-1.0 + third["steps"] / 20.0)

    clock.t += 100.0  # r2's report comes late: the server is idle again
    assert b.done("c", "r2")["busy_for_s"] == 0.0


def test_done_for_a_later_request_clears_the_earlier_ones(book):
    b, _, decider = book
    for i in range(4):
        b.dispatch("c", {"id": f"r{i}", "due_in_s": 60.0, "penalty": "quadratic"}, decider)
    fast_ids = [q["id"] for q in b.view("c")["servers"][0]["queue"]]
    assert len(fast_ids) >= 2
    b.done("c", fast_ids[1])  # FIFO: the one before it is done too
    assert [q["id"] for q in b.view("c")["servers"][0]["queue"]] == fast_ids[2:]
    with pytest.raises(ApiError) as e:
        b.done("c", fast_ids[0])
    assert e.value.status == 404


def test_errors(book):
    b, _, decider = book
    req = {"id": "r1", "due_in_s": 5.0, "penalty": "linear"}
    for call, status in [
        (lambda: b.view("nope"), 404),
        (lambda: b.dispatch("nope", req, decider), 404),
        (lambda: b.done("c", "never"), 404),
        (lambda: b.register("bad name!", [("a", 1.0)]), 422),
    ]:
        with pytest.raises(ApiError) as e:
            call()
        assert e.value.status == status
    b.dispatch("c", req, decider)
    with pytest.raises(ApiError) as e:
        b.dispatch("c", req, decider)
    assert e.value.status == 409


def test_reregistering_keeps_queues_of_servers_that_stay(book):
    b, _, decider = book
    b.dispatch("c", {"id": "r1", "due_in_s": 5.0, "penalty": "linear"}, decider)
    view = b.register("c", [("fast", 20.0), ("new", 9.0)])
    assert [s["id"] for s in view["servers"]] == ["fast", "new"]
    assert [q["id"] for q in view["servers"][0]["queue"]] == ["r1"]
    b.done("c", "r1")
    b.delete("c")
    with pytest.raises(ApiError):
        b.view("c")
