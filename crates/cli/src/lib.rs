//! The `verdict` command: scans files, folders, bucket prefixes and URLs with the embedded
//! engines (and clamd or ICAP when asked) and reports like clamscan (human lines or JSON lines;
//! exit 0 clean, 1 infected, 2 errors, 130 interrupted).

mod args;
mod bucket;
mod output;
mod readahead;
mod targets;

use std::io::Write;
use std::time::Instant;

use anyhow::Context;
use futures::StreamExt;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use scan_core::{Limits, Outcome, Scanner, SpoolPolicy};

pub use args::{Cli, Command, LimitArgs, ScanArgs, parse_size};
pub use bucket::State;
pub use output::Summary;

use args::ScanArgs as Args;
use targets::{Remote, collect_targets, scan_one};

/// Runs a parsed command line, writing results to `out`.
pub async fn run(cli: Cli, out: &mut (dyn Write + Send)) -> anyhow::Result<Summary> {
    match cli.command {
        Command::Scan(args) => scan(args, out, false).await,
        Command::Rescan(args) => {
            anyhow::ensure!(
                args.paths
                    .iter()
                    .all(|p| p.to_string_lossy().starts_with("s3://")),
                "verdict rescan judges stored objects again: give s3://bucket/prefix targets"
            );
            scan(args, out, true).await
        }
    }
}

/// What `verdict scan` takes from a server's configuration file.
#[derive(Debug, Default, serde::Deserialize)]
#[serde(default)]
struct FileConfig {
    engines: Vec<engines::EngineConfig>,
    limits: Limits,
    spool: engines::SpoolConfig,
    fetch: storage::fetch::FetchConfig,
    storage: storage::StorageConfig,
    actions: storage::actions::ActionsConfig,
}

impl FileConfig {
    fn load(path: &std::path::Path) -> anyhow::Result<Self> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read config {}", path.display()))?;
        toml::from_str(&text).with_context(|| format!("config {}", path.display()))
    }
}

