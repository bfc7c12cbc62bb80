//! The `process` backend: an external program (an agent CLI, a script)
//! speaking the JSON-lines protocol of `schemas/README.md`.
//!
//! The program runs in the run's working directory, in a process group of
//! its own, with only the profile's allowlisted environment plus the
//! `RUNFLEET_*` run variables. The command goes to its stdin as one JSON
//! line; its stdout lines are events, step requests and finally the result;
//! its stderr is kept tail-bounded ([`STDERR_TAIL_BYTES`]) and recorded as
//! an event. Stopping it (cancel, watchdog, shutdown) is SIGTERM to the
//! group, then SIGKILL after the profile's `kill_grace`.
//!
//! In `per-run` mode one process serves the run's commands on this worker,
//! one after another; it is closed (stdin EOF, then the same SIGTERM /
//! SIGKILL) when the run closes, after a failure it may not survive, when
//! idle for `idle_timeout`, or when the worker stops, with a closing
//! `backend_status` event.

use std::collections::{HashMap, VecDeque};
use std::os::unix::process::ExitStatusExt;
use std::path::PathBuf;
use std::process::{ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::StreamExt;
use futures::future::BoxFuture;
use nix::sys::signal::{Signal as UnixSignal, killpg};
use nix::unistd::Pid;
use runfleet_schemas::{CommandCreate, EventBody, FailureKind, OutputStream};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::process::{Child, ChildStdout, Command};
use tokio::sync::{mpsc, watch};
use tokio_util::codec::{AnyDelimiterCodec, AnyDelimiterCodecError, FramedRead};

use super::protocol::{Line, line_text, parse_line};
use super::{Backend, BackendError, ExecutionContext, RunInfo};
use crate::profiles::{DEFAULT_IDLE_TIMEOUT, ProcessMode, Profile};
use crate::run_log::RunLog;

/// The protocol version announced in `RUNFLEET_PROTOCOL`.
pub const PROTOCOL_VERSION: &str = "1";
/// Stdout lines longer than this are dropped, but for a `result` line.
pub const MAX_LINE_BYTES: usize = 1 << 20;
/// The longest `result` line: a result of [`MAX_OUTPUT_BYTES`] and its
/// envelope (results over 64 KiB reach producers as `result_chunk` events).
///
/// [`MAX_OUTPUT_BYTES`]: runfleet_schemas::result_chunks::MAX_OUTPUT_BYTES
pub const MAX_RESULT_LINE_BYTES: usize =
    runfleet_schemas::result_chunks::MAX_OUTPUT_BYTES + 64 * 1024;
/// How much of stderr is kept (its tail).
pub const STDERR_TAIL_BYTES: usize = 16 * 1024;
/// How much of the stderr tail a failure message quotes.
const QUOTED_STDERR_BYTES: usize = 1024;
/// Exit code meaning "temporary failure, try again" (sysexits' EX_TEMPFAIL).
pub const EXIT_TEMPFAIL: i32 = 75;

/// The `process` backend for one profile.
#[derive(Debug)]
pub struct ProcessBackend {
    /// The profile's name.
    name: String,
    /// Its settings.
    profile: Profile,
    /// Per-run processes kept between commands, by `tenant/run_id`.
    kept: Mutex<HashMap<String, Kept>>,
    /// Where closing events of kept processes go.
    run_log: Option<RunLog>,
    /// The worker binary, started as the launcher of each program (it
    /// dies with the worker: [`crate::launcher`]); `None` starts programs
    /// directly (a library embedding without the launcher).
    launcher: Option<PathBuf>,
}

/// A per-run process between commands.
#[derive(Debug)]
struct Kept {
    process: Running,
    idle_since: Instant,
    tenant: String,
    run_id: String,
}

/// A live program.
#[derive(Debug)]
struct Running {
    child: Child,
    pgid: Pid,
    /// Lines to its stdin (dropping it closes stdin).
    stdin: Option<mpsc::UnboundedSender<String>>,
    stdout: FramedRead<ChildStdout, AnyDelimiterCodec>,
    stderr: Arc<Mutex<Tail>>,
    stderr_activity: watch::Receiver<u64>,
    /// The stderr reader, done at EOF.
    stderr_reader: Option<tokio::task::JoinHandle<()>>,
}

/// The last [`STDERR_TAIL_BYTES`] of a stream.
#[derive(Debug, Default)]
struct Tail {
    bytes: VecDeque<u8>,
    dropped: u64,
}

impl Tail {
    fn push(&mut self, chunk: &[u8]) {
        self.bytes.extend(chunk);
        let excess = self.bytes.len().saturating_sub(STDERR_TAIL_BYTES);
        if excess > 0 {
            self.bytes.drain(..excess);
            self.dropped += excess as u64;
        }
    }

    /// The tail as text, leaving the buffer empty. When the head was cut,
    /// the partial first line goes too (a cut secret could not be redacted).
    fn take(&mut self) -> Option<String> {
        if self.bytes.is_empty() {
            return None;
        }
        let bytes: Vec<u8> = self.bytes.drain(..).collect();
        let text = String::from_utf8_lossy(&bytes).into_owned();
        if std::mem::take(&mut self.dropped) == 0 {
            return Some(text);
        }
        let rest = text
            .split_once('\n')
            .map_or(text.as_str(), |(_, rest)| rest);
        Some(format!("[…]{rest}"))
    }
}

/// How one command's conversation ended.
enum Ended {
    Result(Value),
    Failure(BackendError),
    Exited(ExitStatus, Option<String>),
    Stopped,
}

impl ProcessBackend {
    /// A backend running `profile` (named `name`); closing events of kept
    /// processes go to `run_log` when given.
    pub fn new(
        name: String,
        profile: Profile,
        run_log: Option<RunLog>,
        launcher: Option<PathBuf>,
    ) -> ProcessBackend {
        ProcessBackend {
            name,
            profile,
            kept: Mutex::new(HashMap::new()),
            run_log,
            launcher,
        }
    }

    fn spawn(&self, run: &RunInfo) -> Result<Running, BackendError> {
        let program = self.profile.program.clone().unwrap_or_default();
        let cannot_start = |why: &dyn std::fmt::Display| {
            BackendError::new(
                FailureKind::BackendFailed,
                format!(
                    "profile {}: cannot start {}: {why}",
                    self.name,
                    program.display()
                ),
            )
        };
        // Through the launcher, so the program dies with this worker.
        let mut command = match &self.launcher {
            Some(launcher) => {
                let resolved = crate::launcher::resolve(&program)
                    .ok_or_else(|| cannot_start(&"no such executable file (PATH searched)"))?;
                let mut command = Command::new(launcher);
                command
                    .arg(crate::launcher::LAUNCH_ARG)
                    .arg(std::process::id().to_string())
                    .arg(resolved);
                command
            }
            None => Command::new(&program),
        };
        command
            .args(&self.profile.args)
            .current_dir(&run.workdir)
            .env_clear()
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .process_group(0)
            .kill_on_drop(true);
        for name in self.profile.env.iter().chain(&self.profile.secret_env) {
            if let Ok(value) = std::env::var(name) {
                command.env(name, value);
            }
        }
        command
            .env("RUNFLEET_TENANT", &run.tenant)
            .env("RUNFLEET_PROJECT", &run.project)
            .env("RUNFLEET_RUN_ID", &run.run_id)
            .env("RUNFLEET_PROFILE", &self.name)
            .env("RUNFLEET_WORKDIR", &run.workdir)
            .env("RUNFLEET_PROTOCOL", PROTOCOL_VERSION);
        if let Some(session) = &run.session_id {
            command.env("RUNFLEET_SESSION_ID", session);
        }
        let mut child = command.spawn().map_err(|err| cannot_start(&err))?;
        let pid = child
            .id()
            .and_then(|id| i32::try_from(id).ok())
            .unwrap_or_default();
        let (Some(mut stdin), Some(stdout), Some(mut stderr)) =
            (child.stdin.take(), child.stdout.take(), child.stderr.take())
        else {
            return Err(BackendError::new(
                FailureKind::InfraFailed,
                format!(
                    "profile {}: the program's pipes were not created",
                    self.name
                ),
            ));
        };
        let (lines, mut to_stdin) = mpsc::unbounded_channel::<String>();
        tokio::spawn(async move {
            while let Some(mut line) = to_stdin.recv().await {
                line.push('\n');
                if stdin.write_all(line.as_bytes()).await.is_err() || stdin.flush().await.is_err() {
                    break;
                }
            }
        });
        let tail = Arc::new(Mutex::new(Tail::default()));
        let (activity, stderr_activity) = watch::channel(0u64);
        let sink = tail.clone();
        let stderr_reader = tokio::spawn(async move {
            let mut buffer = vec![0u8; 8192];
            let mut chunks = 0u64;
            while let Ok(n) = stderr.read(&mut buffer).await {
                if n == 0 {
                    break;
                }
                if let Ok(mut tail) = sink.lock() {
                    tail.push(&buffer[..n]);
                }
                chunks += 1;
                let _ = activity.send(chunks);
            }
        });
        tracing::debug!(profile = %self.name, pid, "program started");
        Ok(Running {
            child,
            pgid: Pid::from_raw(pid),
            stdin: Some(lines),
            stdout: FramedRead::new(
                stdout,
                // Bytes, not `LinesCodec`: one stdout line that is not UTF-8
                // must not end the conversation (`LinesCodec` fails the
                // stream on it); [`line_text`] reads it lossily.
                AnyDelimiterCodec::new_with_max_length(
                    b"\n".to_vec(),
                    Vec::new(),
                    MAX_RESULT_LINE_BYTES,
                ),
            ),
            stderr: tail,
            stderr_activity,
            stderr_reader: Some(stderr_reader),
        })
    }

    /// A kept process for the run, or a new one; closes kept processes idle too long.
    fn acquire(&self, run: &RunInfo) -> Result<Running, BackendError> {
        if self.profile.mode == ProcessMode::PerCommand {
            return self.spawn(run);
        }
        let idle_limit = self.profile.idle_timeout.unwrap_or(DEFAULT_IDLE_TIMEOUT);
        let key = format!("{}/{}", run.tenant, run.run_id);
        let (mine, stale) = {
            let mut kept = self.kept.lock().unwrap_or_else(|e| e.into_inner());
            let mine = kept.remove(&key);
            let stale: Vec<String> = kept
                .iter()
                .filter(|(_, k)| k.idle_since.elapsed() >= idle_limit)
                .map(|(key, _)| key.clone())
                .collect();
            let stale: Vec<Kept> = stale.iter().filter_map(|k| kept.remove(k)).collect();
            (mine, stale)
        };
        for kept in stale {
            let grace = self.profile.kill_grace();
            let run_log = self.run_log.clone();
            tokio::spawn(async move {
                let detail = format!("idle for {}", humantime::format_duration(idle_limit));
                close_kept(kept, grace, run_log, detail).await;
            });
        }
        match mine {
            Some(kept) => Ok(kept.process),
            None => self.spawn(run),
        }
    }

    fn keep(&self, run: &RunInfo, process: Running) {
        let key = format!("{}/{}", run.tenant, run.run_id);
        let mut kept = self.kept.lock().unwrap_or_else(|e| e.into_inner());
        kept.insert(
            key,
            Kept {
                process,
                idle_since: Instant::now(),
                tenant: run.tenant.clone(),
                run_id: run.run_id.clone(),
            },
        );
    }

    async fn run_command(
        &self,
        command: &CommandCreate,
        ctx: &ExecutionContext,
    ) -> Result<Value, BackendError> {
        let mut process = self.acquire(&ctx.run)?;
        let request = json!({
            "type": "command",
            "command": command,
            "attempt": ctx.attempt,
            "budgets_remaining": ctx.run.budgets_remaining,
        });
        process.send(request);
        let ended = converse(&mut process, ctx).await;
        let grace = self.profile.kill_grace();
        let per_run = self.profile.mode == ProcessMode::PerRun;
        let outcome = match ended {
            Ended::Result(output) => Ok(output),
            Ended::Failure(err) => Err(err),
            Ended::Exited(status, last_line) => {
                // Whatever it left behind in its group goes with it.
                let _ = killpg(process.pgid, UnixSignal::SIGKILL);
                let stderr = finish_stderr(&mut process, ctx).await;
                return Err(exit_failure(
                    status,
                    last_line.map(|line| ctx.redact(&line)),
                    stderr.as_deref().unwrap_or_default(),
                    &self.name,
                ));
            }
            Ended::Stopped => {
                let status = terminate(&mut process, grace).await;
                finish_stderr(&mut process, ctx).await;
                return Err(BackendError::new(
                    FailureKind::Cancelled,
                    format!("stopped; the program {}", describe(status)),
                ));
            }
        };
        if per_run && outcome.is_ok() {
            emit_stderr(&process, ctx);
            self.keep(&ctx.run, process);
        } else {
            // Done with it: stdin EOF, then a bounded wait for it to exit.
            process.stdin = None;
            let status = match tokio::time::timeout(grace, process.child.wait()).await {
                Ok(Ok(status)) => Some(status),
                _ => terminate(&mut process, grace).await,
            };
            let _ = killpg(process.pgid, UnixSignal::SIGKILL);
            finish_stderr(&mut process, ctx).await;
            if let Some(status) = status.filter(|s| !s.success()) {
                tracing::info!(profile = %self.name, status = %describe(Some(status)), "program exited unsuccessfully after its result");
            }
        }
        outcome
    }
}

impl Drop for Running {
    /// A program abandoned while alive (its future dropped after the kill
    /// grace) is killed with its whole group, not just the leader.
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            let _ = killpg(self.pgid, UnixSignal::SIGKILL);
        }
    }
}

