//! Run directories, written so that one is never half there.
//!
//! A run is written into a fresh hidden directory beside its target (`.NAME.partial-PID`) and
//! renamed into place only when it is finished (complete, or interrupted and marked so in its
//! `summary.json`); a failed run leaves nothing at the target. An existing target is replaced only
//! with `--force`, and only if it is a run directory (it holds `summary.json`) or empty.
//!
//! Without `--out`, runs go to `runs/<UTC time>` (e.g. `runs/2026-11-27T17-05-09Z`) and
//! `runs/latest` is a symlink to the newest, replaced atomically.
#![allow(clippy::disallowed_methods)] // the run directory's name is the wall-clock time of the run

use crate::exit::bad_input;
use anyhow::{Context, Result};
use std::path::{Path, PathBuf};

/// Default parent of run directories.
pub const RUNS: &str = "runs";
/// The symlink to the newest run in [`RUNS`].
pub const LATEST: &str = "latest";

/// Where a run goes, decided and checked before anything is written.
#[derive(Debug, Clone)]
pub struct Plan {
    /// The final run directory.
    pub target: PathBuf,
    /// Replace an existing run directory at `target`.
    pub force: bool,
    /// The `latest` symlink to point at `target` once it is in place.
    pub latest: Option<PathBuf>,
}

/// A name for a run started at `now`: `2026-11-27T17-05-09Z` (no colons, which some file systems
/// refuse).
pub fn timestamp_name(now: jiff::Timestamp) -> String {
    now.strftime("%Y-%m-%dT%H-%M-%SZ").to_string()
}

fn is_run_dir_or_empty(p: &Path) -> bool {
    p.join("summary.json").is_file() || std::fs::read_dir(p).is_ok_and(|mut d| d.next().is_none())
}

impl Plan {
    /// Decide the target: `out` when given, else a new `runs/<UTC time>` with `runs/latest`
    /// following it. Checks that the target may be written; writes nothing.
    pub fn new(out: Option<&Path>, force: bool) -> Result<Plan> {
        match out {
            Some(target) => {
                if let Ok(meta) = std::fs::symlink_metadata(target) {
                    if meta.file_type().is_symlink() {
                        return Err(bad_input(format!(
                            "{} is a symlink; --out never replaces a link (runs/latest follows the newest run by itself): leave out --out, or choose another",
                            target.display()
                        )));
                    }
                    if !force {
                        return Err(bad_input(format!(
                            "{} already exists; pass --force to replace it, or choose another --out",
                            target.display()
                        )));
                    }
                    if meta.is_dir() && !is_run_dir_or_empty(target) {
                        return Err(bad_input(format!(
                            "{} is not a run directory (no summary.json); refusing to replace it even with --force: choose another --out",
                            target.display()
                        )));
                    }
                    if meta.is_file() {
                        return Err(bad_input(format!(
                            "{} is a file, not a run directory; choose another --out",
                            target.display()
                        )));
                    }
                }
                Ok(Plan { target: target.to_path_buf(), force, latest: None })
            }
            None => Self::timestamped(Path::new(RUNS), jiff::Timestamp::now()),
        }
    }

    /// A new run directory in `runs` named after `now`, with `runs/latest` following it.
    pub fn timestamped(runs: &Path, now: jiff::Timestamp) -> Result<Plan> {
        let latest = runs.join(LATEST);
        if let Ok(meta) = std::fs::symlink_metadata(&latest)
            && !meta.file_type().is_symlink()
        {
            return Err(bad_input(format!(
                "{} is not a symlink (a run directory from an older ringtape?): rename or remove it; runs now go to {}/<time> and {} links to the newest",
                latest.display(),
                runs.display(),
                latest.display()
            )));
        }
        let base = timestamp_name(now);
        let mut target = runs.join(&base);
        let mut n = 2;
        while std::fs::symlink_metadata(&target).is_ok() {
            target = runs.join(format!("{base}-{n}"));
            n += 1;
        }
        Ok(Plan { target, force: false, latest: Some(latest) })
    }

