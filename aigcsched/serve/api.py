"""The HTTP API (FastAPI), independent of how it is hosted: the Serve deployment and the bare
uvicorn reference of the benchmark both build it from a `Service`.

Safety: bodies are read through `Guard` (bearer token, size limit) before anything parses them;
JSON is the only format read, so nothing from a request is ever unpickled or evaluated; every
error a caller can cause is a 4xx with a `detail`, documented in the OpenAPI schema per route
(`ErrorBody`); a method a path does not have is a 405 whose `Allow` lists the ones it has.
"""

from __future__ import annotations

import gc
import hashlib
import hmac
import inspect
import json
from typing import Annotated, Any, Protocol

from fastapi import Body, FastAPI, Path, Request
from fastapi.dependencies.utils import get_typed_return_annotation
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from fastapi.routing import APIRoute
from pydantic import TypeAdapter, ValidationError
from pydantic_core import to_json
from starlette.exceptions import HTTPException
from starlette.routing import Match

from aigcsched.serve.cluster import ClusterBook
from aigcsched.serve.policy import ApiError, Decider
from aigcsched.serve.problems import ProblemDecider, add_problem_routes
from aigcsched.serve.schemas import (
    Booking,
    ClusterSpec,
    ClusterView,
    DecideBatch,
    DecideRequest,
    Decision,
    DoneReport,
    Health,
    ModelInfo,
    ServerView,
    errors,
)
from aigcsched.serve.schemas import Request as EdgeRequest

DEFAULT_MAX_BODY_BYTES = 1 << 20
TOKEN_ENV = "AIGCSCHED_API_TOKEN"
OPEN_PATHS = frozenset({"/healthz"})

ClusterName = Annotated[str, Path(pattern=r"^[A-Za-z0-9._-]{1,64}$", description="cluster name")]
RequestId = Annotated[str, Path(min_length=1, max_length=128, pattern=r"^[\x21-\x7e]+$")]

# OpenAPI links: which answer feeds which call (clients and stateful fuzzers follow them).
_CLUSTER = {"cluster": "$response.body#/cluster"}
BOOK_LINKS = {
    "dispatch": {"operationId": "dispatch", "parameters": _CLUSTER},
    "view": {"operationId": "view", "parameters": _CLUSTER},
}
DONE_LINKS = {
    "done": {"operationId": "done", "parameters": {**_CLUSTER, "request_id": "$response.body#/request"}},
}


class Service(Protocol):
    """What the routes need from their host."""

    decider: Decider | ProblemDecider
    app_name: str

    async def decide(self, item: DecideRequest) -> dict: ...

    async def decide_batch(self, items: list[DecideRequest]) -> list[dict]: ...

    async def clusters(self, method: str, *args):
        """Call ClusterBook-like `method` (register, delete, dispatch, done, view); raises ApiError."""


def freeze_startup_heap() -> None:
    """Take every object alive now (Ray, torch, FastAPI, the policy: about half a million) out of
    the cyclic garbage collector's walks, for good. A decide-batch call makes a few thousand
    short-lived objects (the validated bodies); their churn sets off a full collection every few
    hundred calls, and one walks the whole heap: 0.4 s each in process, on average more than 1 ms
    of a 64-body call, and a pause that every request in flight waits out (RESULTS.md). Hosts call
    this once the policy is loaded."""
    gc.freeze()


def token_digest(token: str | None) -> bytes | None:
    """Hosts keep only the digest of the token, so it never sits in the serving config."""
    return hashlib.sha256(token.encode()).digest() if token else None


async def _reply(send, status: int, detail: str, headers: list | None = None) -> None:
    body = json.dumps({"detail": detail}).encode()
    head = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": status, "headers": head + (headers or [])})
    await send({"type": "http.response.body", "body": body})


class Guard:
    """ASGI middleware: bearer token on every route but /healthz, then a body size limit checked
    on Content-Length and on the bytes actually received, before any parsing."""

    def __init__(self, app, max_body_bytes: int, digest: bytes | None):
        self.app, self.max_body, self.digest = app, max_body_bytes, digest

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        headers = dict(scope["headers"])
        path, root = scope["path"], scope.get("root_path", "")
        if root and path.startswith(root):  # an app mounted under a route prefix
            path = path[len(root) :]
        if self.digest is not None and path not in OPEN_PATHS:
            auth = headers.get(b"authorization", b"")
            given = auth[7:] if auth[:7].lower() == b"bearer " else b""
            if not hmac.compare_digest(hashlib.sha256(given).digest(), self.digest):
                return await _reply(send, 401, "missing or wrong bearer token", [(b"www-authenticate", b"Bearer")])
        length = headers.get(b"content-length")
        if length is not None:
            if not length.isdigit():
                return await _reply(send, 400, "invalid Content-Length")
            if int(length) > self.max_body:
                return await _reply(send, 413, f"body over the limit of {self.max_body} bytes")
        body, more = bytearray(), True
        while more:  # chunked bodies have no Content-Length: count what arrives
            message = await receive()
            if message["type"] != "http.request":
                return  # client went away
            body += message.get("body", b"")
            if len(body) > self.max_body:
                return await _reply(send, 413, f"body over the limit of {self.max_body} bytes")
            more = message.get("more_body", False)
        replayed = False

        async def replay():
            nonlocal replayed
            if replayed:
                return await receive()
            replayed = True
            return {"type": "http.request", "body": bytes(body), "more_body": False}

        return await self.app(scope, replay, send)


