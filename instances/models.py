# Instance, InstanceEvent and the state machine arrive with issue #4 ([B] Instances).
