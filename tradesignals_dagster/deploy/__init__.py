"""Running pipelines: the runtime interface, its implementations and the desired state."""