class JsonBodyRoute(APIRoute):
    """A route whose endpoint takes only a JSON body and answers a ready `Response` (see
    `json_answer`): a valid body skips FastAPI's dict path. Pydantic parses and validates the raw
    bytes in one pass in its Rust core (`validate_json`: about half the cost of `json.loads` then
    validating the dicts, for a decide-batch body), and the endpoint is called with the result.
    Anything else (another content type, a body the schema refuses) takes FastAPI's own path, so
    the errors and the OpenAPI schema stay FastAPI's. Routes of any other shape keep FastAPI's
    handler as it is."""

    def get_route_handler(self):
        standard = super().get_route_handler()
        body, endpoint = self.body_field, self.endpoint
        if not (
            body is not None
            and list(inspect.signature(endpoint).parameters) == [body.name]
            and inspect.iscoroutinefunction(endpoint)
            and _is_response(get_typed_return_annotation(endpoint))
        ):
            return standard
        # The type FastAPI validates the body against: the annotation and its constraints.
        info = body.field_info
        adapter = TypeAdapter(Annotated[(info.annotation, *info.metadata)] if info.metadata else info.annotation)

        async def handler(request: Request) -> Response:
            if request.headers.get("content-type") == "application/json":
                try:
                    value = adapter.validate_json(await request.body())
                except ValidationError:
                    pass  # FastAPI says what is wrong, in its words
                else:
                    return await endpoint(value)
            return await standard(request)

        return handler


def _is_response(annotation: Any) -> bool:
    return inspect.isclass(annotation) and issubclass(annotation, Response)


def json_answer(content: Any) -> Response:
    """An answer already in its route's `response_model` shape, serialized in one pass by
    pydantic-core, without FastAPI validating it against the model again."""
    return Response(to_json(content), media_type="application/json")


