#!/usr/bin/env python3
"""Prints a line that is not UTF-8, then its result with a CRLF line ending.

Neither may end the conversation: the bad bytes are recorded as a
`command_output` line (U+FFFD for each invalid byte) and the command
completes with the result. Used by the process-backend test of non-protocol
output.
"""

import sys

sys.stdin.buffer.readline()  # the command
sys.stdout.buffer.write(b"caf\xe9 \xff\xfe\n")
sys.stdout.buffer.write(b'{"type": "result", "output": {"ok": true}}\r\n')
sys.stdout.flush()
