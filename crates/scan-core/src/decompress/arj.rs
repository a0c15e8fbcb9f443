//! ARJ's compression methods. Methods 1 to 3 are the LZ77 and Huffman scheme ARJ shares with
//! LHA's `-lh7-` (the same code tables and block layout); method 4 is ARJ's own "fastest"
//! scheme, a 32 KiB window with lengths and distances in unary-prefixed fields. Both are
//! decoded here and produce exactly the member's declared size: neither stream marks its own
//! end. Codes are looked up in tables up to a dozen bits wide rather than walked a bit at a
//! time, which is where the time of a tree-walking decoder goes.

use std::io::{self, Read};

/// Methods 1 to 3 reach back at most 26,624 bytes (ARJ's own window); the code allows up to
/// 65,536, so the window is that large and a distance the format can say is never misread.
const LH_WINDOW: usize = 1 << 16;
/// Literal bytes, then match lengths 3 to 256.
const NC: usize = 510;
/// Symbols of the code that codes the literal-and-length code's lengths.
const NT: usize = 19;
/// Distance classes: 0, then 1 to 16 extra bits.
const NP: usize = 17;
/// Index width of the literal-and-length table and of the other two.
const C_TABLE_BITS: u32 = 12;
const PT_TABLE_BITS: u32 = 8;

fn damaged(what: &str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, format!("ARJ: {what}"))
}

/// Methods 1 to 3, asked for no more than the member holds. Output is decoded into one
/// buffer after the last window's worth of history, so a match is a copy within it; when the
/// buffer is full, the history slides to its front.
pub(super) struct ArjLh<R> {
    bits: Bits<R>,
    /// Symbols left in the current block; a new block brings new codes.
    block_left: u16,
    c_code: Code,
    p_code: Code,
    out: Box<[u8]>,
    /// Where the next decoded byte goes, and how far the caller has been served.
    pos: usize,
    served: usize,
    /// Bytes decoded before `out[0]` (slid out), so `base + pos` have been decoded.
    base: u64,
    /// Bytes of the member not yet decoded, and not yet served.
    undecoded: u64,
    left: u64,
    /// An error met while decoding, returned once what came before it is served (so a
    /// damaged member is still scanned up to the damage), and on every read after that.
    failed: Option<io::Error>,
}

/// Output decoded between two slides; a match may run up to 256 bytes past it.
const CHUNK: usize = 1 << 16;
const MAX_MATCH: usize = 256;
/// A match this long or shorter, from at least this far back, is copied as one block.
const SHORT: usize = 16;

impl<R: Read> ArjLh<R> {
    pub(super) fn new(inner: R, size: u64) -> Self {
        ArjLh {
            bits: Bits::new(inner),
            block_left: 0,
            c_code: Code::default(),
            p_code: Code::default(),
            out: vec![0; LH_WINDOW + CHUNK + MAX_MATCH].into_boxed_slice(),
            pos: 0,
            served: 0,
            base: 0,
            undecoded: size,
            left: size,
            failed: None,
        }
    }

    /// Decodes up to the end of the buffer's chunk or of the member, whichever is first.
    fn decode_chunk(&mut self) {
        if self.pos >= LH_WINDOW + CHUNK {
            let keep = self.pos - LH_WINDOW;
            self.out.copy_within(keep..self.pos, 0);
            self.base += keep as u64;
            self.pos = LH_WINDOW;
            self.served = LH_WINDOW;
        }
        let start = self.pos;
        if let Err(e) = self.decode_until_full() {
            self.failed = Some(e);
        }
        // The last match may run past the member's end; those bytes are never served.
        let decoded = (self.pos - start) as u64;
        self.undecoded = self.undecoded.saturating_sub(decoded);
    }

