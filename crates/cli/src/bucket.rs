//! `verdict scan s3://bucket/prefix/`: the prefix is listed a page at a time while it is scanned
//! (memory stays flat however many objects there are), `--jobs` objects at once, with a progress
//! bar of objects, bytes and the time left. With `--resume FILE`, a state file keeps the last key
//! done in listing order and the counts up to it, so a scan stopped by Ctrl-C (or killed)
//! continues where it stopped when the same command is run again.

use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::Context;
use futures::StreamExt;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use scan_core::{Outcome, Scanner, Tally};
use serde::{Deserialize, Serialize};
use storage::{ObjectStore, S3Store};

use crate::output::{self, Summary};
use crate::targets::{Prefix, Remote, Target, scan_one};

/// Objects listed per request, and about how many are listed ahead of the scans.
const PAGE: usize = 1000;

/// What `--resume` keeps between runs.
#[derive(Debug, Default, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct State {
    /// The scan it belongs to (`s3://bucket/prefix`).
    pub target: String,
    /// The last key done; every key before it in listing order is done too.
    pub after: Option<String>,
    /// Whether the listing reached its end with every object done.
    pub finished: bool,
    /// Objects done, by outcome (a state written before `clean` and `unread` were kept has
    /// neither: its unread objects are in `not_examined`, its clean ones in no count).
    #[serde(flatten)]
    pub outcomes: Tally,
    /// Objects done; more than `outcomes` counts in a state written before they were kept.
    pub files: u64,
    /// Bytes scanned.
    pub bytes: u64,
}

impl State {
    /// Counts one object, in the state and in the run's `summary`.
    fn count(&mut self, summary: &mut Summary, outcome: Outcome, bytes: u64) {
        self.files += 1;
        self.outcomes.add(outcome);
        self.bytes += bytes;
        summary.count(outcome, bytes);
    }

    /// The state in `path` for `target`, or a fresh one when there is none. A state file says
    /// which objects to skip and whether the scan is finished, so only one this user wrote is
    /// trusted (the rule ssh keeps for its keys): a regular file, not a symbolic link, owned by
    /// the user running verdict, and writable by nobody else.
    fn load(path: &Path, target: &str) -> anyhow::Result<Self> {
        use std::io::Read;
        use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
        let opened = std::fs::OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_NOFOLLOW)
            .open(path);
        let mut file = match opened {
            Ok(file) => file,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Ok(State {
                    target: target.to_owned(),
                    ..State::default()
                });
            }
            Err(e) if e.raw_os_error() == Some(libc::ELOOP) => {
                anyhow::bail!(
                    "--resume {}: it is a symbolic link; a state file is trusted only as a plain file of your own",
                    path.display()
                )
            }
            Err(e) => return Err(e).with_context(|| format!("--resume {}", path.display())),
        };
        let meta = file
            .metadata()
            .with_context(|| format!("--resume {}", path.display()))?;
        anyhow::ensure!(
            meta.is_file(),
            "--resume {}: not a regular file",
            path.display()
        );
        anyhow::ensure!(
            meta.uid() == rustix::process::geteuid().as_raw(),
            "--resume {}: the file belongs to another user; a state file is trusted only when you wrote it",
            path.display()
        );
        anyhow::ensure!(
            meta.mode() & 0o022 == 0,
            "--resume {}: others may write the file (mode {:o}); a state file is trusted only when only you can write it",
            path.display(),
            meta.mode() & 0o777
        );
        let mut text = String::new();
        file.read_to_string(&mut text)
            .with_context(|| format!("--resume {}", path.display()))?;
        let state: State = serde_json::from_str(&text)
            .with_context(|| format!("--resume {}: not a state file of verdict", path.display()))?;
        anyhow::ensure!(
            state.target == target,
            "--resume {}: the state file is for {}, not {target}; use another file",
            path.display(),
            state.target
        );
        Ok(state)
    }

    /// Written to a new file of its own beside `path` (created exclusively, mode 0600, so no
    /// link planted there is followed) and renamed over it, so a kill mid-write leaves the
    /// previous state whole.
    fn save(&self, path: &Path) -> anyhow::Result<()> {
        let json = serde_json::to_vec_pretty(self)?;
        let dir = match path.parent() {
            Some(dir) if !dir.as_os_str().is_empty() => dir,
            _ => Path::new("."),
        };
        let written = tempfile::Builder::new()
            .prefix(".verdict-state-")
            .tempfile_in(dir)
            .and_then(|mut tmp| {
                tmp.write_all(&json)?;
                tmp.as_file().sync_all()?;
                tmp.persist(path).map_err(|e| e.error)?;
                Ok(())
            });
        written.with_context(|| format!("cannot write the state file {}", path.display()))
    }
}

