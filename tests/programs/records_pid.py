#!/usr/bin/env python3
"""Appends its pid to the file named by RUNFLEET_TEST_PID_FILE, then works
for 10 s (a `progress` line every 200 ms) and returns a result.

Used by the test that a program dies with its SIGKILLed worker and that the
redelivered command never runs alongside a leftover copy.
"""

import json
import os
import sys
import time


def send(message):
    sys.stdout.write(json.dumps(message) + "\n")
    sys.stdout.flush()


with open(os.environ["RUNFLEET_TEST_PID_FILE"], "a") as pids:
    pids.write(f"{os.getpid()}\n")
for line in sys.stdin:
    break
send({"type": "phase", "name": "working"})
for done in range(50):
    time.sleep(0.2)
    send({"type": "progress", "done": done})
send({"type": "result", "output": {"pid": os.getpid()}})
