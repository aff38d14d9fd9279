//! `GET /containers/{id}/attach/ws`: attach over a WebSocket, the way docker serves it.
//! Output goes out as binary messages (text ones for clients older than API 1.28) and is
//! never multiplexed: stdout and stderr arrive interleaved as the container wrote them.
//! Messages from the client go to the container's stdin; closing the socket closes it.

use std::sync::Arc;

use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::extract::{Path, RawQuery, State};
use axum::response::Response;
use berth_engine::containers::AttachStream;
use berth_engine::Engine;
use futures_util::{SinkExt, StreamExt};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::containers::{attach_request, PastOutput};
use crate::error::ApiResult;
use crate::params::Query;
use crate::version::RequestVersion;

pub async fn attach_ws(
    State(engine): State<Arc<Engine>>,
    Path(id): Path<String>,
    RawQuery(raw): RawQuery,
    version: Option<axum::Extension<RequestVersion>>,
    upgrade: WebSocketUpgrade,
) -> ApiResult<Response> {
    let query = Query::parse(raw.as_deref());
    let (past, live) = attach_request(&engine, &id, &query).await?;
    let binary = version.is_none_or(|v| v.0 .0 >= (1, 28));
    Ok(upgrade.on_upgrade(move |socket| relay(socket, past, live, binary)))
}

async fn relay(socket: WebSocket, past: Option<PastOutput>, live: Option<AttachStream>, binary: bool) {
    let message = |data: Vec<u8>| {
        if binary {
            Message::Binary(data.into())
        } else {
            Message::Text(String::from_utf8_lossy(&data).into_owned().into())
        }
    };
    let (mut sink, mut source) = socket.split();
    if let Some(mut past) = past {
        while let Some(line) = past.next_raw().await {
            if sink.send(message(line)).await.is_err() {
                return;
            }
        }
    }
    let shim = match live {
        Some(live) => {
            let tty = live.tty;
            live.connected().await.ok().map(|s| (s, tty))
        }
        None => None,
    };
    let Some((shim, tty)) = shim else {
        let _ = sink.send(Message::Close(None)).await;
        let _ = tokio::time::timeout(std::time::Duration::from_secs(5), source.next()).await;
        return;
    };
    let (mut shim_read, mut shim_write) = shim.into_split();
    let output = async {
        let mut frames = Demux { tty, pending: vec![] };
        let mut buf = vec![0u8; 32 << 10];
        loop {
            match shim_read.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    for payload in frames.push(&buf[..n]) {
                        if sink.send(message(payload)).await.is_err() {
                            return;
                        }
                    }
                }
            }
        }
        let _ = sink.send(Message::Close(None)).await;
    };
    let input = async {
        while let Some(Ok(msg)) = source.next().await {
            let written = match msg {
                Message::Binary(data) => shim_write.write_all(&data).await,
                Message::Text(text) => shim_write.write_all(text.as_bytes()).await,
                Message::Close(_) => break,
                Message::Ping(_) | Message::Pong(_) => Ok(()),
            };
            if written.is_err() {
                break;
            }
        }
        let _ = shim_write.shutdown().await;
        // Keep the output flowing until the process is done.
        std::future::pending::<()>().await;
    };
    tokio::select! {
        () = output => {}
        () = input => {}
    }
    // The client answers our close; wait for it briefly so it is not cut off mid-reply.
    let _ = tokio::time::timeout(std::time::Duration::from_secs(5), async {
        while let Some(Ok(msg)) = source.next().await {
            if matches!(msg, Message::Close(_)) {
                break;
            }
        }
    })
    .await;
}

/// Takes the shim's attach stream apart: without a tty it carries docker's 8-byte frame
/// headers, which a WebSocket client does not get.
struct Demux {
    tty: bool,
    pending: Vec<u8>,
}

impl Demux {
    fn push(&mut self, data: &[u8]) -> Vec<Vec<u8>> {
        if self.tty {
            return vec![data.to_vec()];
        }
        self.pending.extend_from_slice(data);
        let mut payloads = vec![];
        let mut at = 0;
        while let Some(header) = self.pending.get(at..at + 8) {
            let size = u32::from_be_bytes([header[4], header[5], header[6], header[7]]) as usize;
            let Some(payload) = self.pending.get(at + 8..at + 8 + size) else { break };
            payloads.push(payload.to_vec());
            at += 8 + size;
        }
        self.pending.drain(..at);
        payloads
    }
}

#[cfg(test)]
mod tests {
    use super::Demux;

    #[test]
    fn frames_split_anywhere_come_out_whole() {
        let mut wire = berth_shim_protocol::frame_header(1, 3).to_vec();
        wire.extend_from_slice(b"out");
        wire.extend_from_slice(&berth_shim_protocol::frame_header(2, 4));
        wire.extend_from_slice(b"err\n");
        for cut in 0..wire.len() {
            let mut demux = Demux { tty: false, pending: vec![] };
            let mut got = demux.push(&wire[..cut]);
            got.extend(demux.push(&wire[cut..]));
            assert_eq!(got, vec![b"out".to_vec(), b"err\n".to_vec()], "cut at {cut}");
        }
        let mut raw = Demux { tty: true, pending: vec![] };
        assert_eq!(raw.push(b"\x01\x00tty"), vec![b"\x01\x00tty".to_vec()]);
    }
}
