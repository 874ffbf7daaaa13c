"""Upward hooks of billing: instances listens (billing never imports instances)."""

from django.dispatch import Signal

# Sent after commit when a tenant's balance reaches zero or below: tenant_id=int.
balance_exhausted = Signal()