impl Running {
    fn send(&self, message: Value) {
        if let Some(stdin) = &self.stdin {
            let _ = stdin.send(message.to_string());
        }
    }
}

impl Backend for ProcessBackend {
    fn execute<'a>(
        &'a self,
        command: &'a CommandCreate,
        ctx: &'a ExecutionContext,
    ) -> BoxFuture<'a, Result<Value, BackendError>> {
        Box::pin(self.run_command(command, ctx))
    }

    fn close_run<'a>(&'a self, run: &'a RunInfo) -> BoxFuture<'a, Option<EventBody>> {
        Box::pin(async move {
            let key = format!("{}/{}", run.tenant, run.run_id);
            let kept = self
                .kept
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .remove(&key)?;
            Some(
                close(
                    kept.process,
                    self.profile.kill_grace(),
                    "the run ended".into(),
                )
                .await,
            )
        })
    }

    fn shutdown(&self) -> BoxFuture<'_, ()> {
        Box::pin(async move {
            let kept: Vec<Kept> = self
                .kept
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .drain()
                .map(|(_, k)| k)
                .collect();
            let grace = self.profile.kill_grace();
            futures::future::join_all(
                kept.into_iter().map(|k| {
                    close_kept(k, grace, self.run_log.clone(), "the worker stopped".into())
                }),
            )
            .await;
        })
    }
}

