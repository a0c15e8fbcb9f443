//! The grammar of payload literals in scripts (what [`super::script`] decodes), shared with
//! the spool, whose writer watches every object it writes for them ([`PayloadWatch`]) so that
//! identification need not read a large object again to learn it holds none.

/// Base64 shorter than this (48 bytes) is an id or a hash, not a file.
pub(crate) const MIN_BASE64: usize = 64;
/// Hex shorter than this (64 bytes) is a colour or a hash.
pub(crate) const MIN_HEX: usize = 128;
/// Pieces joined into one payload at most.
pub(crate) const MAX_PIECES: usize = 100_000;
/// Text has no NUL in this many bytes from its start.
pub(crate) const TEXT_PREFIX: usize = 8192;

/// A character of a base64 (or hex) literal.
pub(crate) fn is_base64(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'+' || b == b'/' || b == b'='
}

/// Whether the script format identifies an object (text holding a payload literal), decided from
/// its bytes as they arrive in chunks: exactly what `script::identify` answers for the whole,
/// without the whole at hand. The spool's writer runs it over every object it writes, off the
/// reading thread.
#[derive(Debug)]
pub(crate) struct PayloadWatch {
    state: WatchState,
    found: bool,
    /// Bytes fed so far, while they are fewer than [`TEXT_PREFIX`].
    prefix: usize,
    /// A NUL in the first [`TEXT_PREFIX`] bytes: not text, so never a script.
    binary: bool,
    /// The payload being joined: its pieces so far, their length, and whether all are hex.
    pieces: usize,
    length: usize,
    all_hex: bool,
}

/// Where [`PayloadWatch`] is in the grammar `script::payloads` reads.
#[derive(Debug, Clone, Copy)]
enum WatchState {
    /// Looking for an opening quote.
    Scan,
    /// Inside a literal opened by `quote`: `run` base64 characters so far, `hex` if all were hex.
    Literal { quote: u8, run: usize, hex: bool },
    /// After a piece's closing quote: white space, then a joining operator.
    BeforeOperator,
    /// After the operator: white space, then a line continuation or the next piece's quote.
    AfterOperator,
    /// After a line continuation: white space, then the next piece's quote.
    AfterContinuation,
}

impl Default for PayloadWatch {
    fn default() -> Self {
        PayloadWatch {
            state: WatchState::Scan,
            found: false,
            prefix: 0,
            binary: false,
            pieces: 0,
            length: 0,
            all_hex: true,
        }
    }
}

impl PayloadWatch {
    /// Reads the next chunk.
    pub(crate) fn feed(&mut self, chunk: &[u8]) {
        if self.prefix < TEXT_PREFIX && !self.binary {
            let head = &chunk[..chunk.len().min(TEXT_PREFIX - self.prefix)];
            self.binary = memchr::memchr(0, head).is_some();
            self.prefix += head.len();
        }
        if self.binary {
            return;
        }
        let mut i = 0;
        while i < chunk.len() && !self.found {
            match self.state {
                WatchState::Scan => {
                    let Some(at) = memchr::memchr3(b'"', b'\'', b'`', &chunk[i..]) else {
                        return;
                    };
                    i += at;
                    self.end_payload();
                    self.open(chunk[i]);
                    i += 1;
                }
                WatchState::Literal { quote, run, hex } => {
                    let rest = &chunk[i..];
                    let n = rest
                        .iter()
                        .position(|&b| !is_base64(b))
                        .unwrap_or(rest.len());
                    let hex = hex && rest[..n].iter().all(u8::is_ascii_hexdigit);
                    let run = run + n;
                    i += n;
                    let Some(&b) = chunk.get(i) else {
                        self.state = WatchState::Literal { quote, run, hex };
                        return;
                    };
                    if b == quote && run > 0 {
                        i += 1;
                        self.pieces += 1;
                        self.length += run;
                        self.all_hex &= hex;
                        self.state = if self.pieces < MAX_PIECES {
                            WatchState::BeforeOperator
                        } else {
                            self.end_payload();
                            WatchState::Scan
                        };
                    } else {
                        // As `payloads` does, the search for an opening quote goes on from the
                        // byte that ended the literal.
                        self.end_payload();
                        self.state = WatchState::Scan;
                    }
                }
                WatchState::BeforeOperator => {
                    let b = chunk[i];
                    if b.is_ascii_whitespace() {
                        i += 1;
                    } else if b"+&,.".contains(&b) {
                        i += 1;
                        self.state = WatchState::AfterOperator;
                    } else {
                        self.end_payload();
                        self.state = WatchState::Scan;
                    }
                }
                WatchState::AfterOperator | WatchState::AfterContinuation => {
                    let b = chunk[i];
                    if b.is_ascii_whitespace() {
                        i += 1;
                    } else if b == b'_' && matches!(self.state, WatchState::AfterOperator) {
                        i += 1;
                        self.state = WatchState::AfterContinuation;
                    } else if matches!(b, b'"' | b'\'' | b'`') {
                        i += 1;
                        self.state = WatchState::Literal {
                            quote: b,
                            run: 0,
                            hex: true,
                        };
                    } else {
                        self.end_payload();
                        self.state = WatchState::Scan;
                    }
                }
            }
        }
    }

    /// Whether the script format identifies the object, now that it has all arrived.
    pub(crate) fn finish(mut self) -> bool {
        self.end_payload();
        self.found && !self.binary
    }

    /// Opens a first piece at `quote`.
    fn open(&mut self, quote: u8) {
        self.state = WatchState::Literal {
            quote,
            run: 0,
            hex: true,
        };
    }

    /// The payload being joined ends: it counts if it is long enough (as in `script::payloads`).
    fn end_payload(&mut self) {
        let (hex, length) = (self.all_hex, self.length);
        if self.pieces > 0
            && ((hex && length >= MIN_HEX && length.is_multiple_of(2))
                || (!hex && length >= MIN_BASE64))
        {
            self.found = true;
        }
        self.pieces = 0;
        self.length = 0;
        self.all_hex = true;
    }
}
