"""The ``[retention]`` config section, the same on hub and node (docs/design.md §3)."""

from __future__ import annotations

from dataclasses import dataclass

from protocol.retention import RetentionPolicy
from server_common.config import ConfigError, Duration


@dataclass(frozen=True, slots=True)
class RetentionConfig:
    # How often ``serve`` runs the archive/purge job; "0s" turns the schedule off
    # (``retention run`` still works).
    interval: Duration = Duration(86400)
    archive_age: int = 18
    care_leaver_archive_age: int = 25
    purge_after_years: int = 6
    live_after_death_years: int = 1
    # Service types (comma-separated) that, with recorded consent, mark a care leaver.
    care_leaver_services: str = "leaving_care"

    def __post_init__(self) -> None:
        if self.interval < 0:
            raise ConfigError("retention.interval must not be negative")
        try:
            self.policy()
        except ValueError as exc:
            raise ConfigError(f"retention: {exc}") from exc

    def policy(self) -> RetentionPolicy:
        return RetentionPolicy(
            archive_age=self.archive_age, care_leaver_archive_age=self.care_leaver_archive_age,
            purge_after_years=self.purge_after_years,
            live_after_death_years=self.live_after_death_years,
            care_leaver_services=tuple(s.strip() for s in self.care_leaver_services.split(",")
                                       if s.strip()))
