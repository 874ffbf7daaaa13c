"""Local fake HTTP servers of the real provider APIs, for the provider tests.

Each fake keeps a little in-memory state and answers with the JSON the real API documents:
- FakeVast: Vast.ai's REST API (docs.vast.ai/api-reference; the shapes of vast-ai/vast-cli's
  openapi/yaml: search_offers, create_instance, show_instance(s), manage_instance).
- FakeCompute: the Compute Engine v1 REST paths google-cloud-compute's REST transport calls
  (instances insert/get/list/stop/start/delete/setLabels and zoneOperations get/wait).

Faults are queued per method and path: an error status (with headers) answered before doing
anything, or a slow answer that does the work and then sleeps past the client's timeout.
"""

import contextlib
import json
import re
import shlex
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from itertools import count

from pytest_httpserver import HTTPServer
from werkzeug import Request, Response


@contextlib.contextmanager
def serve(fake) -> Iterator[str]:
    """Run `fake.handle` on a threaded loopback server; yields its base URL."""
    server = HTTPServer(host="127.0.0.1", port=0, threaded=True)
    server.expect_request(re.compile(".*")).respond_with_handler(fake.handle)
    server.start()
    try:
        yield server.url_for("").rstrip("/")
    finally:
        server.clear()
        server.stop()


@dataclass
class Fault:
    method: str
    path: re.Pattern
    status: int = 500
    headers: dict = field(default_factory=dict)
    times: int = 1
    sleep_seconds: float = 0.0  # > 0: do the work, then answer this late


class FakeServer:
    """Routing, faults and a request log shared by the fakes."""

    def __init__(self):
        self.lock = threading.RLock()
        self.faults: list[Fault] = []
        self.requests: list[tuple[str, str]] = []

    def fail(self, method: str, path: str, status: int = 500, *, times: int = 1, **headers):
        """The next `times` calls matching method and path (a regex) answer `status`."""
        self.faults.append(Fault(method, re.compile(path), status, headers, times))

    def slow(self, method: str, path: str, sleep_seconds: float, *, times: int = 1):
        """The next `times` matching calls do their work, then answer after `sleep_seconds`."""
        self.faults.append(
            Fault(method, re.compile(path), times=times, sleep_seconds=sleep_seconds)
        )

    def calls(self, method: str, path: str) -> int:
        pattern = re.compile(path)
        return sum(1 for m, p in self.requests if m == method and pattern.fullmatch(p))

    def _take_fault(self, method: str, path: str) -> Fault | None:
        for fault in self.faults:
            if fault.method == method and fault.path.fullmatch(path) and fault.times > 0:
                fault.times -= 1
                return fault
        return None

    def handle(self, request: Request) -> Response:
        with self.lock:
            self.requests.append((request.method, request.path))
            fault = self._take_fault(request.method, request.path)
        if fault and not fault.sleep_seconds:
            return _json({"detail": "fault injected"}, fault.status, fault.headers)
        with self.lock:
            response = self.route(request)
        if fault:
            time.sleep(fault.sleep_seconds)
        return response

    def route(self, request: Request) -> Response:
        raise NotImplementedError


def _json(body, status: int = 200, headers: dict | None = None) -> Response:
    return Response(json.dumps(body), status, headers or {}, content_type="application/json")


# --- Vast.ai -------------------------------------------------------------------------------------


def vast_offer(offer_id: int, gpu_name: str, geolocation: str, dph_total: float, **extra) -> dict:
    """A search result as /bundles/ documents it (the fields we read, and a few more)."""
    return {
        "id": offer_id,
        "ask_contract_id": offer_id,
        "machine_id": 80000 + offer_id,
        "host_id": 5000 + offer_id,
        "gpu_name": gpu_name,
        "num_gpus": 1,
        "gpu_ram": 24564,
        "gpu_total_ram": 24564,
        "cpu_cores_effective": 16,
        "disk_space": 200.0,
        "dph_base": round(dph_total * 0.95, 6),
        "dph_total": dph_total,
        "min_bid": round(dph_total * 0.6, 6),
        "geolocation": geolocation,
        "reliability2": 0.995,
        "rentable": True,
        "rented": False,
        "verified": True,
        "verification": "verified",
        "is_bid": False,
        "public_ipaddr": f"203.0.113.{offer_id % 250}",
        "inet_down": 900.0,
        "inet_up": 800.0,
        **extra,
    }


