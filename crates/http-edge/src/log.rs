//! Logging for the servers, and the signal that stops them.
//!
//! Callers put strings in our logs (URLs, trace ids, keys, user names, and the error messages
//! that quote them). A newline in one would start a forged log line, and terminal escapes would
//! rewrite what an operator sees; so every event is written with its control characters
//! escaped, whatever field or message carried them, and so are the Unicode line and paragraph
//! separators (which log viewers and JSON tools break lines at) and the bidirectional controls
//! (which reorder what a line shows). Fields holding caller strings are also
//! logged with `?` (quoted and escaped) where they are written.

use std::io::Write;

use tracing_subscriber::EnvFilter;
use tracing_subscriber::fmt::MakeWriter;

/// Installs the log subscriber (`RUST_LOG` filter, `info` by default) writing escaped events to
/// standard error. Call once, from a binary's `main`.
pub fn init_logging() {
    tracing_subscriber::fmt()
        // Colour codes are control characters too; they would be escaped like a caller's.
        .with_ansi(false)
        .with_writer(Escaped(std::io::stderr))
        .with_env_filter(
            EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info")),
        )
        .init();
}

/// A writer that escapes control characters other than the newline ending an event.
#[derive(Clone, Copy)]
struct Escaped<F>(F);

impl<'a, F, W> MakeWriter<'a> for Escaped<F>
where
    F: Fn() -> W + 'static,
    W: Write,
{
    type Writer = EscapingWriter<W>;

    fn make_writer(&'a self) -> Self::Writer {
        EscapingWriter((self.0)())
    }
}

/// Escapes each write on its way to the inner writer. The formatter writes one whole event per
/// call, so only its last byte may be a real newline.
struct EscapingWriter<W>(W);

impl<W: Write> Write for EscapingWriter<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.write_all(&escape_event(buf))?;
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.0.flush()
    }
}

/// Characters that are not control characters but change how a line reads: the line and
/// paragraph separators, and the bidirectional marks, embeddings, overrides and isolates.
fn reshapes_lines(c: char) -> bool {
    matches!(
        c,
        '\u{2028}' | '\u{2029}' | '\u{061c}' | '\u{200e}' | '\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}'
    )
}

/// `event` with every control character (but a final newline) written as `\n`, `\r`, `\t` or
/// `\xNN`, and DEL, the C1 controls and the characters of [`reshapes_lines`] as `\u{..}`.
fn escape_event(event: &[u8]) -> Vec<u8> {
    let (body, end) = match event.strip_suffix(b"\n") {
        Some(body) => (body, &b"\n"[..]),
        None => (event, &b""[..]),
    };
    if body.iter().all(|&b| b.is_ascii() && !b.is_ascii_control()) {
        return event.to_vec();
    }
    let text = String::from_utf8_lossy(body);
    let mut out = String::with_capacity(body.len() + 16);
    for c in text.chars() {
        match c {
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if c.is_control() || reshapes_lines(c) => {
                if (c as u32) < 0x80 {
                    out.push_str(&format!("\\x{:02x}", c as u32));
                } else {
                    out.push_str(&format!("\\u{{{:x}}}", c as u32));
                }
            }
            c => out.push(c),
        }
    }
    let mut bytes = out.into_bytes();
    bytes.extend_from_slice(end);
    bytes
}

/// Resolves on Ctrl-C or SIGTERM.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        () = ctrl_c => {},
        () = term => {},
    }
    tracing::info!("shutting down: no new connections; in-flight requests get the drain time");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_forged_line_and_terminal_escapes_stay_on_one_escaped_line() {
        let event =
            "INFO job queued url=http://x/\n2026-01-01 INFO admin logged in \u{1b}[2J\u{9b}31m\n";
        let escaped = String::from_utf8(escape_event(event.as_bytes())).unwrap();
        assert_eq!(
            escaped,
            "INFO job queued url=http://x/\\n2026-01-01 INFO admin logged in \\x1b[2J\\u{9b}31m\n"
        );
        assert_eq!(escaped.matches('\n').count(), 1);
    }

    #[test]
    fn line_separators_and_bidirectional_controls_are_escaped() {
        let event =
            "INFO login user=adm\u{2028}INFO fake line key=\u{202e}exe.pdf\u{2066}x\u{2069}\n";
        let escaped = String::from_utf8(escape_event(event.as_bytes())).unwrap();
        assert_eq!(
            escaped,
            "INFO login user=adm\\u{2028}INFO fake line key=\\u{202e}exe.pdf\\u{2066}x\\u{2069}\n"
        );
    }

    #[test]
    fn plain_events_pass_unchanged() {
        let event = "INFO verdict-sync listening address=127.0.0.1:8080 ünïcode\n";
        assert_eq!(escape_event(event.as_bytes()), event.as_bytes());
    }

    #[test]
    fn the_writer_escapes_what_a_subscriber_writes() {
        let shared = std::sync::Arc::new(std::sync::Mutex::new(Vec::<u8>::new()));
        let sink = {
            let shared = std::sync::Arc::clone(&shared);
            move || Sink(std::sync::Arc::clone(&shared))
        };
        let subscriber = tracing_subscriber::fmt()
            .with_ansi(false)
            .with_writer(Escaped(sink))
            .finish();
        tracing::subscriber::with_default(subscriber, || {
            tracing::info!(url = %"http://a/\nFAKE ERROR line", "fetched");
        });
        let written = String::from_utf8(shared.lock().unwrap().clone()).unwrap();
        assert!(written.contains("http://a/\\nFAKE ERROR line"), "{written}");
        assert_eq!(written.matches('\n').count(), 1, "{written}");
    }

    struct Sink(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);

    impl Write for Sink {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
}
