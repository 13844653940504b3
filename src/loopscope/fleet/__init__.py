"""Many processes at once: a fleet of attach sessions, and `loopscope serve`, which exports
their metrics to Prometheus and OpenTelemetry."""
