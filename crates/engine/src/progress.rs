//! Progress of long operations (pull, push, load), as docker's JSON messages.

use serde::Serialize;
use tokio::sync::mpsc;

/// One line of a progress stream, in the shape docker's `jsonmessage` renders.
#[derive(Debug, Clone, Default, Serialize)]
pub struct ProgressMessage {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    #[serde(rename = "progressDetail", skip_serializing_if = "Option::is_none")]
    pub progress_detail: Option<ProgressDetail>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub progress: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stream: Option<String>,
    #[serde(rename = "errorDetail", skip_serializing_if = "Option::is_none")]
    pub error_detail: Option<ErrorDetail>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub aux: Option<serde_json::Value>,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct ProgressDetail {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub current: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub total: Option<u64>,
}

#[derive(Debug, Clone, Serialize)]
pub struct ErrorDetail {
    pub message: String,
}

/// Where an operation reports progress; a closed receiver (client gone) is ignored so the
/// operation still completes.
#[derive(Clone)]
pub struct Progress(Option<mpsc::UnboundedSender<ProgressMessage>>);

impl Progress {
    pub fn channel() -> (Progress, mpsc::UnboundedReceiver<ProgressMessage>) {
        let (tx, rx) = mpsc::unbounded_channel();
        (Progress(Some(tx)), rx)
    }

    pub fn discard() -> Progress {
        Progress(None)
    }

    pub fn send(&self, message: ProgressMessage) {
        if let Some(tx) = &self.0 {
            let _ = tx.send(message);
        }
    }

    /// A status line, optionally for an id (a layer, a tag).
    pub fn status(&self, id: Option<&str>, status: impl Into<String>) {
        let detail = id.map(|_| ProgressDetail::default());
        self.send(ProgressMessage {
            status: Some(status.into()),
            id: id.map(str::to_string),
            progress_detail: detail,
            ..Default::default()
        });
    }

    /// A line without progress detail (docker's "Pulling from ..." header).
    pub fn line(&self, id: Option<&str>, status: impl Into<String>) {
        self.send(ProgressMessage { status: Some(status.into()), id: id.map(str::to_string), ..Default::default() });
    }

    /// A progress bar line: `status` with `current` of `total` bytes.
    pub fn bar(&self, id: &str, status: &str, current: u64, total: u64) {
        self.send(ProgressMessage {
            status: Some(status.to_string()),
            id: Some(id.to_string()),
            progress_detail: Some(ProgressDetail { current: Some(current), total: Some(total) }),
            progress: Some(render_bar(current, total)),
            ..Default::default()
        });
    }

    pub fn aux(&self, value: serde_json::Value) {
        self.send(ProgressMessage { aux: Some(value), ..Default::default() });
    }

    pub fn error(&self, message: &str) {
        self.send(ProgressMessage {
            error_detail: Some(ErrorDetail { message: message.to_string() }),
            error: Some(message.to_string()),
            ..Default::default()
        });
    }
}

/// docker's text bar: `[=====>     ]  12.3MB/45.6MB`, 50 columns.
pub fn render_bar(current: u64, total: u64) -> String {
    let width = 50usize;
    let filled = if total > 0 { ((current.min(total) as f64 / total as f64) * width as f64) as usize } else { 0 };
    let mut bar = "=".repeat(filled);
    if filled < width {
        bar.push('>');
        bar.push_str(&" ".repeat(width - filled - 1));
    }
    format!("[{bar}] {:>8}/{}", human_size(current), human_size(total))
}

/// Decimal sizes with 3 significant digits, as docker's `units.HumanSize`.
pub fn human_size(size: u64) -> String {
    const UNITS: [&str; 9] = ["B", "kB", "MB", "GB", "TB", "PB", "EB", "ZB", "YB"];
    let mut value = size as f64;
    let mut unit = 0;
    while value >= 1000.0 && unit < UNITS.len() - 1 {
        value /= 1000.0;
        unit += 1;
    }
    // Go's %.4g: four significant digits, trailing zeros dropped.
    let decimals = if value >= 100.0 { 1 } else if value >= 10.0 { 2 } else { 3 };
    let text = format!("{value:.decimals$}");
    let text = if text.contains('.') { text.trim_end_matches('0').trim_end_matches('.') } else { &text };
    format!("{text}{}", UNITS[unit])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_read_like_docker() {
        assert_eq!(human_size(0), "0B");
        assert_eq!(human_size(999), "999B");
        assert_eq!(human_size(1234), "1.234kB");
        assert_eq!(human_size(4_200_000), "4.2MB");
        assert_eq!(human_size(123_456_789), "123.5MB");
    }
}
