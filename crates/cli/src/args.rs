//! The command line: what `verdict` accepts, parsed by clap.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use clap::{Args, Parser, Subcommand};
use scan_core::Limits;

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
    /// Judge stored objects again under the current rules: every object under each
    /// `s3://bucket/prefix` not yet tagged with the engines' current fingerprint is scanned,
    /// tagged (and acted on by the config's `[actions]`); objects that turn infected are named.
    Rescan(ScanArgs),
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
    /// Files or objects scanned at once [default: twice the number of cores].
    #[arg(short, long)]
    pub jobs: Option<usize>,
    /// Keep the progress of an `s3://` scan in FILE (the last key done in listing order and
    /// the counts so far), and continue from it when FILE exists: after Ctrl-C, rerun the same
    /// command to go on where it stopped.
    #[arg(long, value_name = "FILE")]
    pub resume: Option<PathBuf>,
    /// Folder for spool files [default: the system temp folder].
    #[arg(long, value_name = "DIR")]
    pub temp_dir: Option<PathBuf>,
    /// Keep verdicts in this cache file (redb), by content and the rules' fingerprint, so
    /// files already judged under the same rules are not scanned again (`cached: true`).
    #[arg(long, value_name = "FILE")]
    pub cache: Option<PathBuf>,
    /// Never show a progress bar (it is shown for folder and bucket scans when stderr is a
    /// terminal).
    #[arg(long)]
    pub no_progress: bool,
    /// Expansion limits.
    #[command(flatten)]
    pub limits: LimitArgs,
}

/// Limit flags; each overrides one default. The defaults shown in `--help` are read from
/// [`Limits::default`], so they cannot drift from what the scanner uses.
#[derive(Debug, Args, Default)]
pub struct LimitArgs {
    /// Deepest archive nesting unpacked.
    #[arg(long, value_name = "N", help = shown("Deepest archive nesting unpacked", defaults().max_depth))]
    pub max_depth: Option<u32>,
    /// Most objects (files and archive members) per scanned file.
    #[arg(long, value_name = "N", help = shown("Most objects (files and archive members) per scanned file", defaults().max_files))]
    pub max_files: Option<u64>,
    /// Most bytes expanded per scanned file.
    #[arg(long, value_name = "SIZE", value_parser = parse_size,
          help = shown("Most bytes expanded per scanned file, e.g. 2G", size(defaults().max_scan_size)))]
    pub max_scan_size: Option<u64>,
    /// Largest expanded member.
    #[arg(long, value_name = "SIZE", value_parser = parse_size,
          help = shown("Largest expanded member, e.g. 500M", size(defaults().max_file_size)))]
    pub max_file_size: Option<u64>,
    /// Largest compression ratio.
    #[arg(long, value_name = "N", help = shown("Largest compression ratio", defaults().max_ratio))]
    pub max_ratio: Option<u64>,
    /// Time budget per scanned file, in seconds.
    #[arg(long, value_name = "SECONDS",
          help = shown("Time budget per scanned file, in seconds", defaults().max_scan_time.as_secs()))]
    pub max_scan_time: Option<f64>,
}

fn defaults() -> Limits {
    Limits::default()
}

/// `text [default: value]`, as clap shows defaults.
fn shown(text: &str, value: impl std::fmt::Display) -> String {
    format!("{text} [default: {value}]")
}

/// A size the way `--max-*-size` takes it: `2G`, `512M`, or bytes.
pub(crate) fn size(bytes: u64) -> String {
    for (shift, unit) in [(40, "T"), (30, "G"), (20, "M"), (10, "K")] {
        if bytes >= 1 << shift && bytes.is_multiple_of(1 << shift) {
            return format!("{}{unit}", bytes >> shift);
        }
    }
    bytes.to_string()
}

impl LimitArgs {
    pub(crate) fn apply(&self, mut limits: Limits) -> anyhow::Result<Limits> {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_help_shows_the_scanners_own_defaults() {
        use clap::CommandFactory;
        let mut help = Vec::new();
        let mut cli = Cli::command();
        cli.build();
        let scan = cli.find_subcommand_mut("scan").unwrap();
        scan.write_long_help(&mut help).unwrap();
        let help = String::from_utf8(help).unwrap();
        let limits = Limits::default();
        for shown in [
            format!("[default: {}]", limits.max_depth),
            format!("[default: {}]", limits.max_files),
            format!("[default: {}]", size(limits.max_scan_size)),
            format!("[default: {}]", limits.max_ratio),
        ] {
            assert!(help.contains(&shown), "{shown} missing from:\n{help}");
        }
        assert_eq!(size(2 << 30), "2G");
        assert_eq!(
            parse_size(&size(limits.max_file_size)),
            Ok(limits.max_file_size)
        );
        assert_eq!(size(1000), "1000");
    }
}