    /// Create the temporary directory the run is written into.
    pub fn start(self) -> Result<RunDir> {
        let parent = match self.target.parent() {
            Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
            _ => PathBuf::from("."),
        };
        std::fs::create_dir_all(&parent).with_context(|| format!("creating {}", parent.display()))?;
        let name = self.target.file_name().map_or_else(|| "run".into(), |n| n.to_string_lossy().into_owned());
        let tmp = parent.join(format!(".{name}.partial-{}", std::process::id()));
        if tmp.exists() {
            std::fs::remove_dir_all(&tmp).with_context(|| format!("removing {}", tmp.display()))?;
        }
        std::fs::create_dir(&tmp).with_context(|| format!("creating {}", tmp.display()))?;
        Ok(RunDir { plan: self, tmp, done: false })
    }
}

/// A run directory being written. Dropped without [`RunDir::finish`], its temporary directory is
/// removed: a failed run leaves nothing behind.
#[derive(Debug)]
pub struct RunDir {
    plan: Plan,
    tmp: PathBuf,
    done: bool,
}

impl RunDir {
    /// Where to write the run's files now.
    pub fn path(&self) -> &Path {
        &self.tmp
    }

    /// Where the run will be once finished.
    pub fn target(&self) -> &Path {
        &self.plan.target
    }

    /// Move the run into place (replacing an old one when forced) and point `latest` at it.
    pub fn finish(mut self) -> Result<PathBuf> {
        let target = self.plan.target.clone();
        if let Ok(meta) = std::fs::symlink_metadata(&target) {
            if !self.plan.force || meta.file_type().is_symlink() || meta.is_file() {
                // Something else took the target while the run was written: keep the run where it is.
                self.done = true;
                anyhow::bail!(
                    "{} appeared while the run was written; the run is in {}",
                    target.display(),
                    self.tmp.display()
                );
            } else {
                // Move the old run aside first, so the target is never missing a finished run
                // for longer than one rename.
                let mut old = self.tmp.clone().into_os_string();
                old.push(".old");
                let old = PathBuf::from(old);
                std::fs::rename(&target, &old).with_context(|| format!("moving {} aside", target.display()))?;
                if let Err(e) = std::fs::rename(&self.tmp, &target) {
                    let _ = std::fs::rename(&old, &target); // put the old run back
                    return Err(e).with_context(|| format!("renaming into {}", target.display()));
                }
                self.done = true;
                std::fs::remove_dir_all(&old)
                    .with_context(|| format!("removing the replaced run {}", old.display()))?;
            }
        }
        if !self.done {
            std::fs::rename(&self.tmp, &target).with_context(|| format!("renaming into {}", target.display()))?;
            self.done = true;
        }
        if let Some(latest) = &self.plan.latest {
            point_latest(latest, &target)?;
        }
        Ok(target)
    }
}

impl Drop for RunDir {
    fn drop(&mut self) {
        if !self.done {
            let _ = std::fs::remove_dir_all(&self.tmp);
        }
    }
}

/// Make `latest` a symlink to `target` (relative when they share a parent), replacing the old one
/// atomically.
fn point_latest(latest: &Path, target: &Path) -> Result<()> {
    let rel = match (latest.parent(), target.parent(), target.file_name()) {
        (Some(a), Some(b), Some(name)) if a == b => PathBuf::from(name),
        _ => std::path::absolute(target)?,
    };
    let tmp = latest.with_file_name(format!(".{LATEST}.{}", std::process::id()));
    let _ = std::fs::remove_file(&tmp);
    symlink(&rel, &tmp).with_context(|| format!("creating {}", tmp.display()))?;
    std::fs::rename(&tmp, latest).with_context(|| format!("updating {}", latest.display()))
}

#[cfg(unix)]
fn symlink(to: &Path, at: &Path) -> std::io::Result<()> {
    std::os::unix::fs::symlink(to, at)
}

