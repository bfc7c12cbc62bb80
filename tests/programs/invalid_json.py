#!/usr/bin/env python3
"""Prints lines that are not protocol messages, then exits 0 without a result.

After reading the command it prints: unterminated JSON, plain text, a JSON
array, a JSON string and an object of an unknown `type`. Each must be recorded
as a `command_output` event (stream `stdout`, the raw text), and the command
must end `backend-failed` ("exited without a result line").
Used by the process-backend test of non-protocol output.
"""

import sys

sys.stdin.buffer.readline()  # the command
for line in (
    '{"type": "result", "output": ',
    "not json at all",
    "[1, 2, 3]",
    '"a JSON string"',
    '{"type": "no_such_type", "text": "hi"}',
):
    print(line, flush=True)
sys.exit(0)
