"""Platform plumbing: host settings, state store, environment locks, metrics registry, atomic writes."""
