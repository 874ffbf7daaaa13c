"""`python -m simulator --home DIR --port N`: the simulated GPU market (the `sim` provider)."""

import argparse
import logging
import signal
import sys
import threading
from pathlib import Path

from simulator.server import Simulator, serve
from simulator.store import Store
from simulator.supervisor import Supervisor


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m simulator", description=__doc__)
    parser.add_argument("--home", type=Path, required=True, help="state lives in HOME/sim")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8001)
    parser.add_argument("--seed", type=int, default=1, help="the market's random seed")
    parser.add_argument("--provision-delay", type=float, default=3.0, help="boot time, seconds")
    parser.add_argument(
        "--hazard-scale", type=float, default=1.0, help="interruption hazard multiplier; 0 = none"
    )
    parser.add_argument("--api-key", default="", help="require `Authorization: Bearer KEY`")
    arguments = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s sim %(message)s")

    home = arguments.home / "sim"
    store = Store(home / "state.sqlite3")
    supervisor = Supervisor(store, home, arguments.provision_delay, arguments.hazard_scale)
    simulator = Simulator(store, supervisor, arguments.seed, arguments.api_key)
    try:
        server = serve(simulator, arguments.host, arguments.port)
    except OSError as error:
        print(
            f"simulator: cannot listen on {arguments.host}:{arguments.port}: {error}",
            file=sys.stderr,
        )
        return 2
    ticker = threading.Thread(target=supervisor.run, name="ticker", daemon=True)
    ticker.start()

    def stop(signum, frame):
        threading.Thread(target=server.shutdown, daemon=True).start()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    logging.info("simulated market on http://%s:%s (home %s)", arguments.host, arguments.port, home)
    server.serve_forever(poll_interval=0.2)
    supervisor.shutdown()
    server.server_close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