def make_api(service: Service, max_body_bytes: int = DEFAULT_MAX_BODY_BYTES, digest: bytes | None = None):
    """The FastAPI app (OpenAPI at /docs), guarded by `Guard`."""
    app = FastAPI(
        title="aigcsched scheduling endpoint",
        summary="Where an AI-generated-content request should run, and with how many steps.",
        description="Every error answer is an `ErrorBody`, listed under each route with its status. "
        "A method a path does not have (OPTIONS included) answers 405 with an `Allow` header naming "
        "the path's methods. Times are seconds from the call; numbers are finite and bounded.",
        version="1",
    )
    app.router.route_class = JsonBodyRoute  # before the routes: each is made of this class

    @app.exception_handler(RequestValidationError)
    async def _invalid(_: Request, e: RequestValidationError):
        # Without the echoed input: it may be huge, or not JSON at all (NaN) and turn a 422 into a 500.
        errors = [{"loc": list(err["loc"]), "msg": err["msg"], "type": err["type"]} for err in e.errors()]
        return JSONResponse({"detail": errors}, status_code=422)

    @app.exception_handler(ApiError)
    async def _api_error(_: Request, e: ApiError):
        return JSONResponse({"detail": e.detail}, status_code=e.status)

    @app.exception_handler(HTTPException)
    async def _http_error(request: Request, e: HTTPException):
        if e.status_code != 405:
            return JSONResponse({"detail": e.detail}, status_code=e.status_code, headers=e.headers)
        # Starlette lists the methods of the first route on the path only; FastAPI makes one route per method.
        allowed = sorted({m for r in app.routes if r.matches(request.scope)[0] != Match.NONE for m in r.methods})
        detail = f"{request.method} is not a method of {request.url.path}; it has {', '.join(allowed)}"
        return JSONResponse({"detail": detail}, status_code=405, headers={"Allow": ", ".join(allowed)})

    @app.get("/healthz", response_model=Health, tags=["ops"], responses=errors(guarded=False))
    async def healthz():
        return {"status": "ok", "app": service.app_name}

    @app.get("/v1/model", response_model=ModelInfo, tags=["ops"], responses=errors())
    async def model():
        """The policy in use: problem, registered model name, version, alias and training run, or heuristic."""
        return service.decider.model_info()

    @app.post("/v1/edge/decide", response_model=Decision, tags=["stateless"], responses=errors(422))
    async def decide(body: DecideRequest) -> Response:
        """Server and step count for one request, given the servers' current state."""
        service.decider.check_server_count(len(body.servers))
        return json_answer(await service.decide(body))

    @app.post("/v1/edge/decide-batch", response_model=list[Decision], tags=["stateless"], responses=errors(422))
    async def decide_batch(body: Annotated[DecideBatch, Body()]) -> Response:
        """Independent decisions for several bodies, answered in order."""
        for i, item in enumerate(body):
            try:
                service.decider.check_server_count(len(item.servers))
            except ApiError as e:
                raise ApiError(e.status, f"item {i}: {e.detail}") from None
        return json_answer(await service.decide_batch(body))

    @app.put(
        "/v1/clusters/{cluster}",
        response_model=ClusterView,
        tags=["stateful"],
        operation_id="register",
        responses={200: {"links": BOOK_LINKS}, **errors(409, 422)},
    )
    async def register(cluster: ClusterName, body: ClusterSpec):
        """Register (or replace) the servers of a cluster; queues of servers that stay are kept."""
        return await service.clusters("register", cluster, [(sid, s.capability) for sid, s in body.servers.items()])

    @app.get(
        "/v1/clusters/{cluster}",
        response_model=ClusterView,
        tags=["stateful"],
        operation_id="view",
        responses=errors(404, 422),
    )
    async def view(cluster: ClusterName):
        """Each server's expected busy time and booked requests (times in seconds from now)."""
        return await service.clusters("view", cluster)

    @app.delete(
        "/v1/clusters/{cluster}", status_code=204, tags=["stateful"], operation_id="delete", responses=errors(404, 422)
    )
    async def delete(cluster: ClusterName):
        await service.clusters("delete", cluster)
        return Response(status_code=204)

    @app.post(
        "/v1/clusters/{cluster}/requests",
        response_model=Booking,
        status_code=201,
        tags=["stateful"],
        operation_id="dispatch",
        responses={201: {"links": DONE_LINKS}, **errors(404, 409, 422)},
    )
    async def dispatch(cluster: ClusterName, body: EdgeRequest):
        """Decide for a request on the cluster's queues and book the chosen server, atomically."""
        return await service.clusters("dispatch", cluster, body.model_dump())

    @app.post(
        "/v1/clusters/{cluster}/requests/{request_id}/done",
        response_model=ServerView,
        tags=["stateful"],
        operation_id="done",
        responses=errors(404, 422),
    )
    async def done(cluster: ClusterName, request_id: RequestId, body: DoneReport | None = None):
        """The request finished (now, or `finished_ago_s` ago): correct its server's queue."""
        return await service.clusters("done", cluster, request_id, (body or DoneReport()).finished_ago_s)

    add_problem_routes(app, service)  # the multi-agent problems' /v1/<problem>/decide routes
    if digest is not None:  # the token in the schema too, so that clients and fuzzers know it
        generate = app.openapi

        def openapi() -> dict:
            if app.openapi_schema is None:
                schema = generate()
                schema["components"]["securitySchemes"] = {"bearer": {"type": "http", "scheme": "bearer"}}
                for path, operations in schema["paths"].items():
                    for operation in operations.values():
                        operation["security"] = [] if path in OPEN_PATHS else [{"bearer": []}]
            return app.openapi_schema

        app.openapi = openapi
    app.add_middleware(Guard, max_body_bytes=max_body_bytes, digest=digest)
    return app


class LocalService:
    """In-process host: decisions on the calling thread, cluster queues in a local ClusterBook
    (atomic because an asyncio app runs one route body at a time between awaits)."""

    app_name = "local"

    def __init__(self, policy=None, *, decider: Decider | ProblemDecider | None = None):
        # fixed: following a moving model URI is the Serve replicas' job
        self.decider = decider if decider is not None else Decider(policy)
        self.book = ClusterBook()

    async def decide(self, item: DecideRequest) -> dict:
        return self.decider.decide_items([item])[0]

    async def decide_batch(self, items: list[DecideRequest]) -> list[dict]:
        return self.decider.decide_items(items)

    async def clusters(self, method: str, *args):
        if method in ("register", "dispatch"):
            args = (*args, self.decider)
        return getattr(self.book, method)(*args)
