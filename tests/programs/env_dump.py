#!/usr/bin/env python3
"""Returns what the program was started with: result {"env": every
environment variable, "cwd": the working directory, "files": the sorted names
in it}.

The environment is read from /proc/self/environ where it exists: Python adds
LC_CTYPE to os.environ by itself when no locale is set (PEP 538), which would
look like a leak through the allowlist.
Used by the process-backend tests of the environment allowlist, the
RUNFLEET_* variables, the working directory and the materialized bundle.
"""

import json
import os
import sys


def environment():
    try:
        with open("/proc/self/environ", "rb") as file:
            raw = file.read()
    except OSError:
        return dict(os.environ)
    pairs = (entry.split(b"=", 1) for entry in raw.split(b"\0") if b"=" in entry)
    return {key.decode(errors="replace"): value.decode(errors="replace") for key, value in pairs}


sys.stdin.buffer.readline()  # the command
output = {"env": environment(), "cwd": os.getcwd(), "files": sorted(os.listdir("."))}
sys.stdout.write(json.dumps({"type": "result", "output": output}) + "\n")
sys.stdout.flush()
