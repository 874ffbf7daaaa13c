from django.apps import AppConfig


class InstancesConfig(AppConfig):
    name = "instances"

    def ready(self) -> None:
        from instances.market import offers_for_spot
        from spot.market import register_offer_source

        register_offer_source(offers_for_spot)
