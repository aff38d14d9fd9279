//! Display of the daemon's JSON progress streams (pull, push, load, import), as docker's
//! `jsonmessage.DisplayJSONMessagesStream` renders them: on a terminal one line per layer,
//! updated in place with cursor movement and progress bars; otherwise plain lines.

use std::collections::HashMap;
use std::io::{self, Write};

use serde::Deserialize;

use super::units::{go_duration_seconds, human_size, now_unix, LocalTime};

/// Progress of one operation (`progressDetail`).
#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
pub struct Progress {
    #[serde(default)]
    pub current: i64,
    #[serde(default)]
    pub total: i64,
    #[serde(default)]
    pub start: i64,
    #[serde(default, rename = "hidecounts")]
    pub hide_counts: bool,
    #[serde(default)]
    pub units: String,
}

impl Progress {
    /// The progress text: a bar (on terminals wider than 110 columns), the byte counts,
    /// and the estimated time left (wider than 50 columns).
    pub fn render(&self, width: usize, now: f64) -> String {
        if self.current <= 0 && self.total <= 0 {
            return String::new();
        }
        if self.total <= 0 {
            return if self.units.is_empty() {
                format!("{:>8}", human_size(self.current as f64))
            } else {
                format!("{} {}", self.current, self.units)
            };
        }
        let percentage = ((self.current as f64 / self.total as f64 * 100.0) as i64 / 2).min(50);
        let mut bar = String::new();
        if width > 110 {
            let spaces = (50 - percentage).max(0) as usize;
            bar = format!(
                "[{}>{}] ",
                "=".repeat(percentage.max(0) as usize),
                " ".repeat(spaces)
            );
        }
        let numbers = if self.hide_counts {
            String::new()
        } else if self.units.is_empty() {
            let current = human_size(self.current as f64);
            if self.current > self.total {
                format!("{current:>8}")
            } else {
                format!("{current:>8}/{}", human_size(self.total as f64))
            }
        } else if self.current > self.total {
            format!("{} {}", self.current, self.units)
        } else {
            format!("{}/{} {}", self.current, self.total, self.units)
        };
        let mut time_left = String::new();
        if width > 50 && self.current > 0 && self.start > 0 && percentage < 50 {
            let elapsed = now - self.start as f64;
            let per_unit = elapsed / self.current as f64;
            let left = ((self.total - self.current) as f64 * per_unit).round() as i64;
            time_left = format!(" {}", go_duration_seconds(left));
        }
        format!("{bar}{numbers}{time_left}")
    }
}

/// The error carried by a message (`errorDetail`).
#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
pub struct MessageError {
    #[serde(default)]
    pub code: i64,
    #[serde(default)]
    pub message: String,
}

/// One message of a progress stream.
#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
pub struct Message {
    #[serde(default)]
    pub stream: String,
    #[serde(default)]
    pub status: String,
    #[serde(default, rename = "progressDetail")]
    pub progress: Option<Progress>,
    #[serde(default, rename = "progress")]
    pub progress_message: String,
    #[serde(default)]
    pub id: String,
    #[serde(default)]
    pub from: String,
    #[serde(default)]
    pub time: i64,
    #[serde(default, rename = "timeNano")]
    pub time_nano: i64,
    #[serde(default, rename = "errorDetail")]
    pub error: Option<MessageError>,
    #[serde(default, rename = "error")]
    pub error_message: String,
    #[serde(default)]
    pub aux: Option<serde_json::Value>,
}

impl Message {
    /// The stream's error message, if this message reports a failure.
    pub fn failure(&self) -> Option<String> {
        match &self.error {
            Some(e) if !e.message.is_empty() => Some(e.message.clone()),
            _ if !self.error_message.is_empty() => Some(self.error_message.clone()),
            Some(e) => Some(e.message.clone()),
            None => None,
        }
    }
}

/// Renders a stream of messages to an output, keeping the per-layer line positions.
pub struct Display {
    is_terminal: bool,
    width: usize,
    /// Line index of each layer id currently on screen.
    ids: HashMap<String, usize>,
}

/// What a message asked of the caller.
#[derive(Debug, PartialEq)]
pub enum Outcome {
    /// The message was shown (or hidden, as docker hides it).
    Shown,
    /// The message carried auxiliary data, not shown.
    Aux(serde_json::Value),
    /// The operation failed with this message.
    Failed(String),
}

