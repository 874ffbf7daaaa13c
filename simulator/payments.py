"""A local fake of the part of Stripe's HTTP API that Dumont uses: Checkout (top-ups and
subscriptions), customers, subscriptions, invoices, payment intents and methods, and billing
portal sessions.

`python -m simulator.payments --port 8002 --webhook-url URL --webhook-secret whsec_...`
(`make run` starts it). localstripe has customers, subscriptions and invoices but no Checkout,
PIX, boleto or billing portal, and a subscription must live on the server whose Checkout made
it; so this speaks the calls we make, the way Stripe does (API version 2026-10-28 shapes):
form-encoded requests, JSON objects, `expand[]`, and webhook events signed exactly as Stripe
signs them (`Stripe-Signature: t=<unix>,v1=<HMAC-SHA256 of "<t>.<payload>">`), delivered
asynchronously in order by one thread. A customer "pays" on its checkout page (form field
`card_number`, default 4242..., whose fingerprint is stable like Stripe's):
- card and PIX: paid at once → `checkout.session.completed` (payment_status `paid`);
- boleto: issued → `checkout.session.completed` (`unpaid`); then "the bank" marks it paid or
  expired → `checkout.session.async_payment_succeeded` or `..._failed`;
- mode subscription: `customer.subscription.created`, `invoice.paid` and then
  `checkout.session.completed`.
Test controls (not Stripe's API): `POST /_control/subscriptions/<id>/renew` (next period paid),
`.../fail` (the renewal payment fails: past_due), `.../end` (deleted); `POST /_control/hold`
queues events, `POST /_control/release` (form `order=reverse` or `shuffle`) delivers them.
State lives in memory: a restart forgets everything (a test double, not a ledger).
"""

import argparse
import contextlib
import hashlib
import hmac
import html
import json
import logging
import queue
import random
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


MONTH_SECONDS = 30 * 86400


def card_fingerprint(card_number: str) -> str:
    """Like Stripe's: one value per card number, whichever customer uses it."""
    return hashlib.sha256(f"fake-stripe:{card_number}".encode()).hexdigest()[:16]


def _new_id(prefix: str) -> str:
    return f"{prefix}_test_{secrets.token_hex(12)}"


