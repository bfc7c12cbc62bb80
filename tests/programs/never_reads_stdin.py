#!/usr/bin/env python3
"""Never reads stdin: prints a `phase` "waiting" once, then sleeps forever
without printing anything.

The inactivity watchdog must end the command (`inactivity-timeout`). With a
command larger than the pipe buffer (64 KiB on Linux) the worker's write of
it blocks: watchdogs and cancel must still work. SIGTERM stops it (default
action).
Used by the process-backend tests of the inactivity watchdog and of cancel.
"""

import sys
import time

sys.stdout.write('{"type": "phase", "name": "waiting"}\n')
sys.stdout.flush()
while True:
    time.sleep(3600)