    fn decode_until_full(&mut self) -> io::Result<()> {
        let room = (LH_WINDOW + CHUNK - self.pos) as u64;
        let end = self.pos + usize::try_from(self.undecoded.min(room)).unwrap_or(0);
        while self.pos < end {
            if self.block_left == 0 {
                self.start_block()?;
            }
            // A block that says it holds no symbols holds 65,536, as ARJ itself reads it.
            self.block_left = self.block_left.wrapping_sub(1);
            let symbol = usize::from(self.c_code.decode(&mut self.bits)?);
            if symbol < 256 {
                self.out[self.pos] = symbol as u8;
                self.pos += 1;
                continue;
            }
            let length = symbol - 253;
            let distance = self.distance()? + 1;
            if distance as u64 > self.base + self.pos as u64 {
                return Err(damaged("a match reaches before the start of the file"));
            }
            // After a slide a whole window of history precedes `pos`; before the first one,
            // everything decoded does.
            let from = self.pos - distance;
            if length <= SHORT && distance >= SHORT {
                // Most matches are short: one fixed-size copy beats a call to memmove, and
                // the bytes it writes past the match are decoded over before they are served.
                let chunk: [u8; SHORT] = self.out[from..from + SHORT]
                    .try_into()
                    .expect("a short match's bytes");
                self.out[self.pos..self.pos + SHORT].copy_from_slice(&chunk);
            } else if distance >= length {
                self.out.copy_within(from..from + length, self.pos);
            } else {
                for i in 0..length {
                    self.out[self.pos + i] = self.out[from + i];
                }
            }
            self.pos += length;
        }
        Ok(())
    }

    /// A block's header: its symbol count and its three codes (the lengths' code, the
    /// literal-and-length code through it, the distance code).
    fn start_block(&mut self) -> io::Result<()> {
        self.block_left = self.bits.bits(16)? as u16;
        let t_code = self.read_pt_code(NT, 5, Some(3))?;
        self.c_code = self.read_c_code(&t_code)?;
        self.p_code = self.read_pt_code(NP, 5, None)?;
        Ok(())
    }

    /// A code of up to `symbols` lengths, each in three bits or, from 7 up, in a run of ones;
    /// after the `zeros_after`th length, two bits say how many zero lengths follow.
    fn read_pt_code(
        &mut self,
        symbols: usize,
        count_bits: u32,
        zeros_after: Option<usize>,
    ) -> io::Result<Code> {
        let n = self.bits.bits(count_bits)? as usize;
        if n == 0 {
            return Code::single(self.bits.bits(count_bits)? as usize, symbols);
        }
        if n > symbols {
            return Err(damaged("a code table is longer than its alphabet"));
        }
        let mut lengths = vec![0u8; symbols];
        let mut i = 0;
        while i < n {
            let top = self.bits.peek(16)?;
            let mut length = top >> 13;
            if length == 7 {
                let mut mask = 1 << 12;
                while top & mask != 0 {
                    mask >>= 1;
                    length += 1;
                }
            }
            if length > 16 {
                return Err(damaged("a code is longer than 16 bits"));
            }
            self.bits.skip(if length < 7 { 3 } else { length - 3 })?;
            lengths[i] = length as u8;
            i += 1;
            if Some(i) == zeros_after {
                let zeros = self.bits.bits(2)? as usize;
                if i + zeros > symbols {
                    return Err(damaged("a code table is longer than its alphabet"));
                }
                i += zeros;
            }
        }
        Code::new(&lengths, PT_TABLE_BITS)
    }

    /// The literal-and-length code: its lengths coded by `t_code`, where 0, 1 and 2 are runs
    /// of zero lengths (one; 3 to 18; 20 to 531) and any other symbol is a length plus two.
    fn read_c_code(&mut self, t_code: &Code) -> io::Result<Code> {
        let n = self.bits.bits(9)? as usize;
        if n == 0 {
            return Code::single(self.bits.bits(9)? as usize, NC);
        }
        if n > NC {
            return Err(damaged("a code table is longer than its alphabet"));
        }
        let mut lengths = vec![0u8; NC];
        let mut i = 0;
        while i < n {
            let symbol = t_code.decode(&mut self.bits)?;
            let zeros = match symbol {
                0 => 1,
                1 => self.bits.bits(4)? as usize + 3,
                2 => self.bits.bits(9)? as usize + 20,
                length => {
                    lengths[i] = (length - 2) as u8;
                    i += 1;
                    continue;
                }
            };
            if i + zeros > NC {
                return Err(damaged("a code table is longer than its alphabet"));
            }
            i += zeros;
        }
        Code::new(&lengths, C_TABLE_BITS)
    }

    /// The next match distance minus one: a class, then that many bits less one below its
    /// leading one.
    fn distance(&mut self) -> io::Result<usize> {
        let class = self.p_code.decode(&mut self.bits)?;
        if class == 0 {
            return Ok(0);
        }
        let extra = u32::from(class) - 1;
        Ok((1 << extra) + self.bits.bits(extra)? as usize)
    }
}

