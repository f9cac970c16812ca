"""The HTTP process: routes that only move bytes, Bearer auth, body limits, draining on stop, Prometheus."""
