#!/usr/bin/env python3
"""A `process` backend program whose result is as large as asked.

For each command (per-command mode: one) it prints a `phase` "generate",
then `result` {"blob": <payload["bytes"] characters>, "tail": "fin ✓ é"},
where the blob repeats "0123456789abcdef" (so a test can rebuild the value it
expects). The result line is one line of JSON, however large: the worker
takes result lines up to 64 MiB, and sends results over 64 KiB to
producers as `result_chunk` events.
"""

import json
import sys


def main():
    for line in sys.stdin:
        try:
            message = json.loads(line)
        except ValueError:
            continue
        if not isinstance(message, dict) or message.get("type") != "command":
            continue
        size = int((message["command"].get("payload") or {}).get("bytes", 0))
        sys.stdout.write(json.dumps({"type": "phase", "name": "generate"}) + "\n")
        blob = ("0123456789abcdef" * (size // 16 + 1))[:size]
        result = {"type": "result", "output": {"blob": blob, "tail": "fin ✓ é"}}
        sys.stdout.write(json.dumps(result, ensure_ascii=False) + "\n")
        sys.stdout.flush()
        return


if __name__ == "__main__":
    main()
