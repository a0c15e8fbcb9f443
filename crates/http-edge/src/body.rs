//! Request bodies at the edge: [`TimedBody`] (every byte of every body under one idle timeout
//! and a minimum rate),
//! [`Form`] (multipart whose preamble and part heads are bounded), and [`spool`] (a body stream
//! into a [`ScanInput`] without holding it in memory), all failing with one [`BodyError`].

use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::body::Body;
use bytes::Bytes;
use futures::{Stream, StreamExt};
use http_body::Frame;
use scan_core::{InputBuilder, InputError, ScanInput, SpoolPolicy};

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// The client sent nothing for `after` while the server was waiting for its body.
#[derive(Debug, Clone, Copy, thiserror::Error)]
#[error("the request body sent nothing for {} s", after.as_secs())]
pub struct Stalled {
    /// The idle timeout that ran out.
    pub after: Duration,
}

/// The client sent, while the server waited, less than the minimum rate over a window.
#[derive(Debug, Clone, Copy, thiserror::Error)]
#[error("the request body arrived slower than {} bytes/s over {} s", pace.min_rate, pace.window.as_secs())]
pub struct TooSlow {
    /// The rule that was broken.
    pub pace: Pace,
}

/// How fast a request body must arrive: at least `min_rate` bytes per second, counted over each
/// `window` of time the server spends waiting for it. A client trickling a byte now and then
/// (to hold a connection, a scan slot, a login) is cut off after one window; a body that ends
/// within its first window is never judged.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Pace {
    /// Bytes per second, at least (0: no rule).
    pub min_rate: u64,
    /// The span the rate is measured over.
    pub window: Duration,
}

/// A multipart preamble or part head ran past its bound without ending.
#[derive(Debug, Clone, Copy, thiserror::Error)]
#[error(
    "a multipart part head (or the preamble before the first boundary) is longer than {limit} bytes"
)]
pub struct HeadTooLong {
    /// The bound, bytes.
    pub limit: usize,
}

/// Why a request body could not be read.
#[derive(Debug, thiserror::Error)]
pub enum BodyError {
    /// The client stopped sending (408).
    #[error("the request sent nothing for {} s and was stopped", .0.as_secs())]
    Stalled(Duration),
    /// The client sent too slowly (408).
    #[error("the request was stopped: {0}")]
    TooSlow(TooSlow),
    /// The body is over the spool's size limit (413).
    #[error("the body is larger than the limit of {limit} bytes")]
    TooLarge {
        /// The limit, bytes.
        limit: u64,
    },
    /// The multipart framing is wrong (400).
    #[error("malformed multipart body: {0}")]
    Malformed(String),
    /// A multipart head or preamble did not end within its bound (400).
    #[error(transparent)]
    HeadTooLong(HeadTooLong),
    /// A text part is longer than allowed (400).
    #[error("a text field is longer than {0} bytes")]
    TextTooLong(usize),
    /// A text part is not UTF-8 (400).
    #[error("a text field is not UTF-8")]
    NotText,
    /// The body ended early or the connection broke (400): the file is not scanned short.
    #[error("the file did not arrive whole: {0}")]
    Broken(String),
    /// The spool failed on our side (disk); the cause is for the log (500).
    #[error("spooling the body failed: {0}")]
    Spool(String),
}

impl BodyError {
    /// The HTTP status this failure is answered with.
    pub fn status(&self) -> axum::http::StatusCode {
        use axum::http::StatusCode;
        match self {
            BodyError::Stalled(_) | BodyError::TooSlow(_) => StatusCode::REQUEST_TIMEOUT,
            BodyError::TooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            BodyError::Spool(_) => StatusCode::INTERNAL_SERVER_ERROR,
            _ => StatusCode::BAD_REQUEST,
        }
    }

