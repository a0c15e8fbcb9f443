//! `YaraEngine`: YARA rules through yara-x, compiled once and shared, scanned with one yara-x
//! `Scanner` per thread (creating a scanner per object is ten times slower; sharing one behind a
//! lock would serialise every scan).

use std::cell::RefCell;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use scan_core::{Detection, Engine, EngineError, LandmarkKind, Landmarks, ScanObject, Signatures};
use yara_x::{Compiler, Rules, SourceCode};

/// Rules that are always loaded: they detect the EICAR test file, so every deployment can be
/// checked end to end without real malware. EICAR is defined as 68 bytes at offset 0 of a file
/// of at most 128 bytes, so the rule compares words at fixed offsets and has no strings: yara-x
/// then never searches the data, and a 1 GB object costs nothing here. (It also keeps the
/// signature out of this source file as text.)
const BUILTIN_RULES: &str = r#"
rule EICAR_Test_File {
    meta:
        description = "EICAR anti-virus test file (not malware)"
    condition:
        filesize >= 68 and filesize <= 128 and
        uint32be(0) == 0x58354f21 and
        uint32be(4) == 0x50254041 and
        uint32be(8) == 0x505b345c and
        uint32be(12) == 0x505a5835 and
        uint32be(16) == 0x3428505e and
        uint32be(20) == 0x29374343 and
        uint32be(24) == 0x29377d24 and
        uint32be(28) == 0x45494341 and
        uint32be(32) == 0x522d5354 and
        uint32be(36) == 0x414e4441 and
        uint32be(40) == 0x52442d41 and
        uint32be(44) == 0x4e544956 and
        uint32be(48) == 0x49525553 and
        uint32be(52) == 0x2d544553 and
        uint32be(56) == 0x542d4649 and
        uint32be(60) == 0x4c452124 and
        uint32be(64) == 0x482b482a
}
"#;

/// The YARA engine could not be built.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum YaraError {
    /// A rules file or folder could not be read.
    #[error("cannot read YARA rules from {path}: {source}")]
    Read {
        /// The file or folder.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// A folder held no `.yar`/`.yara` file.
    #[error("no .yar or .yara files under {0}")]
    NoRules(PathBuf),
    /// A rule did not compile.
    #[error("YARA rules from {origin} do not compile: {message}")]
    Compile {
        /// Which file (or source name).
        origin: String,
        /// The compiler's message, with line and column.
        message: String,
    },
}

/// Builds a [`YaraEngine`] from rule files, folders and sources.
#[derive(Debug, Default)]
pub struct YaraEngineBuilder {
    sources: Vec<(String, String)>,
    timeout: Option<Duration>,
}

impl YaraEngineBuilder {
    /// Adds a rules file, or every `.yar`/`.yara` file under a folder (recursively, in name order
    /// so compilation is reproducible).
    pub fn add_path(mut self, path: &Path) -> Result<Self, YaraError> {
        let read_err = |source| YaraError::Read {
            path: path.to_owned(),
            source,
        };
        let meta = std::fs::metadata(path).map_err(read_err)?;
        let files: Vec<PathBuf> = if meta.is_dir() {
            let mut files = Vec::new();
            for entry in walkdir::WalkDir::new(path).sort_by_file_name() {
                let entry = entry.map_err(|e| read_err(e.into()))?;
                let is_rules = entry.path().extension().is_some_and(|ext| {
                    ext.eq_ignore_ascii_case("yar") || ext.eq_ignore_ascii_case("yara")
                });
                if entry.file_type().is_file() && is_rules {
                    files.push(entry.into_path());
                }
            }
            if files.is_empty() {
                return Err(YaraError::NoRules(path.to_owned()));
            }
            files
        } else {
            vec![path.to_owned()]
        };
        for file in files {
            let source = std::fs::read_to_string(&file).map_err(|source| YaraError::Read {
                path: file.clone(),
                source,
            })?;
            self.sources.push((file.display().to_string(), source));
        }
        Ok(self)
    }

    /// Adds rules from a string; `origin` names them in compile errors.
    pub fn add_source(mut self, origin: &str, source: &str) -> Self {
        self.sources.push((origin.to_owned(), source.to_owned()));
        self
    }

