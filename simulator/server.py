"""The simulated provider's HTTP API (see simulator/README.md for the contract)."""

import json
import logging
import re
import secrets
import threading
import time
from datetime import UTC, datetime
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlparse

from simulator import market
from simulator.store import MachineRow, Store, now
from simulator.supervisor import Supervisor
from spot.catalog import find_gpu, find_region

logger = logging.getLogger("simulator")

SSH_PORT_BASE = 20000


class Faults:
    """Test knobs: the next N calls fail with a status, or hang."""

    def __init__(self):
        self.lock = threading.Lock()
        self.clear()

    def clear(self) -> None:
        self.fail_next, self.fail_status, self.retry_after = 0, 500, None
        self.timeout_next, self.timeout_seconds = 0, 30.0

    def set(self, body: dict) -> None:
        with self.lock:
            self.fail_next = int(body.get("fail_next", 0))
            self.fail_status = int(body.get("fail_status", 500))
            self.retry_after = body.get("retry_after")
            self.timeout_next = int(body.get("timeout_next", 0))
            self.timeout_seconds = float(body.get("timeout_seconds", 30))

    def take(self) -> tuple[str, object] | None:
        """The fault this call meets, if any: ("fail", (status, retry_after)) or ("hang", s)."""
        with self.lock:
            if self.timeout_next > 0:
                self.timeout_next -= 1
                return "hang", self.timeout_seconds
            if self.fail_next > 0:
                self.fail_next -= 1
                return "fail", (self.fail_status, self.retry_after)
        return None


class Simulator:
    def __init__(self, store: Store, supervisor: Supervisor, seed: int, api_key: str = ""):
        self.store = store
        self.supervisor = supervisor
        self.seed = seed
        self.api_key = api_key
        self.faults = Faults()

    def offers(self) -> list[market.MarketOffer]:
        return market.market(self.seed, datetime.now(UTC), self.store.taken())

    def machine_json(self, row: MachineRow) -> dict:
        load = None
        if row.state == "running":
            try:
                with open(f"{row.folder}/load.json") as handle:
                    load = json.load(handle)["gpu_utilization_percent"]
            except (OSError, ValueError, KeyError):
                load = None
        return {
            "id": row.id,
            "idempotency_key": row.idempotency_key,
            "state": row.state,
            "gpu": row.gpu,
            "gpu_count": row.gpu_count,
            "region": row.region,
            "offer_id": row.offer_id,
            "price_micros_per_hour": row.price_micros_per_hour,
            "ssh_host": "127.0.0.1",
            "ssh_port": row.ssh_port,
            "public_ip": "127.0.0.1",
            "gpu_utilization_percent": load,
            "instance_id": row.instance_id,
            "created_at": datetime.fromtimestamp(row.created_at, UTC).isoformat(),
            "folder": row.folder,
        }

    def create(self, key: str, body: dict) -> tuple[int, dict]:
        with self.store.lock:
            existing = self.store.by_key(key)
            if existing is not None:
                return 200, self.machine_json(existing)
            offer = market.standby_offer(str(body.get("offer_id", ""))) or next(
                (o for o in self.offers() if o.offer_id == body.get("offer_id")), None
            )
            max_price = body.get("max_price_micros")
            if offer is None or offer.available < 1:
                return 409, {"error": "offer_unavailable", "detail": "no machine left"}
            if max_price is not None and offer.price_micros_per_hour > int(max_price):
                return 409, {"error": "offer_unavailable", "detail": "price above maximum"}
            machine_id = "m" + secrets.token_hex(6)
            spec = body.get("spec") or {}
            row = MachineRow(
                id=machine_id,
                idempotency_key=key,
                state="starting",
                offer_id=offer.offer_id,
                gpu=offer.gpu,
                gpu_count=offer.gpu_count,
                region=offer.region,
                price_micros_per_hour=offer.price_micros_per_hour,
                instance_id=str(spec.get("instance_id", "")),
                spec=spec,
                ssh_port=SSH_PORT_BASE + int(machine_id[1:5], 16) % 40000,
                folder=str(self.supervisor.folder_for(machine_id)),
                created_at=now(),
                ready_at=now() + self.supervisor.provision_delay,
            )
            self.store.insert(row)
            self.supervisor.prepare(row)
            return 201, self.machine_json(row)


