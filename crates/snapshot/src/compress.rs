//! Layer blob compression: detection by magic bytes, decompressing readers, a gzip writer.

use std::io::{self, BufRead, Cursor, Read, Write};

use crate::error::{Error, Result};

/// Compression level of [`gzip_writer`]: close to the size of level 6 at a fraction of its time.
const GZIP_LEVEL: u32 = 3;

const GZIP_MAGIC: &[u8] = &[0x1f, 0x8b];
const ZSTD_MAGIC: &[u8] = &[0x28, 0xb5, 0x2f, 0xfd];

/// Compression of a layer blob, detected from its first bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compression {
    None,
    Gzip,
    Zstd,
}

impl Compression {
    /// The media type suffix registries use for this compression (`""`, `"+gzip"`, `"+zstd"`).
    pub fn media_type_suffix(self) -> &'static str {
        match self {
            Compression::None => "",
            Compression::Gzip => "+gzip",
            Compression::Zstd => "+zstd",
        }
    }
}

/// Detects the compression from the first bytes of a blob (gzip `1f 8b`, zstd `28 b5 2f fd`, else none).
pub fn detect_compression(prefix: &[u8]) -> Compression {
    if prefix.starts_with(GZIP_MAGIC) {
        Compression::Gzip
    } else if prefix.starts_with(ZSTD_MAGIC) {
        Compression::Zstd
    } else {
        Compression::None
    }
}

/// Wraps a reader of a (maybe compressed) layer blob into a reader of the plain tar stream.
///
/// The compression is sniffed from the magic bytes, not taken from a media type: registries and
/// archives mislabel layers often enough. Concatenated gzip members and zstd frames are read
/// through to the end, as `gzip -d` does.
pub fn decompress<'a, R: BufRead + 'a>(mut r: R) -> Result<Box<dyn Read + 'a>> {
    let buffered = r.fill_buf().map_err(Error::ReadLayer)?;
    if buffered.len() >= ZSTD_MAGIC.len() || buffered.is_empty() {
        let compression = detect_compression(buffered);
        return wrap(compression, r);
    }
    // The first read was short: collect the magic bytes, then put them back in front.
    let mut magic = Vec::with_capacity(ZSTD_MAGIC.len());
    (&mut r).take(ZSTD_MAGIC.len() as u64).read_to_end(&mut magic).map_err(Error::ReadLayer)?;
    let compression = detect_compression(&magic);
    wrap(compression, Cursor::new(magic).chain(r))
}

fn wrap<'a, R: BufRead + 'a>(compression: Compression, r: R) -> Result<Box<dyn Read + 'a>> {
    Ok(match compression {
        Compression::None => Box::new(r),
        Compression::Gzip => Box::new(flate2::bufread::MultiGzDecoder::new(r)),
        Compression::Zstd => Box::new(zstd::stream::read::Decoder::with_buffer(r).map_err(Error::ReadLayer)?),
    })
}

/// A writer that gzip-compresses into `W`; call [`GzipWriter::finish`] to write the trailer.
pub struct GzipWriter<W: Write> {
    inner: flate2::write::GzEncoder<W>,
}

/// Starts gzip compression into `w` (zlib-rs, a fast level) for import, commit and push.
pub fn gzip_writer<W: Write>(w: W) -> GzipWriter<W> {
    GzipWriter { inner: flate2::write::GzEncoder::new(w, flate2::Compression::new(GZIP_LEVEL)) }
}

impl<W: Write> GzipWriter<W> {
    /// Writes the gzip trailer and returns the inner writer. Dropping without `finish` also
    /// writes the trailer but loses any error.
    pub fn finish(self) -> io::Result<W> {
        self.inner.finish()
    }
}

impl<W: Write> Write for GzipWriter<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.inner.write(buf)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}
