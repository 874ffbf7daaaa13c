# Snapshots and the engine arrive with issue #5 ([C] Snapshots).
