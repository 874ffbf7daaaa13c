from django.apps import AppConfig


class InstancesConfig(AppConfig):
    name = "instances"

    def ready(self) -> None:
        from billing.signals import balance_exhausted
        from instances import recovery, standby
        from instances.market import offers_for_spot
        from instances.metering import hibernate_for_exhausted_credit, meter_transition
        from instances.spot_hooks import machine_hours
        from instances.transitions import register_transition_hook
        from spot.market import register_offer_source
        from spot.risk import register_exposure_source

        recovery.register()
        standby.register()
        register_transition_hook(standby.instance_transitioned)
        register_offer_source(offers_for_spot)
        register_transition_hook(meter_transition)
        register_exposure_source(machine_hours)
        balance_exhausted.connect(
            hibernate_for_exhausted_credit, dispatch_uid="instances.exhausted", weak=False
        )
