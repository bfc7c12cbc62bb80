#!/usr/bin/env python3
"""Writes the start of a result line, `{"type":"result","outp`, without a
newline, and exits 0.

The unfinished line is not a result: the command must end `backend-failed`
("exited without a result line"), the partial text kept as `command_output`.
Used by the process-backend test of output cut mid-line.
"""

import sys

sys.stdin.buffer.readline()  # the command
sys.stdout.write('{"type":"result","outp')
sys.stdout.flush()
sys.exit(0)