/// Reads the program's lines until the command ends.
async fn converse(process: &mut Running, ctx: &ExecutionContext) -> Ended {
    let mut last_line: Option<String> = None;
    let mut cut_lines = 0u64;
    loop {
        let line = tokio::select! {
            biased;
            () = ctx.stopped() => return Ended::Stopped,
            line = process.stdout.next() => line,
            changed = process.stderr_activity.changed() => {
                if changed.is_ok() {
                    ctx.active();
                }
                continue;
            }
        };
        let (text, parsed) = match line {
            Some(Ok(bytes)) => {
                let text = line_text(&bytes);
                let parsed = parse_line(&text);
                if bytes.len() > MAX_LINE_BYTES && !matches!(parsed, Line::Result(_)) {
                    dropped_long_line(ctx, &mut cut_lines);
                    continue;
                }
                (text, parsed)
            }
            Some(Err(AnyDelimiterCodecError::MaxChunkLengthExceeded)) => {
                dropped_long_line(ctx, &mut cut_lines);
                continue;
            }
            Some(Err(AnyDelimiterCodecError::Io(_))) | None => {
                // stdout is closed; the program may still run (or hang).
                let status = tokio::select! {
                    () = ctx.stopped() => return Ended::Stopped,
                    status = process.child.wait() => status,
                };
                return match status {
                    Ok(status) => Ended::Exited(status, last_line),
                    Err(err) => Ended::Failure(BackendError::new(
                        FailureKind::InfraFailed,
                        format!("cannot wait for the program (pid {}): {err}", process.pgid),
                    )),
                };
            }
        };
        match parsed {
            Line::Event(body) => ctx.emit(body),
            Line::Output(text) => ctx.emit(EventBody::CommandOutput {
                stream: OutputStream::Stdout,
                text,
            }),
            Line::StepBegin(name) => match ctx.stored_step(&name).await {
                Ok(Some(result)) => process.send(
                    json!({"type": "step", "name": name, "replayed": true, "result": result}),
                ),
                Ok(None) => {
                    ctx.begin_step(&name);
                    process.send(json!({"type": "step", "name": name, "replayed": false}));
                }
                Err(err) => return Ended::Failure(err),
            },
            Line::StepEnd(name, result) => match ctx.save_step(&name, result).await {
                Ok(_) => process.send(json!({"type": "step_saved", "name": name})),
                Err(err) => return Ended::Failure(err),
            },
            Line::StepFailed(name, message) => {
                ctx.fail_step(&name);
                ctx.emit(EventBody::Error {
                    message: format!("step {name:?} failed: {message}"),
                    failure_kind: None,
                });
            }
            Line::Result(output) => return Ended::Result(output),
            Line::Failure(message, retryable) => {
                let kind = if retryable {
                    FailureKind::InfraFailed
                } else {
                    FailureKind::BackendFailed
                };
                return Ended::Failure(BackendError::new(kind, message));
            }
        }
        last_line = Some(text);
    }
}

