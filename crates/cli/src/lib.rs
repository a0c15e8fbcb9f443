//! The `verdict` command: scans files and folders with the embedded engines and reports like
//! clamscan (human lines or JSON lines; exit 0 clean, 1 infected, 2 errors).

use std::io::Write;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use clap::{Args, Parser, Subcommand};
use futures::StreamExt;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use scan_core::{Limits, Report, ScanInput, Scanner, SpoolConfig, Verdict};

/// Command-line arguments.
#[derive(Debug, Parser)]
#[command(
    name = "verdict",
    version,
    about = "Scan files for malware with Verdict"
)]
pub struct Cli {
    /// More log output on stderr (-v: info, -vv: debug). RUST_LOG overrides.
    #[arg(short, long, action = clap::ArgAction::Count, global = true)]
    pub verbose: u8,
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// Subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Scan files and folders (recursively).
    Scan(ScanArgs),
}

/// Arguments of `verdict scan`.
#[derive(Debug, Args)]
pub struct ScanArgs {
    /// Files or folders to scan, `s3://bucket/prefix` (every object under it), or http(s) URLs.
    #[arg(required = true)]
    pub paths: Vec<PathBuf>,
    /// A configuration file of verdict-sync or verdict-async (TOML): its `engines`, `limits`,
    /// `spool`, `fetch` and `[storage]` S3 settings are used, so engines and rules are set up once
    /// for all three; its server settings are ignored. Flags add to it (`--rules`, `--clamd`...)
    /// or override it (limits, `--temp-dir`, `--s3-endpoint`).
    #[arg(long, short = 'c', value_name = "FILE", env = "VERDICT_CONFIG")]
    pub config: Option<PathBuf>,
    /// S3-compatible endpoint for s3:// targets (path-style); AWS itself when omitted.
    /// Credentials and region come from the standard AWS chain.
    #[arg(long, value_name = "URL")]
    pub s3_endpoint: Option<String>,
    /// Let URL scans reach this non-public range (loopback, private...), e.g. 10.0.0.0/8.
    /// Repeatable; by default only public addresses are fetched.
    #[arg(long = "allow-fetch", value_name = "CIDR")]
    pub allow_fetch: Vec<String>,
    /// Print one JSON report per file (JSON lines) instead of human output.
    #[arg(long)]
    pub json: bool,
    /// YARA rules: a .yar/.yara file or a folder of them (repeatable). The built-in EICAR rule
    /// is always loaded.
    #[arg(long = "rules", value_name = "PATH")]
    pub rules: Vec<PathBuf>,
    /// Hash signatures: ClamAV .hdb/.hsb or a plain list (repeatable).
    #[arg(long = "hashes", value_name = "FILE")]
    pub hashes: Vec<PathBuf>,
    /// Also scan with clamd at this address (`host:port` or a unix socket path).
    #[arg(long, value_name = "ADDRESS")]
    pub clamd: Option<String>,
    /// clamd's StreamMaxLength, so larger files are reported as not examined by clamd rather than
    /// cut off [default: 25M, clamd's default].
    #[arg(long, value_name = "SIZE", value_parser = parse_size, requires = "clamd")]
    pub clamd_max_stream: Option<u64>,
    /// Also scan with an ICAP service, e.g. icap://127.0.0.1:1344/avscan.
    #[arg(long, value_name = "URL")]
    pub icap: Option<String>,
    /// Only print infected and not fully examined files.
    #[arg(short, long)]
    pub quiet: bool,
    /// Files scanned at once [default: the number of cores].
    #[arg(short, long)]
    pub jobs: Option<usize>,
    /// Folder for spool files [default: the system temp folder].
    #[arg(long, value_name = "DIR")]
    pub temp_dir: Option<PathBuf>,
    /// Never show a progress bar (it is shown for folder scans when stderr is a terminal).
    #[arg(long)]
    pub no_progress: bool,
    /// Expansion limits.
    #[command(flatten)]
    pub limits: LimitArgs,
}

/// Limit flags; each overrides one default.
#[derive(Debug, Args, Default)]
pub struct LimitArgs {
    /// Deepest archive nesting unpacked [default: 16].
    #[arg(long, value_name = "N")]
    pub max_depth: Option<u32>,
    /// Most objects (files and archive members) per scanned file [default: 10000].
    #[arg(long, value_name = "N")]
    pub max_files: Option<u64>,
    /// Most bytes expanded per scanned file, e.g. 2G [default: 2G].
    #[arg(long, value_name = "SIZE", value_parser = parse_size)]
    pub max_scan_size: Option<u64>,
    /// Largest expanded member, e.g. 500M [default: 1G].
    #[arg(long, value_name = "SIZE", value_parser = parse_size)]
    pub max_file_size: Option<u64>,
    /// Largest compression ratio [default: 250].
    #[arg(long, value_name = "N")]
    pub max_ratio: Option<u64>,
    /// Time budget per scanned file, in seconds [default: 120].
    #[arg(long, value_name = "SECONDS")]
    pub max_scan_time: Option<f64>,
}

