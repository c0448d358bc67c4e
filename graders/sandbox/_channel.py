"""The grading process's end of a run's control socket, and the result pipes it hands to the run.

The run's script holds the other end of the socket, in a process where student code runs, so every
byte read here may be forged: lines are bounded and only ever data to check. A result pipe is made
here when the caller asks for one and its write end is sent over the socket: it did not exist in
the sandbox before that moment, so nothing written earlier (by a cell, to every descriptor it could
find) can be read from it. All waiting is bounded by deadlines kept here, outside the sandbox,
where student code cannot stop or signal the clock.
"""

from __future__ import annotations

import os
import select
import socket
import time
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class PipeRead:
    data: bytes
    # The write ends were all closed (the writer finished or died) before the deadline.
    ended: bool
    # More than max_bytes arrived; `data` holds the first max_bytes.
    overflowed: bool
    seconds: float


class SandboxChannel:
    def __init__(self, control: socket.socket, deadline: float, max_bytes: int, max_line_bytes: int) -> None:
        self._control = control
        # The run's wall-clock deadline (time.monotonic()); nothing here waits past it.
        self.deadline = deadline
        self._max_bytes = max_bytes
        self._max_line_bytes = max_line_bytes
        self._buffer = bytearray()
        self._skipping_long_line = False
        self.received = 0
        self.overflowed = False
        self.ended = False
        # The caller ended the run before it finished by itself (a time limit of its own).
        self.stopped = False

    def past_deadline(self) -> bool:
        return time.monotonic() >= self.deadline

    def stop(self) -> None:
        """End the run now: the sandbox kills it as soon as the caller returns."""
        self.stopped = True

    def read_line(self, until: float) -> bytes | None:
        """The next non-empty line from the run (without its newline; lines longer than
        max_line_bytes are dropped), or None at `until`, at the run's deadline, at end of stream,
        or past max_bytes."""
        while True:
            line = self._pop_line()
            if line is not None:
                return line
            if self.ended or self.overflowed:
                return None
            chunk = self._receive(min(until, self.deadline))
            if chunk is None:
                return None
            self.received += len(chunk)
            if self.received > self._max_bytes:
                self.overflowed = True
                return None
            self._buffer += chunk

    def send_pipe(self, message: bytes) -> int | None:
        """A fresh pipe: its write end goes to the run with `message`, the read end is returned
        (None if the run is gone, or past its deadline)."""
        read_end, write_end = os.pipe()
        try:
            remaining = self.deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError
            self._control.settimeout(remaining)
            socket.send_fds(self._control, [message], [write_end])
        except OSError:
            os.close(read_end)
            self.ended = True
            return None
        finally:
            os.close(write_end)
        return read_end

    def read_pipe(self, read_end: int, until: float, max_bytes: int) -> PipeRead:
        """Everything written to a result pipe until its writers close it, `until`, or the run's
        deadline; closes `read_end`."""
        began = time.monotonic()
        end = min(until, self.deadline)
        data = bytearray()
        ended = overflowed = False
        try:
            while (remaining := end - time.monotonic()) > 0:
                ready, _, _ = select.select([read_end], [], [], remaining)
                if not ready:
                    continue
                chunk = os.read(read_end, 1 << 20)
                if not chunk:
                    ended = True
                    break
                if len(data) + len(chunk) > max_bytes:
                    overflowed = True
                    data += chunk[: max_bytes - len(data)]
                    break
                data += chunk
        finally:
            os.close(read_end)
        return PipeRead(bytes(data), ended, overflowed, time.monotonic() - began)

    def _pop_line(self) -> bytes | None:
        while True:
            newline = self._buffer.find(b"\n")
            if newline < 0:
                if len(self._buffer) > self._max_line_bytes:
                    self._buffer.clear()
                    self._skipping_long_line = True
                return None
            line = bytes(self._buffer[:newline])
            del self._buffer[: newline + 1]
            if self._skipping_long_line:
                self._skipping_long_line = False
                continue
            if line and len(line) <= self._max_line_bytes:
                return line

    def _receive(self, until: float) -> bytes | None:
        remaining = until - time.monotonic()
        if remaining <= 0:
            return None
        self._control.settimeout(remaining)
        try:
            chunk = self._control.recv(65536)
        except TimeoutError:
            return None
        except OSError:
            chunk = b""
        if not chunk:
            self.ended = True
            return None
        return chunk
