//! Bucket events from SQS: the standard S3 -> SQS notification set-up. Messages are long-polled
//! up to ten at a time by `receivers` loops per queue; each `ObjectCreated:*` record becomes a
//! job on the durable queue, and the message is deleted only after all of its jobs are queued.
//! From there the job queue carries the work at least once (a worker that dies has its jobs
//! taken over), so a message need not stay invisible in SQS for as long as a scan may wait in
//! line behind others. A message whose jobs could not be
//! queued is left alone: SQS shows it again after its visibility timeout, and the queue's own
//! redrive policy moves one that keeps failing to its dead-letter queue. A message that is not
//! an S3 notification at all (a poison message) is logged and deleted, so it never loops.

use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use crate::state::AppState;

pub use crate::config::SqsConfig;

/// Consumes every configured queue until `stop`.
pub(crate) async fn run(state: Arc<AppState>, config: SqsConfig, stop: CancellationToken) {
    let mut loader = aws_config::defaults(aws_config::BehaviorVersion::latest());
    if let Some(region) = &config.region {
        loader = loader.region(aws_config::Region::new(region.clone()));
    }
    let shared = loader.load().await;
    let mut builder = aws_sdk_sqs::config::Builder::from(&shared);
    if let Some(endpoint) = &config.endpoint {
        builder = builder.endpoint_url(endpoint);
    }
    let client = aws_sdk_sqs::Client::from_conf(builder.build());
    let consumers: Vec<_> = config
        .queue_urls
        .iter()
        .flat_map(|url| std::iter::repeat_n(url, config.receivers.max(1)))
        .map(|url| {
            tokio::spawn(consume(
                Arc::clone(&state),
                client.clone(),
                url.clone(),
                config.clone(),
                stop.clone(),
            ))
        })
        .collect();
    for consumer in consumers {
        let _ = consumer.await;
    }
}

async fn consume(
    state: Arc<AppState>,
    client: aws_sdk_sqs::Client,
    url: String,
    config: SqsConfig,
    stop: CancellationToken,
) {
    tracing::info!(queue = %url, "consuming bucket events from SQS");
    let mut backoff = Duration::from_millis(500);
    while !stop.is_cancelled() {
        let receive = client
            .receive_message()
            .queue_url(&url)
            .max_number_of_messages(config.batch.clamp(1, 10) as i32)
            .wait_time_seconds(config.wait_secs.min(20) as i32)
            .send();
        let received = tokio::select! {
            received = receive => received,
            () = stop.cancelled() => break,
        };
        let messages = match received {
            Ok(answer) => {
                backoff = Duration::from_millis(500);
                answer.messages.unwrap_or_default()
            }
            Err(e) => {
                tracing::warn!(queue = %url, error = %aws_sdk_sqs::error::DisplayErrorContext(&e), "receiving from SQS failed; retrying");
                tokio::select! {
                    () = tokio::time::sleep(backoff) => {},
                    () = stop.cancelled() => break,
                }
                backoff = (backoff * 2).min(Duration::from_secs(30));
                continue;
            }
        };
        // The batch's messages are queued together, then the handled ones deleted in one call.
        let handled =
            futures::future::join_all(messages.iter().map(|message| handle(&state, &url, message)))
                .await;
        let entries: Vec<_> = messages
            .iter()
            .zip(handled)
            .enumerate()
            .filter(|(_, (_, delete))| *delete)
            .filter_map(|(i, (message, _))| {
                aws_sdk_sqs::types::DeleteMessageBatchRequestEntry::builder()
                    .id(i.to_string())
                    .set_receipt_handle(message.receipt_handle().map(str::to_owned))
                    .build()
                    .ok()
            })
            .collect();
        if entries.is_empty() {
            continue;
        }
        // A message whose delete fails comes back and its objects are queued again: at least
        // once.
        match client
            .delete_message_batch()
            .queue_url(&url)
            .set_entries(Some(entries))
            .send()
            .await
        {
            Ok(answer) if !answer.failed().is_empty() => {
                tracing::warn!(queue = %url, failed = answer.failed().len(), "some handled messages were not deleted; they will be handled again");
            }
            Ok(_) => {}
            Err(e) => {
                tracing::warn!(queue = %url, error = %aws_sdk_sqs::error::DisplayErrorContext(&e), "deleting handled messages failed; they will be handled again");
            }
        }
    }
}

/// Queues one message's objects; whether it is done with (queued, or not an S3 notification
/// at all) and may be deleted.
async fn handle(state: &AppState, url: &str, message: &aws_sdk_sqs::types::Message) -> bool {
    let body = message.body().unwrap_or_default();
    match crate::events::parse(body.as_bytes()) {
        Ok(notification) => {
            match crate::events::queue_created(state, None, notification.created).await {
                Ok((queued, not_watched)) => {
                    tracing::info!(queue = %url, queued, not_watched, "bucket events queued");
                    true
                }
                Err(e) => {
                    // Left for SQS to show again (and, past its redrive count, to the
                    // dead-letter queue).
                    tracing::warn!(queue = %url, error = %e, "a message's jobs were not all queued; it stays in SQS");
                    false
                }
            }
        }
        Err(e) => {
            tracing::error!(queue = %url, error = %e, body = ?body.chars().take(200).collect::<String>(), "dropping a message that is not an S3 notification");
            true
        }
    }
}
