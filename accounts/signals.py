"""Upward hooks of accounts (DESIGN.md: a lower app signals, a higher app listens)."""

from django.dispatch import Signal

# Sent inside the transaction that creates an organisation: tenant=Tenant, owner=User.
# billing grants the trial credit here.
tenant_created = Signal()