/// How a prefix scan ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Ended {
    /// Every object was scanned.
    Done,
    /// Ctrl-C: stopped, with the state saved.
    Interrupted,
}

/// How to scan and report.
pub(crate) struct Options<'a> {
    pub(crate) scanner: &'a Scanner,
    pub(crate) remote: &'a Remote,
    pub(crate) jobs: usize,
    pub(crate) json: bool,
    pub(crate) quiet: bool,
    pub(crate) progress: bool,
    pub(crate) resume: Option<PathBuf>,
    /// `verdict rescan`: skip what the current rules judged, tag and act on the rest by this
    /// policy.
    pub(crate) rescan: Option<&'a storage::actions::ActionsConfig>,
}

/// `verdict rescan` of one object: `None` when its tags say the current rules judged it;
/// otherwise it is scanned, tagged and acted on, and an object that turns infected is named on
/// stderr with what it was.
async fn rejudge(
    options: &Options<'_>,
    s3: &storage::S3Store,
    actions: &storage::actions::ActionsConfig,
    bucket: &str,
    key: &str,
    target: &Target,
) -> Option<anyhow::Result<scan_core::Report>> {
    use storage::ObjectStore as _;
    let object = storage::ObjectRef::new(bucket, key);
    let tags = s3.tags(&object).await.unwrap_or_default();
    let tag = |name: &str| tags.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone());
    let (was, judged_by) = (tag("scan-result"), tag(storage::FINGERPRINT_TAG));
    let current = options.scanner.fingerprint();
    if was.is_some() && judged_by.as_deref() == Some(current.as_str()) {
        return None;
    }
    let report = match scan_one(options.scanner, target, options.remote).await {
        Ok(report) => report,
        Err(e) => return Some(Err(e)),
    };
    let date = time::OffsetDateTime::now_utc()
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default();
    let tags = storage::actions::tags_for(report.outcome(), &date, &report.fingerprint);
    let scanned = storage::actions::Scanned {
        object: &object,
        read: None,
        judgement: storage::actions::Judgement::of(&report),
    };
    let acted = storage::actions::act(s3, actions, None, scanned, &tags)
        .await
        .into_report();
    if let Some(error) = &acted.error {
        eprintln!(
            "verdict: s3://{bucket}/{key}: {} failed: {error}",
            acted.action
        );
    }
    if report.outcome() == Outcome::Infected
        && let Some(was) = was.filter(|w| w != "infected")
    {
        eprintln!(
            "verdict: s3://{bucket}/{key} was {was} (rules {}), is infected under the current rules ({current})",
            judged_by.as_deref().unwrap_or("unknown")
        );
    }
    Some(Ok(report))
}

