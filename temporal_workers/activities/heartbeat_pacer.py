"""When an attempt's heartbeat goes out. Every heartbeat is a write on the embedded server and a
billed action on Temporal Cloud (whose namespaces start at 500 actions a second), so a running
attempt sends one only when it has news (a new phase, its start, a new yield: at most every
NEWS_SECONDS, which keeps a yield visible to `.get` within a second) or when the engine must hear
it is alive (every half heartbeat timeout). Backends offer their state as often as they like."""

from __future__ import annotations

from multinode.contract.records import AttemptProgress

# The most often news goes out: below a second, so a yield reaches `.get` within a second even
# when it just missed the previous heartbeat.
NEWS_SECONDS = 0.8


class HeartbeatPacer:
    """Decides, for one attempt, which offered heartbeat is sent and when; the caller sends."""

    def __init__(self, idle_seconds: float, news_seconds: float = NEWS_SECONDS) -> None:
        self.idle_seconds = idle_seconds
        self.news_seconds = min(news_seconds, idle_seconds)
        self._sent: AttemptProgress | None = None
        self._sent_at = float("-inf")
        self._held: AttemptProgress | None = None

    @classmethod
    def for_timeout(cls, heartbeat_timeout_seconds: float | None) -> HeartbeatPacer:
        """Liveness at half the engine's heartbeat timeout: one late heartbeat never loses it."""
        idle = heartbeat_timeout_seconds / 2 if heartbeat_timeout_seconds else 2.5
        return cls(idle_seconds=idle)

    def offer(self, progress: AttemptProgress, now: float) -> bool:
        """Whether to send `progress` now (then it counts as sent). News that comes too soon
        after the last heartbeat is held: `held_until` says when it is due."""
        since = now - self._sent_at
        if progress == self._sent:
            self._held = None
            due = since >= self.idle_seconds
        else:
            due = since >= self.news_seconds
            self._held = None if due else progress
        if due:
            self._mark_sent(progress, now)
        return due

    def held_until(self) -> float | None:
        """When the held news is due, if news is held."""
        return None if self._held is None else self._sent_at + self.news_seconds

    def take_held(self, now: float) -> AttemptProgress | None:
        """The held news, if it is due now (then it counts as sent)."""
        held = self._held
        # A timer may fire a hair early by another clock's rounding.
        if held is None or now - self._sent_at < self.news_seconds - 0.001:
            return None
        self._mark_sent(held, now)
        return held

    def _mark_sent(self, progress: AttemptProgress, now: float) -> None:
        self._sent, self._sent_at, self._held = progress, now, None
