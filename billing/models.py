# Plans, the credit ledger and metering arrive with issue #7 ([E] Billing).
