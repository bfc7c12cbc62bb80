//! Run working directories: where they live, and how a run's resource bundle
//! gets into one.
//!
//! Every run gets `<root>/<tenant>/<run_id>` ([`RunDirs`]), created with mode
//! 0700 and removed when the run ends. [`materialize`] fills it from the run's
//! [`ResourceBundle`]:
//!
//! - a `directory` bundle is copied recursively on a blocking thread; symlinks
//!   are copied as symlinks (never followed) and permissions are kept;
//! - a `git` bundle is fetched by the `git` executable and checked out detached
//!   at the requested commit, each git step under a timeout and with a minimal
//!   environment, so git never prompts.
//!
//! ## Once per run
//!
//! The marker file [`MARKER`] is written last, atomically (temp file +
//! rename), and describes what was materialized. A redelivered run that finds
//! the same description does nothing; a different one is a
//! [`WorkspaceError::Conflict`]. A run directory without a marker is what a
//! crash left half done: it is emptied first, so every retry starts from the
//! same state as the first attempt.
//!
//! ## Credentials
//!
//! Git URLs may carry `user:password@`. Git gets the URL as given, but every
//! error, marker and description uses [`url_without_credentials`], and git's
//! own stderr is scrubbed the same way.

use std::io;
use std::os::unix::fs::{DirBuilderExt, PermissionsExt, symlink};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use runfleet_schemas::ResourceBundle;
use serde_json::{Value, json};
use tokio::process::Command;

/// The marker file, in the run directory, that says the bundle is complete.
pub const MARKER: &str = ".runfleet-bundle";

/// How much of git's stderr (its tail) an error keeps.
const STDERR_TAIL: usize = 4096;

/// What went wrong preparing a run directory (kind `workspace-failed`).
///
/// Messages are meant for a receipt: readable, and free of URL credentials.
#[derive(Debug, thiserror::Error)]
pub enum WorkspaceError {
    /// A tenant or run id that is not a plain token.
    #[error("invalid tenant or run id {0:?}: expected 1-128 characters of [A-Za-z0-9_-]")]
    InvalidName(String),
    /// A `directory` bundle whose path cannot be copied.
    #[error("bundle directory {path:?} {reason}")]
    NotADirectory {
        /// The path from the bundle.
        path: String,
        /// Why it cannot be used, e.g. "does not exist".
        reason: &'static str,
    },
    /// A filesystem operation failed.
    #[error("{what}: {source}")]
    Io {
        /// The operation and the paths involved.
        what: String,
        /// The underlying error.
        source: io::Error,
    },
    /// A git step exited unsuccessfully.
    #[error("git {step} of {url} failed: {stderr}")]
    Git {
        /// The step: `init`, `fetch`, `checkout`, `rev-parse`.
        step: &'static str,
        /// The repository URL, without credentials.
        url: String,
        /// The tail of git's stderr (credentials scrubbed), or the exit status.
        stderr: String,
    },
    /// A git step did not finish in time and was killed.
    #[error("git {step} timed out after {}", humantime::format_duration(*.after))]
    GitTimeout {
        /// The step that timed out.
        step: &'static str,
        /// The timeout.
        after: Duration,
    },
    /// The checkout ended on another commit than the one requested.
    #[error("checked out commit {got}, which is not the requested {wanted}")]
    CommitMismatch {
        /// The requested (possibly abbreviated) commit.
        wanted: String,
        /// What `HEAD` resolved to.
        got: String,
    },
    /// The run directory already holds a different bundle.
    #[error("run directory already holds bundle {existing}, not {wanted}")]
    Conflict {
        /// The marker found in the run directory.
        existing: String,
        /// The description of the requested bundle.
        wanted: String,
    },
}

/// Shorthand for an [`WorkspaceError::Io`] with its context.
fn io_err(what: impl Into<String>) -> impl FnOnce(io::Error) -> WorkspaceError {
    let what = what.into();
    move |source| WorkspaceError::Io { what, source }
}

