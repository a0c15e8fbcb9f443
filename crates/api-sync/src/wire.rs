//! The verdict body of contract section 1, as the original product's clients read it: a
//! [`scan_core::Report`] mapped to `dateScanned`, `detectedInfections`, `errorMessage`, `result`
//! and the rest, in the one place this server's vocabulary meets the contract's.

use scan_core::Report;
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use utoipa::ToSchema;

/// One entry of `detectedInfections`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct DetectedInfection {
    /// Path of the infected object, archive members joined by `/`.
    pub file: String,
    /// What was found.
    pub infection: String,
}

/// One engine's part in a scan ([`scan_core::EngineSummary`] in this API's camelCase).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct EngineCounts {
    /// The engine's name.
    pub engine: String,
    /// Objects the engine examined.
    pub objects_scanned: u64,
    /// Objects the engine was meant to see but did not examine (over its size limit).
    pub objects_skipped: u64,
    /// Detections it made.
    pub detections: u64,
    /// Objects on which it failed.
    pub errors: u64,
}

impl From<&scan_core::EngineSummary> for EngineCounts {
    fn from(summary: &scan_core::EngineSummary) -> Self {
        EngineCounts {
            engine: summary.engine.clone(),
            objects_scanned: summary.objects_scanned,
            objects_skipped: summary.objects_skipped,
            detections: summary.detections,
            errors: summary.errors,
        }
    }
}

/// The verdict body (contract section 1). Fields past `result` are additive.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct SyncScanResponse {
    /// UTC, RFC 3339 with a `Z`.
    pub date_scanned: String,
    /// One entry per detection.
    pub detected_infections: Vec<DetectedInfection>,
    /// Why the result is `Unscannable` or `Error`; `null` otherwise.
    pub error_message: Option<String>,
    /// `Clean`, `Infected`, `Unscannable` or `Error`.
    pub result: String,
    /// The type found from the content.
    pub true_file_type: String,
    /// Size in bytes.
    pub size: u64,
    /// SHA-256, hex.
    pub sha256: String,
    /// Per-engine results.
    pub engines: Vec<EngineCounts>,
    /// The fingerprint of the engines and rules that judged it; it changes whenever any
    /// engine's rules do.
    pub fingerprint: String,
    /// Whether the verdict came from the verdict cache (the same bytes judged before under the
    /// same fingerprint) instead of running the engines.
    pub cached: bool,
}

impl From<&Report> for SyncScanResponse {
    fn from(report: &Report) -> Self {
        SyncScanResponse {
            date_scanned: format_date(report.scanned_at),
            detected_infections: report
                .detections
                .iter()
                .map(|d| DetectedInfection {
                    file: d.path.clone(),
                    infection: d.name.clone(),
                })
                .collect(),
            error_message: report.error_message(),
            result: report.verdict.as_str().to_owned(),
            true_file_type: report.file_type.clone(),
            size: report.size,
            sha256: report.sha256.clone(),
            engines: report.engines.iter().map(EngineCounts::from).collect(),
            fingerprint: report.fingerprint.clone(),
            cached: report.cached,
        }
    }
}

/// `dateScanned` as the original service writes it: UTC, RFC 3339, seven fractional digits, `Z`.
pub(crate) fn format_date(at: OffsetDateTime) -> String {
    let at = at.to_offset(time::UtcOffset::UTC);
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:07}Z",
        at.year(),
        u8::from(at.month()),
        at.day(),
        at.hour(),
        at.minute(),
        at.second(),
        at.nanosecond() / 100
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_have_seven_fractional_digits_in_utc() {
        let at = OffsetDateTime::from_unix_timestamp(1_796_173_323)
            .unwrap()
            .replace_nanosecond(123_456_789)
            .unwrap()
            .to_offset(time::UtcOffset::from_hms(2, 0, 0).unwrap());
        assert_eq!(format_date(at), "2026-12-02T01:02:03.1234567Z");
    }

    #[tokio::test]
    async fn a_report_maps_to_the_contracts_fields() {
        let scanner =
            engines::build_scanner(&[], scan_core::Limits::default(), Default::default()).unwrap();
        let report = scanner
            .scan_reader(
                "DemoFiles.zip",
                std::io::Cursor::new(scan_core::testing::demo_files()),
            )
            .await
            .unwrap();
        let body = serde_json::to_value(SyncScanResponse::from(&report)).unwrap();
        assert_eq!(body["result"], "Infected");
        assert_eq!(body["errorMessage"], serde_json::Value::Null);
        assert_eq!(body["trueFileType"], "zip");
        assert_eq!(body["detectedInfections"].as_array().unwrap().len(), 4);
        assert_eq!(
            body["detectedInfections"][0]["file"],
            report.detections[0].path
        );
        assert_eq!(body["engines"][0]["engine"], "yara");
        assert_eq!(body["sha256"].as_str().unwrap().len(), 64);
        let date = body["dateScanned"].as_str().unwrap();
        assert!(date.ends_with('Z') && date.len() == 28, "{date}");

        let clean = scanner.scan_reader("a.txt", &b"text"[..]).await.unwrap();
        let body = serde_json::to_value(SyncScanResponse::from(&clean)).unwrap();
        assert_eq!(body["result"], "Clean");
        assert_eq!(body["detectedInfections"], serde_json::json!([]));
    }
}
