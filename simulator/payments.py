"""A local fake of the part of Stripe's HTTP API that Dumont uses for top-ups: Checkout.

`python -m simulator.payments --port 8002 --webhook-url URL --webhook-secret whsec_...`
(`make run` starts it). localstripe has no Checkout, PIX or boleto, so this speaks the few
calls we make, the way Stripe does: form-encoded requests, JSON objects, and webhook events
signed exactly as Stripe signs them (`Stripe-Signature: t=<unix>,v1=<HMAC-SHA256 of
"<t>.<payload>">`). A customer "pays" on its checkout page:
- card and PIX: paid at once → `checkout.session.completed` (payment_status `paid`);
- boleto: issued → `checkout.session.completed` (`unpaid`); then "the bank" marks it paid or
  expired → `checkout.session.async_payment_succeeded` or `..._failed`.
State lives in memory: a restart forgets open sessions (a test double, not a ledger).
"""

import argparse
import contextlib
import hashlib
import hmac
import html
import json
import logging
import re
import secrets
import sys
import threading
import time
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qsl, urlparse

logger = logging.getLogger("fake-stripe")


def decode_form(body: str) -> dict:
    """Stripe's form encoding (`a[b][0][c]=v`) back into nested dicts and lists."""
    root: dict = {}
    for key, value in parse_qsl(body, keep_blank_values=True):
        _assign(root, re.findall(r"[^\[\]]+", key), value)
    return root


def _assign(root: dict, parts: list[str], value: str) -> None:
    node = root
    for index, part in enumerate(parts):
        last = index == len(parts) - 1
        following = None if last else parts[index + 1]
        empty = [] if following is not None and following.isdigit() else {}
        if isinstance(node, list):
            position = int(part)
            while len(node) <= position:
                node.append({} if not last else None)
            if last:
                node[position] = value
            else:
                if not isinstance(node[position], dict | list) or node[position] in ({}, None):
                    node[position] = node[position] or empty
                node = node[position]
        elif last:
            node[part] = value
        else:
            if part not in node or not isinstance(node[part], dict | list):
                node[part] = empty
            node = node[part]


def sign(payload: str, secret: str, timestamp: int) -> str:
    signature = hmac.new(secret.encode(), f"{timestamp}.{payload}".encode(), hashlib.sha256)
    return f"t={timestamp},v1={signature.hexdigest()}"


class FakeStripe:
    def __init__(self, base_url: str, webhook_url: str, webhook_secret: str):
        self.base_url = base_url
        self.webhook_url = webhook_url
        self.webhook_secret = webhook_secret
        self.sessions: dict[str, dict] = {}
        self.lock = threading.Lock()

    def create_session(self, params: dict) -> dict:
        item = params["line_items"][0]
        session_id = "cs_test_" + secrets.token_hex(12)
        session = {
            "id": session_id,
            "object": "checkout.session",
            "mode": params.get("mode", "payment"),
            "status": "open",
            "payment_status": "unpaid",
            "payment_method_types": params.get("payment_method_types", ["card"]),
            "amount_total": int(item["price_data"]["unit_amount"]) * int(item.get("quantity", 1)),
            "currency": item["price_data"]["currency"],
            "client_reference_id": params.get("client_reference_id"),
            "metadata": params.get("metadata", {}),
            "success_url": params.get("success_url"),
            "cancel_url": params.get("cancel_url"),
            "url": f"{self.base_url}/pay/{session_id}",
            "livemode": False,
            "created": int(time.time()),
        }
        with self.lock:
            self.sessions[session_id] = session
        return session

    def send_event(self, event_type: str, session: dict) -> int:
        event = {
            "id": "evt_" + secrets.token_hex(12),
            "object": "event",
            "type": event_type,
            "created": int(time.time()),
            "livemode": False,
            "api_version": "2024-06-20",
            "data": {"object": session},
        }
        payload = json.dumps(event)
        request = urllib.request.Request(
            self.webhook_url,
            data=payload.encode(),
            headers={
                "Content-Type": "application/json",
                "Stripe-Signature": sign(payload, self.webhook_secret, int(time.time())),
            },
            method="POST",
        )
        try:
            with urllib.request.urlopen(request, timeout=10) as response:
                return response.status
        except urllib.error.HTTPError as error:
            return error.code

    def pay(self, session_id: str, action: str) -> dict:
        """What the customer (or the bank, for boletos) does on the checkout page."""
        with self.lock:
            session = self.sessions[session_id]
        method = session["payment_method_types"][0]
        if action == "pay" and session["status"] == "open":
            session["status"] = "complete"
            if method != "boleto":
                session["payment_status"] = "paid"
            self.send_event("checkout.session.completed", dict(session))
        elif action == "boleto_paid" and session["payment_status"] == "unpaid":
            session["payment_status"] = "paid"
            self.send_event("checkout.session.async_payment_succeeded", dict(session))
        elif action == "boleto_failed" and session["payment_status"] == "unpaid":
            self.send_event("checkout.session.async_payment_failed", dict(session))
        return session


