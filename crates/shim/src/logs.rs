//! The container's log, written as its output arrives (berth-logfile's formats).

use std::collections::HashMap;
use std::time::SystemTime;

use berth_logfile::{LogConfig, Stream, Writer};
use berth_shim_protocol::{ShimConfig, STDERR};

/// Writes the container's output to its log; a failing log never stops the container.
pub struct Logger {
    writer: Option<Writer>,
    /// Reported once, not per line.
    failed: bool,
}

impl Logger {
    pub fn open(config: &ShimConfig) -> Result<Logger, String> {
        let options: HashMap<String, String> = config.log.options.clone().into_iter().collect();
        let log = LogConfig::parse(&config.log.driver, &options).map_err(|e| format!("log configuration: {e}"))?;
        let writer = Writer::open(&config.log.dir, &config.id, &log, config.log.attrs.clone()).map_err(|e| format!("opening the log: {e}"))?;
        Ok(Logger { writer: Some(writer), failed: false })
    }

    pub fn write(&mut self, stream: u8, data: &[u8]) {
        let Some(w) = &mut self.writer else { return };
        let stream = if stream == STDERR { Stream::Stderr } else { Stream::Stdout };
        if let Err(e) = w.write(stream, data, SystemTime::now()) {
            if !self.failed {
                eprintln!("berth-shim: writing the log: {e}");
                self.failed = true;
            }
        }
    }

    /// Writes any incomplete last line. No fsync: like docker's, logs are written
    /// through the page cache, which survives everything but a power loss.
    pub fn finish(&mut self) {
        if let Some(w) = &mut self.writer {
            let _ = w.flush_partial();
        }
    }
}