/// Records the stderr tail gathered so far (redacted) as an event; returns it.
fn emit_stderr(process: &Running, ctx: &ExecutionContext) -> Option<String> {
    let text = process
        .stderr
        .lock()
        .ok()
        .and_then(|mut t| t.take())
        .map(|text| ctx.redact(&text));
    if let Some(text) = &text {
        ctx.emit(EventBody::CommandOutput {
            stream: OutputStream::Stderr,
            text: text.clone(),
        });
    }
    text
}

/// After the program exited: lets the stderr reader reach EOF (bounded, as
/// a child left in the group may hold stderr open), then records the tail.
async fn finish_stderr(process: &mut Running, ctx: &ExecutionContext) -> Option<String> {
    if let Some(reader) = process.stderr_reader.take() {
        let _ = tokio::time::timeout(Duration::from_millis(500), reader).await;
    }
    emit_stderr(process, ctx)
}

/// A stdout line over the bound was dropped: said once per command, and
/// counted as activity.
fn dropped_long_line(ctx: &ExecutionContext, cut_lines: &mut u64) {
    *cut_lines += 1;
    if *cut_lines == 1 {
        ctx.emit(EventBody::Error {
            message: format!(
                "a stdout line was dropped: longer than {MAX_LINE_BYTES} bytes (a `result` line may hold {MAX_RESULT_LINE_BYTES})"
            ),
            failure_kind: None,
        });
    } else {
        ctx.active();
    }
}

