#!/usr/bin/env python3
"""Ignores SIGTERM, so only the SIGKILL after the profile's `kill_grace` stops it.

Prints a `phase` "stubborn", then a `progress` line every 200 ms forever (so
the inactivity watchdog never fires). It never reads stdin.
Used by the process-backend tests of cancellation, timeouts and worker
shutdown: the command must still end, `kill_grace` after the SIGTERM.
"""

import json
import signal
import sys
import time

signal.signal(signal.SIGTERM, signal.SIG_IGN)


def send(message):
    sys.stdout.write(json.dumps(message) + "\n")
    sys.stdout.flush()


send({"type": "phase", "name": "stubborn"})
done = 0
while True:
    time.sleep(0.2)
    done += 1
    send({"type": "progress", "done": done})
