"""`manage.py launch` (what `make run` runs): the whole system in one terminal.

Starts the embedded Redis (unless REDIS_URL is set), migrates, seeds the demo tenant, then runs
web (uvicorn, ASGI), a Celery worker and beat under honcho; Ctrl-C stops them all.
"""

import os
import shlex
import shutil
import sys

from django.conf import settings
from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandError
from honcho.manager import Manager
from honcho.printer import Printer

from dumont.embedded_redis import EmbeddedRedisError, start_embedded_redis, stop_embedded_redis

FIRST_MARKET_SAMPLE_SECONDS = 10


def _python(*arguments: str) -> str:
    return shlex.join([sys.executable, *arguments])


class Command(BaseCommand):
    help = "Run web, worker and beat (and the embedded Redis) until Ctrl-C."

    def add_arguments(self, parser):
        parser.add_argument("--host", default=os.environ.get("HOST", "127.0.0.1"))
        parser.add_argument("--port", type=int, default=int(os.environ.get("PORT", "8000")))
        parser.add_argument("--worker-concurrency", type=int, default=2)
        parser.add_argument("--sim-port", type=int, default=int(os.environ.get("SIM_PORT", "8001")))
        parser.add_argument(
            "--stripe-port", type=int, default=int(os.environ.get("FAKE_STRIPE_PORT", "8002"))
        )
        parser.add_argument(
            "--provision-delay",
            type=float,
            default=float(os.environ.get("SIM_PROVISION_DELAY_SECONDS", "3")),
            help="seconds a simulated machine takes to boot",
        )

    def handle(
        self,
        *args,
        host: str,
        port: int,
        worker_concurrency: int,
        sim_port: int,
        stripe_port: int,
        provision_delay: float,
        **options,
    ):
        home = settings.DUMONT_HOME
        redis_process = None
        if settings.IS_EMBEDDED_REDIS:
            try:
                redis_process = start_embedded_redis(home, settings.EMBEDDED_REDIS_SOCKET)
            except EmbeddedRedisError as error:
                raise CommandError(str(error)) from error
        try:
            call_command("migrate", interactive=False, verbosity=0)
            call_command("collectstatic", interactive=False, verbosity=0)
            call_command("seed_demo", base_url=f"http://{host}:{port}")
            # Three weeks of real GPU price history, ending now, for the spot endpoints.
            call_command("spot_import", align_to_now=True, if_empty=True)
            # The market as the provider offers it now, not five minutes from now (the beat's
            # interval): a first sample once the worker and the simulated market are up.
            from spot.tasks import monitor_market

            monitor_market.apply_async(countdown=FIRST_MARKET_SAMPLE_SECONDS)
            return_code = self._run_processes(
                host, port, worker_concurrency, sim_port, stripe_port, provision_delay
            )
        finally:
            if redis_process is not None:
                stop_embedded_redis(redis_process)
        if return_code:
            raise CommandError(f"a process stopped with exit code {return_code}")

    def _run_processes(
        self,
        host: str,
        port: int,
        worker_concurrency: int,
        sim_port: int,
        stripe_port: int,
        provision_delay: float,
    ) -> int:
        env = dict(
            os.environ,
            DUMONT_HOME=str(settings.DUMONT_HOME),
            PYTHONUNBUFFERED="1",
            SIM_PROVIDER_URL=os.environ.get("SIM_PROVIDER_URL", f"http://127.0.0.1:{sim_port}"),
            DUMONT_PUBLIC_URL=os.environ.get("DUMONT_PUBLIC_URL", f"http://{host}:{port}"),
        )
        # Human-readable logs in a terminal; production's default is JSON (settings).
        env.setdefault("LOG_FORMAT", "plain")
        if "PROMETHEUS_MULTIPROC_DIR" not in os.environ:
            # /metrics adds up web's and worker's counters from this folder, emptied at each start
            # (the values of processes of an earlier run would count twice).
            metrics_dir = settings.DUMONT_HOME / "prometheus"
            shutil.rmtree(metrics_dir, ignore_errors=True)
            metrics_dir.mkdir()
            env["PROMETHEUS_MULTIPROC_DIR"] = str(metrics_dir)
        if "STRIPE_SECRET_KEY" not in os.environ:
            # No Stripe account configured: top-ups go through the local fake Stripe.
            env["STRIPE_API_BASE"] = f"http://127.0.0.1:{stripe_port}"
        manager = Manager(Printer(sys.stdout, width=6))
        if settings.GPU_PROVIDER == "sim":
            # The simulated GPU market: machines are folders under DUMONT_HOME with real agents.
            manager.add_process(
                "sim",
                _python(
                    "-m",
                    "simulator",
                    "--home",
                    str(settings.DUMONT_HOME),
                    "--port",
                    str(sim_port),
                    "--provision-delay",
                    str(provision_delay),
                ),
                env=env,
            )
        if "STRIPE_SECRET_KEY" not in os.environ:
            manager.add_process(
                "stripe",
                _python(
                    "-m",
                    "simulator.payments",
                    "--port",
                    str(stripe_port),
                    "--webhook-url",
                    f"http://{host}:{port}/api/billing/stripe/webhook",
                    "--webhook-secret",
                    settings.STRIPE_WEBHOOK_SECRET,
                ),
                env=env,
            )
        manager.add_process(
            "web",
            _python(
                "-m",
                "uvicorn",
                "dumont.asgi:application",
                "--host",
                host,
                "--port",
                str(port),
                "--no-access-log",
            ),
            env=env,
        )
        manager.add_process(
            "worker",
            _python(
                "-m",
                "celery",
                "-A",
                "dumont",
                "worker",
                "--loglevel",
                "INFO",
                "--concurrency",
                str(worker_concurrency),
                "--hostname",
                "worker@%h",
            ),
            env=env,
        )
        manager.add_process(
            "beat", _python("-m", "celery", "-A", "dumont", "beat", "--loglevel", "INFO"), env=env
        )
        manager.loop()
        # Ctrl-C (130) and SIGTERM (143) are how a person stops the system: not a failure.
        return 0 if manager.returncode in (None, 130, 143) else manager.returncode