/// What an exit before the result means.
fn exit_failure(
    status: ExitStatus,
    last_line: Option<String>,
    stderr: &str,
    profile: &str,
) -> BackendError {
    let stderr = if stderr.is_empty() {
        String::new()
    } else {
        format!("; stderr: {}", tail_str(stderr, QUOTED_STDERR_BYTES))
    };
    match (status.code(), status.signal()) {
        (Some(EXIT_TEMPFAIL), _) => BackendError::new(
            FailureKind::InfraFailed,
            format!(
                "profile {profile}: the program exited with {EXIT_TEMPFAIL} (temporary failure; retried){stderr}"
            ),
        ),
        (Some(0), _) => {
            let last = match last_line {
                Some(line) => format!("; its last stdout line was {:?}", tail_str(&line, 200)),
                None => "; it printed nothing on stdout".into(),
            };
            BackendError::new(
                FailureKind::BackendFailed,
                format!(
                    "profile {profile}: the program exited 0 without a result line{last}{stderr}"
                ),
            )
        }
        (Some(code), _) => BackendError::new(
            FailureKind::BackendFailed,
            format!("profile {profile}: the program exited with status {code}{stderr}"),
        ),
        (None, signal) => BackendError::new(
            FailureKind::BackendFailed,
            format!(
                "profile {profile}: the program was killed by {}{stderr}",
                signal_name(signal)
            ),
        ),
    }
}

