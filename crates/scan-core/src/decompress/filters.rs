//! Small expanding decoders of document and installer formats: PDF's LZWDecode (through
//! weezl) and RunLengthDecode, BinHex 4.0's run-length encoding, and the LZSS of MS-Compress
//! (SZDD and KWAJ files, `expand.exe`); and the PNG and TIFF predictors PDF applies after them. Each is a streaming `Read`, so its
//! output reaches the caps as it is produced.

use std::io::{self, BufRead, BufReader, Read};

use weezl::{BitOrder, LzwStatus};

/// LZW as PDF and TIFF use it: 8-bit codes, MSB first; `early_change` is PDF's EarlyChange
/// (default 1), the code width growing one code early.
pub(super) struct Lzw<R> {
    inner: BufReader<R>,
    decoder: weezl::decode::Decoder,
    done: bool,
}

impl<R: Read> Lzw<R> {
    pub(super) fn new(inner: R, early_change: bool) -> Self {
        let decoder = if early_change {
            weezl::decode::Decoder::with_tiff_size_switch(BitOrder::Msb, 8)
        } else {
            weezl::decode::Decoder::new(BitOrder::Msb, 8)
        };
        Lzw {
            inner: BufReader::new(inner),
            decoder,
            done: false,
        }
    }
}

impl<R: Read> Read for Lzw<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        while !self.done && !buf.is_empty() {
            let input = self.inner.fill_buf()?;
            let at_end = input.is_empty();
            let result = self.decoder.decode_bytes(input, buf);
            self.inner.consume(result.consumed_in);
            match result.status {
                Ok(LzwStatus::Done) => self.done = true,
                // Streams that end without their end-of-data code are common; what was
                // decoded stands. A decoder that takes and gives nothing is stuck: stop.
                Ok(LzwStatus::NoProgress) if at_end => self.done = true,
                Ok(_) if result.consumed_in == 0 && result.consumed_out == 0 => self.done = true,
                Ok(_) => {}
                Err(e) => return Err(io::Error::new(io::ErrorKind::InvalidData, e.to_string())),
            }
            if result.consumed_out > 0 {
                return Ok(result.consumed_out);
            }
        }
        Ok(0)
    }
}

/// PDF RunLengthDecode: a length byte L, then L+1 literal bytes (L < 128) or one byte repeated
/// 257-L times (L > 128); 128 ends the data.
pub(super) struct RunLength<R> {
    inner: BufReader<R>,
    /// Bytes to copy literally, or to repeat `byte`.
    literal: usize,
    repeat: usize,
    byte: u8,
    done: bool,
}

impl<R: Read> RunLength<R> {
    pub(super) fn new(inner: R) -> Self {
        RunLength {
            inner: BufReader::new(inner),
            literal: 0,
            repeat: 0,
            byte: 0,
            done: false,
        }
    }
}

impl<R: Read> Read for RunLength<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        loop {
            if buf.is_empty() || self.done {
                return Ok(0);
            }
            if self.repeat > 0 {
                let n = self.repeat.min(buf.len());
                buf[..n].fill(self.byte);
                self.repeat -= n;
                return Ok(n);
            }
            if self.literal > 0 {
                let want = self.literal.min(buf.len());
                let n = self.inner.read(&mut buf[..want])?;
                if n == 0 {
                    self.done = true;
                    return Ok(0);
                }
                self.literal -= n;
                return Ok(n);
            }
            let Some(length) = next_byte(&mut self.inner)? else {
                self.done = true;
                return Ok(0);
            };
            match length {
                0..=127 => self.literal = usize::from(length) + 1,
                128 => self.done = true,
                _ => {
                    let Some(byte) = next_byte(&mut self.inner)? else {
                        self.done = true;
                        return Ok(0);
                    };
                    self.byte = byte;
                    self.repeat = 257 - usize::from(length);
                }
            }
        }
    }
}

/// BinHex 4.0's run-length encoding: 0x90 then a count repeats the byte before it count times
/// in all (0x90 0x00 is a literal 0x90).
pub(super) struct BinHexRle<R> {
    inner: BufReader<R>,
    last: u8,
    repeat: usize,
}