/// What [`materialize`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Materialized {
    /// The marker already described this bundle; nothing was touched.
    AlreadyPresent,
    /// The bundle was materialized now.
    Fresh {
        /// The marker's JSON description of the bundle (no credentials).
        description: String,
        /// How long it took, including cleaning a crashed attempt.
        took: Duration,
    },
}

/// Where run working directories live: `<root>/<tenant>/<run_id>`.
#[derive(Debug, Clone)]
pub struct RunDirs {
    /// The directory holding one subdirectory per tenant.
    root: PathBuf,
}

impl RunDirs {
    /// Run directories under `root`.
    pub fn new(root: impl Into<PathBuf>) -> Self {
        Self { root: root.into() }
    }

    /// The run's directory, `<root>/<tenant>/<run_id>`, without checking the
    /// names; [`RunDirs::ensure`] and [`RunDirs::remove`] check them.
    pub fn run_dir(&self, tenant: &str, run_id: &str) -> PathBuf {
        self.root.join(tenant).join(run_id)
    }

    /// Creates the run's directory (and its tenant's) with mode 0700 and
    /// returns it; an existing directory is fine.
    ///
    /// # Errors
    ///
    /// [`WorkspaceError::InvalidName`] unless both names are plain tokens;
    /// [`WorkspaceError::Io`] if the directory cannot be created.
    pub async fn ensure(&self, tenant: &str, run_id: &str) -> Result<PathBuf, WorkspaceError> {
        let dir = self.checked(tenant, run_id)?;
        let what = format!("create run directory {}", dir.display());
        tokio::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&dir)
            .await
            .map_err(io_err(what.clone()))?;
        tokio::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700))
            .await
            .map_err(io_err(what))?;
        Ok(dir)
    }

    /// Deletes the run's directory and everything in it; a missing one is fine.
    ///
    /// # Errors
    ///
    /// [`WorkspaceError::InvalidName`] unless both names are plain tokens;
    /// [`WorkspaceError::Io`] if something cannot be deleted.
    pub async fn remove(&self, tenant: &str, run_id: &str) -> Result<(), WorkspaceError> {
        let dir = self.checked(tenant, run_id)?;
        let what = format!("remove run directory {}", dir.display());
        blocking(what.clone(), move || remove_tree(&dir))
            .await?
            .map_err(io_err(what))
    }

    /// [`RunDirs::run_dir`], refusing names that are not plain tokens.
    fn checked(&self, tenant: &str, run_id: &str) -> Result<PathBuf, WorkspaceError> {
        for name in [tenant, run_id] {
            let token = name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
            if !token || name.is_empty() || name.len() > 128 {
                return Err(WorkspaceError::InvalidName(name.to_owned()));
            }
        }
        Ok(self.run_dir(tenant, run_id))
    }
}

