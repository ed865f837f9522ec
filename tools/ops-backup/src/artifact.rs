//! Where an artifact's bytes go: compressed (or not), hashed and written to
//! its temporary file. zstd compresses on worker threads of its own, and
//! the compressed stream is hashed and written on another, so the producer
//! (tar framing, pg_dump's output) only copies its bytes into zstd's
//! buffers. Pieces the producer found incompressible end the current zstd
//! frame and are stored as raw frames (see `ops_shared::zstd_raw`); the
//! stream stays one zstd stream.

use std::fs::File;
use std::io::{self, Write};
use std::sync::mpsc::{sync_channel, Receiver, SyncSender};
use std::thread::{self, JoinHandle};

use ops_shared::atomic::AtomicFile;
use sha2::{Digest, Sha256};

use crate::hashing::hex;

/// The size of the chunks handed between threads.
pub const CHUNK: usize = 1 << 20;
/// Chunks queued for the writer thread: bounds memory, smooths out stalls.
const IN_FLIGHT: usize = 4;

/// Writes an artifact; [`ArtifactWriter::finish`] returns the file to
/// commit with its SHA-256 and size.
pub struct ArtifactWriter {
    file: AtomicFile,
    out: Output,
}

enum Output {
    Compressed(Compressor),
    Plain(Pipe),
}

impl ArtifactWriter {
    /// zstd at `level` with `threads` workers.
    ///
    /// Fails if zstd rejects the settings or the file cannot be shared.
    pub fn compressed(mut file: AtomicFile, level: i32, threads: u32) -> io::Result<Self> {
        let written = Pipe::start(HashedFile::new(file.file().try_clone()?));
        let compressor = Compressor {
            sink: Some(Sink::Frame(encoder(written, level, threads)?)),
            level,
            threads,
        };
        Ok(ArtifactWriter {
            file,
            out: Output::Compressed(compressor),
        })
    }

    /// Stored as it comes (already compressed data such as pg_dump -Fc).
    ///
    /// Fails if the file cannot be shared with the writer thread.
    pub fn plain(mut file: AtomicFile) -> io::Result<Self> {
        let out = Output::Plain(Pipe::start(HashedFile::new(file.file().try_clone()?)));
        Ok(ArtifactWriter { file, out })
    }

    /// Writes `data`, which does not compress, as it is (still inside the
    /// zstd stream when compressing).
    pub fn write_stored(&mut self, data: &[u8]) -> io::Result<()> {
        match &mut self.out {
            Output::Compressed(compressor) => compressor.write_stored(data),
            Output::Plain(pipe) => pipe.write_all(data),
        }
    }

    /// Ends the stream: the artifact (to commit), its SHA-256 and size.
    pub fn finish(self) -> io::Result<(AtomicFile, String, u64)> {
        let (sha256, bytes) = match self.out {
            Output::Compressed(compressor) => compressor.finish()?,
            Output::Plain(pipe) => pipe.finish()?,
        };
        Ok((self.file, sha256, bytes))
    }
}

impl Write for ArtifactWriter {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        match &mut self.out {
            Output::Compressed(compressor) => {
                compressor.write_all(data)?;
                Ok(data.len())
            }
            Output::Plain(pipe) => pipe.write(data),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

type Encoder = zstd::stream::write::Encoder<'static, Pipe>;

fn encoder(out: Pipe, level: i32, threads: u32) -> io::Result<Encoder> {
    let mut encoder = zstd::stream::write::Encoder::new(out, level)?;
    encoder.include_checksum(true)?;
    // Even one worker compresses on a thread of its own, beside the producer.
    encoder.multithread(threads.max(1))?;
    // zstd's default job size at level 3 (8 MiB) makes its buffers alone
    // exceed 100 MiB; 4 MiB halves that at no cost in speed.
    encoder.set_parameter(zstd::zstd_safe::CParameter::JobSize(4 << 20))?;
    // Each job re-reads the end of the previous one; zstd's default of 1/8
    // of the window is 6% of a 4 MiB job. 1/32 costs 1.5% and next to
    // nothing in size.
    encoder.set_parameter(zstd::zstd_safe::CParameter::OverlapSizeLog(4))?;
    Ok(encoder)
}

/// Compresses what is written to it.
struct Compressor {
    /// Always there but while switching between the two.
    sink: Option<Sink>,
    level: i32,
    threads: u32,
}

/// A zstd frame being written, or the output between frames.
enum Sink {
    Frame(Encoder),
    Between(Pipe),
}

impl Compressor {
    fn take(&mut self) -> io::Result<Sink> {
        self.sink
            .take()
            .ok_or_else(|| io::Error::other("the compressor was lost"))
    }

