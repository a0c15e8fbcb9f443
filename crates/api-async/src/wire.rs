//! The result of contract section 2, as the original product's clients read it: the polled
//! body and the callback's, built from a [`scan_core::Report`] (or from why there is none) in
//! this one place, where this server's vocabulary meets the contract's.

use scan_core::{Outcome, Report};
use serde::{Deserialize, Serialize};
use storage::actions::ActionReport;
use utoipa::ToSchema;

/// `status`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
#[schema(as = AsyncStatus)]
pub enum Status {
    /// Nothing found, everything examined.
    Clean,
    /// Something found.
    Infected,
    /// Not fully examined (download failed, too large, unreadable, engine failure).
    No,
}

impl Status {
    /// The contract's word for `outcome`: everything not judged clean or infected, read or not,
    /// is `no`.
    pub fn of(outcome: Outcome) -> Self {
        match outcome {
            Outcome::Clean => Status::Clean,
            Outcome::Infected => Status::Infected,
            Outcome::Unscannable | Outcome::Error | Outcome::Unread => Status::No,
        }
    }

    /// The word on the wire, which is also the `jobs_finished` metric's label.
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Clean => "clean",
            Status::Infected => "infected",
            Status::No => "no",
        }
    }
}

/// A job's result: what is polled, stored, and the core of the callback. `realfiletype`,
/// `reason`, `engines`, `object_action`, `fingerprint` and `cached` are additive.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[schema(as = AsyncScanResult)]
pub struct ScanResult {
    /// `clean`, `infected` or `no`.
    pub status: Status,
    /// What was found; only when infected.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub finding: Option<String>,
    /// Size in bytes, when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub size: Option<u64>,
    /// The file's type found from its content (`zip`, `pdf`, `text`...), as the original
    /// product's `realfiletype`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub realfiletype: Option<String>,
    /// Why the status is `no`, for people and logs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// Per-engine results.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub engines: Vec<scan_core::EngineSummary>,
    /// What the `[actions]` policy did to the S3 object afterwards (bucket events, bulk scans,
    /// and requests with `actions.on_requests`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub object_action: Option<ActionReport>,
    /// The fingerprint of the engines and rules that judged it (the `scan-engines` tag); it
    /// changes whenever any engine's rules do.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fingerprint: Option<String>,
    /// Whether the verdict came from the verdict cache (the same bytes judged before under the
    /// same fingerprint).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub cached: bool,
}

impl ScanResult {
    /// The result of a scan.
    pub fn of(report: &Report) -> Self {
        let status = Status::of(report.outcome());
        let finding = (status == Status::Infected).then(|| {
            let mut names: Vec<&str> = Vec::new();
            for d in &report.detections {
                if !names.contains(&d.name.as_str()) {
                    names.push(&d.name);
                }
            }
            names.join(", ")
        });
        ScanResult {
            status,
            finding,
            size: Some(report.size),
            realfiletype: Some(report.file_type.clone()).filter(|t| !t.is_empty()),
            reason: report.error_message(),
            engines: report.engines.clone(),
            object_action: None,
            fingerprint: Some(report.fingerprint.clone()),
            cached: report.cached,
        }
    }

    /// The result of a job whose bytes could not be scanned at all, saying why.
    pub fn not_scanned(reason: impl Into<String>) -> Self {
        ScanResult {
            status: Status::of(Outcome::Unread),
            finding: None,
            size: None,
            realfiletype: None,
            reason: Some(reason.into()),
            engines: Vec::new(),
            object_action: None,
            fingerprint: None,
            cached: false,
        }
    }
}

/// The callback's body: the result, and what identifies the job to its receiver.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CallbackBody {
    /// The result.
    #[serde(flatten)]
    pub result: ScanResult,
    /// Seconds spent downloading.
    pub download_time: f64,
    /// Seconds spent scanning.
    pub scan_time: f64,
    /// What was scanned (the URL, or the object's address).
    pub download_url: String,
    /// The caller's id, when it gave one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trace_id: Option<String>,
    /// The caller's data, untouched.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub custom_data: Option<String>,
    /// The id of the API key that asked (the first 16 hex digits of its SHA-256), inside the
    /// signed body: a receiver that checks it cannot be handed a signed result of another
    /// key's job. Absent for the service's own jobs (SQS events).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key_id: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn reports_map_to_the_contracts_statuses() {
        let scanner =
            engines::build_scanner(&[], scan_core::Limits::default(), Default::default()).unwrap();
        let infected = scanner
            .scan_reader(
                "DemoFiles.zip",
                std::io::Cursor::new(scan_core::testing::demo_files()),
            )
            .await
            .unwrap();
        let body = serde_json::to_value(ScanResult::of(&infected)).unwrap();
        assert_eq!(body["status"], "infected");
        assert_eq!(
            body["finding"], "EICAR_Test_File",
            "one name, however many hits"
        );
        assert_eq!(body["realfiletype"], "zip");
        assert!(body.get("reason").is_none() && body.get("object_action").is_none());

        let clean = scanner.scan_reader("a.txt", &b"text"[..]).await.unwrap();
        let body = serde_json::to_value(ScanResult::of(&clean)).unwrap();
        assert_eq!(body["status"], "clean");
        assert!(body.get("finding").is_none());

        let broken = scanner
            .scan_reader(
                "t.zip",
                std::io::Cursor::new(scan_core::testing::zip(&[("a", b"b")])[..20].to_vec()),
            )
            .await
            .unwrap();
        let body = serde_json::to_value(ScanResult::of(&broken)).unwrap();
        assert_eq!(body["status"], "no");
        assert!(body["reason"].as_str().is_some_and(|r| !r.is_empty()));

        let failed = serde_json::to_value(ScanResult::not_scanned("download failed")).unwrap();
        assert_eq!(
            failed,
            serde_json::json!({"status": "no", "reason": "download failed"})
        );
        // What older versions stored reads back.
        let stored: ScanResult =
            serde_json::from_str(r#"{"status":"clean","size":3,"engines":[]}"#).unwrap();
        assert_eq!(stored.status, Status::Clean);
    }
}