def make_handler(simulator: Simulator):
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        server_version = "DumontSim/1"

        def log_message(self, format, *args):
            logger.debug("%s " + format, self.address_string(), *args)

        def _send(self, status: int, body: dict | None = None, headers: dict | None = None):
            content = b"" if body is None else json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(content)))
            for name, value in (headers or {}).items():
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(content)

        def _body(self) -> dict:
            length = int(self.headers.get("Content-Length") or 0)
            if not length:
                return {}
            try:
                body = json.loads(self.rfile.read(length))
            except ValueError:
                return {}
            return body if isinstance(body, dict) else {}

        def _route(self, method: str):
            url = urlparse(self.path)
            body = self._body() if method in ("POST", "PUT") else {}
            if simulator.api_key and self.headers.get("Authorization") != (
                f"Bearer {simulator.api_key}"
            ):
                return self._send(401, {"error": "unauthorized"})
            if url.path == "/v1/faults":
                if method == "POST":
                    simulator.faults.set(body)
                elif method == "DELETE":
                    simulator.faults.clear()
                return self._send(200, {"ok": True})
            fault = simulator.faults.take()
            if fault is not None:
                kind, value = fault
                if kind == "hang":
                    time.sleep(value)
                    return self._send(504, {"error": "timeout"})
                status, retry_after = value
                headers = {"Retry-After": str(retry_after)} if retry_after is not None else {}
                return self._send(status, {"error": "injected_fault"}, headers)
            return self._dispatch(method, url.path, parse_qs(url.query), body)

        def _dispatch(self, method: str, path: str, query: dict, body: dict):
            if method == "GET" and path == "/v1/offers":
                return self._offers(query)
            if method == "GET" and path == "/v1/machines":
                rows = simulator.store.all()
                return self._send(200, {"machines": [simulator.machine_json(r) for r in rows]})
            match = re.fullmatch(r"/v1/machines/([\w.:-]{1,100})(?:/(\w+))?", path)
            if match is None:
                return self._send(404, {"error": "not_found"})
            name, verb = match.groups()
            if method == "PUT" and verb is None:
                status, machine = simulator.create(name, body)
                return self._send(status, machine)
            row = simulator.store.get(name)
            if row is None:
                if method == "DELETE" and verb is None:
                    return self._send(204)
                return self._send(404, {"error": "not_found"})
            return self._act(method, verb, row, body)

        def _act(self, method: str, verb: str | None, row: MachineRow, body: dict):
            supervisor = simulator.supervisor
            with simulator.store.lock:
                row = simulator.store.get(row.id)
                if method == "GET" and verb is None:
                    pass
                elif method == "DELETE" and verb is None:
                    if row.state != "destroyed":
                        supervisor.stop(row, "destroyed")
                    return self._send(204)
                elif method == "POST" and verb == "stop":
                    if row.state in ("starting", "running"):
                        supervisor.stop(row, "stopped")
                elif method == "POST" and verb == "start":
                    if row.state == "stopped":
                        supervisor.start(row)
                    elif row.state in ("interrupted", "destroyed"):
                        return self._send(409, {"error": f"machine_{row.state}"})
                elif method == "POST" and verb == "interrupt":
                    if row.state in ("starting", "running"):
                        supervisor.stop(row, "interrupted")
                elif method == "PUT" and verb == "load":
                    try:
                        supervisor.set_load(
                            row,
                            float(body.get("gpu_utilization_percent", 0)),
                            interactive_sessions=int(body.get("interactive_sessions", 0)),
                            network_bytes_per_second=float(body.get("network_bytes_per_second", 0)),
                        )
                    except (TypeError, ValueError):
                        return self._send(400, {"error": "invalid_load"})
                else:
                    return self._send(405, {"error": "method_not_allowed"})
                return self._send(200, simulator.machine_json(simulator.store.get(row.id)))

        def _offers(self, query: dict):
            offers = simulator.offers()
            if gpu_text := query.get("gpu", [""])[0]:
                gpu = find_gpu(gpu_text)
                offers = [o for o in offers if gpu and o.gpu == gpu.name]
            if region_text := query.get("region", [""])[0]:
                region = find_region(region_text)
                offers = [o for o in offers if o.region == region]
            if count := query.get("gpu_count", [""])[0]:
                offers = [o for o in offers if o.gpu_count == int(count)]
            if max_price := query.get("max_price_micros", [""])[0]:
                offers = [o for o in offers if o.price_micros_per_hour <= int(max_price)]
            return self._send(200, {"offers": [offer.as_json() for offer in offers]})

        def do_GET(self):
            self._route("GET")

        def do_POST(self):
            self._route("POST")

        def do_PUT(self):
            self._route("PUT")

        def do_DELETE(self):
            self._route("DELETE")

    return Handler


def serve(simulator: Simulator, host: str, port: int) -> ThreadingHTTPServer:
    server = ThreadingHTTPServer((host, port), make_handler(simulator))
    server.daemon_threads = True
    return server


__all__ = ["HTTPStatus", "Simulator", "serve"]
