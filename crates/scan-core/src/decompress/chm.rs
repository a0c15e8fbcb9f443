//! The compressed section of a CHM help file: one LZX stream cut into 32 KiB frames, whose
//! compressed offsets the reset table lists, with the decoder reset every few frames (the
//! reset interval). Frames are decoded one at a time, so memory stays at a frame plus the
//! window (2 MiB at most).

use std::io::{self, Read};

/// Uncompressed bytes in one LZX frame.
pub(crate) const FRAME: u64 = 0x8000;

/// The most compressed input one frame may take: its output stored, with room for headers.
const MAX_FRAME_INPUT: u64 = 2 * FRAME;

/// What the section's control data and reset table say about its LZX stream.
#[derive(Debug, Clone)]
pub(crate) struct ChmSection {
    /// The LZX window, as a power of two (15 to 21).
    pub(crate) window_bits: u8,
    /// Frames decoded between two resets of the decoder.
    pub(crate) frames_per_reset: u64,
    /// The compressed offset of each frame, from the start of the section's content.
    pub(crate) frame_offsets: Vec<u64>,
    /// The section's uncompressed length.
    pub(crate) length: u64,
}

/// Reads the decoded section from `input`, positioned at the start of its content.
pub(crate) struct ChmLzx<R> {
    input: R,
    section: ChmSection,
    lzx: Box<lzxd::Lzxd>,
    frame: usize,
    block: Vec<u8>,
    out: Vec<u8>,
    served: usize,
}

impl<R: Read> ChmLzx<R> {
    pub(crate) fn new(input: R, section: ChmSection) -> io::Result<Self> {
        if section.frames_per_reset == 0 {
            return Err(invalid("a reset interval of zero"));
        }
        if section.frame_offsets.windows(2).any(|w| w[1] < w[0]) {
            return Err(invalid("the reset table's offsets go backwards"));
        }
        let frames = section.length.div_ceil(FRAME);
        if (section.frame_offsets.len() as u64) < frames {
            return Err(invalid(&format!(
                "the reset table lists {} frames, the section needs {frames}",
                section.frame_offsets.len()
            )));
        }
        let lzx = Box::new(lzxd::Lzxd::new(super::cab::lzx_window(
            section.window_bits,
        )?));
        Ok(ChmLzx {
            input,
            section,
            lzx,
            frame: 0,
            block: Vec::new(),
            out: Vec::new(),
            served: 0,
        })
    }

    /// Decodes the next frame into `out`; false after the last.
    fn next_frame(&mut self) -> io::Result<bool> {
        let start = self.frame as u64 * FRAME;
        if start >= self.section.length {
            return Ok(false);
        }
        let offsets = &self.section.frame_offsets;
        self.block.clear();
        let at = offsets[self.frame];
        match offsets.get(self.frame + 1) {
            Some(&next) => {
                // A frame never takes more room than its output plus block headers; a table
                // that says otherwise is damaged (and must not size a buffer).
                let len = next - at;
                if len > MAX_FRAME_INPUT {
                    return Err(invalid(&format!(
                        "frame {} claims {len} compressed bytes",
                        self.frame
                    )));
                }
                (&mut self.input).take(len).read_to_end(&mut self.block)?;
                if self.block.len() as u64 != len {
                    return Err(io::ErrorKind::UnexpectedEof.into());
                }
            }
            // The last frame runs to the end of the content.
            None => {
                (&mut self.input)
                    .take(MAX_FRAME_INPUT)
                    .read_to_end(&mut self.block)?;
            }
        }
        if self.frame > 0 && (self.frame as u64).is_multiple_of(self.section.frames_per_reset) {
            self.lzx.reset();
        }
        let wanted = (self.section.length - start).min(FRAME) as usize;
        let decoded = self
            .lzx
            .decompress_next(&self.block, wanted)
            .map_err(|e| invalid(&format!("LZX frame {}: {e}", self.frame)))?;
        self.out.clear();
        self.out.extend_from_slice(decoded);
        self.served = 0;
        self.frame += 1;
        Ok(true)
    }
}

impl<R: Read> Read for ChmLzx<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        while self.served == self.out.len() {
            if buf.is_empty() || !self.next_frame()? {
                return Ok(0);
            }
        }
        Ok(super::serve(&self.out, &mut self.served, buf))
    }
}

fn invalid(what: &str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, format!("CHM: {what}"))
}