/// Scans every object under `prefix` (see the module docs), adding to `summary`.
pub(crate) async fn scan_prefix(
    prefix: &Prefix,
    options: &Options<'_>,
    out: &mut (dyn Write + Send),
    summary: &mut Summary,
) -> anyhow::Result<Ended> {
    let s3 = options.remote.s3.as_ref().context("S3 is not set up")?;
    let mut state = match &options.resume {
        Some(path) => State::load(path, &prefix.text)?,
        None => State {
            target: prefix.text.clone(),
            ..State::default()
        },
    };
    let resumed = state.files > 0;
    add(summary, &state);
    if state.finished {
        eprintln!(
            "verdict: {} was scanned to the end already (state file {}); delete it to scan again",
            prefix.text,
            options.resume.as_deref().unwrap_or(Path::new("")).display()
        );
        return Ok(Ended::Done);
    }

    let bar = progress_bar(options.progress);
    bar.set_position(state.bytes);
    bar.set_length(state.bytes);
    let (listed_tx, listed_rx) =
        tokio::sync::mpsc::channel::<anyhow::Result<storage::Listed>>(PAGE);
    let lister = tokio::spawn(list(
        s3.clone(),
        prefix.bucket.clone(),
        prefix.prefix.clone(),
        state.after.clone(),
        listed_tx,
        bar.clone(),
    ));
    let results = futures::stream::unfold(listed_rx, |mut rx| async move {
        rx.recv().await.map(|item| (item, rx))
    })
    .map(|listed| async move {
        let object = listed?;
        let target = Target::S3 {
            bucket: prefix.bucket.clone(),
            key: object.key.clone(),
        };
        let result = match options.rescan {
            Some(actions) => {
                rejudge(options, s3, actions, &prefix.bucket, &object.key, &target).await
            }
            None => Some(scan_one(options.scanner, &target, options.remote).await),
        };
        Ok::<_, anyhow::Error>((object, target.to_string(), result))
    })
    // In listing order, so the state's last key has everything before it done.
    .buffered(options.jobs.max(1));
    let mut results = std::pin::pin!(results);

    let mut seen = 0u64;
    let interrupt = tokio::signal::ctrl_c();
    tokio::pin!(interrupt);
    let ended = loop {
        let next = tokio::select! {
            next = results.next() => next,
            _ = &mut interrupt => break Ended::Interrupted,
        };
        let Some(next) = next else { break Ended::Done };
        let (object, name, result) = match next {
            Ok(done) => done,
            Err(e) => {
                // The listing failed: what was done is saved, the rest is not claimed done.
                bar.finish_and_clear();
                save(options, &state)?;
                return Err(e.context(format!("listing {}", prefix.text)));
            }
        };
        seen += 1;
        let Some(result) = result else {
            // Judged by the current rules already: nothing to do, nothing to count.
            state.after = Some(object.key);
            continue;
        };
        match result {
            Ok(report) => {
                state.count(summary, report.outcome(), report.size);
                bar.suspend(|| output::print_report(out, &report, options.json, options.quiet))?;
            }
            Err(error) => {
                state.count(summary, Outcome::Unread, 0);
                bar.suspend(|| output::print_input_error(out, &name, &error, options.json))?;
            }
        }
        bar.inc(object.size);
        bar.set_message(format!("{} objects", state.files));
        state.after = Some(object.key);
        save(options, &state)?;
    };
    bar.finish_and_clear();
    lister.abort();
    match ended {
        Ended::Interrupted => {
            save(options, &state)?;
            match &options.resume {
                Some(path) => eprintln!(
                    "verdict: interrupted after {} objects; run the same command again to continue from {}",
                    state.files,
                    path.display()
                ),
                None => eprintln!(
                    "verdict: interrupted after {} objects (--resume FILE would let a rerun continue)",
                    state.files
                ),
            }
        }
        Ended::Done => {
            if seen == 0 && !resumed {
                summary.count(Outcome::Unread, 0);
                output::print_input_error(
                    out,
                    &prefix.text,
                    &anyhow::anyhow!("no objects under this prefix"),
                    options.json,
                )?;
            }
            state.finished = true;
            save(options, &state)?;
        }
    }
    Ok(ended)
}

fn add(summary: &mut Summary, state: &State) {
    summary.outcomes.merge(&state.outcomes);
    // Objects of an older state file counted in no outcome were clean then.
    summary.outcomes.clean += state.files.saturating_sub(state.outcomes.total());
    summary.bytes += state.bytes;
}

fn save(options: &Options<'_>, state: &State) -> anyhow::Result<()> {
    match &options.resume {
        Some(path) => state.save(path),
        None => Ok(()),
    }
}

/// Lists the prefix after `after`, a page at a time, into `objects`; the channel's bound keeps
/// it about a page ahead of the scans. The bar's length grows by each object's size.
async fn list(
    s3: S3Store,
    bucket: String,
    prefix: String,
    mut after: Option<String>,
    objects: tokio::sync::mpsc::Sender<anyhow::Result<storage::Listed>>,
    bar: ProgressBar,
) {
    loop {
        let page = match s3.list_page(&bucket, &prefix, after.as_deref(), PAGE).await {
            Ok(page) => page,
            Err(e) => {
                let _ = objects.send(Err(e.into())).await;
                return;
            }
        };
        after = page.objects.last().map(|o| o.key.clone()).or(after);
        for object in page.objects {
            bar.inc_length(object.size);
            if objects.send(Ok(object)).await.is_err() {
                return;
            }
        }
        if !page.more {
            bar.set_style(style(
                "{elapsed_precise} {bar:30} {bytes}/{total_bytes} {msg}, {eta} left",
            ));
            return;
        }
    }
}

