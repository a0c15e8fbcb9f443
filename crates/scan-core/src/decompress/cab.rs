//! The data of one CAB folder (MS-CAB): its CFDATA blocks decoded in order into one stream,
//! stored, MSZIP (deflate blocks that share a 32 KiB history) or LZX (through lzxd). Blocks
//! are decoded one at a time, so memory stays at a block plus the LZX window (2 MiB at most).

use std::io::{self, Read};

/// How a folder's blocks are compressed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum CabCompression {
    /// Stored.
    None,
    /// MSZIP: each block `CK` then a deflate block, with the previous 32 KiB as history.
    MsZip,
    /// LZX with a window of 2^bits bytes (15 to 21).
    Lzx(u8),
}

enum Engine {
    None,
    MsZip {
        inflate: flate2::Decompress,
        history: Vec<u8>,
    },
    Lzx(Box<lzxd::Lzxd>),
}

/// Reads a folder's decoded data from `input`, positioned at its first CFDATA block.
pub(crate) struct CabFolder<R> {
    input: R,
    blocks_left: u16,
    /// Reserved bytes in each CFDATA header (from the cabinet header).
    reserve: usize,
    engine: Engine,
    block: Vec<u8>,
    out: Vec<u8>,
    served: usize,
}

/// MSZIP history: a deflate window.
const HISTORY: usize = 32 << 10;

impl<R: Read> CabFolder<R> {
    pub(crate) fn new(
        input: R,
        blocks: u16,
        reserve: usize,
        compression: CabCompression,
    ) -> io::Result<Self> {
        let engine = match compression {
            CabCompression::None => Engine::None,
            CabCompression::MsZip => Engine::MsZip {
                inflate: flate2::Decompress::new(false),
                history: Vec::with_capacity(HISTORY),
            },
            CabCompression::Lzx(bits) => Engine::Lzx(Box::new(lzxd::Lzxd::new(lzx_window(bits)?))),
        };
        Ok(CabFolder {
            input,
            blocks_left: blocks,
            reserve,
            engine,
            block: Vec::new(),
            out: Vec::new(),
            served: 0,
        })
    }

    /// Decodes the next CFDATA block into `out`; false after the last.
    fn next_block(&mut self) -> io::Result<bool> {
        if self.blocks_left == 0 {
            return Ok(false);
        }
        self.blocks_left -= 1;
        // CFDATA: checksum (4), compressed size (2), uncompressed size (2), reserve, data.
        let mut header = [0u8; 8];
        self.input.read_exact(&mut header)?;
        let compressed = usize::from(u16::from_le_bytes([header[4], header[5]]));
        let uncompressed = usize::from(u16::from_le_bytes([header[6], header[7]]));
        io::copy(
            &mut (&mut self.input).take(self.reserve as u64),
            &mut io::sink(),
        )?;
        self.block.resize(compressed, 0);
        self.input.read_exact(&mut self.block)?;
        self.out.clear();
        self.served = 0;
        match &mut self.engine {
            Engine::None => self.out.extend_from_slice(&self.block),
            Engine::MsZip { inflate, history } => {
                let Some(deflate) = self.block.strip_prefix(b"CK") else {
                    return Err(invalid("an MSZIP block without its CK signature"));
                };
                inflate.reset(false);
                if !history.is_empty() {
                    // A stored block of the history primes the window, as a preset dictionary.
                    let len = history.len() as u16;
                    let mut primer = vec![0u8];
                    primer.extend_from_slice(&len.to_le_bytes());
                    primer.extend_from_slice(&(!len).to_le_bytes());
                    primer.extend_from_slice(history);
                    let mut sink = Vec::with_capacity(history.len());
                    inflate
                        .decompress_vec(&primer, &mut sink, flate2::FlushDecompress::Sync)
                        .map_err(|e| invalid(&e.to_string()))?;
                }
                self.out.reserve(uncompressed);
                inflate
                    .decompress_vec(deflate, &mut self.out, flate2::FlushDecompress::Finish)
                    .map_err(|e| invalid(&format!("MSZIP: {e}")))?;
                let keep = self.out.len().min(HISTORY);
                let total = history.len() + keep;
                if total > HISTORY {
                    history.drain(..total - HISTORY);
                }
                history.extend_from_slice(&self.out[self.out.len() - keep..]);
            }
            Engine::Lzx(lzx) => {
                let decoded = lzx
                    .decompress_next(&self.block, uncompressed)
                    .map_err(|e| invalid(&format!("LZX: {e}")))?;
                self.out.extend_from_slice(decoded);
            }
        }
        if self.out.len() != uncompressed {
            return Err(invalid(&format!(
                "a block decoded to {} bytes, not the {uncompressed} it declares",
                self.out.len()
            )));
        }
        Ok(true)
    }
}

impl<R: Read> Read for CabFolder<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        while self.served == self.out.len() {
            if buf.is_empty() || !self.next_block()? {
                return Ok(0);
            }
        }
        Ok(super::serve(&self.out, &mut self.served, buf))
    }
}

/// The LZX window of 2^`bits` bytes (15 to 21).
pub(super) fn lzx_window(bits: u8) -> io::Result<lzxd::WindowSize> {
    use lzxd::WindowSize as W;
    Ok(match bits {
        15 => W::KB32,
        16 => W::KB64,
        17 => W::KB128,
        18 => W::KB256,
        19 => W::KB512,
        20 => W::MB1,
        21 => W::MB2,
        other => return Err(invalid(&format!("LZX window of 2^{other} bytes"))),
    })
}

fn invalid(what: &str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, format!("CAB: {what}"))
}
