//! What every command works with: the daemon client, the configuration, and the
//! display of the daemon's progress streams.

use std::io::{self, IsTerminal, Write};
use std::path::PathBuf;

use http::Response;
use http_body_util::BodyExt;
use hyper::body::Incoming;

use crate::client::Client;
use crate::config::{AuthConfig, Configs};
use crate::error::{Error, Result};
use crate::format::jsonmessage::{drain_messages, Display, Outcome};
use crate::term;

/// The state shared by the commands of one invocation.
pub struct Cli {
    client: Client,
    config_dir: PathBuf,
    docker_config_dir: Option<PathBuf>,
    configs: Option<Configs>,
    pub debug: bool,
}

impl Cli {
    /// A CLI talking to `client`, with berth's configuration in `config_dir` and docker's
    /// (a fallback for credentials) in `docker_config_dir`.
    pub fn new(
        client: Client,
        config_dir: PathBuf,
        docker_config_dir: Option<PathBuf>,
        debug: bool,
    ) -> Cli {
        Cli {
            client,
            config_dir,
            docker_config_dir,
            configs: None,
            debug,
        }
    }

    /// The daemon client.
    pub fn client(&mut self) -> &mut Client {
        &mut self.client
    }

    /// The configuration files, loaded on first use.
    pub fn configs(&mut self) -> Result<&mut Configs> {
        if self.configs.is_none() {
            self.configs = Some(Configs::load(
                &self.config_dir,
                self.docker_config_dir.as_deref(),
            )?);
        }
        match self.configs.as_mut() {
            Some(configs) => Ok(configs),
            None => Err(Error::InvalidArgument(
                "configuration not loaded".to_string(),
            )),
        }
    }

    /// Stored credentials for a registry key; like docker, a failure to read them means
    /// an anonymous request.
    pub fn registry_auth(&mut self, key: &str) -> AuthConfig {
        self.configs()
            .and_then(|c| c.get_auth(key))
            .unwrap_or_default()
    }
}

/// Shows a progress stream on standard output (or nowhere when `quiet`), handing
/// auxiliary messages to `on_aux`. A failure message in the stream becomes the error.
pub async fn show_stream(
    response: Response<Incoming>,
    quiet: bool,
    on_aux: &mut dyn FnMut(serde_json::Value),
) -> Result<()> {
    show_stream_on(response, quiet, on_aux, false).await
}

/// Like `show_stream`, on standard error when `to_stderr` (the pull of `run`, whose
/// standard output carries only the container's).
pub async fn show_stream_on(
    response: Response<Incoming>,
    quiet: bool,
    on_aux: &mut dyn FnMut(serde_json::Value),
    to_stderr: bool,
) -> Result<()> {
    let is_terminal = !quiet
        && if to_stderr {
            io::stderr().is_terminal()
        } else {
            term::stdout_is_terminal()
        };
    let width = if is_terminal {
        term::stdout_width()
    } else {
        200
    };
    let mut display = Display::new(is_terminal, width);
    let mut stdout: Box<dyn Write> = if to_stderr {
        Box::new(io::stderr().lock())
    } else {
        Box::new(io::stdout().lock())
    };
    let mut sink = io::sink();
    let mut body = response.into_body();
    let mut buffer = Vec::new();
    let write_error = |source| Error::Io {
        operation: "writing output",
        source,
    };
    loop {
        let frame = body.frame().await;
        let done = match frame {
            Some(Ok(frame)) => {
                if let Ok(data) = frame.into_data() {
                    buffer.extend_from_slice(&data);
                }
                false
            }
            Some(Err(source)) => {
                return Err(Error::Transport {
                    operation: "reading progress stream",
                    source,
                })
            }
            None => true,
        };
        let messages = drain_messages(&mut buffer).map_err(|source| Error::Decode {
            operation: "progress stream",
            source,
        })?;
        for message in messages {
            let out: &mut dyn Write = if quiet { &mut sink } else { &mut *stdout };
            let outcome = display.show(&message, out).map_err(write_error)?;
            out.flush().map_err(write_error)?;
            match outcome {
                Outcome::Shown => {}
                Outcome::Aux(aux) => on_aux(aux),
                Outcome::Failed(message) => return Err(Error::Stream(message)),
            }
        }
        if done {
            break;
        }
    }
    if !buffer.iter().all(u8::is_ascii_whitespace) {
        let source = serde_json::from_slice::<serde_json::Value>(&buffer)
            .err()
            .unwrap_or_else(|| serde::de::Error::custom("trailing data"));
        return Err(Error::Decode {
            operation: "progress stream",
            source,
        });
    }
    Ok(())
}