impl<R: Read> Read for ArjLh<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.left == 0 || buf.is_empty() {
            return Ok(0);
        }
        if self.served == self.pos {
            // Once broken, always broken: the codes may be half read, so nothing is decoded
            // after an error, however often the caller asks.
            if self.failed.is_none() {
                self.decode_chunk();
            }
            if self.served == self.pos
                && let Some(e) = &self.failed
            {
                return Err(io::Error::new(e.kind(), e.to_string()));
            }
        }
        let ready = (self.pos - self.served).min(usize::try_from(self.left).unwrap_or(usize::MAX));
        let n = buf.len().min(ready);
        buf[..n].copy_from_slice(&self.out[self.served..self.served + n]);
        self.served += n;
        self.left -= n as u64;
        Ok(n)
    }
}

/// A canonical Huffman code as LHA and ARJ write it (codes in order of length, then symbol),
/// looked up by its next `table_bits` bits; the rare longer codes are resolved from the count
/// of codes of each length.
#[derive(Default)]
struct Code {
    /// For codes up to `table_bits` long: the symbol times 32 plus the length; `LONG` for the
    /// prefixes of longer codes.
    table: Vec<u16>,
    table_bits: u32,
    /// For each length: the first code of that length and where its symbols start in `sorted`.
    first: [u32; 17],
    count: [u16; 17],
    offset: [u16; 17],
    sorted: Vec<u16>,
}

const LONG: u16 = u16::MAX;

impl Code {
    /// The code of one symbol, which takes no bits at all.
    fn single(symbol: usize, symbols: usize) -> io::Result<Code> {
        if symbol >= symbols {
            return Err(damaged("a code's only symbol is outside its alphabet"));
        }
        Ok(Code {
            table: vec![(symbol as u16) << 5; 1],
            table_bits: 0,
            ..Code::default()
        })
    }

    /// The code of these lengths (0: the symbol is unused). Like ARJ, it takes only a complete
    /// code: one that leaves no bit pattern undecodable and gives none twice.
    fn new(lengths: &[u8], table_bits: u32) -> io::Result<Code> {
        let mut code = Code {
            table: vec![LONG; 1 << table_bits],
            table_bits,
            ..Code::default()
        };
        for &length in lengths {
            code.count[usize::from(length)] += 1;
        }
        code.count[0] = 0;
        let mut next = 0u32;
        let mut placed = 0u16;
        for length in 1..=16 {
            code.first[length] = next;
            code.offset[length] = placed;
            next = (next + u32::from(code.count[length])) << 1;
            placed += code.count[length];
        }
        // After the 16th length, a complete code has used every 16-bit pattern exactly.
        if next != 1 << 17 {
            return Err(damaged("a Huffman code is incomplete or oversubscribed"));
        }
        code.sorted = vec![0; usize::from(placed)];
        let mut seen = code.offset;
        for (symbol, &length) in lengths.iter().enumerate() {
            let length = usize::from(length);
            if length == 0 {
                continue;
            }
            let index = seen[length];
            seen[length] += 1;
            code.sorted[usize::from(index)] = symbol as u16;
            let length = length as u32;
            if length <= table_bits {
                let value =
                    code.first[length as usize] + u32::from(index - code.offset[length as usize]);
                let from = (value << (table_bits - length)) as usize;
                let to = ((value + 1) << (table_bits - length)) as usize;
                code.table[from..to].fill((symbol as u16) << 5 | length as u16);
            }
        }
        Ok(code)
    }

    #[inline]
    fn decode<R: Read>(&self, bits: &mut Bits<R>) -> io::Result<u16> {
        let next = bits.peek(16)?;
        let entry = self.table[(next >> (16 - self.table_bits)) as usize];
        if entry != LONG {
            bits.skip(u32::from(entry & 31))?;
            return Ok(entry >> 5);
        }
        for length in self.table_bits as usize + 1..=16 {
            let value = next >> (16 - length);
            let index = value.wrapping_sub(self.first[length]);
            if index < u32::from(self.count[length]) {
                bits.skip(length as u32)?;
                return Ok(self.sorted[usize::from(self.offset[length]) + index as usize]);
            }
        }
        Err(damaged("a bit pattern matches no code"))
    }
}

/// Method 4's window: its distances reach back at most 15,871 bytes.
const WINDOW: usize = 1 << 15;

/// Method 4: a length of 0 is a literal byte; otherwise a match of length + 2 bytes at a
/// distance coded the same way from a 9-bit base.
pub(super) struct ArjFastest<R> {
    bits: Bits<R>,
    window: Box<[u8; WINDOW]>,
    pos: usize,
    /// Bytes produced so far, so a distance reaching before the start is caught.
    produced: u64,
    left: u64,
    copy_from: usize,
    copy_left: usize,
}