async fn scan(args: Args, out: &mut (dyn Write + Send), rescan: bool) -> anyhow::Result<Summary> {
    let file = match &args.config {
        Some(path) => FileConfig::load(path)?,
        None => FileConfig::default(),
    };
    // A file's engines replace the default (the embedded YARA engine), as in the servers;
    // `--rules` adds a YARA engine of its own.
    let mut configs = file.engines.clone();
    if configs.is_empty() || !args.rules.is_empty() {
        configs.push(engines::EngineConfig::Yara {
            rules: args.rules.clone(),
            max_object_size: None,
        });
    }
    if !args.hashes.is_empty() {
        configs.push(engines::EngineConfig::Hashes {
            files: args.hashes.clone(),
            max_object_size: None,
        });
    }
    if let Some(address) = &args.clamd {
        let mut clamd = engines::ClamdConfig {
            address: address.clone(),
            ..Default::default()
        };
        if let Some(max) = args.clamd_max_stream {
            clamd.stream_max_length = max;
        }
        configs.push(engines::EngineConfig::Clamd(clamd));
    }
    if let Some(url) = &args.icap {
        configs.push(engines::EngineConfig::Icap(engines::IcapConfig {
            url: url.clone(),
            ..Default::default()
        }));
    }
    // What scripts/run.sh finds (./rules, ./hashes, a local clamd) reaches `verdict scan` too.
    engines::apply_engine_env(&mut configs, &|name| std::env::var(name).ok());
    let all_engines = engines::build_engines(&configs)?;
    let mut spool = if args.config.is_some() {
        file.spool.policy(None)
    } else {
        SpoolPolicy::default()
    };
    if let Some(dir) = &args.temp_dir {
        spool.temp_dir = Some(dir.clone());
    }
    let mut builder = Scanner::builder()
        .limits(args.limits.apply(file.limits.clone())?)
        .spool(spool);
    if !args.json {
        // Plain output never shows the hash: files are hashed only where a cache or a hash
        // signature needs it.
        builder = builder.sha256_on_demand();
    }
    if let Some(path) = &args.cache {
        let config = storage::verdict_cache::CacheConfig {
            path: Some(path.clone()),
            ..Default::default()
        };
        if let Some(cache) = config.open_embedded(path)? {
            builder = builder.cache(cache);
        }
    }
    let scanner = builder.engines(all_engines).build()?;
    // Bucket scans run for hours: rules changed meanwhile (or a SIGHUP) apply from the next
    // object on, and each report names the fingerprint it was judged by.
    let reloader = std::sync::Arc::new(engines::Reloader::new(scanner.clone(), &configs));
    let reloading = tokio::spawn(reloader.run(engines::ReloadPolicy::default()));

    let started = Instant::now();
    let remote = Remote::new(&args, &file).await?;
    let (files, prefixes, walk_errors) = collect_targets(&args.paths);
    anyhow::ensure!(
        args.resume.is_none() || (prefixes.len() == 1 && args.paths.len() == 1),
        "--resume keeps the place in one bucket listing: give exactly one s3://bucket/prefix target"
    );
    let any_folder = args.paths.iter().any(|p| p.is_dir());
    let progress = if args.no_progress || !any_folder {
        ProgressBar::hidden()
    } else {
        // indicatif draws nothing when stderr is not a terminal, so pipes and CI stay clean.
        let target = ProgressDrawTarget::stderr();
        let bar = ProgressBar::with_draw_target(Some(files.len() as u64), target);
        bar.set_style(
            ProgressStyle::with_template(
                "{spinner} [{elapsed_precise}] {bar:30} {pos}/{len} {msg}",
            )
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
        );
        bar
    };

    let mut summary = Summary::default();
    for (path, error) in &walk_errors {
        summary.count(Outcome::Unread, 0);
        progress.suspend(|| output::print_input_error(out, path, error, args.json))?;
    }
    // Twice the cores: a file waiting on its read, a spool write or a hand-off between threads
    // leaves its core to another (documents corpus: 2.30 s with one per core, 2.04 s with two).
    let jobs = args.jobs.unwrap_or_else(|| {
        std::thread::available_parallelism()
            .map(std::num::NonZeroUsize::get)
            .unwrap_or(2)
            * 2
    });
    let read_ahead = readahead::ReadAhead::start(
        files
            .iter()
            .map(|target| match target {
                targets::Target::File(path) => Some(path.clone()),
                _ => None,
            })
            .collect(),
    );
    let mut results = futures::stream::iter(files.into_iter().enumerate())
        .map(|(index, target)| {
            let (scanner, remote) = (scanner.clone(), &remote);
            read_ahead.reached(index);
            async move {
                let result = scan_one(&scanner, &target, remote).await;
                (target.to_string(), result)
            }
        })
        .buffer_unordered(jobs.max(1));
    while let Some((path, result)) = results.next().await {
        progress.inc(1);
        match result {
            Ok(report) => {
                summary.count(report.outcome(), report.size);
                progress.suspend(|| output::print_report(out, &report, args.json, args.quiet))?;
            }
            Err(error) => {
                summary.count(Outcome::Unread, 0);
                progress.suspend(|| output::print_input_error(out, &path, &error, args.json))?;
            }
        }
    }
    progress.finish_and_clear();
    drop(results);

    let options = bucket::Options {
        scanner: &scanner,
        remote: &remote,
        jobs,
        json: args.json,
        quiet: args.quiet,
        progress: !args.no_progress,
        resume: args.resume.clone(),
        rescan: rescan.then_some(&file.actions),
    };
    for prefix in &prefixes {
        if bucket::scan_prefix(prefix, &options, out, &mut summary).await?
            == bucket::Ended::Interrupted
        {
            summary.interrupted = true;
            break;
        }
    }
    reloading.abort();
    if !args.json {
        output::print_summary(out, &summary, started.elapsed())?;
    }
    Ok(summary)
}