class FakeStripe:
    def __init__(self, base_url: str, webhook_url: str, webhook_secret: str):
        self.base_url = base_url
        self.webhook_url = webhook_url
        self.webhook_secret = webhook_secret
        self.objects: dict[str, dict] = {}  # every object by id: sessions, customers, ...
        self.lock = threading.RLock()
        self.invoice_count = 0
        self.held: list[dict] | None = None
        self.outbox: queue.Queue = queue.Queue()
        threading.Thread(target=self._deliver_forever, daemon=True).start()

    @property
    def sessions(self) -> dict[str, dict]:
        return {key: value for key, value in self.objects.items() if key.startswith("cs_")}

    def get(self, object_id: str, expand: list[str] | None = None) -> dict | None:
        with self.lock:
            found = self.objects.get(object_id)
            if found is None:
                return None
            found = json.loads(json.dumps(found))
            for field in expand or []:
                if isinstance(found.get(field), str) and found[field] in self.objects:
                    found[field] = json.loads(json.dumps(self.objects[found[field]]))
            return found

    def _store(self, obj: dict) -> dict:
        with self.lock:
            self.objects[obj["id"]] = obj
        return obj

    # --- Stripe's API ------------------------------------------------------------------------

    def create_customer(self, params: dict) -> dict:
        return self._store(
            {
                "id": _new_id("cus"),
                "object": "customer",
                "email": params.get("email"),
                "name": params.get("name"),
                "metadata": params.get("metadata", {}),
                "created": int(time.time()),
                "livemode": False,
            }
        )

    def create_session(self, params: dict) -> dict:
        item = params["line_items"][0]
        price = item.get("price_data") or {"currency": "usd", "unit_amount": 0}
        mode = params.get("mode", "payment")
        if mode == "subscription" and "recurring" not in price and "price" not in item:
            raise ValueError(
                "line_items[0][price_data][recurring] is required in subscription mode"
            )
        if mode == "subscription" and not params.get("customer"):
            raise ValueError("customer is required (Dumont always passes one)")
        session_id = "cs_test_" + secrets.token_hex(12)
        session = {
            "id": session_id,
            "object": "checkout.session",
            "mode": mode,
            "status": "open",
            "payment_status": "unpaid",
            "payment_method_types": params.get("payment_method_types", ["card"]),
            "amount_total": int(price["unit_amount"]) * int(item.get("quantity", 1)),
            "currency": price["currency"],
            "customer": params.get("customer"),
            "client_reference_id": params.get("client_reference_id"),
            "metadata": params.get("metadata", {}),
            "success_url": params.get("success_url"),
            "cancel_url": params.get("cancel_url"),
            "url": f"{self.base_url}/pay/{session_id}",
            "payment_intent": None,
            "subscription": None,
            "livemode": False,
            "created": int(time.time()),
            "_line": {"price_data": price, "quantity": int(item.get("quantity", 1))},
            "_subscription_data": params.get("subscription_data", {}),
        }
        return self._public(self._store(session))

    @staticmethod
    def _public(obj: dict) -> dict:
        return {key: value for key, value in obj.items() if not key.startswith("_")}

    def create_portal_session(self, params: dict) -> dict:
        if params.get("customer") not in self.objects:
            raise KeyError(f"No such customer: {params.get('customer')}")
        portal_id = _new_id("bps")
        return self._store(
            {
                "id": portal_id,
                "object": "billing_portal.session",
                "customer": params["customer"],
                "return_url": params.get("return_url"),
                "url": f"{self.base_url}/portal/{portal_id}",
                "created": int(time.time()),
                "livemode": False,
            }
        )

    def update_subscription(self, subscription_id: str, params: dict) -> dict:
        with self.lock:
            subscription = self.objects[subscription_id]
            if "cancel_at_period_end" in params:
                subscription["cancel_at_period_end"] = params["cancel_at_period_end"] == "true"
            snapshot = dict(subscription)
        self.send_event("customer.subscription.updated", snapshot)
        return snapshot

    def delete_subscription(self, subscription_id: str) -> dict:
        with self.lock:
            subscription = self.objects[subscription_id]
            subscription.update(status="canceled", ended_at=int(time.time()))
            snapshot = dict(subscription)
        self.send_event("customer.subscription.deleted", snapshot)
        return snapshot

    # --- What customers, banks and the clock do ----------------------------------------------

    def _payment_method(self, customer: str | None, card_number: str) -> dict:
        return self._store(
            {
                "id": _new_id("pm"),
                "object": "payment_method",
                "type": "card",
                "customer": customer,
                "card": {
                    "brand": "visa",
                    "last4": card_number[-4:],
                    "exp_month": 12,
                    "exp_year": 2034,
                    "fingerprint": card_fingerprint(card_number),
                },
                "created": int(time.time()),
                "livemode": False,
            }
        )

    def _invoice(self, subscription: dict, *, paid: bool, reason: str) -> dict:
        item = subscription["items"]["data"][0]
        with self.lock:
            self.invoice_count += 1
            number = f"FAKE-{self.invoice_count:04d}"
        invoice_id = _new_id("in")
        amount = item["price"]["unit_amount"] * item["quantity"]
        return self._store(
            {
                "id": invoice_id,
                "object": "invoice",
                "customer": subscription["customer"],
                "number": number,
                "status": "paid" if paid else "open",
                "billing_reason": reason,
                "currency": item["price"]["currency"],
                "amount_due": amount,
                "amount_paid": amount if paid else 0,
                "amount_remaining": 0 if paid else amount,
                "period_start": item["current_period_start"],
                "period_end": item["current_period_end"],
                "hosted_invoice_url": f"{self.base_url}/invoices/{invoice_id}",
                "invoice_pdf": f"{self.base_url}/invoices/{invoice_id}/pdf",
                "parent": {
                    "type": "subscription_details",
                    "quote_details": None,
                    "subscription_details": {
                        "subscription": subscription["id"],
                        "metadata": subscription["metadata"],
                    },
                },
                "created": int(time.time()),
                "livemode": False,
            }
        )

    def _start_subscription(self, session: dict, card_number: str) -> None:
        method = self._payment_method(session["customer"], card_number)
        line = session["_line"]
        now = int(time.time())
        subscription = self._store(
            {
                "id": _new_id("sub"),
                "object": "subscription",
                "customer": session["customer"],
                "status": "active",
                "cancel_at_period_end": False,
                "canceled_at": None,
                "ended_at": None,
                "default_payment_method": method["id"],
                "metadata": session["_subscription_data"].get("metadata", {}),
                "items": {
                    "object": "list",
                    "data": [
                        {
                            "id": _new_id("si"),
                            "object": "subscription_item",
                            "quantity": line["quantity"],
                            "current_period_start": now,
                            "current_period_end": now + MONTH_SECONDS,
                            "price": {
                                "id": _new_id("price"),
                                "object": "price",
                                "currency": line["price_data"]["currency"],
                                "unit_amount": int(line["price_data"]["unit_amount"]),
                                "recurring": line["price_data"].get("recurring"),
                            },
                        }
                    ],
                },
                "created": now,
                "livemode": False,
            }
        )
        invoice = self._invoice(subscription, paid=True, reason="subscription_create")
        subscription["latest_invoice"] = invoice["id"]
        session.update(subscription=subscription["id"], payment_status="paid", status="complete")
        self.send_event("customer.subscription.created", dict(subscription))
        self.send_event("invoice.paid", dict(invoice))
        self.send_event("checkout.session.completed", self._public(session))

    def pay(self, session_id: str, action: str, card_number: str = "4242424242424242") -> dict:
        """What the customer (or the bank, for boletos) does on the checkout page."""
        with self.lock:
            session = self.objects[session_id]
        method = session["payment_method_types"][0]
        if action == "pay" and session["status"] == "open":
            if session["mode"] == "subscription":
                self._start_subscription(session, card_number)
                return session
            session["status"] = "complete"
            if method == "card":
                payment_method = self._payment_method(session["customer"], card_number)
                intent = self._store(
                    {
                        "id": _new_id("pi"),
                        "object": "payment_intent",
                        "amount": session["amount_total"],
                        "currency": session["currency"],
                        "status": "succeeded",
                        "payment_method": payment_method["id"],
                        "created": int(time.time()),
                        "livemode": False,
                    }
                )
                session["payment_intent"] = intent["id"]
            if method != "boleto":
                session["payment_status"] = "paid"
            self.send_event("checkout.session.completed", self._public(session))
        elif action == "boleto_paid" and session["payment_status"] == "unpaid":
            session["payment_status"] = "paid"
            self.send_event("checkout.session.async_payment_succeeded", self._public(session))
        elif action == "boleto_failed" and session["payment_status"] == "unpaid":
            self.send_event("checkout.session.async_payment_failed", self._public(session))
        return session

    def advance(self, subscription_id: str, what: str) -> dict:
        """The clock and the bank: renew (paid), fail (past_due) or end a subscription."""
        with self.lock:
            subscription = self.objects[subscription_id]
        if what == "end":
            return self.delete_subscription(subscription_id)
        item = subscription["items"]["data"][0]
        if what == "renew":
            if subscription["cancel_at_period_end"]:
                return self.delete_subscription(subscription_id)
            item["current_period_start"] = item["current_period_end"]
            item["current_period_end"] += MONTH_SECONDS
            invoice = self._invoice(subscription, paid=True, reason="subscription_cycle")
            subscription.update(status="active", latest_invoice=invoice["id"])
            self.send_event("invoice.paid", dict(invoice))
        elif what == "fail":
            invoice = self._invoice(subscription, paid=False, reason="subscription_cycle")
            subscription.update(status="past_due", latest_invoice=invoice["id"])
            self.send_event("invoice.payment_failed", dict(invoice))
        else:
            raise KeyError(what)
        self.send_event("customer.subscription.updated", dict(subscription))
        return subscription

    # --- Webhooks ----------------------------------------------------------------------------

    def send_event(self, event_type: str, obj: dict) -> None:
        """Queue a signed event for delivery (or hold it, when a test asked to)."""
        event = {
            "id": "evt_" + secrets.token_hex(12),
            "object": "event",
            "type": event_type,
            "created": int(time.time()),
            "livemode": False,
            "api_version": "2026-10-28.endive",
            "data": {"object": json.loads(json.dumps(obj))},
        }
        with self.lock:
            if self.held is not None:
                self.held.append(event)
                return
        self.outbox.put(event)

    def hold(self) -> None:
        with self.lock:
            self.held = self.held if self.held is not None else []

    def release(self, order: str) -> int:
        with self.lock:
            events, self.held = self.held or [], None
        if order == "reverse":
            events.reverse()
        elif order == "shuffle":
            random.shuffle(events)
        for event in events:
            self.outbox.put(event)
        return len(events)

    def _deliver_forever(self) -> None:
        while True:
            event = self.outbox.get()
            try:
                self.deliver(event)
            except Exception:  # a process boundary: log and go on with the next event
                logger.exception("delivering %s failed", event["id"])

    def deliver(self, event: dict) -> int:
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
            with urllib.request.urlopen(request, timeout=30) as response:
                return response.status
        except urllib.error.HTTPError as error:
            return error.code
        except OSError as error:
            logger.warning("webhook %s not delivered: %s", event["type"], error)
            return 0


