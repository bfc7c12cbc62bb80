//! Programs die with their worker.
//!
//! A `process` profile's program is not started directly: the worker starts
//! itself as a tiny launcher (`runfleet-worker __launch <worker pid>
//! <program> <args…>`), which asks the kernel to SIGKILL it when its parent
//! dies (`PR_SET_PDEATHSIG`, through nix's safe `prctl`), checks that its
//! parent is still the worker (it may have died in between), and then
//! `exec`s the program, which keeps the parent-death signal. So a worker
//! killed with SIGKILL takes its programs with it, at once: when the
//! command is delivered again (after `ack_wait`), no copy of the previous
//! attempt's program can still be running on that host.
//!
//! What it does not cover: the program's own children (the signal is not
//! inherited across `fork`; a program that starts helpers should end them,
//! or put them in its process group, which the worker signals on cancel),
//! and a worker that is *paused* (SIGSTOP) rather than killed — its
//! programs keep running while it is stopped; its lease expires, another
//! worker may start the command again, and only the fencing token keeps the
//! paused worker from committing anything when it resumes. Linux only. (The
//! kernel sends the signal when the *thread* that started the launcher
//! exits; programs are started from the runtime's worker threads, which live
//! as long as the worker.)

use std::ffi::OsString;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};

/// The first argument that makes the worker binary a launcher.
pub const LAUNCH_ARG: &str = "__launch";

/// The exit code when the program cannot be started (as a shell's).
const CANNOT_START: i32 = 127;

/// When this process was started as a launcher (`args` are the process's
/// arguments), becomes the program and never returns; otherwise returns.
pub fn run_if_asked(args: &[OsString]) {
    if args.get(1).is_none_or(|a| a != LAUNCH_ARG) {
        return;
    }
    let code = match launch(&args[2..]) {
        Ok(never) => match never {},
        Err(why) => {
            eprintln!("runfleet launcher: {why}");
            CANNOT_START
        }
    };
    std::process::exit(code);
}

/// Sets the parent-death signal, checks the parent, execs the program.
fn launch(args: &[OsString]) -> Result<std::convert::Infallible, String> {
    let [parent, program, rest @ ..] = args else {
        return Err("usage: __launch <parent pid> <program> [args…]".into());
    };
    let parent: i32 = parent
        .to_str()
        .and_then(|p| p.parse().ok())
        .ok_or_else(|| format!("{parent:?} is not a process id"))?;
    nix::sys::prctl::set_pdeathsig(nix::sys::signal::Signal::SIGKILL)
        .map_err(|err| format!("cannot set the parent-death signal: {err}"))?;
    // The worker may have died before the signal was armed.
    if nix::unistd::getppid().as_raw() != parent {
        return Err(format!(
            "the worker (pid {parent}) is gone; not starting the program"
        ));
    }
    // std's `exec` (not a bare execv): it also gives the program the
    // default signal dispositions, where this Rust process ignores SIGPIPE.
    let err = std::process::Command::new(program).args(rest).exec();
    Err(format!(
        "cannot start {}: {err}",
        Path::new(program).display()
    ))
}

/// The path to start this worker binary again as a launcher:
/// `/proc/self/exe`, which still names the running binary after an
/// in-place upgrade replaced the file, else the path it was started from.
pub fn this_binary() -> Option<PathBuf> {
    let proc_self = Path::new("/proc/self/exe");
    if proc_self.exists() {
        return Some(proc_self.to_path_buf());
    }
    std::env::current_exe().ok()
}

/// `program` as an absolute path: as given when it names a path, else the
/// first executable file of that name on `PATH` (the worker's own: the
/// program's environment is cleared). `None` when there is none.
pub fn resolve(program: &Path) -> Option<PathBuf> {
    use std::os::unix::fs::PermissionsExt;
    let executable = |p: &Path| {
        p.metadata()
            .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
    };
    if program.components().count() > 1 || program.is_absolute() {
        return executable(program).then(|| program.to_path_buf());
    }
    std::env::split_paths(&std::env::var_os("PATH")?)
        .map(|dir| dir.join(program))
        .find(|candidate| executable(candidate))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn programs_are_found_on_path_or_as_given() {
        let sh = resolve(Path::new("sh")).expect("sh on PATH");
        assert!(sh.is_absolute() && sh.ends_with("sh"), "{}", sh.display());
        assert_eq!(resolve(&sh), Some(sh.clone()));
        assert_eq!(resolve(Path::new("no-such-program-anywhere")), None);
        assert_eq!(resolve(Path::new("/etc/hostname-nope")), None);
    }
}