class FakeVast(FakeServer):
    """Vast.ai under /api/v0: offers to rent, instances rented, Bearer auth."""

    def __init__(self, api_key: str = "vast-test-key"):
        super().__init__()
        self.api_key = api_key
        self.offers: dict[int, dict] = {}
        self.instances: dict[int, dict] = {}
        self.rent_bodies: list[dict] = []
        self.ids = count(700001)

    # Test controls -------------------------------------------------------------------------

    def add_offer(self, *args, **kwargs) -> dict:
        offer = vast_offer(*args, **kwargs)
        self.offers[offer["id"]] = offer
        return offer

    def set_container(self, instance_id: int | str, **fields) -> None:
        """Move an instance as its host would (actual_status, cur_state, intended_status)."""
        with self.lock:
            self.instances[int(instance_id)].update(fields)

    def boot(self, instance_id: int | str) -> None:
        self.set_container(instance_id, actual_status="running", status_msg="success, running")

    def outbid(self, instance_id: int | str) -> None:
        """An interruptible contract loses its GPUs to a higher bid: paused, not by us."""
        self.set_container(
            instance_id, actual_status="stopped", cur_state="stopped", status_msg="outbid"
        )

    def vanish(self, instance_id: int | str) -> None:
        with self.lock:
            self.instances.pop(int(instance_id), None)

    def machines_labelled(self, label: str) -> list[dict]:
        return [i for i in self.instances.values() if i["label"] == label]

    # API ------------------------------------------------------------------------------------

    def route(self, request: Request) -> Response:
        if request.headers.get("Authorization") != f"Bearer {self.api_key}":
            return _json({"success": False, "error": "auth_error", "msg": "Invalid user key"}, 401)
        path = request.path.removeprefix("/api/v0")
        body = request.get_json(silent=True) or {}
        if path == "/bundles/" and request.method == "POST":
            return _json({"offers": self._search(body)})
        if match := re.fullmatch(r"/asks/(\d+)/", path):
            return self._rent(int(match[1]), body)
        if path == "/instances/" and request.method == "GET":
            instances = list(self.instances.values())
            return _json({"instances_found": len(instances), "instances": instances})
        if match := re.fullmatch(r"/instances/(\d+)/", path):
            return self._instance(request.method, int(match[1]), body)
        return _json({"success": False, "error": "not_found", "msg": path}, 404)

    def _search(self, query: dict) -> list[dict]:
        def matches(offer: dict) -> bool:
            for name, condition in query.items():
                if not isinstance(condition, dict):
                    continue
                value = offer.get(name)
                if name == "geolocation":
                    value = value.rsplit(",", 1)[-1].strip()
                for operator, wanted in condition.items():
                    if not {
                        "eq": lambda v, w: v == w,
                        "neq": lambda v, w: v != w,
                        "lte": lambda v, w: v <= w,
                        "gte": lambda v, w: v >= w,
                        "lt": lambda v, w: v < w,
                        "gt": lambda v, w: v > w,
                        "in": lambda v, w: v in w,
                        "nin": lambda v, w: v not in w,
                    }[operator](value, wanted):
                        return False
            return True

        found = sorted(
            (offer for offer in self.offers.values() if matches(offer)),
            key=lambda offer: offer["dph_total"],
        )
        return found[: query.get("limit", 64)]

    def _rent(self, offer_id: int, body: dict) -> Response:
        offer = self.offers.get(offer_id)
        if offer is None or offer["rented"]:
            return _json(
                {
                    "success": False,
                    "error": "invalid_args",
                    "msg": f"error 404/3603: no_such_ask Instance type by id {offer_id} is not "
                    "available.",
                    "ask_id": offer_id,
                },
                404,
            )
        if "price" in body and body["price"] < offer["min_bid"]:
            return _json(
                {"success": False, "error": "invalid_price", "msg": "bid below min_bid"}, 400
            )
        self.rent_bodies.append(body)
        instance_id = next(self.ids)
        offer["rented"] = True
        self.instances[instance_id] = {
            **{k: offer[k] for k in ("gpu_name", "num_gpus", "geolocation", "machine_id")},
            "ask_contract_id": offer_id,
            "id": instance_id,
            "actual_status": None,
            "intended_status": body.get("target_state", "running"),
            "cur_state": "running",
            "next_state": "running",
            "label": body.get("label"),
            "image_uuid": body["image"],
            "image_runtype": body.get("runtype", "ssh"),
            "extra_env": [
                item.split("=", 1) for item in shlex.split(body.get("env", "")) if item != "-e"
            ],
            "onstart": body.get("onstart"),
            "disk_space": body.get("disk"),
            "is_bid": "price" in body,
            "dph_total": body.get("price", offer["dph_total"]),
            "min_bid": offer["min_bid"],
            "ssh_host": f"ssh{instance_id % 9}.vast.ai",
            "ssh_idx": str(instance_id % 9),
            "ssh_port": 10000 + instance_id % 1000,
            "public_ipaddr": offer["public_ipaddr"],
            "gpu_util": None,
            "status_msg": None,
        }
        return _json({"success": True, "new_contract": instance_id})

    def _instance(self, method: str, instance_id: int, body: dict) -> Response:
        instance = self.instances.get(instance_id)
        if instance is None:
            missing = {"success": False, "error": "no_such_instance", "msg": "Instance not found"}
            return _json(missing, 404)
        if method == "GET":
            return _json({"instances": instance})
        if method == "DELETE":
            del self.instances[instance_id]
            return _json({"success": True})
        if method == "PUT" and body.get("state") == "stopped":
            instance.update(intended_status="stopped", cur_state="stopped", actual_status="stopped")
            return _json({"success": True})
        if method == "PUT" and body.get("state") == "running":
            instance.update(intended_status="running", cur_state="running", actual_status="loading")
            return _json({"success": True})
        return _json({"success": False, "error": "invalid_args", "msg": "bad request"}, 400)


