# The GPU catalog and market samples arrive with issue #8 ([F] Spot market intelligence).