impl<R: Read> ArjFastest<R> {
    pub(super) fn new(inner: R, size: u64) -> Self {
        ArjFastest {
            bits: Bits::new(inner),
            window: Box::new([0; WINDOW]),
            pos: 0,
            produced: 0,
            left: size,
            copy_from: 0,
            copy_left: 0,
        }
    }

    /// A value coded as up to `stop - start` one-bits (each adding the next power of two,
    /// from 2^start), a zero ending them early, then that many plus `start` bits.
    fn prefixed(&mut self, start: u32, stop: u32) -> io::Result<usize> {
        let (mut plus, mut power, mut width) = (0usize, 1usize << start, start);
        while width < stop {
            if self.bits.bits(1)? == 0 {
                break;
            }
            plus += power;
            power <<= 1;
            width += 1;
        }
        let value = if width == 0 {
            0
        } else {
            self.bits.bits(width)?
        };
        Ok(plus + value as usize)
    }

    fn put(&mut self, byte: u8) {
        self.window[self.pos] = byte;
        self.pos = (self.pos + 1) % WINDOW;
        self.produced += 1;
    }
}

impl<R: Read> Read for ArjFastest<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let mut n = 0;
        while n < buf.len() && self.left > 0 {
            if self.copy_left > 0 {
                let byte = self.window[self.copy_from];
                self.copy_from = (self.copy_from + 1) % WINDOW;
                self.copy_left -= 1;
                self.put(byte);
                buf[n] = byte;
                n += 1;
                self.left -= 1;
                continue;
            }
            let length = self.prefixed(0, 7)?;
            if length == 0 {
                let byte = self.bits.bits(8)? as u8;
                self.put(byte);
                buf[n] = byte;
                n += 1;
                self.left -= 1;
                continue;
            }
            let distance = self.prefixed(9, 13)? + 1;
            if distance as u64 > self.produced {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    "ARJ: a match reaches before the start of the file",
                ));
            }
            self.copy_from = (self.pos + WINDOW - distance) % WINDOW;
            self.copy_left = length + 2;
        }
        Ok(n)
    }
}

/// Bits read most significant first, from the input a block at a time. Past the end of the
/// input it reads zeros, so a decoder may look further ahead than the data goes; taking any of
/// those bits means the data was cut short, and is an error.
struct Bits<R> {
    inner: R,
    block: Box<[u8]>,
    at: usize,
    len: usize,
    ended: bool,
    /// Unread bits, the next one at the top.
    acc: u64,
    count: u32,
    /// How many of `count` are zeros past the end of the input.
    padding: u32,
}

impl<R: Read> Bits<R> {
    fn new(inner: R) -> Self {
        Bits {
            inner,
            block: vec![0; 32 << 10].into_boxed_slice(),
            at: 0,
            len: 0,
            ended: false,
            acc: 0,
            count: 0,
            padding: 0,
        }
    }

    fn refill(&mut self) -> io::Result<()> {
        // Whole bytes at once while eight are at hand: the top `count` bits stay as they are,
        // and bits below the last whole byte added are cleared.
        if self.len - self.at >= 8 {
            let word = u64::from_be_bytes(
                self.block[self.at..self.at + 8]
                    .try_into()
                    .expect("eight bytes"),
            );
            let bytes = (63 - self.count) / 8;
            let filled = self.count + bytes * 8;
            self.acc |= (word >> self.count) & !(u64::MAX >> filled);
            self.at += bytes as usize;
            self.count = filled;
            return Ok(());
        }
        while self.count <= 56 {
            if self.at < self.len {
                self.acc |= u64::from(self.block[self.at]) << (56 - self.count);
                self.at += 1;
            } else if self.ended {
                self.padding += 8;
            } else {
                // Keep the unread tail, so the next refill can take eight bytes at once.
                let tail = self.len - self.at;
                self.block.copy_within(self.at..self.len, 0);
                let read = loop {
                    match self.inner.read(&mut self.block[tail..]) {
                        Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                        other => break other?,
                    }
                };
                self.at = 0;
                self.len = tail + read;
                self.ended = read == 0;
                continue;
            }
            self.count += 8;
        }
        Ok(())
    }

    /// The next `n` bits (1 to 32) without taking them.
    #[inline]
    fn peek(&mut self, n: u32) -> io::Result<u32> {
        if self.count < n {
            self.refill()?;
        }
        Ok((self.acc >> (64 - n)) as u32)
    }

