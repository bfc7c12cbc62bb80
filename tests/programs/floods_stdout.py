#!/usr/bin/env python3
"""Floods stdout: `payload["lines"]` (default 200000) lines of 100 bytes of
plain text (not JSON) as fast as it can, then a `result` {"lines": n}.

Used by the process-backend tests of back-pressure and bounded output: the
worker must keep reading (no deadlock on a full pipe), keep its memory
bounded, and still complete the command.
"""

import json
import sys

for line in sys.stdin.buffer:
    message = json.loads(line)
    if message.get("type") == "command":
        break
else:
    sys.exit(0)  # stdin closed before any command

lines = int(message["command"]["payload"].get("lines", 200000))
out = sys.stdout.buffer
batch = []
for i in range(lines):
    # 99 characters and the newline.
    batch.append(b"flood line %08d " % i + b"x" * 79 + b"\n")
    if len(batch) == 1000:
        out.write(b"".join(batch))
        batch.clear()
out.write(b"".join(batch))
out.write(json.dumps({"type": "result", "output": {"lines": lines}}).encode() + b"\n")
out.flush()