    /// Stops scanning one object after this long (the object is then reported as not examined
    /// by this engine). Default: 60 seconds.
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = Some(timeout);
        self
    }

    /// Compiles the built-in rules and every added source into one rule set.
    ///
    /// When the rules hold patterns, yara-x reads every byte of every object to find them, and
    /// the landmarks the scanner's search for embedded carriers starts from are added as a
    /// private rule of our own: four more patterns on a pass that happens anyway cost nothing
    /// measurable, and spare the scanner a pass of its own. Rules without patterns (the
    /// built-in one alone) are never searched, and are compiled again without it, so that
    /// they stay free.
    pub fn build(self) -> Result<YaraEngine, YaraError> {
        let mut rules = self.compile(true)?;
        let searched = rules.iter().any(|rule| {
            !is_landmark_rule(&rule) && rule.patterns().include_private(true).len() > 0
        });
        if !searched {
            rules = self.compile(false)?;
        }
        let rule_count = rules.iter().filter(|rule| !is_landmark_rule(rule)).count();
        let version = set_hash(&self.sources);
        tracing::info!(
            rules = rule_count,
            files = self.sources.len(),
            version,
            landmarks = searched,
            "YARA rules compiled"
        );
        Ok(YaraEngine {
            id: NEXT_ENGINE_ID.fetch_add(1, Ordering::Relaxed),
            rule_count,
            signatures: Signatures::loaded(Some(rule_count as u64), version),
            rules: Arc::new(rules),
            landmarks: searched,
            timeout: self.timeout.unwrap_or(Duration::from_secs(60)),
        })
    }

    fn compile(&self, with_landmarks: bool) -> Result<Rules, YaraError> {
        let mut compiler = Compiler::new();
        compiler.new_namespace("verdict");
        let mut ours = vec![("built-in rules", BUILTIN_RULES.to_owned())];
        if with_landmarks {
            ours.push(("landmark rule", landmark_rule()));
        }
        for (origin, source) in ours {
            compiler
                .add_source(SourceCode::from(source.as_str()).with_origin(origin))
                .map_err(|e| YaraError::Compile {
                    origin: origin.to_owned(),
                    message: e.to_string(),
                })?;
        }
        compiler.new_namespace("default");
        for (origin, source) in &self.sources {
            compiler
                .add_source(SourceCode::from(source.as_str()).with_origin(origin.as_str()))
                .map_err(|e| YaraError::Compile {
                    origin: origin.clone(),
                    message: e.to_string(),
                })?;
        }
        Ok(compiler.build())
    }
}

/// The private rule, in our own namespace, whose patterns are the landmarks.
const LANDMARK_RULE: &str = "verdict_landmarks";

/// yara-x's own default, set here so that it is known to stay above [`Landmarks::MAX`]: a
/// pattern stopped at the cap would look like one with fewer matches.
const MATCHES_PER_PATTERN: usize = 1_000_000;
const _: () = assert!(MATCHES_PER_PATTERN > Landmarks::MAX);

/// The landmark rule's source, made from [`LandmarkKind::ALL`] so that it finds exactly what
/// the scanner's own search would.
fn landmark_rule() -> String {
    let patterns: String = LandmarkKind::ALL
        .iter()
        .map(|kind| {
            let hex: Vec<String> = kind.bytes().iter().map(|b| format!("{b:02X}")).collect();
            format!("    ${} = {{ {} }}\n", kind.name(), hex.join(" "))
        })
        .collect();
    format!(
        "private rule {LANDMARK_RULE} {{\n  strings:\n{patterns}  condition:\n    any of them\n}}\n"
    )
}

fn is_landmark_rule(rule: &yara_x::Rule<'_, '_>) -> bool {
    rule.namespace() == "verdict" && rule.identifier() == LANDMARK_RULE
}

/// Reports every landmark the scan found, or nothing if they cannot all be told: a pattern
/// the landmark rule does not name, or more matches than a report holds.
fn report_landmarks(results: &yara_x::ScanResults<'_, '_>, landmarks: &Landmarks) {
    let Some(rule) = results
        .matching_rules()
        .include_private(true)
        .find(|rule| is_landmark_rule(rule))
    else {
        // `any of them` is false: not one landmark in the object.
        landmarks.report(Vec::new());
        return;
    };
    let mut found = Vec::new();
    for pattern in rule.patterns().include_private(true) {
        let Some(kind) = LandmarkKind::named(pattern.identifier().trim_start_matches('$')) else {
            return;
        };
        let matches = pattern.matches();
        if found.len() + matches.len() > Landmarks::MAX {
            return;
        }
        found.extend(matches.map(|m| (m.range().start, kind)));
    }
    landmarks.report(found);
}

