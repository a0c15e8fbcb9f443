//! The one place where compressed bytes become expanded bytes, and every byte that comes out
//! is counted against the scan's limits. Raw stream decoders are banned everywhere else
//! (`clippy.toml`, `disallowed-types`), so no code path can inflate without a cap.

#![allow(clippy::disallowed_types)]

mod arj;
mod cab;
mod chm;
mod filters;
mod lzma;
mod lzo;
mod nrv;
mod ovba;

pub(crate) use cab::{CabCompression, CabFolder};
pub(crate) use chm::{ChmLzx, ChmSection, FRAME as CHM_FRAME};
pub(crate) use filters::{Predicted, Prediction};
pub(crate) use lzo::lzo1x;

use std::cell::Cell;
use std::io::{self, Read, Seek, SeekFrom};
use std::rc::Rc;
use std::time::Instant;

use crate::limits::{Limit, Limits};

/// The most memory any one decoder may ask for (an LZMA dictionary, say), in bytes; the same
/// bound as 7z's. Standard presets need at most 64 MiB.
pub(crate) const DECODER_MEMORY_LIMIT: u64 = 256 << 20;

/// The scan-wide budget: what all members of one scan have used so far.
#[derive(Debug)]
pub(crate) struct Budget {
    pub(crate) limits: Limits,
    pub(crate) deadline: Instant,
    pub(crate) expanded: Cell<u64>,
    /// Size of the root object: all expansion together is also held to the ratio limit against
    /// it, which is what stops nested bombs whose every single member looks harmless.
    root_size: u64,
}

impl Budget {
    /// Counts `n` more decoded bytes of a member that has produced `produced` in all from
    /// `input` compressed bytes (`None`: stored, no ratio), and names the limit they pass.
    pub(crate) fn charge(&self, produced: u64, n: u64, input: Option<u64>) -> Result<(), LimitHit> {
        let limits = &self.limits;
        if produced > limits.max_file_size {
            return Err(LimitHit(Limit::MaxFileSize));
        }
        let expanded = self.expanded.get() + n;
        self.expanded.set(expanded);
        if expanded > limits.max_scan_size {
            return Err(LimitHit(Limit::MaxScanSize));
        }
        if self.overall_ratio_exceeded(expanded) {
            return Err(LimitHit(Limit::MaxCompressionRatio));
        }
        if let Some(input) = input
            && produced > limits.ratio_floor
            && produced / input.max(1) > limits.max_ratio
        {
            return Err(LimitHit(Limit::MaxCompressionRatio));
        }
        Ok(())
    }

    pub(crate) fn new(limits: Limits, root_size: u64) -> Self {
        let deadline = Instant::now() + limits.max_scan_time;
        Budget {
            limits,
            deadline,
            expanded: Cell::new(0),
            root_size,
        }
    }

    /// Whether `expanded` bytes from the whole root exceed the ratio limit.
    pub(crate) fn overall_ratio_exceeded(&self, expanded: u64) -> bool {
        expanded > self.limits.ratio_floor
            && expanded / self.root_size.max(1) > self.limits.max_ratio
    }

    pub(crate) fn check_time(&self) -> Result<(), LimitHit> {
        if Instant::now() > self.deadline {
            Err(LimitHit(Limit::MaxScanTime))
        } else {
            Ok(())
        }
    }
}

/// A limit hit while reading, carried through `io::Error` so it survives any decoder between
/// us and the caller.
#[derive(Debug, Clone, Copy, thiserror::Error)]
#[error("{0}")]
pub(crate) struct LimitHit(pub(crate) Limit);

impl LimitHit {
    /// Finds a limit hit inside an I/O error, however it was wrapped.
    pub(crate) fn from_io(err: &io::Error) -> Option<Limit> {
        let mut source: Option<&(dyn std::error::Error + 'static)> = err
            .get_ref()
            .map(|e| e as &(dyn std::error::Error + 'static));
        while let Some(e) = source {
            if let Some(hit) = e.downcast_ref::<LimitHit>() {
                return Some(hit.0);
            }
            if let Some(io) = e.downcast_ref::<io::Error>()
                && let Some(limit) = LimitHit::from_io(io)
            {
                return Some(limit);
            }
            source = e.source();
        }
        None
    }
}

impl From<LimitHit> for io::Error {
    fn from(hit: LimitHit) -> Self {
        io::Error::other(hit)
    }
}

/// Counts the compressed bytes a decoder pulls from beneath it, so the ratio of what comes
/// out to what went in can be checked while decoding, not after.
#[derive(Debug, Clone, Default)]
pub(crate) struct Consumed(Rc<Cell<u64>>);

impl Consumed {
    pub(crate) fn get(&self) -> u64 {
        self.0.get()
    }
}

/// A reader (usually a cursor over the parent's bytes) that adds what it reads to a [`Consumed`].
#[derive(Debug)]
pub(crate) struct Counting<R> {
    inner: R,
    consumed: Consumed,
}

impl<R> Counting<R> {
    pub(crate) fn new(inner: R) -> (Self, Consumed) {
        let consumed = Consumed::default();
        (
            Counting {
                inner,
                consumed: consumed.clone(),
            },
            consumed,
        )
    }
}

impl<R: Read> Read for Counting<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.consumed.0.set(self.consumed.0.get() + n as u64);
        Ok(n)
    }
}

impl<R: Seek> Seek for Counting<R> {
    fn seek(&mut self, pos: SeekFrom) -> io::Result<u64> {
        self.inner.seek(pos)
    }
}

/// Wraps a member's decoded output and stops it, with the limit named, the moment it passes the
/// member size, the scan-wide expanded bytes, the compression ratio or the time budget.
pub(crate) struct Capped<'b, R> {
    inner: R,
    budget: &'b Budget,
    consumed: Option<Consumed>,
    consumed_at_start: u64,
    produced: u64,
    since_time_check: u64,
}

