"""Makes `cli.tests` a package of its own, apart from `agent/tests` (both would be `tests`)."""
