//! Landmarks: the magic numbers the search for embedded carriers starts from, and where in one
//! object an engine that reads every byte anyway found them, so that the walker need not read
//! the object once more to find them itself.
//!
//! The search for carriers inside an object no format opens (an executable in an image, a RAR
//! behind a self-extractor's stub) is a pass over every byte, and runs at memory speed: it
//! cannot be made cheaper, only shared. A YARA engine with string rules already passes over
//! every byte; looking for four more patterns there costs nothing measurable. What the engine
//! reports must be every occurrence: the walker trusts it as it would its own search, and a
//! missing one is a carrier not found.

use std::sync::OnceLock;

/// One landmark pattern.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum LandmarkKind {
    /// `PE\0\0`, a Windows executable's signature. Its `MZ` header lies at most 64 KiB before
    /// it; `MZ` itself is too short a pattern for a searcher that looks at four bytes at a
    /// time.
    PeSignature,
    /// A RAR archive's marker.
    Rar,
    /// A 7z archive's signature.
    SevenZip,
    /// A cabinet's signature, with its reserved field.
    Cabinet,
}

/// How far a Windows executable's `PE\0\0` signature may lie after its `MZ` header (its
/// `e_lfanew`) for the executable to be taken.
pub(crate) const MAX_PE_HEADER_OFFSET: usize = 64 << 10;

impl LandmarkKind {
    /// Every landmark.
    pub const ALL: [LandmarkKind; 4] = [
        LandmarkKind::PeSignature,
        LandmarkKind::Rar,
        LandmarkKind::SevenZip,
        LandmarkKind::Cabinet,
    ];

    /// The exact bytes to find.
    pub fn bytes(self) -> &'static [u8] {
        match self {
            LandmarkKind::PeSignature => b"PE\0\0",
            LandmarkKind::Rar => b"Rar!\x1A\x07",
            LandmarkKind::SevenZip => b"7z\xBC\xAF\x27\x1C",
            LandmarkKind::Cabinet => b"MSCF\0\0\0\0",
        }
    }

    /// A short name, usable as an identifier (a YARA pattern's name, without its `$`).
    pub fn name(self) -> &'static str {
        match self {
            LandmarkKind::PeSignature => "pe",
            LandmarkKind::Rar => "rar",
            LandmarkKind::SevenZip => "sevenz",
            LandmarkKind::Cabinet => "cab",
        }
    }

    /// The landmark called `name` ([`LandmarkKind::name`]).
    pub fn named(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|kind| kind.name() == name)
    }
}

/// Where the landmarks occur in one object, once an engine has reported them.
#[derive(Debug, Default)]
pub struct Landmarks {
    found: OnceLock<Vec<(usize, LandmarkKind)>>,
}

impl Landmarks {
    /// At most this many occurrences are taken. Past it the report is refused and the walker
    /// searches on its own, which costs a pass but stores nothing: hostile data full of
    /// magic numbers cannot make the list grow with the object.
    pub const MAX: usize = 4096;

    /// Reports where the landmarks occur in the object: every occurrence of every
    /// [`LandmarkKind`], as (offset, kind), in any order. Only an engine that searched every
    /// byte of the object, and kept every match, may report. The first report is kept; `false`
    /// if this one was not (another came first, or it holds more than [`Landmarks::MAX`]).
    pub fn report(&self, mut found: Vec<(usize, LandmarkKind)>) -> bool {
        if found.len() > Self::MAX {
            return false;
        }
        found.sort_unstable_by_key(|&(at, _)| at);
        self.found.set(found).is_ok()
    }

    /// What was reported, in order of offset; `None` if nothing was.
    pub fn found(&self) -> Option<&[(usize, LandmarkKind)]> {
        self.found.get().map(Vec::as_slice)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_landmark_is_found_by_its_name_and_reports_are_sorted_and_bounded() {
        for kind in LandmarkKind::ALL {
            assert_eq!(LandmarkKind::named(kind.name()), Some(kind));
        }
        assert_eq!(LandmarkKind::named("mz"), None);

        let landmarks = Landmarks::default();
        assert_eq!(landmarks.found(), None);
        let found = vec![(90, LandmarkKind::Rar), (7, LandmarkKind::PeSignature)];
        assert!(landmarks.report(found));
        let sorted = [(7, LandmarkKind::PeSignature), (90, LandmarkKind::Rar)];
        assert_eq!(landmarks.found(), Some(&sorted[..]));
        // The first report stands.
        assert!(!landmarks.report(Vec::new()));
        assert_eq!(landmarks.found(), Some(&sorted[..]));

        let too_many = vec![(0, LandmarkKind::Cabinet); Landmarks::MAX + 1];
        let refused = Landmarks::default();
        assert!(!refused.report(too_many));
        assert_eq!(refused.found(), None);
    }
}