impl<R: Read> BinHexRle<R> {
    pub(super) fn new(inner: R) -> Self {
        BinHexRle {
            inner: BufReader::new(inner),
            last: 0,
            repeat: 0,
        }
    }
}

impl<R: Read> Read for BinHexRle<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let mut n = 0;
        while n < buf.len() {
            if self.repeat > 0 {
                let run = self.repeat.min(buf.len() - n);
                buf[n..n + run].fill(self.last);
                self.repeat -= run;
                n += run;
                continue;
            }
            let Some(byte) = next_byte(&mut self.inner)? else {
                break;
            };
            if byte != 0x90 {
                self.last = byte;
                buf[n] = byte;
                n += 1;
                continue;
            }
            match next_byte(&mut self.inner)? {
                None => break,
                Some(0) => {
                    self.last = 0x90;
                    buf[n] = 0x90;
                    n += 1;
                }
                // The count includes the byte already written.
                Some(count) => self.repeat = usize::from(count) - 1,
            }
        }
        Ok(n)
    }
}

/// MS-Compress LZSS: a flag byte, then per bit (lowest first) a literal byte (1) or a
/// back-reference (0) of two bytes, 12 bits of window position and 4 of length - 3, into a
/// 4 KiB window that starts as spaces with the write position 16 bytes before its end.
pub(super) struct Lzss<R> {
    inner: BufReader<R>,
    window: Box<[u8; 4096]>,
    pos: usize,
    flags: u8,
    flags_left: u8,
    /// A back-reference being copied: its window position and what is left of it.
    copy_from: usize,
    copy_left: usize,
}

impl<R: Read> Lzss<R> {
    pub(super) fn new(inner: R) -> Self {
        Lzss {
            inner: BufReader::new(inner),
            window: Box::new([b' '; 4096]),
            pos: 4096 - 16,
            flags: 0,
            flags_left: 0,
            copy_from: 0,
            copy_left: 0,
        }
    }

    fn put(&mut self, byte: u8) {
        self.window[self.pos] = byte;
        self.pos = (self.pos + 1) & 4095;
    }
}

impl<R: Read> Read for Lzss<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let mut n = 0;
        while n < buf.len() {
            if self.copy_left > 0 {
                let byte = self.window[self.copy_from];
                self.copy_from = (self.copy_from + 1) & 4095;
                self.copy_left -= 1;
                self.put(byte);
                buf[n] = byte;
                n += 1;
                continue;
            }
            if self.flags_left == 0 {
                let Some(flags) = next_byte(&mut self.inner)? else {
                    break;
                };
                self.flags = flags;
                self.flags_left = 8;
            }
            let literal = self.flags & 1 == 1;
            self.flags >>= 1;
            self.flags_left -= 1;
            let Some(first) = next_byte(&mut self.inner)? else {
                break;
            };
            if literal {
                self.put(first);
                buf[n] = first;
                n += 1;
                continue;
            }
            let Some(second) = next_byte(&mut self.inner)? else {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "LZSS: the data ends inside a back-reference",
                ));
            };
            self.copy_from = usize::from(first) | usize::from(second & 0xF0) << 4;
            self.copy_left = usize::from(second & 0x0F) + 3;
        }
        Ok(n)
    }
}