/// YARA rules through yara-x.
pub struct YaraEngine {
    /// Distinguishes this engine's per-thread scanners from another instance's.
    id: u64,
    rules: Arc<Rules>,
    rule_count: usize,
    signatures: Signatures,
    /// Whether the rules hold the landmark rule (see [`YaraEngineBuilder::build`]).
    landmarks: bool,
    timeout: Duration,
}

/// The first 16 hex digits of a SHA-256 over the built-in rules and every source with its
/// origin: the same files give the same set, whenever and wherever they are compiled.
fn set_hash(sources: &[(String, String)]) -> String {
    use sha2::Digest;
    let mut hash = sha2::Sha256::new();
    hash.update(BUILTIN_RULES.as_bytes());
    for (origin, source) in sources {
        hash.update([0]);
        hash.update(origin.as_bytes());
        hash.update([0]);
        hash.update(source.as_bytes());
    }
    hex::encode(&hash.finalize()[..8])
}

impl std::fmt::Debug for YaraEngine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("YaraEngine")
            .field("rules", &self.rule_count)
            .finish()
    }
}

static NEXT_ENGINE_ID: AtomicU64 = AtomicU64::new(0);

type BorrowedScanner<'a> = yara_x::Scanner<'a>;

self_cell::self_cell!(
    /// A yara-x scanner together with the rules it borrows, so it can live in a thread-local.
    struct ThreadScanner {
        owner: Arc<Rules>,
        #[not_covariant]
        dependent: BorrowedScanner,
    }
);

thread_local! {
    static SCANNERS: RefCell<Vec<(u64, ThreadScanner)>> = const { RefCell::new(Vec::new()) };
}

impl YaraEngine {
    /// Starts building an engine.
    pub fn builder() -> YaraEngineBuilder {
        YaraEngineBuilder::default()
    }

    /// An engine with only the built-in rules.
    pub fn builtin() -> Result<Self, YaraError> {
        Self::builder().build()
    }

    /// How many rules are loaded, built-in ones included.
    pub fn rule_count(&self) -> usize {
        self.rule_count
    }

    /// Scans bytes with this thread's scanner, creating it on first use.
    pub fn scan_bytes(&self, data: &[u8]) -> Result<Vec<Detection>, EngineError> {
        self.scan_reporting(data, None)
    }

    /// Scans bytes, and reports the landmarks found in them to `landmarks` when the rules
    /// search for them.
    fn scan_reporting(
        &self,
        data: &[u8],
        landmarks: Option<&Landmarks>,
    ) -> Result<Vec<Detection>, EngineError> {
        SCANNERS.with_borrow_mut(|scanners| {
            let slot = match scanners.iter().position(|(id, _)| *id == self.id) {
                Some(slot) => slot,
                None => {
                    // Scanners of engines that no longer exist hold the only other reference to
                    // their rules; drop them instead of keeping dead rule sets alive.
                    scanners.retain(|(_, s)| Arc::strong_count(s.borrow_owner()) > 1);
                    let timeout = self.timeout;
                    let scanner = ThreadScanner::new(Arc::clone(&self.rules), |rules| {
                        let mut scanner = yara_x::Scanner::new(rules);
                        scanner.set_timeout(timeout);
                        // Landmarks must be every match: never fast mode (first match per
                        // pattern), and a per-pattern cap above what a report holds.
                        scanner.fast_scan(false);
                        scanner.max_matches_per_pattern(MATCHES_PER_PATTERN);
                        scanner
                    });
                    scanners.push((self.id, scanner));
                    scanners.len() - 1
                }
            };
            scanners[slot].1.with_dependent_mut(|_, scanner| {
                let results = scanner.scan(data).map_err(|e| match e {
                    yara_x::ScanError::Timeout => EngineError::Timeout(self.timeout),
                    other => EngineError::Failed(other.to_string()),
                })?;
                if let Some(landmarks) = landmarks.filter(|_| self.landmarks) {
                    report_landmarks(&results, landmarks);
                }
                // Private rules (the landmark rule among them) are never detections.
                Ok(results
                    .matching_rules()
                    .map(|rule| Detection::named(detection_name(&rule)))
                    .collect())
            })
        })
    }
}

/// The rule's name, qualified by its namespace unless it is one of ours.
fn detection_name(rule: &yara_x::Rule<'_, '_>) -> String {
    match rule.namespace() {
        "default" | "verdict" => rule.identifier().to_owned(),
        namespace => format!("{namespace}.{}", rule.identifier()),
    }
}

