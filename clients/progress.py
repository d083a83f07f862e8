"""A dependency-free progress bar for long management commands, written to a stream."""

import time


class Progress:
    """Redraws at most ten times a second, so a large folder is not slowed by printing."""

    def __init__(self, total: int, *, stream, enabled: bool = True, width: int = 30):
        self.total, self.stream, self.width = total, stream, width
        self.enabled = enabled and total > 0
        self.count = 0
        self._last = 0.0

    def step(self, n: int = 1):
        self.count += n
        now = time.monotonic()
        if self.enabled and (now - self._last >= 0.1 or self.count >= self.total):
            self._last = now
            filled = int(self.width * self.count / self.total)
            bar = "#" * filled + "-" * (self.width - filled)
            self.stream.write(f"\r[{bar}] {self.count}/{self.total}")
            self.stream.flush()

    def done(self):
        if self.enabled:
            self.stream.write("\n")
            self.stream.flush()