    #[inline]
    fn skip(&mut self, n: u32) -> io::Result<()> {
        if self.count < n {
            self.refill()?;
        }
        if n > self.count - self.padding {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "ARJ: the compressed data ends early",
            ));
        }
        self.acc = self.acc.checked_shl(n).unwrap_or(0);
        self.count -= n;
        Ok(())
    }

    fn bits(&mut self, n: u32) -> io::Result<u32> {
        if n == 0 {
            return Ok(0);
        }
        let value = self.peek(n)?;
        self.skip(n)?;
        Ok(value)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Writes `symbols` in the canonical code of `lengths`, most significant bit first.
    fn encode(lengths: &[u8], symbols: &[usize]) -> Vec<u8> {
        let mut codes = vec![0u32; lengths.len()];
        let mut next = 0u32;
        for length in 1..=16u8 {
            for (symbol, _) in lengths.iter().enumerate().filter(|(_, l)| **l == length) {
                codes[symbol] = next;
                next += 1;
            }
            next <<= 1;
        }
        let (mut out, mut acc, mut count) = (Vec::new(), 0u64, 0u32);
        for &symbol in symbols {
            acc = (acc << lengths[symbol]) | u64::from(codes[symbol]);
            count += u32::from(lengths[symbol]);
            while count >= 8 {
                count -= 8;
                out.push((acc >> count) as u8);
            }
        }
        if count > 0 {
            out.push((acc << (8 - count)) as u8);
        }
        out
    }

    #[test]
    fn codes_longer_than_the_table_are_decoded_from_their_counts() {
        // Lengths 1 to 16 and a second 16: complete, and most of it past a 12-bit table.
        let mut lengths: Vec<u8> = (1..=16).collect();
        lengths.push(16);
        let message: Vec<usize> = (0..17).chain([16, 0, 15, 3, 11, 12, 13, 1]).collect();
        let code = Code::new(&lengths, C_TABLE_BITS).unwrap();
        let encoded = encode(&lengths, &message);
        let mut bits = Bits::new(&encoded[..]);
        let decoded: Vec<usize> = message
            .iter()
            .map(|_| usize::from(code.decode(&mut bits).unwrap()))
            .collect();
        assert_eq!(decoded, message);
    }

    #[test]
    fn incomplete_and_oversubscribed_codes_are_refused() {
        assert!(Code::new(&[1, 2, 3], PT_TABLE_BITS).is_err());
        assert!(Code::new(&[1, 1, 1], PT_TABLE_BITS).is_err());
        assert!(Code::new(&[0, 0], PT_TABLE_BITS).is_err());
        assert!(Code::new(&[1, 2, 2], PT_TABLE_BITS).is_ok());
        assert!(Code::single(19, NT).is_err());
        let single = Code::single(7, NT).unwrap();
        let mut bits = Bits::new(&[0xFFu8][..]);
        assert_eq!(single.decode(&mut bits).unwrap(), 7);
        assert_eq!(bits.bits(8).unwrap(), 0xFF, "a single symbol takes no bits");
    }

    /// Data that is not an ARJ stream ends in an error, and every read after it is an error
    /// too, never a decode from half-read codes.
    #[test]
    fn errors_are_sticky() {
        let mut state = 0x9E37_79B9u32;
        let garbage: Vec<u8> = (0..4096)
            .map(|_| {
                state ^= state << 13;
                state ^= state >> 17;
                state ^= state << 5;
                state as u8
            })
            .collect();
        let mut decoder = ArjLh::new(&garbage[..], 1 << 20);
        let mut buf = [0u8; 4096];
        let first = loop {
            match decoder.read(&mut buf) {
                Ok(0) => panic!("ended without an error"),
                Ok(_) => continue,
                Err(e) => break e,
            }
        };
        for _ in 0..3 {
            let again = decoder.read(&mut buf).unwrap_err();
            assert_eq!(
                (again.kind(), again.to_string()),
                (first.kind(), first.to_string())
            );
        }
    }

    #[test]
    fn bits_past_the_end_may_be_looked_at_but_not_taken() {
        let mut bits = Bits::new(&[0b1010_0000u8][..]);
        assert_eq!(bits.peek(16).unwrap(), 0b1010_0000_0000_0000);
        assert_eq!(bits.bits(3).unwrap(), 0b101);
        assert_eq!(bits.bits(5).unwrap(), 0);
        let err = bits.bits(1).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::UnexpectedEof);
    }
}