# --- Compute Engine ------------------------------------------------------------------------------


def _gce_error(status: int, reason: str, message: str) -> Response:
    error = {"code": status, "message": message, "errors": [{"message": message, "reason": reason}]}
    return _json({"error": error}, status)


class FakeCompute(FakeServer):
    """Compute Engine v1 (REST): instances in zones and the zone operations that change them.

    An operation is RUNNING until `operation_polls` GETs have seen it, then DONE, and only then
    does its instance change (insert → RUNNING, stop → TERMINATED, start → RUNNING, delete).
    """

    def __init__(self, project: str = "dumont-test", operation_polls: int = 1):
        super().__init__()
        self.project = project
        self.operation_polls = operation_polls
        self.instances: dict[tuple[str, str], dict] = {}
        self.operations: dict[str, dict] = {}
        self.inserted: list[dict] = []
        self.ids = count(4_100_000_000_000_000_001)
        self.operation_error: dict | None = None  # the error the next operation ends with

    # Test controls -------------------------------------------------------------------------

    def instance(self, name: str) -> dict:
        return next(body for (_, n), body in self.instances.items() if n == name)

    def preempt(self, name: str) -> None:
        """GCE takes a SPOT VM back: STOP termination action, so it is TERMINATED, not deleted."""
        with self.lock:
            self.instance(name)["status"] = "TERMINATED"

    # API ------------------------------------------------------------------------------------

    def route(self, request: Request) -> Response:
        prefix = rf"/compute/v1/projects/{re.escape(self.project)}/zones/([a-z0-9-]+)"
        path, method = request.path, request.method
        if match := re.fullmatch(prefix + r"/operations/([\w-]+)(/wait)?", path):
            return self._operation(match[2], match[3])
        if match := re.fullmatch(prefix + r"/instances", path):
            zone = match[1]
            if method == "POST":
                return self._insert(zone, request.get_json())
            items = [body for (z, _), body in self.instances.items() if z == zone]
            return _json({"kind": "compute#instanceList", "items": items})
        match = re.fullmatch(prefix + r"/instances/([\w-]+)(/stop|/start|/setLabels)?", path)
        if match is None:
            return _gce_error(404, "notFound", f"The resource '{path}' was not found")
        zone, name, action = match[1], match[2], match[3]
        instance = self.instances.get((zone, name))
        if instance is None:
            return _gce_error(404, "notFound", f"The resource '{path}' was not found")
        if method == "GET" and action is None:
            return _json(instance)
        if method == "DELETE" and action is None:
            return _json(self._start_operation(zone, name, "delete"))
        if method == "POST" and action == "/setLabels":
            body = request.get_json()
            if body.get("labelFingerprint") != instance["labelFingerprint"]:
                return _gce_error(412, "conditionNotMet", "Labels fingerprint invalid")
            instance["labels"] = body.get("labels", {})
            instance["labelFingerprint"] = f"fp{next(self.ids)}"
            return _json(self._start_operation(zone, name, "setLabels", is_done=True))
        if method == "POST" and action in ("/stop", "/start"):
            return _json(self._start_operation(zone, name, action[1:]))
        return _gce_error(400, "invalid", "unsupported")

    def _insert(self, zone: str, body: dict) -> Response:
        name = body["name"]
        if (zone, name) in self.instances:
            message = f"The resource 'projects/{self.project}/zones/{zone}/instances/{name}' "
            return _gce_error(409, "alreadyExists", message + "already exists")
        self.inserted.append(body)
        link = f"https://www.googleapis.com/compute/v1/projects/{self.project}/zones/{zone}"
        self.instances[(zone, name)] = {
            **body,
            "kind": "compute#instance",
            "id": str(next(self.ids)),
            "zone": link,
            "machineType": f"{link}/{body['machineType']}",
            "status": "PROVISIONING",
            "labelFingerprint": "fp0",
            "networkInterfaces": [
                {
                    **interface,
                    "networkIP": "10.128.0.7",
                    "accessConfigs": [
                        {**config, "natIP": "34.148.10.20"}
                        for config in interface.get("accessConfigs", [])
                    ],
                }
                for interface in body.get("networkInterfaces", [])
            ],
            "selfLink": f"{link}/instances/{name}",
        }
        return _json(self._start_operation(zone, name, "insert"))

    def _start_operation(self, zone: str, name: str, kind: str, *, is_done=False) -> dict:
        operation_name = f"operation-{next(self.ids)}"
        link = f"https://www.googleapis.com/compute/v1/projects/{self.project}/zones/{zone}"
        operation = {
            "kind": "compute#operation",
            "id": str(next(self.ids)),
            "name": operation_name,
            "zone": link,
            "operationType": kind,
            "targetLink": f"{link}/instances/{name}",
            "status": "RUNNING",
            "progress": 0,
            "selfLink": f"{link}/operations/{operation_name}",
            "_polls_left": 0 if is_done else self.operation_polls,
            "_target": (zone, name),
        }
        self.operations[operation_name] = operation
        if is_done:
            self._finish(operation)
        return self._public(operation)

    def _operation(self, name: str, is_wait: str | None) -> Response:
        operation = self.operations.get(name)
        if operation is None:
            return _gce_error(404, "notFound", f"operation {name} was not found")
        if operation["status"] != "DONE":
            operation["_polls_left"] -= 1
            if operation["_polls_left"] <= 0 or is_wait:
                self._finish(operation)
        return _json(self._public(operation))

    def _finish(self, operation: dict) -> None:
        operation.update(status="DONE", progress=100)
        if self.operation_error:
            operation["error"] = {"errors": [self.operation_error]}
            self.operation_error = None
            if operation["operationType"] == "insert":
                self.instances.pop(operation["_target"], None)
            return
        instance = self.instances.get(operation["_target"])
        kind = operation["operationType"]
        if instance is None:
            return
        if kind in ("insert", "start"):
            instance["status"] = "RUNNING"
        elif kind == "stop":
            instance["status"] = "TERMINATED"
        elif kind == "delete":
            del self.instances[operation["_target"]]

    @staticmethod
    def _public(operation: dict) -> dict:
        return {key: value for key, value in operation.items() if not key.startswith("_")}