PAGE = """<!doctype html><meta charset="utf-8"><title>Fake Stripe Checkout</title>
<h1>Dumont Cloud</h1><p>{amount} {currency} by {method} ({mode}): {status} / {payment}</p>
<form method="post"><input name="card_number" value="4242424242424242">
<button name="action" value="pay">Pay</button>{boleto}</form>"""
BOLETO = (
    '<button name="action" value="boleto_paid">Bank: boleto paid</button>'
    '<button name="action" value="boleto_failed">Bank: boleto expired</button>'
)
PORTAL = """<!doctype html><meta charset="utf-8"><title>Fake Stripe billing portal</title>
<h1>Billing portal</h1><p>Customer {customer}</p>{subscriptions}
<p><a href="{return_url}">Back to Dumont Cloud</a></p>"""
PORTAL_SUBSCRIPTION = """<form method="post"><p>{id}: {status}{cancelling}
<input type="hidden" name="subscription" value="{id}">
<button name="action" value="cancel">Cancel at period end</button></p></form>"""


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

        def _missing(self, what: str):
            message = f"No such {what}"
            error = {
                "type": "invalid_request_error",
                "code": "resource_missing",
                "message": message,
            }
            return self._json(404, {"error": error})

        def _form(self) -> dict:
            length = int(self.headers.get("Content-Length") or 0)
            return decode_form(self.rfile.read(length).decode()) if length else {}

        def _query(self) -> dict:
            return decode_form(urlparse(self.path).query)

        def _is_authorised(self) -> bool:
            return self.headers.get("Authorization", "").startswith("Bearer sk_")

        def _api(self, create, *args):
            if not self._is_authorised():
                return self._json(401, {"error": {"message": "Invalid API Key provided"}})
            try:
                return self._json(200, create(*args))
            except (KeyError, ValueError, IndexError) as error:
                message = f"Missing or bad parameter: {error}"
                return self._json(
                    400, {"error": {"type": "invalid_request_error", "message": message}}
                )

        def do_POST(self):
            path = urlparse(self.path).path
            if path == "/v1/checkout/sessions":
                return self._api(fake.create_session, self._form())
            if path == "/v1/customers":
                return self._api(fake.create_customer, self._form())
            if path == "/v1/billing_portal/sessions":
                return self._api(fake.create_portal_session, self._form())
            if match := re.fullmatch(r"/v1/subscriptions/(sub_test_\w+)", path):
                if match.group(1) not in fake.objects:
                    return self._missing("subscription")
                return self._api(fake.update_subscription, match.group(1), self._form())
            if match := re.fullmatch(r"/pay/(cs_test_\w+)", path):
                if match.group(1) not in fake.objects:
                    return self._missing("session")
                form = self._form()
                card_number = form.get("card_number") or "4242424242424242"
                session = fake.pay(match.group(1), form.get("action", "pay"), card_number)
                target = session["success_url"] or "/"
                return self._send(303, b"", "text/plain", {"Location": target})
            if match := re.fullmatch(r"/portal/(bps_test_\w+)", path):
                portal = fake.get(match.group(1))
                form = self._form()
                subscription = fake.get(form.get("subscription", ""))
                if portal is None or subscription is None:
                    return self._missing("portal session or subscription")
                if subscription["customer"] != portal["customer"]:
                    return self._missing("subscription")
                if form.get("action") == "cancel":
                    fake.update_subscription(subscription["id"], {"cancel_at_period_end": "true"})
                return self._send(303, b"", "text/plain", {"Location": self.path})
            if match := re.fullmatch(r"/_control/subscriptions/(sub_test_\w+)/(\w+)", path):
                if match.group(1) not in fake.objects:
                    return self._missing("subscription")
                try:
                    return self._json(200, fake.advance(match.group(1), match.group(2)))
                except KeyError:
                    return self._json(404, {"error": {"message": "renew, fail or end"}})
            if path == "/_control/hold":
                fake.hold()
                return self._json(200, {"held": True})
            if path == "/_control/release":
                released = fake.release(self._form().get("order", "sent"))
                return self._json(200, {"released": released})
            return self._json(404, {"error": {"message": "Unrecognized request URL"}})

        def do_DELETE(self):
            path = urlparse(self.path).path
            if match := re.fullmatch(r"/v1/subscriptions/(sub_test_\w+)", path):
                if match.group(1) not in fake.objects:
                    return self._missing("subscription")
                return self._api(fake.delete_subscription, match.group(1))
            return self._json(404, {"error": {"message": "Unrecognized request URL"}})

        def do_GET(self):
            path = urlparse(self.path).path
            api = re.fullmatch(
                r"/v1/(checkout/sessions|customers|subscriptions|invoices|payment_intents|"
                r"payment_methods)/(\w+)",
                path,
            )
            if api:
                if not self._is_authorised():
                    return self._json(401, {"error": {"message": "Invalid API Key provided"}})
                found = fake.get(api.group(2), self._query().get("expand", []))
                if found is None:
                    return self._missing(api.group(1))
                return self._json(200, fake._public(found))
            if match := re.fullmatch(r"/pay/(cs_test_\w+)", path):
                session = fake.get(match.group(1))
                if session is None:
                    return self._missing("session")
                method = session["payment_method_types"][0]
                page = PAGE.format(
                    amount=session["amount_total"] / 100,
                    currency=html.escape(session["currency"].upper()),
                    method=html.escape(method),
                    mode=html.escape(session["mode"]),
                    status=html.escape(session["status"]),
                    payment=html.escape(session["payment_status"]),
                    boleto=BOLETO if method == "boleto" else "",
                )
                return self._send(200, page.encode(), "text/html; charset=utf-8")
            if match := re.fullmatch(r"/portal/(bps_test_\w+)", path):
                portal = fake.get(match.group(1))
                if portal is None:
                    return self._missing("portal session")
                with fake.lock:
                    mine = [
                        dict(obj)
                        for obj in fake.objects.values()
                        if obj["object"] == "subscription" and obj["customer"] == portal["customer"]
                    ]
                rows = "".join(
                    PORTAL_SUBSCRIPTION.format(
                        id=html.escape(obj["id"]),
                        status=html.escape(obj["status"]),
                        cancelling=" (cancels at period end)"
                        if obj["cancel_at_period_end"]
                        else "",
                    )
                    for obj in mine
                )
                page = PORTAL.format(
                    customer=html.escape(portal["customer"]),
                    subscriptions=rows or "<p>No subscriptions.</p>",
                    return_url=html.escape(portal["return_url"] or "/"),
                )
                return self._send(200, page.encode(), "text/html; charset=utf-8")
            if match := re.fullmatch(r"/invoices/(in_test_\w+)(/pdf)?", path):
                invoice = fake.get(match.group(1))
                if invoice is None:
                    return self._missing("invoice")
                text = f"Invoice {invoice['number']}: {invoice['amount_due']} {invoice['currency']}"
                kind = "application/pdf" if match.group(2) else "text/plain; charset=utf-8"
                return self._send(200, text.encode(), kind)
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