/// Fills `run_dir` from `bundle`, once per run (see the module docs).
///
/// `git_timeout` bounds each git invocation separately.
///
/// # Errors
///
/// [`WorkspaceError::Conflict`] if the run directory holds another bundle;
/// otherwise whatever copying or fetching failed on. A failed attempt leaves
/// no marker, so the next attempt starts over.
pub async fn materialize(
    bundle: &ResourceBundle,
    run_dir: &Path,
    git_timeout: Duration,
) -> Result<Materialized, WorkspaceError> {
    let started = Instant::now();
    let wanted = match bundle {
        ResourceBundle::Directory { path } => json!({ "kind": "directory", "path": path }),
        ResourceBundle::Git { url, commit } => {
            json!({ "kind": "git", "url": url_without_credentials(url), "commit": commit })
        }
    };
    let description = wanted.to_string();
    let marker = run_dir.join(MARKER);
    match tokio::fs::read_to_string(&marker).await {
        Ok(existing) if serde_json::from_str::<Value>(&existing).ok() == Some(wanted) => {
            return Ok(Materialized::AlreadyPresent);
        }
        Ok(existing) => {
            return Err(WorkspaceError::Conflict {
                existing,
                wanted: description,
            });
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(io_err(format!("read {}", marker.display()))(e)),
    }

    let dir = run_dir.to_owned();
    let what = format!("empty run directory {}", dir.display());
    blocking(what.clone(), move || empty_dir(&dir))
        .await?
        .map_err(io_err(what))?;
    match bundle {
        ResourceBundle::Directory { path } => copy_bundle(path, run_dir).await?,
        ResourceBundle::Git { url, commit } => checkout(url, commit, run_dir, git_timeout).await?,
    }

    let temp = run_dir.join(format!("{MARKER}.tmp"));
    let what = format!("write {}", marker.display());
    tokio::fs::write(&temp, &description)
        .await
        .map_err(io_err(what.clone()))?;
    tokio::fs::rename(&temp, &marker)
        .await
        .map_err(io_err(what))?;
    Ok(Materialized::Fresh {
        description,
        took: started.elapsed(),
    })
}

/// Runs `f` on the blocking pool; a panic in it becomes an I/O error.
async fn blocking<T: Send + 'static>(
    what: String,
    f: impl FnOnce() -> T + Send + 'static,
) -> Result<T, WorkspaceError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| io_err(what)(io::Error::other(e)))
}

/// Removes `dir` and its contents; missing is fine. Read-only subdirectories
/// (kept from a copied bundle) are made writable first.
fn remove_tree(dir: &Path) -> io::Result<()> {
    match std::fs::symlink_metadata(dir) {
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(e),
        Ok(meta) if !meta.is_dir() => return std::fs::remove_file(dir),
        Ok(meta) => {
            let mode = meta.permissions().mode();
            if mode & 0o700 != 0o700 {
                std::fs::set_permissions(dir, std::fs::Permissions::from_mode(mode | 0o700))?;
            }
        }
    }
    empty_dir(dir)?;
    std::fs::remove_dir(dir)
}

/// Deletes everything inside `dir`, creating it if missing.
fn empty_dir(dir: &Path) -> io::Result<()> {
    std::fs::create_dir_all(dir)?;
    for entry in std::fs::read_dir(dir)? {
        remove_tree(&entry?.path())?;
    }
    Ok(())
}

/// Copies a `directory` bundle into the (empty) run directory.
async fn copy_bundle(path: &str, run_dir: &Path) -> Result<(), WorkspaceError> {
    let not_a_dir = |reason| WorkspaceError::NotADirectory {
        path: path.to_owned(),
        reason,
    };
    if !Path::new(path).is_absolute() {
        return Err(not_a_dir("is not an absolute path"));
    }
    match tokio::fs::metadata(path).await {
        Ok(meta) if meta.is_dir() => {}
        Ok(_) => return Err(not_a_dir("is not a directory")),
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Err(not_a_dir("does not exist")),
        Err(e) => return Err(io_err(format!("inspect bundle directory {path:?}"))(e)),
    }
    let (from, to) = (PathBuf::from(path), run_dir.to_owned());
    blocking(format!("copy {path:?}"), move || copy_tree(&from, &to)).await?
}

/// Copies the contents of `from` into the existing directory `to`.
fn copy_tree(from: &Path, to: &Path) -> Result<(), WorkspaceError> {
    let read = format!("read directory {}", from.display());
    for entry in std::fs::read_dir(from).map_err(io_err(read.clone()))? {
        let entry = entry.map_err(io_err(read.clone()))?;
        let (src, dst) = (entry.path(), to.join(entry.file_name()));
        let what = || format!("copy {} to {}", src.display(), dst.display());
        let kind = entry.file_type().map_err(io_err(what()))?;
        if kind.is_symlink() {
            let target = std::fs::read_link(&src).map_err(io_err(what()))?;
            symlink(target, &dst).map_err(io_err(what()))?;
        } else if kind.is_dir() {
            let mode = entry
                .metadata()
                .map_err(io_err(what()))?
                .permissions()
                .mode();
            std::fs::DirBuilder::new()
                .mode(0o700)
                .create(&dst)
                .map_err(io_err(what()))?;
            copy_tree(&src, &dst)?;
            let perms = std::fs::Permissions::from_mode(mode);
            std::fs::set_permissions(&dst, perms).map_err(io_err(what()))?;
        } else if kind.is_file() {
            std::fs::copy(&src, &dst).map_err(io_err(what()))?;
        } else {
            let e = io::Error::new(
                io::ErrorKind::Unsupported,
                "not a file, directory or symlink",
            );
            return Err(io_err(what())(e));
        }
    }
    Ok(())
}