fn signal_name(signal: Option<i32>) -> String {
    signal
        .and_then(|s| UnixSignal::try_from(s).ok())
        .map_or_else(|| "a signal".into(), |s| s.as_str().to_owned())
}

fn describe(status: Option<ExitStatus>) -> String {
    match status {
        Some(status) => match (status.code(), status.signal()) {
            (Some(code), _) => format!("exited with status {code}"),
            (None, signal) => format!("was killed by {}", signal_name(signal)),
        },
        None => "could not be waited for".into(),
    }
}

/// The last `max` bytes of `text` (on a character boundary).
fn tail_str(text: &str, max: usize) -> &str {
    crate::text::tail(text, max)
}

/// SIGTERM to the group, SIGKILL after `grace`; then the rest of the group.
async fn terminate(process: &mut Running, grace: Duration) -> Option<ExitStatus> {
    process.stdin = None;
    let _ = killpg(process.pgid, UnixSignal::SIGTERM);
    let status = match tokio::time::timeout(grace, process.child.wait()).await {
        Ok(status) => status.ok(),
        Err(_) => {
            tracing::info!(pgid = %process.pgid, grace = ?grace, "the program ignored SIGTERM; sending SIGKILL");
            let _ = killpg(process.pgid, UnixSignal::SIGKILL);
            process.child.wait().await.ok()
        }
    };
    let _ = killpg(process.pgid, UnixSignal::SIGKILL);
    status
}

/// Closes a kept process: stdin EOF, a bounded wait, then [`terminate`].
async fn close(mut process: Running, grace: Duration, why: String) -> EventBody {
    process.stdin = None;
    let status = match tokio::time::timeout(grace, process.child.wait()).await {
        Ok(Ok(status)) => Some(status),
        _ => terminate(&mut process, grace).await,
    };
    let _ = killpg(process.pgid, UnixSignal::SIGKILL);
    EventBody::BackendStatus {
        status: "closed".into(),
        detail: Some(format!("{why}; the per-run process {}", describe(status))),
    }
}

async fn close_kept(kept: Kept, grace: Duration, run_log: Option<RunLog>, why: String) {
    let Kept {
        process,
        tenant,
        run_id,
        ..
    } = kept;
    let event = close(process, grace, why).await;
    if let Some(run_log) = run_log {
        run_log.append(&tenant, &run_id, event).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_of_the_protocol() {
        assert!(matches!(
            parse_line(r#"{"type":"assistant_message","text":"hi"}"#),
            Line::Event(EventBody::AssistantMessage { .. })
        ));
        assert!(matches!(
            parse_line(r#"{"type":"progress","done":1,"total":2}"#),
            Line::Event(EventBody::Progress {
                done: 1,
                total: Some(2)
            })
        ));
        assert!(
            matches!(parse_line(r#"{"type":"step_begin","name":"a"}"#), Line::StepBegin(n) if n == "a")
        );
        assert!(
            matches!(parse_line(r#"{"type":"result","output":{"x":1}}"#), Line::Result(v) if v["x"] == 1)
        );
        assert!(matches!(
            parse_line(r#"{"type":"failure","message":"m","retryable":true}"#),
            Line::Failure(m, true) if m == "m"
        ));
        assert!(matches!(parse_line("plain text"), Line::Output(t) if t == "plain text"));
        assert!(matches!(
            parse_line(r#"{"type":"result","outp"#),
            Line::Output(_)
        ));
        assert!(matches!(
            parse_line(r#"{"type":"terminal_status"}"#),
            Line::Output(_)
        ));
        assert!(matches!(
            parse_line(r#"{"type":"progress","done":"x"}"#),
            Line::Event(EventBody::Error { .. })
        ));
    }

    #[test]
    fn the_stderr_tail_is_bounded() {
        let mut tail = Tail::default();
        let mut line = vec![b'x'; 999];
        line.push(b'\n');
        for _ in 0..100 {
            tail.push(&line);
        }
        let text = tail.take().unwrap();
        assert!(
            text.starts_with("[…]x"),
            "the partial first line is dropped"
        );
        assert!(text.len() <= STDERR_TAIL_BYTES + "[…]".len());
        assert_eq!(text.lines().count(), STDERR_TAIL_BYTES / 1000);
        assert!(tail.take().is_none());
    }
}