fn next_byte(reader: &mut impl BufRead) -> io::Result<Option<u8>> {
    let byte = reader.fill_buf()?.first().copied();
    if byte.is_some() {
        reader.consume(1);
    }
    Ok(byte)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn all(mut reader: impl Read) -> Vec<u8> {
        let mut out = Vec::new();
        reader.read_to_end(&mut out).expect("decodes");
        out
    }

    #[test]
    fn run_length_literals_runs_and_end() {
        let data = [2, b'a', b'b', b'c', 253, b'x', 128, b'z'];
        assert_eq!(all(RunLength::new(&data[..])), b"abcxxxx");
    }

    #[test]
    fn binhex_runs_expand_and_escape() {
        let data = [b'a', 0x90, 4, 0x90, 0, b'b'];
        assert_eq!(all(BinHexRle::new(&data[..])), b"aaaa\x90b");
    }

    #[test]
    fn lzss_literals_and_back_references() {
        // "abc", then a reference to the window position of "abc" (4080) of length 3, then a
        // reference to the initial spaces (position 0, length 4).
        let data = [0b0000_0111, b'a', b'b', b'c', 0xF0, 0xF0, 0x00, 0x01];
        assert_eq!(all(Lzss::new(&data[..])), b"abcabc    ");
    }

    #[test]
    fn lzw_round_trips_with_early_change() {
        let text = b"-----A---B-----A---B-----A---B repeated repeated repeated".repeat(20);
        let encoded = weezl::encode::Encoder::with_tiff_size_switch(BitOrder::Msb, 8)
            .encode(&text)
            .expect("encodes");
        assert_eq!(all(Lzw::new(&encoded[..], true)), text);
    }
}

/// What a PDF (or TIFF) predictor undoes: each row of image-like data was stored as its
/// difference from the pixels before it (TIFF predictor 2) or by a PNG filter chosen per row
/// (predictors 10 to 15, a filter-type byte before each row: none, sub, up, average, Paeth).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Prediction {
    /// `/Predictor`: 2 (TIFF), 10-15 (PNG).
    pub(crate) predictor: u32,
    /// `/Colors`: components per pixel.
    pub(crate) colors: u32,
    /// `/BitsPerComponent`.
    pub(crate) bits: u32,
    /// `/Columns`: pixels per row.
    pub(crate) columns: u32,
}

/// Longest predicted row accepted, bytes (a real one is a few thousand).
const MAX_ROW: usize = 1 << 20;

impl Prediction {
    /// Bytes per row, and per whole pixel (at least 1); `None` when the parameters cannot
    /// describe real data.
    fn shape(&self) -> Option<(usize, usize)> {
        if !matches!(self.bits, 1 | 2 | 4 | 8 | 16) || self.colors == 0 || self.columns == 0 {
            return None;
        }
        let bits = u64::from(self.colors) * u64::from(self.bits) * u64::from(self.columns);
        let row = usize::try_from(bits.div_ceil(8))
            .ok()
            .filter(|&r| r <= MAX_ROW)?;
        let pixel = ((self.colors * self.bits) as usize).div_ceil(8).max(1);
        Some((row, pixel))
    }
}

/// A stream with its predictor undone, a row at a time.
pub(crate) struct Predicted<R> {
    inner: R,
    png: bool,
    tiff_bytes: bool,
    row: usize,
    pixel: usize,
    prior: Vec<u8>,
    current: Vec<u8>,
    at: usize,
    done: bool,
}

