#!/usr/bin/env python3
"""Appends `start <tenant> <unix time>` to the file named by
RUNFLEET_TEST_SPANS_FILE, works for the payload's `ms` (300 by default),
appends `end <tenant> <unix time>` and returns a result.

Used by the tests of concurrency limits: the file shows how many of a
tenant's commands were executing at once, across every worker.
"""

import json
import os
import sys
import time


def send(message):
    sys.stdout.write(json.dumps(message) + "\n")
    sys.stdout.flush()


def note(what):
    line = f"{what} {os.environ['RUNFLEET_TENANT']} {time.time():.6f}\n"
    with open(os.environ["RUNFLEET_TEST_SPANS_FILE"], "a") as spans:
        spans.write(line)


command = {}
for line in sys.stdin:
    command = json.loads(line)
    break
ms = command.get("payload", {}).get("ms", 300)
note("start")
time.sleep(ms / 1000)
note("end")
send({"type": "result", "output": {"slept_ms": ms}})
