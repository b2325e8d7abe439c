"""Plan and apply: compare the registry with what is live, then make the live side match."""