impl<R: Read> Predicted<R> {
    /// `inner` as `prediction` says, or why not.
    pub(crate) fn new(inner: R, prediction: Prediction) -> io::Result<Self> {
        let (row, pixel) = prediction.shape().ok_or_else(|| {
            io::Error::new(
                io::ErrorKind::InvalidData,
                format!("impossible predictor parameters {prediction:?}"),
            )
        })?;
        let png = prediction.predictor >= 10;
        if !png && prediction.predictor != 2 {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!("predictor {} is not one PDF defines", prediction.predictor),
            ));
        }
        Ok(Predicted {
            inner,
            png,
            tiff_bytes: prediction.bits == 8,
            row,
            pixel,
            prior: vec![0; row],
            current: Vec::with_capacity(row),
            at: 0,
            done: false,
        })
    }

    /// Reads up to `len` bytes; fewer only at the end of the stream.
    fn fill(&mut self, len: usize) -> io::Result<usize> {
        self.current.clear();
        self.current.resize(len, 0);
        let mut got = 0;
        while got < len {
            match self.inner.read(&mut self.current[got..])? {
                0 => break,
                n => got += n,
            }
        }
        self.current.truncate(got);
        Ok(got)
    }

    fn next_row(&mut self) -> io::Result<()> {
        if self.png {
            let mut kind = [0u8; 1];
            if self.inner.read(&mut kind)? == 0 {
                self.done = true;
                self.current.clear();
                return Ok(());
            }
            self.fill(self.row)?;
            let (pixel, prior) = (self.pixel, &self.prior);
            let row = &mut self.current;
            for i in 0..row.len() {
                let left = if i >= pixel { row[i - pixel] } else { 0 };
                let up = prior[i];
                let up_left = if i >= pixel { prior[i - pixel] } else { 0 };
                row[i] = row[i].wrapping_add(match kind[0] {
                    0 => 0,
                    1 => left,
                    2 => up,
                    3 => ((u16::from(left) + u16::from(up)) / 2) as u8,
                    4 => paeth(left, up, up_left),
                    other => {
                        return Err(io::Error::new(
                            io::ErrorKind::InvalidData,
                            format!("PNG row filter {other} does not exist"),
                        ));
                    }
                });
            }
        } else {
            self.fill(self.row)?;
            // TIFF predictor 2 on 8-bit components; other depths are left as they are.
            if self.tiff_bytes {
                for i in self.pixel..self.current.len() {
                    self.current[i] = self.current[i].wrapping_add(self.current[i - self.pixel]);
                }
            }
        }
        if self.current.is_empty() {
            self.done = true;
        } else {
            self.prior[..self.current.len()].copy_from_slice(&self.current);
        }
        Ok(())
    }
}

fn paeth(left: u8, up: u8, up_left: u8) -> u8 {
    let p = i16::from(left) + i16::from(up) - i16::from(up_left);
    let (pa, pb, pc) = (
        (p - i16::from(left)).abs(),
        (p - i16::from(up)).abs(),
        (p - i16::from(up_left)).abs(),
    );
    if pa <= pb && pa <= pc {
        left
    } else if pb <= pc {
        up
    } else {
        up_left
    }
}

impl<R: Read> Read for Predicted<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        while self.at == self.current.len() {
            if self.done || buf.is_empty() {
                return Ok(0);
            }
            self.next_row()?;
            self.at = 0;
        }
        let n = buf.len().min(self.current.len() - self.at);
        buf[..n].copy_from_slice(&self.current[self.at..self.at + n]);
        self.at += n;
        Ok(n)
    }
}

/// Unix `compress` (`.Z`): LZW with codes from 9 bits up to the maximum the header gives (at
/// most 16), least significant bit first; in block mode code 256 clears the table. compress
/// reads codes in groups of eight of one width, so a change of width (or a clear) skips to the
/// end of the group the last code was in, as its decoder does.
pub(super) struct UnixCompress<R> {
    inner: BufReader<R>,
    max_bits: u32,
    block_mode: bool,
    bits: u32,
    /// Bits read but not used, and how many.
    buffer: u64,
    buffered: u32,
    /// Codes read at the current width since the last group boundary.
    in_group: u32,
    prefix: Vec<u16>,
    suffix: Vec<u8>,
    previous: Option<u16>,
    first: u8,
    out: Vec<u8>,
    served: usize,
    done: bool,
}

const COMPRESS_CLEAR: u16 = 256;