    /// Classifies a failure of a body stream by what is in its chain of causes: a stall, a
    /// multipart head past its bound, or else a broken body.
    pub fn from_cause(err: &(dyn std::error::Error + 'static)) -> Self {
        let mut cause = Some(err);
        while let Some(e) = cause {
            if let Some(stalled) = e.downcast_ref::<Stalled>() {
                return BodyError::Stalled(stalled.after);
            }
            if let Some(slow) = e.downcast_ref::<TooSlow>() {
                return BodyError::TooSlow(*slow);
            }
            if let Some(head) = e.downcast_ref::<HeadTooLong>() {
                return BodyError::HeadTooLong(*head);
            }
            cause = e.source();
        }
        BodyError::Broken(err.to_string())
    }

    fn of_multipart(err: multer::Error) -> Self {
        match &err {
            multer::Error::StreamReadFailed(inner) => Self::from_cause(inner.as_ref()),
            _ => BodyError::Malformed(err.to_string()),
        }
    }
}

pin_project_lite::pin_project! {
    /// A request body under two rules, which only count time the server spends waiting for
    /// it (not time spent scanning or writing the spool): it fails with [`Stalled`] when the
    /// client sends nothing for `idle`, and with [`TooSlow`] when, over a window of waiting,
    /// it sends less than its [`Pace`] asks.
    pub struct TimedBody<B> {
        #[pin]
        inner: B,
        idle: Duration,
        pace: Pace,
        idle_deadline: Option<Pin<Box<tokio::time::Sleep>>>,
        // The window being measured: bytes received in it, the waiting it has had before the
        // wait now under way, and when that wait began.
        window_bytes: u64,
        window_waited: Duration,
        waiting_since: Option<tokio::time::Instant>,
        window_deadline: Option<Pin<Box<tokio::time::Sleep>>>,
    }
}

impl<B> TimedBody<B> {
    /// Wraps `inner` with the idle timeout `idle` and the minimum pace `pace`.
    pub fn new(inner: B, idle: Duration, pace: Pace) -> Self {
        TimedBody {
            inner,
            idle,
            pace,
            idle_deadline: None,
            window_bytes: 0,
            window_waited: Duration::ZERO,
            waiting_since: None,
            window_deadline: None,
        }
    }
}

impl<B> http_body::Body for TimedBody<B>
where
    B: http_body::Body<Data = Bytes>,
    B::Error: Into<BoxError>,
{
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = self.project();
        match this.inner.poll_frame(cx) {
            Poll::Ready(frame) => {
                *this.idle_deadline = None;
                if let Some(since) = this.waiting_since.take() {
                    *this.window_waited += since.elapsed();
                    *this.window_deadline = None;
                }
                if let Some(Ok(data)) = frame.as_ref().map(|f| f.as_ref().map(Frame::data_ref))
                    && let Some(data) = data
                {
                    *this.window_bytes += data.len() as u64;
                }
                Poll::Ready(frame.map(|f| f.map_err(Into::into)))
            }
            Poll::Pending => {
                let idle = *this.idle;
                let deadline = this
                    .idle_deadline
                    .get_or_insert_with(|| Box::pin(tokio::time::sleep(idle)));
                if deadline.as_mut().poll(cx).is_ready() {
                    *this.idle_deadline = None;
                    return Poll::Ready(Some(Err(Box::new(Stalled { after: idle }))));
                }
                let pace = *this.pace;
                if pace.min_rate == 0 || pace.window.is_zero() {
                    return Poll::Pending;
                }
                let now = tokio::time::Instant::now();
                let since = *this.waiting_since.get_or_insert(now);
                let waited = *this.window_waited + (now - since);
                if waited >= pace.window {
                    let wanted = pace.min_rate.saturating_mul(pace.window.as_secs().max(1));
                    if *this.window_bytes < wanted {
                        return Poll::Ready(Some(Err(Box::new(TooSlow { pace }))));
                    }
                    // The window was fast enough: the next one starts now.
                    *this.window_bytes = 0;
                    *this.window_waited = Duration::ZERO;
                    *this.waiting_since = Some(now);
                    *this.window_deadline = None;
                }
                let left =
                    pace.window - (*this.window_waited + (now - this.waiting_since.unwrap_or(now)));
                let window = this
                    .window_deadline
                    .get_or_insert_with(|| Box::pin(tokio::time::sleep(left)));
                if window.as_mut().poll(cx).is_ready() {
                    // Due: judged on the next poll, which this wakes.
                    *this.window_deadline = None;
                    cx.waker().wake_by_ref();
                }
                Poll::Pending
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.inner.size_hint()
    }
}

/// What a multipart reader has pulled from the body since it last started looking for a part.
#[derive(Default)]
struct HeadBudget {
    looking: AtomicBool,
    pulled: AtomicUsize,
}

/// A `multipart/form-data` body read part by part. multer buffers everything it reads while it
/// looks for a boundary and the end of a part's head; a body that never shows either would
/// otherwise be buffered whole. Here, once more than `max_head_bytes` have arrived while a part
/// is being looked for, the next read fails with [`HeadTooLong`] (so at most that bound plus one
/// network read is held).
pub struct Form {
    multipart: multer::Multipart<'static>,
    budget: Arc<HeadBudget>,
}

impl Form {
    /// Reads `body` with `boundary`, allowing `max_head_bytes` of preamble or part head.
    pub fn new(body: Body, boundary: String, max_head_bytes: usize) -> Self {
        let budget = Arc::new(HeadBudget::default());
        let counted = {
            let budget = Arc::clone(&budget);
            body.into_data_stream().map(move |chunk| {
                let chunk = chunk.map_err(BoxError::from)?;
                if budget.looking.load(Ordering::Relaxed) {
                    let before = budget.pulled.fetch_add(chunk.len(), Ordering::Relaxed);
                    if before > max_head_bytes {
                        return Err(BoxError::from(HeadTooLong {
                            limit: max_head_bytes,
                        }));
                    }
                }
                Ok::<_, BoxError>(chunk)
            })
        };
        Form {
            multipart: multer::Multipart::new(counted, boundary),
            budget,
        }
    }

    /// The boundary of a `multipart/*` content type, or a 400-worthy reason.
    pub fn boundary(content_type: &str) -> Result<String, BodyError> {
        multer::parse_boundary(content_type)
            .map_err(|e| BodyError::Malformed(format!("malformed multipart content type: {e}")))
    }

    /// The next part, `None` after the last.
    pub async fn next_field(&mut self) -> Result<Option<multer::Field<'static>>, BodyError> {
        self.budget.pulled.store(0, Ordering::Relaxed);
        self.budget.looking.store(true, Ordering::Relaxed);
        let next = self.multipart.next_field().await;
        self.budget.looking.store(false, Ordering::Relaxed);
        next.map_err(BodyError::of_multipart)
    }
}

/// A text part, at most `max` bytes of UTF-8.
pub async fn read_text(mut field: multer::Field<'_>, max: usize) -> Result<String, BodyError> {
    let mut text = Vec::new();
    while let Some(chunk) = field.chunk().await.map_err(BodyError::of_multipart)? {
        if text.len() + chunk.len() > max {
            return Err(BodyError::TextTooLong(max));
        }
        text.extend_from_slice(&chunk);
    }
    String::from_utf8(text).map_err(|_| BodyError::NotText)
}

/// Reads a part to its end and forgets it.
pub async fn drain(mut field: multer::Field<'_>) -> Result<(), BodyError> {
    while field
        .chunk()
        .await
        .map_err(BodyError::of_multipart)?
        .is_some()
    {}
    Ok(())
}

/// Bodies at most this long are read and dropped before an early refusal (503), so the client
/// reads the answer on a connection that stays open; longer ones are cut off with it.
pub const DISCARD_MAX: usize = 256 * 1024;

/// Reads and drops what is left of `body` when it is small (at most [`DISCARD_MAX`] bytes, and
/// within the idle timeout): a client that sends its whole request before reading the answer
/// (most do, for small bodies) then gets the answer instead of a broken pipe.
pub async fn discard_small(body: Body) {
    let mut stream = body.into_data_stream();
    let mut read = 0usize;
    while let Some(Ok(chunk)) = stream.next().await {
        read += chunk.len();
        if read > DISCARD_MAX {
            break;
        }
    }
}

/// Feeds a body stream to the spool on a blocking thread as it arrives: chunks are batched (to
/// wake that thread less often) and handed over without copying. A stream that breaks (client
/// gone, stalled, malformed) is an error, never a short file that gets scanned.
pub async fn spool<S, E>(mut stream: S, config: SpoolPolicy) -> Result<ScanInput, BodyError>
where
    S: Stream<Item = Result<Bytes, E>> + Unpin,
    E: std::error::Error + 'static,
{
    const BATCH_BYTES: usize = 256 * 1024;
    let (tx, mut rx) = tokio::sync::mpsc::channel::<Vec<Bytes>>(8);
    let spooler = tokio::task::spawn_blocking(move || {
        let mut input = InputBuilder::new(&config);
        while let Some(batch) = rx.blocking_recv() {
            for chunk in batch {
                input.push(chunk)?;
            }
        }
        input.finish()
    });
    let mut batch = Vec::new();
    let mut batched = 0;
    let mut broken = None;
    while let Some(item) = stream.next().await {
        match item {
            Ok(chunk) => {
                batched += chunk.len();
                batch.push(chunk);
                if batched >= BATCH_BYTES {
                    batched = 0;
                    // A closed channel means the spool stopped early (too large, disk): its
                    // result says why.
                    if tx.send(std::mem::take(&mut batch)).await.is_err() {
                        break;
                    }
                }
            }
            Err(e) => {
                broken = Some(BodyError::from_cause(&e));
                break;
            }
        }
    }
    if broken.is_none() && !batch.is_empty() {
        let _ = tx.send(batch).await;
    }
    drop(tx);
    let spooled = spooler.await.map_err(|e| BodyError::Spool(e.to_string()))?;
    // The spool saw the closed channel as an end; that partial input is dropped here.
    if let Some(why) = broken {
        return Err(why);
    }
    spooled.map_err(|e| match e {
        InputError::TooLarge { limit } => BodyError::TooLarge { limit },
        InputError::Read(e) => BodyError::Broken(e.to_string()),
        other => BodyError::Spool(other.to_string()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures::SinkExt;
    use http_body::Body as _;

    const NO_PACE: Pace = Pace {
        min_rate: 0,
        window: Duration::ZERO,
    };

    #[tokio::test(start_paused = true)]
    async fn a_body_that_stops_sending_fails_with_stalled() {
        let (mut tx, body) = http_body_util_channel();
        let mut body = TimedBody::new(body, Duration::from_secs(5), NO_PACE);
        tx.try_send(Ok(Frame::data(Bytes::from_static(b"first"))))
            .unwrap();
        let first = std::future::poll_fn(|cx| Pin::new(&mut body).poll_frame(cx)).await;
        assert_eq!(
            first.unwrap().unwrap().into_data().unwrap(),
            Bytes::from_static(b"first")
        );
        let second = std::future::poll_fn(|cx| Pin::new(&mut body).poll_frame(cx)).await;
        let err = second.unwrap().unwrap_err();
        assert!(
            matches!(BodyError::from_cause(err.as_ref()), BodyError::Stalled(d) if d == Duration::from_secs(5)),
            "{err}"
        );
        drop(tx);
    }

    #[tokio::test(start_paused = true)]
    async fn a_trickle_fails_after_one_window_and_a_steady_body_does_not() {
        let pace = Pace {
            min_rate: 100,
            window: Duration::from_secs(10),
        };
        // A byte every 2 s: never idle for 5 s, but 5 bytes in 10 s.
        let (mut tx, body) = http_body_util_channel();
        let mut trickled = TimedBody::new(body, Duration::from_secs(5), pace);
        let feeder = tokio::spawn(async move {
            for _ in 0..20 {
                tokio::time::sleep(Duration::from_secs(2)).await;
                if tx
                    .try_send(Ok(Frame::data(Bytes::from_static(b"x"))))
                    .is_err()
                {
                    break;
                }
            }
        });
        let started = tokio::time::Instant::now();
        let failure = loop {
            match std::future::poll_fn(|cx| Pin::new(&mut trickled).poll_frame(cx)).await {
                Some(Ok(_)) => continue,
                Some(Err(e)) => break e,
                None => panic!("the trickle ended without failing"),
            }
        };
        assert!(
            matches!(
                BodyError::from_cause(failure.as_ref()),
                BodyError::TooSlow(_)
            ),
            "{failure}"
        );
        assert!(
            started.elapsed() <= Duration::from_secs(11),
            "{:?}",
            started.elapsed()
        );
        feeder.abort();

        // 200 bytes/s for 30 s passes every window.
        let (mut tx, body) = http_body_util_channel();
        let mut steady = TimedBody::new(body, Duration::from_secs(5), pace);
        let feeder = tokio::spawn(async move {
            for _ in 0..30 {
                tokio::time::sleep(Duration::from_secs(1)).await;
                tx.send(Ok(Frame::data(Bytes::from(vec![0u8; 200]))))
                    .await
                    .unwrap();
            }
        });
        let mut got = 0;
        while let Some(frame) =
            std::future::poll_fn(|cx| Pin::new(&mut steady).poll_frame(cx)).await
        {
            got += frame.unwrap().into_data().unwrap().len();
        }
        assert_eq!(got, 6000);
        feeder.await.unwrap();
    }

    type Frames = futures::channel::mpsc::Receiver<Result<Frame<Bytes>, std::io::Error>>;

    /// A body fed by a channel: frames sent on `tx` arrive; nothing sent, nothing arrives.
    fn http_body_util_channel() -> (
        futures::channel::mpsc::Sender<Result<Frame<Bytes>, std::io::Error>>,
        http_body_util::StreamBody<Frames>,
    ) {
        let (tx, rx) = futures::channel::mpsc::channel(4);
        (tx, http_body_util::StreamBody::new(rx))
    }
}
