//! What both servers tell of their engines' freshness: each engine with its rule count, set
//! version and load time, the fingerprint, rule reloads and the verdict cache, as `/health`'s
//! JSON and as metric lines.

use scan_core::Scanner;
use serde_json::{Value, json};

/// How the rule reloads have gone since start (from the engines crate's reloader).
#[derive(Debug, Clone, Copy, Default)]
pub struct Reloads {
    /// Sets built and installed.
    pub installed: u64,
    /// Sets refused (a file did not load or compile); the one in use stayed.
    pub refused: u64,
}

/// `{"fingerprint", "since", "engines": [{"name", "rules", "version", "loaded_at"}]}`.
pub fn engines_json(scanner: &Scanner) -> Value {
    let set = scanner.engine_set();
    let engines: Vec<Value> = set
        .names()
        .zip(set.signatures())
        .map(|(name, held)| {
            json!({
                "name": name,
                "rules": held.count,
                "version": held.version,
                "loaded_at": held.loaded_at.and_then(|at| at.format(&time::format_description::well_known::Rfc3339).ok()),
            })
        })
        .collect();
    json!({
        "fingerprint": set.fingerprint(),
        "since": set.since().format(&time::format_description::well_known::Rfc3339).ok(),
        "engines": engines,
    })
}

/// Prometheus text lines (`verdict_engine_rules`, `verdict_rule_reloads_total`,
/// `verdict_cache_total`) for the rule sets, reloads and the verdict cache, put in before the
/// exposition's closing `# EOF` so the whole stays valid.
pub fn append_metrics(text: &mut String, scanner: &Scanner, reloads: Reloads) {
    let body_end = text.rfind("# EOF").unwrap_or(text.len());
    let tail = text.split_off(body_end);
    let set = scanner.engine_set();
    let cache = scanner.cache_stats();
    text.push_str("# HELP verdict_engine_rules Rules or signatures each engine holds.\n");
    text.push_str("# TYPE verdict_engine_rules gauge\n");
    for (name, held) in set.names().zip(set.signatures()) {
        if let Some(count) = held.count {
            text.push_str(&format!(
                "verdict_engine_rules{{engine=\"{}\",version=\"{}\"}} {count}\n",
                label(name),
                label(&held.version)
            ));
        }
    }
    text.push_str("# HELP verdict_rule_reloads Rule reloads by outcome.\n");
    text.push_str("# TYPE verdict_rule_reloads counter\n");
    text.push_str(&format!(
        "verdict_rule_reloads_total{{outcome=\"installed\"}} {}\n",
        reloads.installed
    ));
    text.push_str(&format!(
        "verdict_rule_reloads_total{{outcome=\"refused\"}} {}\n",
        reloads.refused
    ));
    text.push_str("# HELP verdict_cache Verdict cache lookups by outcome.\n");
    text.push_str("# TYPE verdict_cache counter\n");
    for (outcome, count) in [
        ("hit", cache.hits),
        ("miss", cache.misses),
        ("error", cache.errors),
    ] {
        text.push_str(&format!(
            "verdict_cache_total{{outcome=\"{outcome}\"}} {count}\n"
        ));
    }
    text.push_str(&tail);
}

/// A label value with `\`, `"` and line ends escaped, as the exposition format asks.
fn label(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}