#[cfg(windows)]
fn symlink(to: &Path, at: &Path) -> std::io::Result<()> {
    std::os::windows::fs::symlink_dir(to, at)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ts(s: &str) -> jiff::Timestamp {
        s.parse().unwrap()
    }

    #[test]
    fn a_run_appears_only_when_finished_and_a_failed_one_leaves_nothing() {
        let d = tempfile::tempdir().unwrap();
        let target = d.path().join("run");
        let rd = Plan::new(Some(&target), false).unwrap().start().unwrap();
        std::fs::write(rd.path().join("summary.json"), "{}").unwrap();
        assert!(!target.exists(), "not in place before finish");
        let tmp = rd.path().to_path_buf();
        drop(rd); // a failure
        assert!(!target.exists() && !tmp.exists(), "nothing left behind");
        let rd = Plan::new(Some(&target), false).unwrap().start().unwrap();
        std::fs::write(rd.path().join("summary.json"), "1").unwrap();
        assert_eq!(rd.finish().unwrap(), target);
        assert_eq!(std::fs::read_to_string(target.join("summary.json")).unwrap(), "1");
        assert_eq!(std::fs::read_dir(d.path()).unwrap().count(), 1, "no temporary left");
    }

    #[test]
    fn an_existing_run_is_replaced_only_with_force() {
        let d = tempfile::tempdir().unwrap();
        let target = d.path().join("run");
        std::fs::create_dir(&target).unwrap();
        std::fs::write(target.join("summary.json"), "old").unwrap();
        let e = Plan::new(Some(&target), false).unwrap_err();
        assert_eq!(crate::exit::code_for(&e), 2);
        assert!(e.to_string().contains("already exists; pass --force"), "{e}");
        let rd = Plan::new(Some(&target), true).unwrap().start().unwrap();
        std::fs::write(rd.path().join("summary.json"), "new").unwrap();
        rd.finish().unwrap();
        assert_eq!(std::fs::read_to_string(target.join("summary.json")).unwrap(), "new");
        assert_eq!(std::fs::read_dir(d.path()).unwrap().count(), 1, "old run removed");
        // A directory that is not a run is never replaced.
        let other = d.path().join("home");
        std::fs::create_dir(&other).unwrap();
        std::fs::write(other.join("notes.txt"), "mine").unwrap();
        let e = Plan::new(Some(&other), true).unwrap_err().to_string();
        assert!(e.contains("not a run directory"), "{e}");
    }

    #[test]
    fn default_runs_are_timestamped_and_latest_follows_the_newest() {
        let d = tempfile::tempdir().unwrap();
        let runs = d.path().join("runs");
        let now = ts("2026-11-27T17:05:09Z");
        let a = Plan::timestamped(&runs, now).unwrap().start().unwrap().finish().unwrap();
        assert_eq!(a, runs.join("2026-11-27T17-05-09Z"));
        // Same second: a suffix, never a clash.
        let b = Plan::timestamped(&runs, now).unwrap().start().unwrap().finish().unwrap();
        assert_eq!(b, runs.join("2026-11-27T17-05-09Z-2"));
        let latest = runs.join(LATEST);
        assert_eq!(std::fs::read_link(&latest).unwrap(), PathBuf::from("2026-11-27T17-05-09Z-2"));
        assert!(latest.is_dir(), "latest resolves");
        // An old-style runs/latest directory is not silently replaced.
        std::fs::remove_file(&latest).unwrap();
        std::fs::create_dir(&latest).unwrap();
        let e = Plan::timestamped(&runs, now).unwrap_err().to_string();
        assert!(e.contains("is not a symlink"), "{e}");
        // --out runs/latest (the link) is refused even with --force: it would stop following.
        std::fs::remove_dir(&latest).unwrap();
        point_latest(&latest, &b).unwrap();
        let e = Plan::new(Some(&latest), true).unwrap_err().to_string();
        assert!(e.contains("is a symlink; --out never replaces a link"), "{e}");
    }
}
