"""Domain errors of instances; dumont.errors turns them into JSON with their `code`."""

from dumont.exceptions import DumontError


class InvalidTransition(DumontError):
    code = "invalid_transition"
    status_code = 409

    def __init__(self, from_status: str, to_status: str):
        self.from_status = from_status
        self.to_status = to_status
        super().__init__(f"An instance that is {from_status} cannot become {to_status}.")

    def extra(self) -> dict:
        return {"status": self.from_status}


class UnknownGpu(DumontError):
    code = "unknown_gpu"


class UnknownRegion(DumontError):
    code = "unknown_region"


class NoCapacity(DumontError):
    """No offer under the maximum price; `alternatives` lists the cheapest other choices."""

    code = "no_capacity"
    status_code = 409

    def __init__(self, detail: str, alternatives: list[dict]):
        super().__init__(detail)
        self.alternatives = alternatives

    def extra(self) -> dict:
        return {"alternatives": self.alternatives}


class PlanLimit(DumontError):
    """The tenant's plan does not allow this instance; `plan` names the plan."""

    status_code = 403

    def __init__(self, detail: str, *, plan: str):
        super().__init__(detail)
        self.plan = plan

    def extra(self) -> dict:
        return {"plan": self.plan}


class InstanceLimitReached(PlanLimit):
    code = "instance_limit_reached"


class RegionNotInPlan(PlanLimit):
    code = "region_not_in_plan"


class ProviderUnavailable(DumontError):
    code = "provider_unavailable"
    status_code = 503
    default_detail = "The GPU provider is not answering; try again in a minute."


class UnknownAgent(DumontError):
    code = "invalid_token"
    status_code = 401
    default_detail = "Unknown or retired agent token: 'Authorization: Bearer dia_...'."