/// Fetches `url` into the (empty) run directory and checks out `commit`.
async fn checkout(
    url: &str,
    commit: &str,
    run_dir: &Path,
    timeout: Duration,
) -> Result<(), WorkspaceError> {
    let repo = Repo {
        url,
        dir: run_dir,
        timeout,
    };
    repo.git("init", &["init", "-q"]).await?;
    let shallow = if matches!(commit.len(), 40 | 64) {
        match repo
            .git("fetch", &["fetch", "--depth", "1", "-q", "--", url, commit])
            .await
        {
            Err(WorkspaceError::Git { .. }) => false,
            other => other.map(|_| true)?,
        }
    } else {
        false
    };
    if !shallow {
        let (heads, tags) = (
            "+refs/heads/*:refs/remotes/src/*",
            "+refs/tags/*:refs/tags/*",
        );
        repo.git("fetch", &["fetch", "-q", "--", url, heads, tags])
            .await?;
    }
    repo.git("checkout", &["checkout", "-q", "--detach", commit])
        .await?;
    let head = repo.git("rev-parse", &["rev-parse", "HEAD"]).await?;
    let head = head.trim();
    if !head.starts_with(commit) {
        return Err(WorkspaceError::CommitMismatch {
            wanted: commit.to_owned(),
            got: head.into(),
        });
    }
    Ok(())
}

/// Where and how the git steps of one checkout run.
struct Repo<'a> {
    /// The URL as given (with credentials, if any); never printed.
    url: &'a str,
    /// The run directory, git's working directory.
    dir: &'a Path,
    /// The limit on each git invocation.
    timeout: Duration,
}

impl Repo<'_> {
    /// Runs one git step and returns its stdout.
    async fn git(&self, step: &'static str, args: &[&str]) -> Result<String, WorkspaceError> {
        let (url, dir, timeout) = (self.url, self.dir, self.timeout);
        let mut cmd = Command::new("git");
        cmd.args(args)
            .current_dir(dir)
            .env_clear()
            .env("GIT_TERMINAL_PROMPT", "0")
            .env("GIT_SSH_COMMAND", "ssh -o BatchMode=yes")
            .env("GIT_ALLOW_PROTOCOL", "file:git:http:https:ssh")
            .stdin(Stdio::null())
            .kill_on_drop(true);
        for var in ["PATH", "HOME"] {
            if let Some(value) = std::env::var_os(var) {
                cmd.env(var, value);
            }
        }
        let output = tokio::time::timeout(timeout, cmd.output())
            .await
            .map_err(|_| WorkspaceError::GitTimeout {
                step,
                after: timeout,
            })?
            .map_err(io_err(format!("run git {step}")))?;
        if !output.status.success() {
            let stderr = String::from_utf8_lossy(&output.stderr);
            let tail = crate::text::tail(stderr.trim(), STDERR_TAIL);
            let stderr = match tail {
                "" => output.status.to_string(),
                tail => scrub(tail),
            };
            return Err(WorkspaceError::Git {
                step,
                url: url_without_credentials(url),
                stderr,
            });
        }
        Ok(String::from_utf8_lossy(&output.stdout).into_owned())
    }
}

