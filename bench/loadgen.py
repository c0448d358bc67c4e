"""Closed-loop HTTP load: N concurrent clients POST one JSON body in a loop for a fixed time.

Runs in its own process (started by bench/submissions.py) so that it does not share an
interpreter with the orchestrator. Each client has its own keep-alive connection and its own
bearer token. Two client implementations:

  raw     asyncio streams with a hand-written HTTP/1.1 request and a minimal response parser
          (Content-Length bodies only): the cheapest client, leaving the most CPU to the server
  httpx2  one httpx2.AsyncClient per client (the project's HTTP client)

Usage: python bench/loadgen.py CONFIG.json OUTPUT.json
CONFIG: {"host", "port", "path", "body", "tokens": [...], "clients", "duration", "impl", "timeout"}
OUTPUT: per request start offset (s), latency (ms) and status (0: exception), plus CPU used.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import resource
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

MAX_ERROR_SAMPLES = 10


@dataclass
class Recorder:
    origin: float
    starts: list[float] = field(default_factory=list)
    latencies_ms: list[float] = field(default_factory=list)
    statuses: list[int] = field(default_factory=list)
    error_samples: list[str] = field(default_factory=list)

    def record(self, started: float, ended: float, status: int, error: str | None = None) -> None:
        self.starts.append(round(started - self.origin, 6))
        self.latencies_ms.append(round((ended - started) * 1000.0, 4))
        self.statuses.append(status)
        if error is not None and len(self.error_samples) < MAX_ERROR_SAMPLES:
            self.error_samples.append(error)


@dataclass(frozen=True)
class Plan:
    host: str
    port: int
    path: str
    body: bytes
    tokens: list[str]
    clients: int
    duration: float
    impl: str
    timeout: float


class RawConnection:
    """One keep-alive HTTP/1.1 connection; reconnects after an error or `Connection: close`."""

    def __init__(self, host: str, port: int) -> None:
        self._host = host
        self._port = port
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None

    async def request(self, payload: bytes) -> int:
        if self._writer is None or self._reader is None:
            self._reader, self._writer = await asyncio.open_connection(self._host, self._port)
        reader, writer = self._reader, self._writer
        writer.write(payload)
        head = await reader.readuntil(b"\r\n\r\n")
        status = int(head[9:12])
        length = 0
        close = False
        for line in head.split(b"\r\n")[1:]:
            name, _, value = line.partition(b":")
            lowered = name.strip().lower()
            if lowered == b"content-length":
                length = int(value)
            elif lowered == b"transfer-encoding":
                raise RuntimeError("chunked responses are not supported by the raw client")
            elif lowered == b"connection" and value.strip().lower() == b"close":
                close = True
        if length:
            await reader.readexactly(length)
        if close:
            await self.close()
        return status

    async def close(self) -> None:
        writer = self._writer
        self._reader = self._writer = None
        if writer is not None:
            writer.close()
            with contextlib.suppress(OSError):
                await writer.wait_closed()


def raw_request_bytes(plan: Plan, token: str) -> bytes:
    head = (
        f"POST {plan.path} HTTP/1.1\r\n"
        f"Host: {plan.host}:{plan.port}\r\n"
        f"Authorization: Bearer {token}\r\n"
        "Content-Type: application/json\r\n"
        "Accept: application/json\r\n"
        f"Content-Length: {len(plan.body)}\r\n"
        "\r\n"
    )
    return head.encode("ascii") + plan.body


async def raw_client(plan: Plan, token: str, deadline: float, recorder: Recorder) -> None:
    payload = raw_request_bytes(plan, token)
    connection = RawConnection(plan.host, plan.port)
    try:
        while (started := time.perf_counter()) < deadline:
            try:
                status = await asyncio.wait_for(connection.request(payload), plan.timeout)
            except Exception as error:  # every failure is a recorded error, never a crash
                recorder.record(started, time.perf_counter(), 0, repr(error))
                await connection.close()
                continue
            recorder.record(started, time.perf_counter(), status)
    finally:
        await connection.close()


async def httpx2_client(plan: Plan, token: str, deadline: float, recorder: Recorder) -> None:
    import httpx2

    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
    async with httpx2.AsyncClient(
        base_url=f"http://{plan.host}:{plan.port}",
        headers=headers,
        timeout=plan.timeout,
        limits=httpx2.Limits(max_connections=1, max_keepalive_connections=1),
        trust_env=False,
    ) as client:
        while (started := time.perf_counter()) < deadline:
            try:
                response = await client.post(plan.path, content=plan.body)
            except httpx2.HTTPError as error:
                recorder.record(started, time.perf_counter(), 0, repr(error))
                continue
            recorder.record(started, time.perf_counter(), response.status_code)


async def run(plan: Plan) -> dict[str, Any]:
    recorder = Recorder(origin=time.perf_counter())
    wall_origin = time.time()
    deadline = recorder.origin + plan.duration
    client = raw_client if plan.impl == "raw" else httpx2_client
    tasks = [
        asyncio.create_task(client(plan, plan.tokens[index % len(plan.tokens)], deadline, recorder))
        for index in range(plan.clients)
    ]
    # Every request starts before the deadline and ends within its timeout: the run is bounded.
    await asyncio.wait_for(asyncio.gather(*tasks), plan.duration + plan.timeout + 10.0)
    elapsed = time.perf_counter() - recorder.origin
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return {
        "impl": plan.impl,
        "clients": plan.clients,
        "duration": plan.duration,
        "wall_origin": wall_origin,
        "elapsed": elapsed,
        "starts": recorder.starts,
        "latencies_ms": recorder.latencies_ms,
        "statuses": recorder.statuses,
        "error_samples": recorder.error_samples,
        "cpu_user_s": usage.ru_utime,
        "cpu_system_s": usage.ru_stime,
    }


def load_plan(path: Path) -> Plan:
    config = json.loads(path.read_text(encoding="utf-8"))
    impl = str(config["impl"])
    if impl not in ("raw", "httpx2"):
        raise SystemExit(f"unknown client implementation {impl!r}")
    host = str(config["host"])
    if host not in ("127.0.0.1", "::1", "localhost"):
        raise SystemExit("the load generator only talks to loopback addresses")
    return Plan(
        host=host,
        port=int(config["port"]),
        path=str(config["path"]),
        body=json.dumps(config["body"], separators=(",", ":")).encode(),
        tokens=[str(token) for token in config["tokens"]],
        clients=int(config["clients"]),
        duration=float(config["duration"]),
        impl=impl,
        timeout=float(config["timeout"]),
    )


def main(argv: list[str]) -> int:
    if len(argv) != 3:
        print(__doc__, file=sys.stderr)
        return 2
    plan = load_plan(Path(argv[1]))
    try:
        import uvloop

        runner: Any = uvloop.run
    except ImportError:  # pragma: no cover - uvloop comes with uvicorn[standard]
        runner = asyncio.run
    result = runner(run(plan))
    Path(argv[2]).write_text(json.dumps(result), encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
