//! Expansion limits: how deep, how many, how big and how long one scan may go before it stops
//! and says which limit it hit.

use std::time::Duration;

use serde::{Deserialize, Serialize};

/// A limit that stopped part of a scan. The names follow ClamAV's `Heuristics.Limits.Exceeded.*`
/// so operators recognise them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[non_exhaustive]
pub enum Limit {
    /// Archives nested deeper than [`Limits::max_depth`].
    MaxRecursion,
    /// More objects in one scan than [`Limits::max_files`].
    MaxFiles,
    /// More bytes expanded in one scan than [`Limits::max_scan_size`].
    MaxScanSize,
    /// One member larger than [`Limits::max_file_size`].
    MaxFileSize,
    /// One member expanding more than [`Limits::max_ratio`] times its compressed size.
    MaxCompressionRatio,
    /// The scan ran longer than [`Limits::max_scan_time`].
    MaxScanTime,
    /// Several zip entries share the same bytes: the overlapping-entry bomb technique.
    ZipOverlappingEntries,
}

impl Limit {
    /// The signature-like name reported to users, e.g. `Heuristics.Limits.Exceeded.MaxFiles`.
    pub fn heuristic_name(self) -> &'static str {
        match self {
            Limit::MaxRecursion => "Heuristics.Limits.Exceeded.MaxRecursion",
            Limit::MaxFiles => "Heuristics.Limits.Exceeded.MaxFiles",
            Limit::MaxScanSize => "Heuristics.Limits.Exceeded.MaxScanSize",
            Limit::MaxFileSize => "Heuristics.Limits.Exceeded.MaxFileSize",
            Limit::MaxCompressionRatio => "Heuristics.Limits.Exceeded.MaxCompressionRatio",
            Limit::MaxScanTime => "Heuristics.Limits.Exceeded.MaxScanTime",
            Limit::ZipOverlappingEntries => "Heuristics.Zip.OverlappingFiles",
        }
    }

    /// Whether hitting this limit ends the whole scan (as opposed to one branch of the tree).
    /// Scan-wide budgets end everything: going on would only spend more of what ran out.
    pub fn ends_scan(self) -> bool {
        matches!(
            self,
            Limit::MaxFiles | Limit::MaxScanSize | Limit::MaxScanTime
        )
    }
}

impl std::fmt::Display for Limit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.heuristic_name())
    }
}

/// Bounds on one scan. Defaults follow the spirit of ClamAV's, raised where modern uploads
/// need it; every one is configurable.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Limits {
    /// Deepest archive nesting unpacked; the root is depth 0.
    pub max_depth: u32,
    /// Most objects (root and every member at any depth) in one scan.
    pub max_files: u64,
    /// Most bytes produced by expansion in one scan, all members together.
    pub max_scan_size: u64,
    /// Largest single expanded member.
    pub max_file_size: u64,
    /// Largest expanded/compressed ratio, checked for each member against the compressed bytes
    /// it consumed, and for the whole scan against the root's size, once more than
    /// [`Limits::ratio_floor`] bytes were produced (small, very compressible files are normal).
    pub max_ratio: u64,
    /// Bytes a member may produce before the ratio check applies.
    pub ratio_floor: u64,
    /// Wall-clock budget for the whole scan; `max_scan_time_secs` in a configuration file
    /// (`max_scan_time`, without the unit, is read as well).
    #[serde(
        with = "duration_secs",
        rename = "max_scan_time_secs",
        alias = "max_scan_time"
    )]
    pub max_scan_time: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_depth: 16,
            max_files: 10_000,
            max_scan_size: 2 << 30,
            max_file_size: 1 << 30,
            max_ratio: 250,
            ratio_floor: 8 << 20,
            max_scan_time: Duration::from_secs(120),
        }
    }
}

mod duration_secs {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer, Serializer};

    pub(super) fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_f64(d.as_secs_f64())
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        let secs = f64::deserialize(d)?;
        Duration::try_from_secs_f64(secs).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_time_budget_carries_its_unit_and_the_old_key_is_still_read() {
        let limits: Limits = serde_json::from_str(r#"{"max_scan_time_secs": 2.5}"#).unwrap();
        assert_eq!(limits.max_scan_time, Duration::from_millis(2500));
        let old: Limits = serde_json::from_str(r#"{"max_scan_time": 30}"#).unwrap();
        assert_eq!(old.max_scan_time, Duration::from_secs(30));
        let written = serde_json::to_value(Limits::default()).unwrap();
        assert_eq!(written["max_scan_time_secs"], 120.0);
    }
}