impl Display {
    /// A display for a terminal of `width` columns, or for plain output.
    pub fn new(is_terminal: bool, width: usize) -> Display {
        Display {
            is_terminal,
            width,
            ids: HashMap::new(),
        }
    }

    /// Shows one message.
    pub fn show(&mut self, message: &Message, out: &mut dyn Write) -> io::Result<Outcome> {
        if let Some(aux) = &message.aux {
            return Ok(Outcome::Aux(aux.clone()));
        }
        let mut diff = 0;
        if !message.id.is_empty()
            && (message.progress.is_some() || !message.progress_message.is_empty())
        {
            let next = self.ids.len();
            let line = match self.ids.get(&message.id) {
                Some(&line) => line,
                None => {
                    self.ids.insert(message.id.clone(), next);
                    if self.is_terminal {
                        out.write_all(b"\n")?;
                    }
                    next
                }
            };
            diff = self.ids.len() - line;
            if self.is_terminal && diff > 0 {
                write!(out, "\x1b[{diff}A")?;
            }
        } else {
            // Anything else ends the block of layer lines being updated.
            self.ids.clear();
        }
        let failure = message.failure();
        if failure.is_none() {
            self.write_message(message, out)?;
        }
        if !message.id.is_empty() && self.is_terminal && diff > 0 {
            write!(out, "\x1b[{diff}B")?;
        }
        Ok(match failure {
            Some(text) => Outcome::Failed(text),
            None => Outcome::Shown,
        })
    }

    fn write_message(&self, m: &Message, out: &mut dyn Write) -> io::Result<()> {
        let progress_text = m
            .progress
            .as_ref()
            .map(|p| p.render(self.width, now_unix()))
            .unwrap_or_default();
        let mut endl = "";
        if self.is_terminal && m.stream.is_empty() && m.progress.is_some() {
            out.write_all(b"\x1b[2K\r")?;
            endl = "\r";
        } else if m.progress.is_some() && !progress_text.is_empty() {
            // Progress bars are for terminals only.
            return Ok(());
        }
        if m.time_nano != 0 {
            let t = LocalTime::from_unix(
                m.time_nano.div_euclid(1_000_000_000),
                m.time_nano.rem_euclid(1_000_000_000) as u32,
            );
            write!(out, "{} ", t.rfc3339_nano_fixed())?;
        } else if m.time != 0 {
            write!(
                out,
                "{} ",
                LocalTime::from_unix(m.time, 0).rfc3339_nano_fixed()
            )?;
        }
        if !m.id.is_empty() {
            write!(out, "{}: ", m.id)?;
        }
        if !m.from.is_empty() {
            write!(out, "(from {}) ", m.from)?;
        }
        if m.progress.is_some() && self.is_terminal {
            write!(out, "{} {}{endl}", m.status, progress_text)?;
        } else if !m.progress_message.is_empty() {
            write!(out, "{} {}{endl}", m.status, m.progress_message)?;
        } else if !m.stream.is_empty() {
            write!(out, "{}{endl}", m.stream)?;
        } else {
            writeln!(out, "{}{endl}", m.status)?;
        }
        Ok(())
    }
}