    fn write_all(&mut self, data: &[u8]) -> io::Result<()> {
        let mut frame = match self.take()? {
            Sink::Frame(encoder) => encoder,
            Sink::Between(out) => encoder(out, self.level, self.threads)?,
        };
        let written = frame.write_all(data);
        self.sink = Some(Sink::Frame(frame));
        written
    }

    fn write_stored(&mut self, data: &[u8]) -> io::Result<()> {
        let mut out = match self.take()? {
            Sink::Frame(encoder) => encoder.finish()?,
            Sink::Between(out) => out,
        };
        let written = out.write_all(&ops_shared::zstd_raw::raw_frame(data));
        self.sink = Some(Sink::Between(out));
        written
    }

    /// Ends the stream: the SHA-256 and size of what was written.
    fn finish(mut self) -> io::Result<(String, u64)> {
        match self.take()? {
            Sink::Frame(encoder) => encoder.finish()?.finish(),
            Sink::Between(out) => out.finish(),
        }
    }
}

/// Hashes and writes what reaches it; ends with the SHA-256 and size.
struct HashedFile {
    file: File,
    hasher: Sha256,
    bytes: u64,
}

impl HashedFile {
    fn new(file: File) -> Self {
        HashedFile {
            file,
            hasher: Sha256::new(),
            bytes: 0,
        }
    }

    fn consume(&mut self, chunk: &[u8]) -> io::Result<()> {
        self.hasher.update(chunk);
        self.bytes += chunk.len() as u64;
        self.file.write_all(chunk)
    }

    fn end(self) -> io::Result<(String, u64)> {
        Ok((hex(self.hasher), self.bytes))
    }
}

/// A writer whose bytes are handed, 1 MiB at a time, to a [`HashedFile`]
/// on a thread of its own.
struct Pipe {
    buffer: Vec<u8>,
    chunks: Option<SyncSender<Vec<u8>>>,
    spare: Receiver<Vec<u8>>,
    thread: Option<JoinHandle<io::Result<(String, u64)>>>,
}

impl Pipe {
    fn start(mut out: HashedFile) -> Self {
        let (chunks, incoming) = sync_channel::<Vec<u8>>(IN_FLIGHT);
        let (recycle, spare) = sync_channel::<Vec<u8>>(IN_FLIGHT + 2);
        let thread = thread::spawn(move || {
            for chunk in incoming {
                out.consume(&chunk)?;
                let _ = recycle.try_send(chunk);
            }
            out.end()
        });
        Pipe {
            buffer: Vec::with_capacity(CHUNK),
            chunks: Some(chunks),
            spare,
            thread: Some(thread),
        }
    }

    fn send(&mut self) -> io::Result<()> {
        let mut next = self
            .spare
            .try_recv()
            .unwrap_or_else(|_| Vec::with_capacity(CHUNK));
        next.clear();
        let full = std::mem::replace(&mut self.buffer, next);
        let sent = self.chunks.as_ref().map(|chunks| chunks.send(full));
        match sent {
            Some(Ok(())) => Ok(()),
            _ => Err(self
                .join()
                .err()
                .unwrap_or_else(|| io::Error::other("the pipeline stopped"))),
        }
    }

    fn join(&mut self) -> io::Result<(String, u64)> {
        self.chunks = None;
        match self.thread.take().map(JoinHandle::join) {
            Some(Ok(result)) => result,
            _ => Err(io::Error::other("a pipeline thread failed")),
        }
    }

    /// Hands over what is buffered; the SHA-256 and size of all written.
    fn finish(mut self) -> io::Result<(String, u64)> {
        if !self.buffer.is_empty() {
            self.send()?;
        }
        self.join()
    }
}

impl Write for Pipe {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        let taken = data.len().min(CHUNK - self.buffer.len());
        self.buffer.extend_from_slice(&data[..taken]);
        if self.buffer.len() == CHUNK {
            self.send()?;
        }
        Ok(taken)
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}