impl<'b, R: Read> Capped<'b, R> {
    /// `consumed` counts the compressed input beneath `inner`; `None` for stored data, where
    /// there is no ratio to check.
    pub(crate) fn new(inner: R, budget: &'b Budget, consumed: Option<Consumed>) -> Self {
        let consumed_at_start = consumed.as_ref().map_or(0, Consumed::get);
        Capped {
            inner,
            budget,
            consumed,
            consumed_at_start,
            produced: 0,
            since_time_check: 0,
        }
    }

    fn check(&mut self, n: u64) -> Result<(), LimitHit> {
        self.produced += n;
        let input = self
            .consumed
            .as_ref()
            .map(|consumed| consumed.get().saturating_sub(self.consumed_at_start));
        self.budget.charge(self.produced, n, input)?;
        self.since_time_check += n;
        if self.since_time_check >= 4 << 20 {
            self.since_time_check = 0;
            self.budget.check_time()?;
        }
        Ok(())
    }
}

impl<R: Read> Read for Capped<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.check(n as u64)?;
        Ok(n)
    }
}

/// Copies what `buf` can take of the decoded bytes in `out` not yet read (from `served` on),
/// for the decoders that decode a block, a frame or a chunk at a time.
fn serve(out: &[u8], served: &mut usize, buf: &mut [u8]) -> usize {
    let n = buf.len().min(out.len() - *served);
    buf[..n].copy_from_slice(&out[*served..*served + n]);
    *served += n;
    n
}

/// A compression format whose decoder lives here.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Codec {
    /// gzip, every member of a multi-member file.
    Gzip,
    /// bzip2, every stream of a multi-stream file.
    Bzip2,
    /// xz, every stream, with the decoder memory limit.
    Xz,
    /// zstd, with a bounded window.
    Zstd,
    /// lz4 frames.
    Lz4,
    /// A zlib stream (RFC 1950): PDF's FlateDecode, PowerPoint's embedded objects.
    Zlib,
    /// A raw deflate stream (RFC 1951), as some broken PDF writers store FlateDecode data.
    Deflate,
    /// LZW as PDF's LZWDecode uses it; `early_change` is its EarlyChange parameter.
    Lzw {
        /// Whether the code width grows one code early (PDF's default).
        early_change: bool,
    },
    /// PDF's RunLengthDecode.
    RunLength,
    /// BinHex 4.0's run-length encoding.
    BinHexRle,
    /// MS-OVBA, the compression of VBA macro source.
    Ovba,
    /// The LZSS of MS-Compress (SZDD and KWAJ method 2).
    Lzss,
    /// A raw LZMA stream with its 13-byte header (the `.lzma` "alone" format), under the
    /// decoder memory limit.
    LzmaAlone,
    /// A raw LZMA stream with only its 5-byte properties (no size): NSIS installers' data,
    /// ended by its end marker, under the decoder memory limit.
    LzmaRaw,
    /// lzip (`.lz`): every member, each an LZMA stream of fixed properties with the
    /// dictionary size its header gives, under the decoder memory limit.
    Lzip,
    /// Unix `compress` (`.Z`), LZW of up to 16-bit codes.
    UnixCompress,
    /// UPX's NRV2B (LE32) stream of a packed executable, which decodes to `size` bytes.
    Nrv2b {
        /// The unpacked size; it also bounds the decoder's history.
        size: usize,
    },
    /// An ARJ member: `method` 1 to 3 (LZ77 and Huffman) or 4 (fastest), which decode to
    /// exactly `size` bytes.
    Arj {
        /// The member's method, 1 to 4.
        method: u8,
        /// Its original size; the stream does not mark its end.
        size: u64,
    },
}