/// Splits a byte buffer into complete JSON messages, leaving an incomplete tail in place.
pub fn drain_messages(buffer: &mut Vec<u8>) -> Result<Vec<Message>, serde_json::Error> {
    let mut messages = Vec::new();
    let mut stream = serde_json::Deserializer::from_slice(buffer).into_iter::<Message>();
    let mut consumed = 0;
    loop {
        match stream.next() {
            Some(Ok(message)) => {
                consumed = stream.byte_offset();
                messages.push(message);
            }
            Some(Err(e)) if e.is_eof() => break,
            Some(Err(e)) => return Err(e),
            None => {
                consumed = stream.byte_offset();
                break;
            }
        }
    }
    buffer.drain(..consumed);
    Ok(messages)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn messages(text: &str) -> Vec<Message> {
        let mut buf = text.as_bytes().to_vec();
        let out = drain_messages(&mut buf).unwrap();
        assert!(
            buf.iter().all(u8::is_ascii_whitespace),
            "left over: {buf:?}"
        );
        out
    }

    fn render(text: &str, terminal: bool, width: usize) -> (String, Option<String>) {
        let mut display = Display::new(terminal, width);
        let mut out = Vec::new();
        let mut failure = None;
        for m in messages(text) {
            if let Outcome::Failed(e) = display.show(&m, &mut out).unwrap() {
                failure = Some(e);
                break;
            }
        }
        (String::from_utf8(out).unwrap(), failure)
    }

    const PULL: &str = r#"{"status":"Pulling from test/img","id":"v1"}
{"status":"Pulling fs layer","progressDetail":{},"id":"69f2c1bf0bb3"}
{"status":"Downloading","progressDetail":{"current":500000,"total":1000000},"progress":"[==>  ]","id":"69f2c1bf0bb3"}
{"status":"Download complete","progressDetail":{},"id":"69f2c1bf0bb3"}
{"status":"Pull complete","progressDetail":{},"id":"69f2c1bf0bb3"}
{"status":"Digest: sha256:abc"}
{"status":"Status: Downloaded newer image for 127.0.0.1:5000/test/img:v1"}
"#;

    #[test]
    fn plain_output_hides_progress_bars() {
        let (out, failure) = render(PULL, false, 200);
        assert_eq!(failure, None);
        assert_eq!(
            out,
            "v1: Pulling from test/img\n\
             69f2c1bf0bb3: Pulling fs layer\n\
             69f2c1bf0bb3: Download complete\n\
             69f2c1bf0bb3: Pull complete\n\
             Digest: sha256:abc\n\
             Status: Downloaded newer image for 127.0.0.1:5000/test/img:v1\n"
        );
    }

    #[test]
    fn terminal_output_updates_lines_in_place() {
        let (out, _) = render(PULL, true, 120);
        let expected = concat!(
            "v1: Pulling from test/img\n",
            "\n\x1b[1A\x1b[2K\r69f2c1bf0bb3: Pulling fs layer \r\x1b[1B",
            "\x1b[1A\x1b[2K\r69f2c1bf0bb3: Downloading [=========================>                         ]    500kB/1MB\r\x1b[1B",
            "\x1b[1A\x1b[2K\r69f2c1bf0bb3: Download complete \r\x1b[1B",
            "\x1b[1A\x1b[2K\r69f2c1bf0bb3: Pull complete \r\x1b[1B",
            "Digest: sha256:abc\n",
            "Status: Downloaded newer image for 127.0.0.1:5000/test/img:v1\n",
        );
        assert_eq!(out, expected);
    }

    #[test]
    fn narrow_terminals_get_no_bar() {
        let p = Progress {
            current: 500_000,
            total: 1_000_000,
            ..Default::default()
        };
        assert_eq!(p.render(80, 0.0), "   500kB/1MB");
        assert_eq!(
            p.render(120, 0.0).len(),
            "[=========================>                         ]    500kB/1MB".len()
        );
        let started = Progress {
            start: 100,
            ..p.clone()
        };
        assert_eq!(started.render(80, 110.0), "   500kB/1MB 10s");
        let no_total = Progress {
            current: 2048,
            ..Default::default()
        };
        assert_eq!(no_total.render(80, 0.0), " 2.048kB");
        let units = Progress {
            current: 3,
            total: 10,
            units: "items".into(),
            ..Default::default()
        };
        assert_eq!(units.render(80, 0.0), "3/10 items");
    }

    #[test]
    fn errors_stop_the_stream() {
        let text = r#"{"status":"Pulling"}
{"errorDetail":{"message":"manifest unknown"},"error":"manifest unknown"}
{"status":"never shown"}"#;
        let (out, failure) = render(text, false, 200);
        assert_eq!(out, "Pulling\n");
        assert_eq!(failure.as_deref(), Some("manifest unknown"));
    }

    #[test]
    fn streams_and_aux() {
        let mut buf =
            br#"{"stream":"Loaded image: a:b\n"}{"aux":{"Tag":"v1"}}{"status":"incompl"#.to_vec();
        let msgs = drain_messages(&mut buf).unwrap();
        assert_eq!(msgs.len(), 2);
        assert_eq!(buf, br#"{"status":"incompl"#.to_vec());
        let mut display = Display::new(false, 80);
        let mut out = Vec::new();
        assert_eq!(display.show(&msgs[0], &mut out).unwrap(), Outcome::Shown);
        assert!(matches!(
            display.show(&msgs[1], &mut out).unwrap(),
            Outcome::Aux(_)
        ));
        assert_eq!(String::from_utf8(out).unwrap(), "Loaded image: a:b\n");
    }
}