fn style(template: &str) -> ProgressStyle {
    ProgressStyle::with_template(template).unwrap_or_else(|_| ProgressStyle::default_bar())
}

fn progress_bar(shown: bool) -> ProgressBar {
    if !shown {
        return ProgressBar::hidden();
    }
    // indicatif draws nothing when stderr is not a terminal, so pipes and CI stay clean. Until
    // the listing ends the total is not known, so there is no time left to show yet.
    let bar = ProgressBar::with_draw_target(Some(0), ProgressDrawTarget::stderr());
    bar.set_style(style(
        "{elapsed_precise} {bar:30} {bytes}/{total_bytes}+ {msg}, listing",
    ));
    bar
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_state_file_round_trips_and_belongs_to_one_target() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state.json");
        let fresh = State::load(&path, "s3://b/p/").unwrap();
        assert_eq!(fresh.target, "s3://b/p/");
        assert_eq!(fresh.after, None);
        let state = State {
            after: Some("p/0042".into()),
            files: 43,
            outcomes: Tally {
                clean: 42,
                infected: 1,
                ..Tally::default()
            },
            bytes: 1000,
            ..fresh
        };
        state.save(&path).unwrap();
        assert_eq!(State::load(&path, "s3://b/p/").unwrap(), state);
        let err = State::load(&path, "s3://b/other/").unwrap_err().to_string();
        assert!(
            err.contains("s3://b/p/") && err.contains("another file"),
            "{err}"
        );
        std::fs::write(&path, "not json").unwrap();
        assert!(State::load(&path, "s3://b/p/").is_err());
    }

    #[test]
    fn a_state_file_from_before_clean_was_counted_still_sums_up() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state.json");
        std::fs::write(
            &path,
            r#"{"target":"s3://b/p/","after":"p/9","finished":false,"files":10,"infected":1,"not_examined":2,"bytes":5}"#,
        )
        .unwrap();
        let mut perms = std::fs::metadata(&path).unwrap().permissions();
        std::os::unix::fs::PermissionsExt::set_mode(&mut perms, 0o600);
        std::fs::set_permissions(&path, perms).unwrap();
        let state = State::load(&path, "s3://b/p/").unwrap();
        let mut summary = Summary::default();
        add(&mut summary, &state);
        assert_eq!(
            summary.outcomes,
            Tally {
                clean: 7,
                infected: 1,
                not_examined: 2,
                unread: 0
            }
        );
        assert_eq!(summary.outcomes.total(), 10);
    }

    #[test]
    fn only_a_state_file_of_ones_own_is_trusted() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state.json");
        let finished = State {
            target: "s3://b/p/".into(),
            finished: true,
            ..State::default()
        };
        finished.save(&path).unwrap();
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600, "written for its owner only");
        assert!(State::load(&path, "s3://b/p/").unwrap().finished);

        // Writable by others: someone else could have said it is finished.
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o666)).unwrap();
        let err = State::load(&path, "s3://b/p/").unwrap_err().to_string();
        assert!(err.contains("others may write"), "{err}");

        // A link, wherever it points.
        let link = dir.path().join("link.json");
        std::os::unix::fs::symlink(&path, &link).unwrap();
        let err = State::load(&link, "s3://b/p/").unwrap_err().to_string();
        assert!(err.contains("symbolic link"), "{err}");

        // Saving replaces a link planted at the state file's name; it never writes through it.
        let victim = dir.path().join("victim");
        std::fs::write(&victim, "keep me").unwrap();
        let planted = dir.path().join("planted.json");
        std::os::unix::fs::symlink(&victim, &planted).unwrap();
        finished.save(&planted).unwrap();
        assert_eq!(std::fs::read_to_string(&victim).unwrap(), "keep me");
        assert!(!std::fs::symlink_metadata(&planted).unwrap().is_symlink());

        // Another user's file (the tests may run as root, which can make one).
        if rustix::process::geteuid().is_root() {
            let theirs = dir.path().join("theirs.json");
            finished.save(&theirs).unwrap();
            std::os::unix::fs::chown(&theirs, Some(65534), Some(65534)).unwrap();
            let err = State::load(&theirs, "s3://b/p/").unwrap_err().to_string();
            assert!(err.contains("another user"), "{err}");
        }
    }
}