/// `text` with the credentials removed from every URL in it.
fn scrub(text: &str) -> String {
    let line = |l: &str| {
        l.split(' ')
            .map(url_without_credentials)
            .collect::<Vec<_>>()
            .join(" ")
    };
    text.lines().map(line).collect::<Vec<_>>().join("\n")
}

/// `url` without its userinfo: `https://user:pass@host/x` → `https://host/x`.
/// Anything without `scheme://` (local paths, `git@host:path`) is unchanged.
pub fn url_without_credentials(url: &str) -> String {
    let Some(scheme_end) = url.find("://").map(|i| i + 3) else {
        return url.to_owned();
    };
    let rest = &url[scheme_end..];
    let authority = &rest[..rest.find(['/', '?', '#']).unwrap_or(rest.len())];
    match authority.rfind('@') {
        Some(at) => format!("{}{}", &url[..scheme_end], &rest[at + 1..]),
        None => url.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const T: Duration = Duration::from_secs(60);

    fn dir(path: &Path) -> ResourceBundle {
        ResourceBundle::Directory {
            path: path.to_str().unwrap().to_owned(),
        }
    }

    fn sh_git(dir: &Path, args: &[&str]) -> String {
        let out = std::process::Command::new("git")
            .args(["-c", "user.name=t", "-c", "user.email=t@t"])
            .args(args)
            .current_dir(dir)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap().trim().to_owned()
    }

    #[tokio::test]
    async fn run_dirs_create_and_remove() {
        let tmp = tempfile::tempdir().unwrap();
        let dirs = RunDirs::new(tmp.path());
        let run = dirs.ensure("acme", "run-1").await.unwrap();
        assert_eq!(run, tmp.path().join("acme/run-1"));
        let mode = std::fs::metadata(&run).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o700);
        std::fs::create_dir(run.join("ro")).unwrap();
        std::fs::set_permissions(run.join("ro"), std::fs::Permissions::from_mode(0o500)).unwrap();
        dirs.remove("acme", "run-1").await.unwrap();
        assert!(!run.exists());
        dirs.remove("acme", "run-1").await.unwrap();
        for (tenant, run) in [("..", "x"), ("a/b", "x"), ("a", ""), ("a", "..")] {
            let err = dirs.ensure(tenant, run).await.unwrap_err();
            assert!(matches!(err, WorkspaceError::InvalidName(_)), "{err}");
        }
    }

    #[tokio::test]
    async fn copies_a_directory_once() {
        let (src, run) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        std::fs::create_dir_all(src.path().join("a/b")).unwrap();
        std::fs::write(src.path().join("a/b/data.txt"), "hello").unwrap();
        std::fs::write(src.path().join("run.sh"), "#!/bin/sh\n").unwrap();
        std::fs::set_permissions(src.path().join("run.sh"), PermissionsExt::from_mode(0o755))
            .unwrap();
        symlink("a/b/data.txt", src.path().join("link")).unwrap();
        std::fs::write(run.path().join("junk"), "from a crashed attempt").unwrap();

        let got = materialize(&dir(src.path()), run.path(), T).await.unwrap();
        assert!(matches!(got, Materialized::Fresh { .. }), "{got:?}");
        let r = run.path();
        assert_eq!(
            std::fs::read_to_string(r.join("a/b/data.txt")).unwrap(),
            "hello"
        );
        assert_eq!(std::fs::read_to_string(r.join("link")).unwrap(), "hello");
        assert_eq!(
            std::fs::read_link(r.join("link")).unwrap(),
            Path::new("a/b/data.txt")
        );
        let mode = std::fs::metadata(r.join("run.sh"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o755);
        assert!(!r.join("junk").exists(), "a partial attempt is cleaned");

        let again = materialize(&dir(src.path()), r, T).await.unwrap();
        assert_eq!(again, Materialized::AlreadyPresent);
        let other = tempfile::tempdir().unwrap();
        let err = materialize(&dir(other.path()), r, T).await.unwrap_err();
        assert!(matches!(err, WorkspaceError::Conflict { .. }), "{err}");
    }

    #[tokio::test]
    async fn refuses_bad_directories() {
        let (tmp, run) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        std::fs::write(tmp.path().join("file"), "").unwrap();
        let missing = tmp.path().join("missing");
        for path in [Path::new("relative"), &missing, &tmp.path().join("file")] {
            let err = materialize(&dir(path), run.path(), T).await.unwrap_err();
            assert!(matches!(err, WorkspaceError::NotADirectory { .. }), "{err}");
            assert!(err.to_string().contains(path.to_str().unwrap()), "{err}");
        }
        assert!(!run.path().join(MARKER).exists());
    }

    #[tokio::test]
    async fn checks_out_a_git_commit() {
        let repo = tempfile::tempdir().unwrap();
        let r = repo.path();
        sh_git(r, &["init", "-q"]);
        std::fs::write(r.join("f.txt"), "one").unwrap();
        sh_git(r, &["add", "f.txt"]);
        sh_git(r, &["commit", "-q", "-m", "one"]);
        let first = sh_git(r, &["rev-parse", "HEAD"]);
        std::fs::write(r.join("f.txt"), "two").unwrap();
        sh_git(r, &["commit", "-q", "-am", "two"]);

        let file_url = format!("file://{}", r.display());
        let plain = r.to_str().unwrap().to_owned();
        for (url, commit) in [(&file_url, first.clone()), (&plain, first[..8].to_owned())] {
            let run = tempfile::tempdir().unwrap();
            let bundle = ResourceBundle::Git {
                url: url.clone(),
                commit,
            };
            let got = materialize(&bundle, run.path(), T).await.unwrap();
            assert!(matches!(got, Materialized::Fresh { .. }), "{got:?}");
            assert_eq!(
                std::fs::read_to_string(run.path().join("f.txt")).unwrap(),
                "one"
            );
            let again = materialize(&bundle, run.path(), T).await.unwrap();
            assert_eq!(again, Materialized::AlreadyPresent);
        }

        let run = tempfile::tempdir().unwrap();
        let bundle = ResourceBundle::Git {
            url: file_url,
            commit: "0123abcd".repeat(5),
        };
        let err = materialize(&bundle, run.path(), T).await.unwrap_err();
        let matched = matches!(
            err,
            WorkspaceError::Git { .. } | WorkspaceError::CommitMismatch { .. }
        );
        assert!(matched, "{err:?}");
        assert!(err.to_string().contains("0123abcd"), "{err}");
        assert!(!run.path().join(MARKER).exists());
    }

    #[tokio::test]
    async fn git_errors_carry_no_credentials() {
        let run = tempfile::tempdir().unwrap();
        let url = "http://user:secret@127.0.0.1:9/x.git".to_owned();
        let bundle = ResourceBundle::Git {
            url,
            commit: "abcdef1".into(),
        };
        let err = materialize(&bundle, run.path(), T).await.unwrap_err();
        assert!(!err.to_string().contains("secret"), "{err}");
        assert!(
            err.to_string().contains("http://127.0.0.1:9/x.git"),
            "{err}"
        );
    }

    #[test]
    fn strips_userinfo() {
        for (url, want) in [
            ("https://user:pass@host/x", "https://host/x"),
            (
                "https://token@host:8443/x?a=b@c",
                "https://host:8443/x?a=b@c",
            ),
            ("https://host/x@y", "https://host/x@y"),
            ("file:///srv/repo", "file:///srv/repo"),
            ("/srv/repo", "/srv/repo"),
            ("git@github.com:o/r.git", "git@github.com:o/r.git"),
        ] {
            assert_eq!(url_without_credentials(url), want);
        }
        let stderr = "fatal: unable to access 'https://u:p@h/x/': nope";
        assert_eq!(
            scrub(stderr),
            "fatal: unable to access 'https://h/x/': nope"
        );
    }
}