impl LimitArgs {
    fn apply(&self, mut limits: Limits) -> anyhow::Result<Limits> {
        if let Some(v) = self.max_depth {
            limits.max_depth = v;
        }
        if let Some(v) = self.max_files {
            limits.max_files = v;
        }
        if let Some(v) = self.max_scan_size {
            limits.max_scan_size = v;
        }
        if let Some(v) = self.max_file_size {
            limits.max_file_size = v;
        }
        if let Some(v) = self.max_ratio {
            limits.max_ratio = v;
        }
        if let Some(v) = self.max_scan_time {
            limits.max_scan_time = Duration::try_from_secs_f64(v)
                .with_context(|| format!("--max-scan-time {v} is not a number of seconds"))?;
        }
        Ok(limits)
    }
}

/// Parses `123`, `10K`, `100M`, `2G`, `1T` (binary multiples; a trailing `B`/`iB` is allowed).
pub fn parse_size(text: &str) -> Result<u64, String> {
    let t = text.trim().to_ascii_uppercase();
    let t = t.trim_end_matches("IB").trim_end_matches('B');
    let (digits, shift) = match t.chars().last() {
        Some('K') => (&t[..t.len() - 1], 10),
        Some('M') => (&t[..t.len() - 1], 20),
        Some('G') => (&t[..t.len() - 1], 30),
        Some('T') => (&t[..t.len() - 1], 40),
        _ => (t, 0),
    };
    let n: u64 = digits
        .trim()
        .parse()
        .map_err(|_| format!("{text:?} is not a size like 100M"))?;
    n.checked_mul(1u64 << shift)
        .ok_or_else(|| format!("{text:?} is too large"))
}

/// How a whole run went, for the exit code.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Summary {
    /// Files scanned (with or without a report).
    pub files: u64,
    /// Files with a detection.
    pub infected: u64,
    /// Files not fully examined, or that could not be read.
    pub not_examined: u64,
    /// Bytes read.
    pub bytes: u64,
}

impl Summary {
    /// 1 when anything was infected, else 2 when anything could not be examined, else 0.
    pub fn exit_code(&self) -> u8 {
        if self.infected > 0 {
            1
        } else if self.not_examined > 0 {
            2
        } else {
            0
        }
    }
}

/// Runs a parsed command line, writing results to `out`.
pub async fn run(cli: Cli, out: &mut (dyn Write + Send)) -> anyhow::Result<Summary> {
    match cli.command {
        Command::Scan(args) => scan(args, out).await,
    }
}

/// What `verdict scan` takes from a server's configuration file.
#[derive(Debug, Default, serde::Deserialize)]
#[serde(default)]
struct FileConfig {
    engines: Vec<engines::EngineConfig>,
    limits: Limits,
    spool: scan_core::SpoolSettings,
    fetch: storage::fetch::FetchSettings,
    storage: storage::StorageConfig,
}

impl FileConfig {
    fn load(path: &std::path::Path) -> anyhow::Result<Self> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read config {}", path.display()))?;
        toml::from_str(&text).with_context(|| format!("config {}", path.display()))
    }
}

async fn scan(args: ScanArgs, out: &mut (dyn Write + Send)) -> anyhow::Result<Summary> {
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
    let all_engines = engines::build_engines(&configs)?;
    let mut spool = if args.config.is_some() {
        file.spool.config(None)
    } else {
        SpoolConfig::default()
    };
    if let Some(dir) = &args.temp_dir {
        spool.temp_dir = Some(dir.clone());
    }
    let mut builder = Scanner::builder()
        .limits(args.limits.apply(file.limits.clone())?)
        .spool(spool);
    for engine in all_engines {
        builder = builder.shared_engine(engine);
    }
    let scanner = builder.build()?;

    let started = Instant::now();
    let remote = Remote::new(&args, &file).await?;
    let (files, walk_errors) = collect_targets(&args.paths, &remote).await;
    let any_folder = args
        .paths
        .iter()
        .any(|p| p.is_dir() || p.to_string_lossy().starts_with("s3://"));
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
        summary.files += 1;
        summary.not_examined += 1;
        progress.suspend(|| print_input_error(out, path, error, args.json))?;
    }
    let jobs = args.jobs.unwrap_or_else(|| {
        std::thread::available_parallelism()
            .map(std::num::NonZeroUsize::get)
            .unwrap_or(2)
    });
    let mut results = futures::stream::iter(files)
        .map(|target| {
            let (scanner, remote) = (scanner.clone(), &remote);
            async move {
                let result = scan_one(&scanner, &target, remote).await;
                (target.to_string(), result)
            }
        })
        .buffer_unordered(jobs.max(1));
    while let Some((path, result)) = results.next().await {
        summary.files += 1;
        progress.inc(1);
        match result {
            Ok(report) => {
                summary.bytes += report.size;
                match report.verdict {
                    Verdict::Infected => summary.infected += 1,
                    Verdict::Clean => {}
                    Verdict::Unscannable | Verdict::Error => summary.not_examined += 1,
                }
                progress.suspend(|| print_report(out, &report, args.json, args.quiet))?;
            }
            Err(error) => {
                summary.not_examined += 1;
                progress.suspend(|| print_input_error(out, &path, &error, args.json))?;
            }
        }
    }
    progress.finish_and_clear();
    if !args.json {
        print_summary(out, &summary, started.elapsed())?;
    }
    Ok(summary)
}

