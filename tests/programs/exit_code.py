#!/usr/bin/env python3
"""Dies without a result, as the payload says.

Reads the command, writes `payload["stderr"]` (default "boom"), then the
values of the environment variables named in `payload["stderr_env"]` (a list;
the redaction test passes secrets this way, so they are not in the payload),
and a newline to stderr, then exits with `payload["code"]` (default 3): 0 means "exited
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
extra = " ".join(os.environ.get(name, "") for name in payload.get("stderr_env", []))
sys.stderr.write(str(payload.get("stderr", "boom")) + (" " + extra if extra else "") + "\n")
sys.stderr.flush()

if "signal" in payload:
    name = payload["signal"]
    number = int(name) if str(name).isdigit() else getattr(signal, str(name))
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))  # no core file in the workdir
    if number not in (signal.SIGKILL, signal.SIGSTOP):
        signal.signal(number, signal.SIG_DFL)  # Python handles SIGINT itself otherwise
    os.kill(os.getpid(), number)  # delivered before kill() returns
sys.exit(int(payload.get("code", 3)))
