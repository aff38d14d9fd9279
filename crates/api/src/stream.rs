//! Streamed responses: progress of a long operation as docker's JSON lines. Like dockerd, an
//! operation that fails before its first progress line answers with a plain HTTP error, so
//! clients print "Error response from daemon: ..."; later failures become an `errorDetail`
//! line in the stream.

use std::future::Future;

use axum::body::Body;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use berth_engine::{Progress, ProgressMessage};
use bytes::Bytes;
use futures_util::StreamExt;

use crate::error::ApiError;

fn line(message: &ProgressMessage) -> Bytes {
    let mut bytes = serde_json::to_vec(message).unwrap_or_default();
    bytes.extend_from_slice(b"\r\n");
    Bytes::from(bytes)
}

/// Runs `operation` in its own task (it finishes even if the client goes away) and streams
/// its progress.
pub async fn progress<F, Fut>(operation: F) -> Response
where
    F: FnOnce(Progress) -> Fut,
    Fut: Future<Output = Result<(), berth_engine::Error>> + Send + 'static,
{
    let (progress, mut messages) = Progress::channel();
    let fut = operation(progress);
    let mut task = tokio::spawn(async move {
        let result = fut.await;
        berth_engine::release_memory();
        result
    });
    let first = tokio::select! {
        biased;
        m = messages.recv() => m,
        done = task_result(&mut task) => {
            // Finished before saying anything: an error is a plain HTTP error.
            return match done {
                Err(e) => e.into_response(),
                Ok(()) => {
                    let rest: Vec<ProgressMessage> = drain(&mut messages);
                    json_lines(rest.iter().map(line).collect())
                }
            };
        }
    };
    let Some(first) = first else {
        // Every sender is gone: the operation ended without a word; its result decides.
        return match task_result(&mut task).await {
            Err(e) => e.into_response(),
            Ok(()) => json_lines(Vec::new()),
        };
    };
    // Messages until the operation ends, then its error (if any) as the last line.
    let rest = futures_util::stream::unfold((messages, Some(task)), |(mut messages, task)| async move {
        if let Some(m) = messages.recv().await {
            return Some((m, (messages, task)));
        }
        let error = match task_result(&mut task?).await {
            Err(e) => e.message,
            Ok(()) => return None,
        };
        let mut m = ProgressMessage::default();
        m.error_detail = Some(berth_engine::progress::ErrorDetail { message: error.clone() });
        m.error = Some(error);
        Some((m, (messages, None)))
    });
    let stream = futures_util::stream::once(async move { first }).chain(rest).map(|m| Ok::<_, std::io::Error>(line(&m)));
    Response::builder()
        .status(StatusCode::OK)
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::from_stream(stream))
        .unwrap_or_else(|_| StatusCode::INTERNAL_SERVER_ERROR.into_response())
}

async fn task_result(task: &mut tokio::task::JoinHandle<Result<(), berth_engine::Error>>) -> Result<(), ApiError> {
    match task.await {
        Ok(r) => r.map_err(ApiError::from),
        Err(e) => Err(ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, format!("operation failed: {e}"))),
    }
}

fn drain(messages: &mut tokio::sync::mpsc::UnboundedReceiver<ProgressMessage>) -> Vec<ProgressMessage> {
    let mut out = Vec::new();
    while let Ok(m) = messages.try_recv() {
        out.push(m);
    }
    out
}

fn json_lines(lines: Vec<Bytes>) -> Response {
    let body: Vec<u8> = lines.concat();
    ([(header::CONTENT_TYPE, "application/json")], body).into_response()
}
