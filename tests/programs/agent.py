#!/usr/bin/env python3
"""The example program of the `process` backend (line protocol version 1).

schemas/README.md shows this file in full, and the process-backend tests run
exactly this file, in both modes: it reads commands until stdin ends.

For each command it prints a `phase` "plan" and an `assistant_message` with
`payload["text"]`, then does what the payload asks:

  steps          n: runs the journaled steps step-1 .. step-n, each followed
                 by `progress` i/n; a step the worker replays is not run again
  effects_file   each step that runs appends "<run_id> <command_id> <step>
                 <attempt>" to this file (the side-effect counter)
  step_sleep_ms  each step that runs then sleeps this long
  fail_step      i: step-i fails (`step_failed`, then a fatal `failure`)
  cost_usd       a `metric` "cost.usd" with this value
  secret_env     the name of an environment variable whose value goes into an
                 `assistant_message`, stderr and the result (redaction tests)

and ends with `result` {"text", "steps": [step results], "attempt"}.
"""

import json
import os
import sys
import time


def send(message):
    """Writes one line to the worker, flushed at once."""
    sys.stdout.write(json.dumps(message) + "\n")
    sys.stdout.flush()


def receive():
    """The worker's next message (a JSON object), or None at end of input."""
    for line in sys.stdin.buffer:
        try:
            message = json.loads(line)
        except ValueError:
            continue  # not JSON: ignored
        if isinstance(message, dict):
            return message
    return None


def await_reply(kind, name):
    """Reads until the worker's `kind` answer for step `name`, ignoring the rest."""
    while True:
        message = receive()
        if message is None:
            # stdin closed in the middle of a command: the worker is stopping.
            # 75 (EX_TEMPFAIL) says "not done, try again".
            sys.exit(75)
        if message.get("type") == kind and message.get("name") == name:
            return message


def request_step(name):
    """Announces step `name`. Returns (True, stored result) when an earlier
    delivery journaled it (do not run it again), (False, None) to run it now."""
    send({"type": "step_begin", "name": name})
    answer = await_reply("step", name)
    if answer.get("replayed"):
        return True, answer.get("result")
    return False, None


def save_step(name, result):
    """Journals the result of step `name` and waits until it is durable."""
    send({"type": "step_end", "name": name, "result": result})
    await_reply("step_saved", name)


def append_line(path, text):
    """One O_APPEND write, so concurrent writers never interleave lines."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    try:
        os.write(fd, (text + "\n").encode())
    finally:
        os.close(fd)


def run_command(command, attempt):
    payload = command.get("payload") or {}
    text = payload.get("text", "")
    send({"type": "phase", "name": "plan"})
    send({"type": "assistant_message", "text": text})

    total = int(payload.get("steps", 0))
    results = []
    for i in range(1, total + 1):
        name = f"step-{i}"
        replayed, result = request_step(name)
        if not replayed:
            if payload.get("fail_step") == i:
                send({"type": "step_failed", "name": name, "message": "asked to fail"})
                send({"type": "failure", "message": f"{name} failed", "retryable": False})
                return
            # The step's side effects, then its result.
            if "effects_file" in payload:
                append_line(
                    payload["effects_file"],
                    f"{command['run_id']} {command['command_id']} {name} {attempt}",
                )
            time.sleep(payload.get("step_sleep_ms", 0) / 1000)
            result = {"n": i}
            save_step(name, result)
        results.append(result)
        send({"type": "progress", "done": i, "total": total})

    if "cost_usd" in payload:
        send({"type": "metric", "name": "cost.usd", "value": payload["cost_usd"]})

    output = {"text": text, "steps": results, "attempt": attempt}
    if "secret_env" in payload:
        # The secret everywhere a program's output can go: an event, stderr,
        # a journaled step's result (as a key and as a value) and the
        # command's result (likewise).
        secret = os.environ.get(payload["secret_env"], "")
        send({"type": "assistant_message", "text": f"the secret is {secret}"})
        print(f"the secret is {secret}", file=sys.stderr, flush=True)
        replayed, _ = request_step("secret-step")
        if not replayed:
            save_step("secret-step", {secret: secret, "nested": {secret: [secret]}})
        output["secret"] = secret
        output[secret] = {"as a key": 1}
    send({"type": "result", "output": output})


def main():
    send({"type": "backend_status", "status": "ready", "detail": f"pid {os.getpid()}"})
    while True:
        message = receive()
        if message is None:
            return  # the run is over, or the worker is stopping
        if message.get("type") != "command":
            continue
        try:
            run_command(message["command"], message.get("attempt", 1))
        except (KeyError, TypeError, ValueError, OSError) as err:
            send({"type": "failure", "message": f"agent.py: {err!r}", "retryable": False})


if __name__ == "__main__":
    main()
