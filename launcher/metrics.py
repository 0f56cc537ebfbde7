"""Prometheus metrics of one portal process, in a registry of its own (no global state)."""

from __future__ import annotations

from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge


class Metrics:
    """Prometheus metrics of this process, in a registry of its own (no global state)."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.launches = Counter(
            "launcher_launches", "Launches answered", ["app"], registry=self.registry
        )
        self._launch_children: dict[str, Any] = {}
        self.signins = Counter("launcher_signins", "Completed sign-ins", registry=self.registry)
        self.login_failures = Counter(
            "launcher_login_failures", "Failed sign-ins", ["reason"], registry=self.registry
        )
        self.pending = Gauge(
            "launcher_events_pending", "Events waiting to be written", registry=self.registry
        )
        self.spooled = Gauge(
            "launcher_events_spooled", "Events spooled to disk since start", registry=self.registry
        )
        self.registry_ok = Gauge(
            "launcher_registry_valid", "1 when apps.yaml on disk is valid", registry=self.registry
        )
        # every worker reads the same app_status table (launcher/status.py), so with several
        # workers the most recent value of a live one is the answer
        self.app_up = Gauge(
            "launcher_app_up",
            "1 when the app's status_url answered 2xx/3xx at its last check, 0 when not",
            ["app"],
            registry=self.registry,
            multiprocess_mode="livemostrecent",
        )

    def launch_counter(self, app_id: str) -> Any:
        """The launch counter of one app; labels() is too slow to call on every launch."""
        child = self._launch_children.get(app_id)
        if child is None:
            child = self._launch_children[app_id] = self.launches.labels(app_id)
        return child