#[async_trait]
impl Engine for YaraEngine {
    fn name(&self) -> &str {
        "yara"
    }

    async fn scan(&self, object: &ScanObject<'_>) -> Result<Vec<Detection>, EngineError> {
        self.scan_reporting(object.data, object.landmarks)
    }

    async fn health(&self) -> Result<String, EngineError> {
        Ok(format!("yara-x, {} rules", self.rule_count))
    }

    fn signatures(&self) -> Signatures {
        self.signatures.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every landmark in `data`, found one pattern at a time: what the rule must report.
    fn every_landmark(data: &[u8]) -> Vec<(usize, LandmarkKind)> {
        let mut found: Vec<_> = LandmarkKind::ALL
            .into_iter()
            .flat_map(|kind| {
                data.windows(kind.bytes().len())
                    .enumerate()
                    .filter(move |(_, w)| *w == kind.bytes())
                    .map(move |(at, _)| (at, kind))
            })
            .collect();
        found.sort_unstable_by_key(|&(at, _)| at);
        found
    }

    fn with_string_rule() -> YaraEngine {
        YaraEngine::builder()
            .add_source(
                "test.yar",
                r#"rule Marker { strings: $m = "VERDICT-MARKER" condition: $m }"#,
            )
            .build()
            .unwrap()
    }

    #[test]
    fn rules_with_patterns_report_every_landmark_and_never_as_a_detection() {
        let engine = with_string_rule();
        assert_eq!(
            engine.rule_count(),
            2,
            "the marker rule and the built-in one"
        );
        let mut data: Vec<u8> = (0..20_000u32).map(|i| (i * 131 % 251) as u8).collect();
        for (at, kind) in [
            (100, LandmarkKind::PeSignature),
            (5_000, LandmarkKind::Rar),
            (5_100, LandmarkKind::PeSignature),
            (9_000, LandmarkKind::SevenZip),
            (15_000, LandmarkKind::Cabinet),
        ] {
            data[at..at + kind.bytes().len()].copy_from_slice(kind.bytes());
        }
        // Near misses, which are not landmarks.
        data[12_000..12_004].copy_from_slice(b"PE\0\x01");
        data[13_000..13_008].copy_from_slice(b"MSCF\0\0\0\x01");
        let expected = every_landmark(&data);
        assert_eq!(expected.len(), 5);

        let landmarks = Landmarks::default();
        let detections = engine.scan_reporting(&data, Some(&landmarks)).unwrap();
        assert!(detections.is_empty(), "{detections:?}");
        assert_eq!(landmarks.found(), Some(&expected[..]));

        // Data without any: reported as none at all, which spares the search too.
        let none = Landmarks::default();
        engine
            .scan_reporting(b"VERDICT-MARKER, plain", Some(&none))
            .unwrap();
        assert_eq!(none.found(), Some(&[][..]));
    }

    #[test]
    fn rules_without_patterns_stay_unsearched_and_report_nothing() {
        let engine = YaraEngine::builtin().unwrap();
        assert_eq!(engine.rule_count(), 1);
        assert!(!engine.landmarks);
        let landmarks = Landmarks::default();
        engine
            .scan_reporting(b"xxPE\0\0xxRar!\x1A\x07", Some(&landmarks))
            .unwrap();
        assert_eq!(landmarks.found(), None, "the scanner searches on its own");
    }

    #[test]
    fn more_landmarks_than_a_report_holds_are_not_reported() {
        let engine = with_string_rule();
        let data = b"PE\0\0".repeat(Landmarks::MAX + 1);
        let landmarks = Landmarks::default();
        engine.scan_reporting(&data, Some(&landmarks)).unwrap();
        assert_eq!(landmarks.found(), None);
        // One fewer fits.
        let fits = Landmarks::default();
        engine.scan_reporting(&data[4..], Some(&fits)).unwrap();
        assert_eq!(fits.found().map(<[_]>::len), Some(Landmarks::MAX));
    }

    #[test]
    fn the_landmark_rule_is_made_of_the_landmarks() {
        let source = landmark_rule();
        assert!(source.contains("$pe = { 50 45 00 00 }"), "{source}");
        assert!(
            source.contains("$cab = { 4D 53 43 46 00 00 00 00 }"),
            "{source}"
        );
    }
}