impl<R: Read> UnixCompress<R> {
    pub(super) fn new(inner: R) -> io::Result<Self> {
        let mut inner = BufReader::new(inner);
        let mut header = [0u8; 3];
        inner.read_exact(&mut header)?;
        if header[..2] != [0x1F, 0x9D] {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                "not a compress (.Z) stream",
            ));
        }
        let max_bits = u32::from(header[2] & 0x1F);
        if !(9..=16).contains(&max_bits) {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!("compress codes of {max_bits} bits"),
            ));
        }
        let block_mode = header[2] & 0x80 != 0;
        let mut decoder = UnixCompress {
            inner,
            max_bits,
            block_mode,
            bits: 9,
            buffer: 0,
            buffered: 0,
            in_group: 0,
            prefix: Vec::with_capacity(1 << max_bits),
            suffix: Vec::with_capacity(1 << max_bits),
            previous: None,
            first: 0,
            out: Vec::new(),
            served: 0,
            done: false,
        };
        decoder.reset_table();
        Ok(decoder)
    }

    fn reset_table(&mut self) {
        self.prefix.clear();
        self.suffix.clear();
        for byte in 0..=255u8 {
            self.prefix.push(u16::MAX);
            self.suffix.push(byte);
        }
        if self.block_mode {
            // 256 is the clear code, not an entry.
            self.prefix.push(u16::MAX);
            self.suffix.push(0);
        }
    }

    /// Skips the rest of the current group of eight codes.
    fn end_group(&mut self) -> io::Result<()> {
        let left = (8 - self.in_group % 8) % 8;
        let mut skip = u64::from(left) * u64::from(self.bits);
        let drop = skip.min(u64::from(self.buffered)) as u32;
        self.buffer = self.buffer.checked_shr(drop).unwrap_or(0);
        self.buffered -= drop;
        skip -= u64::from(drop);
        while skip >= 8 {
            let mut byte = [0u8; 1];
            if self.inner.read(&mut byte)? == 0 {
                break;
            }
            skip -= 8;
        }
        self.in_group = 0;
        Ok(())
    }

    /// The next code, or `None` at the end of the input.
    fn code(&mut self) -> io::Result<Option<u16>> {
        while self.buffered < self.bits {
            let mut byte = [0u8; 1];
            if self.inner.read(&mut byte)? == 0 {
                return Ok(None);
            }
            self.buffer |= u64::from(byte[0]) << self.buffered;
            self.buffered += 8;
        }
        let code = (self.buffer & ((1 << self.bits) - 1)) as u16;
        self.buffer >>= self.bits;
        self.buffered -= self.bits;
        self.in_group += 1;
        Ok(Some(code))
    }

    /// Decodes codes into `out` until some output is ready or the stream ends.
    fn step(&mut self) -> io::Result<()> {
        let Some(code) = self.code()? else {
            self.done = true;
            return Ok(());
        };
        if self.block_mode && code == COMPRESS_CLEAR {
            self.end_group()?;
            self.reset_table();
            self.bits = 9;
            self.previous = None;
            return Ok(());
        }
        let size = self.prefix.len();
        let known = usize::from(code) < size;
        let Some(previous) = self.previous else {
            if usize::from(code) > 255 {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    "a compress stream starts with a code that is not a byte",
                ));
            }
            self.first = code as u8;
            self.out.push(self.first);
            self.previous = Some(code);
            return Ok(());
        };
        if !known && usize::from(code) != size {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!("compress code {code} is not in the table of {size}"),
            ));
        }
        // The string of `code`, written backwards then turned round; for the code being
        // defined (not in the table yet), the previous string and its own first byte.
        let start = self.out.len();
        let mut at = if known { code } else { previous };
        loop {
            self.out.push(self.suffix[usize::from(at)]);
            match self.prefix[usize::from(at)] {
                u16::MAX => break,
                next => at = next,
            }
        }
        self.out[start..].reverse();
        if !known {
            let first = self.out[start];
            self.out.push(first);
        }
        self.first = self.out[start];
        if size < 1 << self.max_bits {
            self.prefix.push(previous);
            self.suffix.push(self.first);
            if self.prefix.len() == 1 << self.bits && self.bits < self.max_bits {
                self.end_group()?;
                self.bits += 1;
            }
        }
        self.previous = Some(code);
        Ok(())
    }
}

impl<R: Read> Read for UnixCompress<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        while self.served == self.out.len() {
            if self.done || buf.is_empty() {
                return Ok(0);
            }
            self.out.clear();
            self.served = 0;
            while self.out.len() < 4096 && !self.done {
                self.step()?;
            }
        }
        let n = buf.len().min(self.out.len() - self.served);
        buf[..n].copy_from_slice(&self.out[self.served..self.served + n]);
        self.served += n;
        Ok(n)
    }
}
