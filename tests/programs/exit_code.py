#!/usr/bin/env python3
"""Dies without a result, as the payload says.

Reads the command, writes `payload["stderr"]` (default "boom") and a newline
to stderr, then exits with `payload["code"]` (default 3): 0 means "exited
without a result line", 75 (EX_TEMPFAIL) `infra-failed`, others
`backend-failed` quoting the stderr tail. With `payload["signal"]` (a name such
as "SIGSEGV", or a number) it kills itself with that signal instead (a signal
whose default action is not to terminate falls through to the exit).
Used by the process-backend tests of the exit code and signal mapping.
"""

import json
import os
import resource
import signal
import sys

payload = json.loads(sys.stdin.buffer.readline())["command"]["payload"]
sys.stderr.write(str(payload.get("stderr", "boom")) + "\n")
sys.stderr.flush()

if "signal" in payload:
    name = payload["signal"]
    number = int(name) if str(name).isdigit() else getattr(signal, str(name))
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))  # no core file in the workdir
    if number not in (signal.SIGKILL, signal.SIGSTOP):
        signal.signal(number, signal.SIG_DFL)  # Python handles SIGINT itself otherwise
    os.kill(os.getpid(), number)  # delivered before kill() returns
sys.exit(int(payload.get("code", 3)))
