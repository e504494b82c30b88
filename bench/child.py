"""A fake in a process of its own, driven by one JSON command per line: the parent side.

The child prints one JSON line when it is ready, then answers each `{"op": ...}` line with
one JSON line (`{"error": ...}` when the command failed).
"""

from __future__ import annotations

import json
import subprocess
import sys
from typing import Any, Self


class Child:
    name = "child"

    def __init__(self, module: str, *args: object) -> None:
        self._proc = subprocess.Popen(
            [sys.executable, "-m", module, *map(str, args)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        self.hello = self._read()

    def _read(self) -> dict[str, Any]:
        assert self._proc.stdout is not None
        line = self._proc.stdout.readline()
        if not line:
            raise RuntimeError(f"the {self.name} process exited")
        answer: dict[str, Any] = json.loads(line)
        if "error" in answer:
            raise RuntimeError(f"{self.name} process: {answer['error']}")
        return answer

    def call(self, op: str, **args: Any) -> dict[str, Any]:
        assert self._proc.stdin is not None
        self._proc.stdin.write(json.dumps({"op": op, **args}) + "\n")
        self._proc.stdin.flush()
        return self._read()

    def close(self) -> None:
        if self._proc.poll() is None:
            self.call("stop")
            self._proc.wait(timeout=10)

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        if self._proc.poll() is None:
            try:
                self.close()
            except (OSError, RuntimeError, subprocess.TimeoutExpired):
                self._proc.kill()
                self._proc.wait()
