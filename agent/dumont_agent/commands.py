"""Commands the API sends in heartbeat replies; each handler returns (ok, detail)."""

from collections.abc import Callable


class ShutdownRequested(Exception):
    """Raised by the `shutdown` command once its result is reported."""


Handler = Callable[[dict], tuple[bool, str]]
HANDLERS: dict[str, Handler] = {}


def handler(kind: str):
    def register(function: Handler) -> Handler:
        HANDLERS[kind] = function
        return function

    return register


@handler("ping")
def ping(args: dict) -> tuple[bool, str]:
    return True, str(args.get("echo", "pong"))


@handler("shutdown")
def shutdown(args: dict) -> tuple[bool, str]:
    return True, "shutting down"


def run(kind: str, args: dict) -> tuple[bool, str]:
    function = HANDLERS.get(kind)
    if function is None:
        return False, f"unknown command {kind!r}"
    try:
        return function(args)
    except Exception as error:  # a command's failure is reported, never fatal to the agent
        return False, f"{type(error).__name__}: {error}"
