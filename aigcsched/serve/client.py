"""A small client of the scheduling endpoint (standard library only, one call per method).

    client = SchedulerClient("http://127.0.0.1:8000", token=os.environ.get("AIGCSCHED_API_TOKEN"))
    client.decide({"gpu-a": {"capability": 15.2, "busy_for_s": 3.1}, "gpu-b": {"capability": 8.0}},
                  {"id": "r1", "due_in_s": 8.0, "penalty": "linear"})
    client.decide_mec([...])          # an endpoint serving a mec policy: one dict per base station
    client.decide_datacenter([...])   # a datacenter policy: one dict per provider

Non-2xx answers raise `EndpointError` with the status and the server's `detail`.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.parse
import urllib.request
from typing import Any


class EndpointError(Exception):
    def __init__(self, status: int, detail: Any):
        super().__init__(f"HTTP {status}: {detail}")
        self.status, self.detail = status, detail


class SchedulerClient:
    def __init__(self, base_url: str, token: str | None = None, timeout_s: float = 10.0):
        self.base_url = base_url.rstrip("/")
        self.token, self.timeout_s = token, timeout_s

    def request(self, method: str, path: str, body: Any = None, raw: bytes | None = None) -> Any:
        """Send `body` as JSON (or `raw` bytes as they are); returns the decoded JSON answer."""
        data = raw if raw is not None else (None if body is None else json.dumps(body).encode())
        headers = {"Content-Type": "application/json"} if data is not None else {}
        if self.token:
            headers["Authorization"] = f"Bearer {self.token}"
        req = urllib.request.Request(self.base_url + path, data=data, method=method, headers=headers)
        try:
            with urllib.request.urlopen(req, timeout=self.timeout_s) as resp:
                payload = resp.read()
        except urllib.error.HTTPError as e:
            payload = e.read()
            try:
                detail = json.loads(payload).get("detail", payload.decode(errors="replace"))
            except (ValueError, AttributeError):
                detail = payload.decode(errors="replace")
            raise EndpointError(e.code, detail) from None
        return json.loads(payload) if payload else None

    def health(self) -> dict:
        return self.request("GET", "/healthz")

    def model(self) -> dict:
        return self.request("GET", "/v1/model")

    def decide(self, servers: dict[str, dict], request: dict) -> dict:
        """`servers`: id -> {"capability", "busy_for_s"}, in the order the policy should see them."""
        return self.request("POST", "/v1/edge/decide", {"servers": servers, "request": request})

    def decide_batch(self, bodies: list[dict]) -> list[dict]:
        return self.request("POST", "/v1/edge/decide-batch", bodies)

    def decide_mec(self, stations: list[dict]) -> dict:
        """Each base station's servers and shares for its task (the endpoint must serve a mec policy)."""
        return self.request("POST", "/v1/mec/decide", {"stations": stations})

    def decide_datacenter(self, providers: list[dict], slot_of_day: int | None = None) -> dict:
        """Each provider's action for the slot (the endpoint must serve a datacenter policy);
        `slot_of_day`: the slot's index in the day of the providers' prices, which a policy that
        plans the battery for the rest of the day needs."""
        body = {"providers": providers} if slot_of_day is None else {"providers": providers, "slot_of_day": slot_of_day}
        return self.request("POST", "/v1/datacenter/decide", body)

    def decide_slots(self, problem: str, bodies: list[dict]) -> list[dict]:
        """Independent decisions of a multi-agent problem (mec, datacenter) for several bodies, in order."""
        return self.request("POST", f"/v1/{_quote(problem)}/decide-batch", bodies)

    def register_cluster(self, cluster: str, servers: dict[str, dict]) -> dict:
        """`servers`: id -> {"capability"}; queues of ids already registered are kept."""
        return self.request("PUT", f"/v1/clusters/{_quote(cluster)}", {"servers": servers})

    def cluster(self, cluster: str) -> dict:
        return self.request("GET", f"/v1/clusters/{_quote(cluster)}")

    def delete_cluster(self, cluster: str) -> None:
        self.request("DELETE", f"/v1/clusters/{_quote(cluster)}")

    def dispatch(self, cluster: str, request: dict) -> dict:
        return self.request("POST", f"/v1/clusters/{_quote(cluster)}/requests", request)

    def done(self, cluster: str, request_id: str, finished_ago_s: float = 0.0) -> dict:
        path = f"/v1/clusters/{_quote(cluster)}/requests/{_quote(request_id)}/done"
        return self.request("POST", path, {"finished_ago_s": finished_ago_s})


def _quote(part: str) -> str:
    return urllib.parse.quote(part, safe="")