/// A streaming decoder for `codec` over `input`.
pub(crate) fn stream_decoder<'a, R: Read + 'a>(
    codec: Codec,
    input: R,
) -> io::Result<Box<dyn Read + 'a>> {
    Ok(match codec {
        Codec::Gzip => Box::new(flate2::read::MultiGzDecoder::new(input)),
        Codec::Bzip2 => Box::new(bzip2::read::MultiBzDecoder::new(input)),
        Codec::Xz => Box::new(lzma::xz(input)?),
        Codec::Zstd => {
            let mut decoder = zstd::stream::read::Decoder::new(input)?;
            // zstd's window size decides decoder memory; refuse frames that want more than
            // 128 MiB (zstd's own default cap for untrusted input is similar).
            decoder.window_log_max(27)?;
            Box::new(decoder)
        }
        Codec::Lz4 => Box::new(lz4_flex::frame::FrameDecoder::new(input)),
        Codec::Zlib => Box::new(flate2::read::ZlibDecoder::new(input)),
        Codec::Deflate => Box::new(flate2::read::DeflateDecoder::new(input)),
        Codec::Lzw { early_change } => Box::new(filters::Lzw::new(input, early_change)),
        Codec::RunLength => Box::new(filters::RunLength::new(input)),
        Codec::BinHexRle => Box::new(filters::BinHexRle::new(input)),
        Codec::Ovba => Box::new(ovba::OvbaReader::new(input)),
        Codec::Lzss => Box::new(filters::Lzss::new(input)),
        Codec::LzmaAlone => Box::new(lzma::alone(input)?),
        Codec::LzmaRaw => Box::new(lzma::raw(input)?),
        Codec::Lzip => {
            return Err(invalid(
                "lzip is read from its end too: through seekable_decoder",
            ));
        }
        Codec::UnixCompress => Box::new(filters::UnixCompress::new(input)?),
        Codec::Nrv2b { size } => Box::new(nrv::Nrv2b::new(input, size)),
        Codec::Arj { method: 4, size } => Box::new(arj::ArjFastest::new(input, size)),
        Codec::Arj { size, .. } => Box::new(arj::ArjLh::new(input, size)),
    })
}

fn invalid(message: impl Into<String>) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, message.into())
}

/// A decoder for `codec` over an input that can also seek: the formats read from the end as
/// well as from the start (lzip) need it; the others are [`stream_decoder`]'s.
pub(crate) fn seekable_decoder<'a, R: Read + Seek + 'a>(
    codec: Codec,
    input: R,
) -> io::Result<Box<dyn Read + 'a>> {
    match codec {
        Codec::Lzip => Ok(Box::new(lzma::Lzip::new(input)?)),
        other => stream_decoder(other, input),
    }
}

#[cfg(test)]
mod tests {
    use std::io::Cursor;

    use super::*;

    fn budget(limits: Limits) -> Budget {
        Budget::new(limits, u64::MAX)
    }

    #[test]
    fn member_size_limit_stops_reading() {
        let b = budget(Limits {
            max_file_size: 10,
            ..Limits::default()
        });
        let mut capped = Capped::new(Cursor::new(vec![0u8; 100]), &b, None);
        let err = io::copy(&mut capped, &mut io::sink()).expect_err("must stop");
        assert_eq!(LimitHit::from_io(&err), Some(Limit::MaxFileSize));
    }

    #[test]
    fn scan_wide_budget_is_shared_between_members() {
        let b = budget(Limits {
            max_scan_size: 150,
            ..Limits::default()
        });
        let mut first = Capped::new(Cursor::new(vec![0u8; 100]), &b, None);
        io::copy(&mut first, &mut io::sink()).expect("first member fits");
        let mut second = Capped::new(Cursor::new(vec![0u8; 100]), &b, None);
        let err = io::copy(&mut second, &mut io::sink()).expect_err("budget spent");
        assert_eq!(LimitHit::from_io(&err), Some(Limit::MaxScanSize));
    }

    #[test]
    fn ratio_is_checked_against_input_consumed_so_far() {
        use std::io::Write;
        let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        enc.write_all(&vec![0u8; 64 << 20]).expect("compress");
        let gz = enc.finish().expect("finish");
        let b = budget(Limits {
            ratio_floor: 1 << 20,
            max_ratio: 100,
            ..Limits::default()
        });
        let (counting, consumed) = Counting::new(Cursor::new(gz));
        let decoder = stream_decoder(Codec::Gzip, counting).expect("decoder");
        let mut capped = Capped::new(decoder, &b, Some(consumed));
        let err = io::copy(&mut capped, &mut io::sink()).expect_err("ratio");
        assert_eq!(LimitHit::from_io(&err), Some(Limit::MaxCompressionRatio));
        // It stopped early, long before the 64 MiB were produced.
        assert!(b.expanded.get() < 16 << 20, "expanded {}", b.expanded.get());
    }

    #[test]
    fn all_members_together_are_held_to_the_ratio_against_the_root() {
        let limits = Limits {
            ratio_floor: 1000,
            max_ratio: 10,
            ..Limits::default()
        };
        let b = Budget::new(limits, 200);
        // Each member alone is 7.5x the 200-byte root; together they pass 10x.
        for _ in 0..2 {
            let mut member = Capped::new(Cursor::new(vec![0u8; 1500]), &b, None);
            if let Err(err) = io::copy(&mut member, &mut io::sink()) {
                assert_eq!(LimitHit::from_io(&err), Some(Limit::MaxCompressionRatio));
                return;
            }
        }
        panic!("the overall ratio was not enforced");
    }
}
