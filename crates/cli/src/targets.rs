//! What to scan: files and folders (walked without following links), URLs through the guarded
//! fetcher, and the S3 access that `s3://` targets need.

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context;
use scan_core::{Report, Scanner};

use crate::FileConfig;
use crate::args::ScanArgs;

/// One thing to scan.
pub(crate) enum Target {
    File(PathBuf),
    S3 { bucket: String, key: String },
    Url(String),
}

impl std::fmt::Display for Target {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Target::File(path) => write!(f, "{}", path.display()),
            Target::S3 { bucket, key } => write!(f, "s3://{bucket}/{key}"),
            Target::Url(url) => f.write_str(url),
        }
    }
}

/// S3 and URL access, set up only when some target needs it.
pub(crate) struct Remote {
    pub(crate) s3: Option<storage::S3Store>,
    fetcher: Option<storage::fetch::Fetcher>,
}

impl Remote {
    pub(crate) async fn new(args: &ScanArgs, file: &FileConfig) -> anyhow::Result<Self> {
        let wants = |prefix: &[&str]| {
            args.paths
                .iter()
                .any(|p| prefix.iter().any(|x| p.to_string_lossy().starts_with(x)))
        };
        let s3 = if wants(&["s3://"]) {
            let config = match (&args.s3_endpoint, &file.storage) {
                (None, storage::StorageConfig::S3(from_file)) => from_file.clone(),
                (endpoint, _) => storage::S3Config {
                    region: None,
                    endpoint: endpoint.clone(),
                    path_style: endpoint.is_some(),
                },
            };
            Some(storage::S3Store::new(&config).await)
        } else {
            None
        };
        let fetcher = if wants(&["http://", "https://"]) {
            let mut policy = if args.config.is_some() {
                file.fetch.policy()
            } else {
                storage::fetch::FetchPolicy::default()
            };
            for cidr in &args.allow_fetch {
                policy.allow.push(
                    cidr.parse()
                        .with_context(|| format!("--allow-fetch {cidr:?} is not a CIDR range"))?,
                );
            }
            Some(storage::fetch::Fetcher::new(policy)?)
        } else {
            None
        };
        Ok(Remote { s3, fetcher })
    }
}

pub(crate) async fn scan_one(
    scanner: &Scanner,
    target: &Target,
    remote: &Remote,
) -> anyhow::Result<Report> {
    let input = match target {
        Target::File(path) => scanner.input_from_path_async(path).await?,
        Target::S3 { bucket, key } => {
            let s3 = remote.s3.as_ref().context("S3 is not set up")?;
            let (_, reader) =
                storage::ObjectStore::get(s3, &storage::ObjectRef::new(bucket, key)).await?;
            scanner.input_from_async_reader(reader).await?
        }
        Target::Url(url) => {
            let fetcher = remote
                .fetcher
                .as_ref()
                .context("URL fetching is not set up")?;
            let download = fetcher.get(url, &[]).await?;
            scanner.input_from_async_reader(download.body).await?
        }
    };
    Ok(scanner
        .scan_input(&target.to_string(), Arc::new(input))
        .await)
}

/// A bucket prefix to scan: `s3://bucket/prefix` as given, split.
pub(crate) struct Prefix {
    pub(crate) text: String,
    pub(crate) bucket: String,
    pub(crate) prefix: String,
}

/// Sorts the command line's targets: folders expanded into their files, URLs standing for
/// themselves, and `s3://` prefixes set apart (they are listed page by page as they are
/// scanned). What cannot be walked is returned as an error, so it is reported, not skipped.
pub(crate) fn collect_targets(
    paths: &[PathBuf],
) -> (Vec<Target>, Vec<Prefix>, Vec<(String, anyhow::Error)>) {
    let mut targets = Vec::new();
    let mut prefixes = Vec::new();
    let mut local = Vec::new();
    for path in paths {
        let text = path.to_string_lossy();
        if let Some(rest) = text.strip_prefix("s3://") {
            let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
            prefixes.push(Prefix {
                text: text.clone().into_owned(),
                bucket: bucket.to_owned(),
                prefix: prefix.to_owned(),
            });
        } else if text.starts_with("http://") || text.starts_with("https://") {
            targets.push(Target::Url(text.into_owned()));
        } else {
            local.push(path.clone());
        }
    }
    let (files, walk_errors) = collect_files(&local);
    targets.extend(files.into_iter().map(Target::File));
    let errors = walk_errors
        .into_iter()
        .map(|(p, e)| (p.display().to_string(), e))
        .collect();
    (targets, prefixes, errors)
}

/// Expands folders into the regular files below them. Symbolic links are not followed (a link
/// can point anywhere, including back up the tree); unreadable entries are returned as errors
/// so they are reported, not skipped.
fn collect_files(paths: &[PathBuf]) -> (Vec<PathBuf>, Vec<(PathBuf, anyhow::Error)>) {
    let mut files = Vec::new();
    let mut errors = Vec::new();
    for root in paths {
        if !root.is_dir() {
            files.push(root.clone());
            continue;
        }
        for entry in walkdir::WalkDir::new(root)
            .follow_links(false)
            .sort_by_file_name()
        {
            match entry {
                Ok(entry) if entry.file_type().is_file() => files.push(entry.into_path()),
                Ok(entry) => {
                    if entry.path_is_symlink() {
                        tracing::info!(path = %entry.path().display(), "symbolic link not followed");
                    }
                }
                Err(e) => {
                    let path = e.path().unwrap_or(root).to_owned();
                    errors.push((path, anyhow::Error::new(e)));
                }
            }
        }
    }
    (files, errors)
}