PAGE = """<!doctype html><meta charset="utf-8"><title>Fake Stripe Checkout</title>
<h1>Dumont Cloud credit</h1><p>{amount} {currency} by {method}: {status} / {payment}</p>
<form method="post"><button name="action" value="pay">Pay</button>{boleto}</form>"""
BOLETO = (
    '<button name="action" value="boleto_paid">Bank: boleto paid</button>'
    '<button name="action" value="boleto_failed">Bank: boleto expired</button>'
)


def make_handler(fake: FakeStripe):
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format, *args):
            logger.debug(format, *args)

        def _send(self, status: int, body: bytes, content_type: str, headers: dict | None = None):
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            for name, value in (headers or {}).items():
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(body)

        def _json(self, status: int, payload: dict):
            self._send(status, json.dumps(payload).encode(), "application/json")

        def _form(self) -> dict:
            length = int(self.headers.get("Content-Length") or 0)
            return decode_form(self.rfile.read(length).decode()) if length else {}

        def do_POST(self):
            path = urlparse(self.path).path
            if path == "/v1/checkout/sessions":
                if not self.headers.get("Authorization", "").startswith("Bearer sk_"):
                    return self._json(401, {"error": {"message": "Invalid API Key provided"}})
                try:
                    return self._json(200, fake.create_session(self._form()))
                except (KeyError, ValueError, IndexError) as error:
                    message = f"Missing or bad parameter: {error}"
                    return self._json(
                        400, {"error": {"type": "invalid_request_error", "message": message}}
                    )
            if match := re.fullmatch(r"/pay/(cs_test_\w+)", path):
                if match.group(1) not in fake.sessions:
                    return self._json(404, {"error": {"message": "No such session"}})
                session = fake.pay(match.group(1), self._form().get("action", "pay"))
                target = session["success_url"] or "/"
                return self._send(303, b"", "text/plain", {"Location": target})
            return self._json(404, {"error": {"message": "Unrecognized request URL"}})

        def do_GET(self):
            path = urlparse(self.path).path
            if match := re.fullmatch(r"/v1/checkout/sessions/(cs_test_\w+)", path):
                session = fake.sessions.get(match.group(1))
                if session is None:
                    return self._json(404, {"error": {"message": "No such session"}})
                return self._json(200, session)
            if match := re.fullmatch(r"/pay/(cs_test_\w+)", path):
                session = fake.sessions.get(match.group(1))
                if session is None:
                    return self._json(404, {"error": {"message": "No such session"}})
                method = session["payment_method_types"][0]
                page = PAGE.format(
                    amount=session["amount_total"] / 100,
                    currency=html.escape(session["currency"].upper()),
                    method=html.escape(method),
                    status=html.escape(session["status"]),
                    payment=html.escape(session["payment_status"]),
                    boleto=BOLETO if method == "boleto" else "",
                )
                return self._send(200, page.encode(), "text/html; charset=utf-8")
            return self._json(404, {"error": {"message": "Unrecognized request URL"}})

    return Handler


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m simulator.payments", description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8002)
    parser.add_argument("--webhook-url", required=True)
    parser.add_argument("--webhook-secret", required=True)
    arguments = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s fake-stripe %(message)s")
    fake = FakeStripe(
        f"http://{arguments.host}:{arguments.port}", arguments.webhook_url, arguments.webhook_secret
    )
    try:
        server = ThreadingHTTPServer((arguments.host, arguments.port), make_handler(fake))
    except OSError as error:
        print(f"fake-stripe: cannot listen on port {arguments.port}: {error}", file=sys.stderr)
        return 2
    server.daemon_threads = True
    import signal

    signal.signal(signal.SIGTERM, lambda *_: threading.Thread(target=server.shutdown).start())
    logging.info("fake Stripe on http://%s:%s", arguments.host, arguments.port)
    with contextlib.suppress(KeyboardInterrupt):
        server.serve_forever(poll_interval=0.2)
    server.server_close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