/// One thing to scan.
enum Target {
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
struct Remote {
    s3: Option<storage::S3Store>,
    fetcher: Option<storage::fetch::Fetcher>,
}

impl Remote {
    async fn new(args: &ScanArgs, file: &FileConfig) -> anyhow::Result<Self> {
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

async fn scan_one(scanner: &Scanner, target: &Target, remote: &Remote) -> anyhow::Result<Report> {
    let spool = scanner.spool_config();
    let input = match target {
        Target::File(path) => ScanInput::from_path_async(path, spool).await?,
        Target::S3 { bucket, key } => {
            let s3 = remote.s3.as_ref().context("S3 is not set up")?;
            let (_, reader) =
                storage::ObjectStore::get(s3, &storage::ObjectRef::new(bucket, key)).await?;
            ScanInput::from_async_reader(reader, spool).await?
        }
        Target::Url(url) => {
            let fetcher = remote
                .fetcher
                .as_ref()
                .context("URL fetching is not set up")?;
            let download = fetcher.get(url, &[]).await?;
            ScanInput::from_async_reader(download.body, spool).await?
        }
    };
    Ok(scanner
        .scan_input(&target.to_string(), Arc::new(input))
        .await)
}

/// Expands folders into their files and S3 prefixes into their objects; URLs stand for
/// themselves. What cannot be listed is returned as an error, so it is reported, not skipped.
async fn collect_targets(
    paths: &[PathBuf],
    remote: &Remote,
) -> (Vec<Target>, Vec<(String, anyhow::Error)>) {
    let mut targets = Vec::new();
    let mut errors = Vec::new();
    let mut local = Vec::new();
    for path in paths {
        let text = path.to_string_lossy();
        if let Some(rest) = text.strip_prefix("s3://") {
            let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
            let Some(s3) = &remote.s3 else { continue };
            match s3.list(bucket, prefix).await {
                Ok(keys) if keys.is_empty() => {
                    errors.push((
                        text.into_owned(),
                        anyhow::anyhow!("no objects under this prefix"),
                    ));
                }
                Ok(keys) => targets.extend(keys.into_iter().map(|key| Target::S3 {
                    bucket: bucket.to_owned(),
                    key,
                })),
                Err(e) => errors.push((text.into_owned(), e.into())),
            }
        } else if text.starts_with("http://") || text.starts_with("https://") {
            targets.push(Target::Url(text.into_owned()));
        } else {
            local.push(path.clone());
        }
    }
    let (files, walk_errors) = collect_files(&local);
    targets.extend(files.into_iter().map(Target::File));
    errors.extend(
        walk_errors
            .into_iter()
            .map(|(p, e)| (p.display().to_string(), e)),
    );
    (targets, errors)
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

fn print_report(
    out: &mut (dyn Write + Send),
    report: &Report,
    json: bool,
    quiet: bool,
) -> std::io::Result<()> {
    if json {
        let line = serde_json::to_string(report).map_err(std::io::Error::other)?;
        return writeln!(out, "{line}");
    }
    match report.verdict {
        Verdict::Clean if quiet => {}
        Verdict::Clean => writeln!(out, "{}: OK", report.name)?,
        _ => {
            for d in &report.detections {
                writeln!(out, "{}: {} FOUND", d.path, d.name)?;
            }
            let label = if report.verdict == Verdict::Error {
                "ERROR"
            } else {
                "NOT EXAMINED"
            };
            for p in &report.problems {
                writeln!(out, "{}: {label} {}", p.path, p.message)?;
            }
        }
    }
    Ok(())
}

fn print_input_error(
    out: &mut (dyn Write + Send),
    name: &str,
    error: &anyhow::Error,
    json: bool,
) -> std::io::Result<()> {
    if json {
        let line = serde_json::json!({ "name": name, "error": format!("{error:#}") });
        writeln!(out, "{line}")
    } else {
        writeln!(out, "{name}: ERROR {error:#}")
    }
}

fn print_summary(
    out: &mut (dyn Write + Send),
    summary: &Summary,
    elapsed: Duration,
) -> std::io::Result<()> {
    let mb = summary.bytes as f64 / 1e6;
    let secs = elapsed.as_secs_f64();
    writeln!(out, "\n----------- SCAN SUMMARY -----------")?;
    writeln!(out, "Scanned files: {}", summary.files)?;
    writeln!(out, "Infected files: {}", summary.infected)?;
    writeln!(out, "Not fully examined: {}", summary.not_examined)?;
    writeln!(out, "Data scanned: {mb:.2} MB")?;
    writeln!(out, "Time: {secs:.3} s ({:.1} MB/s)", mb / secs.max(1e-9))
}
