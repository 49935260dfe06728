//! Parallel gzip: one gzip member whose deflate stream is compressed in fixed-size blocks on
//! several threads at once, the technique pigz uses.
//!
//! ```text
//!  write() ─► input cut into 128 KiB blocks ─► job queue ─► workers (available parallelism)
//!                                                 each block: raw deflate, level 6, a new
//!                                                 compressor primed with the last 32 KiB of the
//!                                                 previous block's input; ended by a sync flush
//!                                                 (the last block: by the final block marker)
//!  out ◄─ header ─ compressed blocks in input order ─ CRC-32 (the blocks' CRCs combined) + size
//! ```
//!
//! # Why the blocks form one valid deflate stream
//!
//! A sync flush ends the block's output on a byte boundary (with an empty stored block) and
//! leaves the stream open, so the compressed blocks concatenate into one stream. A decoder keeps
//! the last 32 KiB it produced as its window: exactly the preset dictionary the next block was
//! compressed against, so that block's back-references into the previous block resolve. Only the
//! last block sets the final-block bit. The result is a single gzip member that any gunzip reads.
//!
//! # Why the bytes do not depend on thread timing
//!
//! Block boundaries sit at fixed multiples of [`BLOCK`] input bytes whatever sizes `write` is
//! called with; each block's output is a function of its bytes and its dictionary only (a new
//! compressor per block, see `compress`); blocks are written in input order. One thread or eight, the same input
//! gives the same bytes (a test pins this).
//!
//! # Memory
//!
//! At most `2 × threads` blocks are in flight; `write` blocks on the oldest one when the queue is
//! full. With 2 threads that is ~1 MiB of buffers plus one deflate state per worker.
//!
//! # Why not a crate
//!
//! `gzp` does this, but its parallel writer moves the output into a thread of its own and so
//! needs a `Send + 'static` writer (ours is a borrowed storage temp file whose bytes are hashed
//! as they are written), finishes with an `unwrap` in `Drop`, and by default builds the C
//! libraries zlib-ng and libdeflate; it would also add flume, num_cpus and core_affinity to the
//! tree. What is needed here fits in this module, on flate2 (zlib-rs backend) and crc32fast, both
//! already dependencies of the tree.

use flate2::{Compress, Compression, FlushCompress, Status};
use std::collections::VecDeque;
use std::io::{self, Write};
use std::sync::mpsc::{self, Receiver, SyncSender};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

/// Input bytes per block.
pub const BLOCK: usize = 128 * 1024;
/// Capacity of every block and output buffer: a block, plus deflate's worst-case growth (a few
/// bytes per 16 KiB) and the flush marker. One size for both, so recycled buffers never grow.
const BUFFER: usize = BLOCK + BLOCK / 64 + 64;
/// Deflate's window: how much of the previous block primes the next one.
const WINDOW: usize = 32 * 1024;
/// zlib's default level, as `gzip` and Go's gzip writer use.
const LEVEL: u32 = 6;
/// Magic, deflate, no flags (no name, no comment), mtime 0, no extra flags, OS unknown (255).
const HEADER: [u8; 10] = [0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 255];

/// One block to compress and where to send the result.
struct Job {
    data: Vec<u8>,
    /// An empty buffer for the compressed bytes (recycled, so workers allocate nothing but
    /// their compressor).
    out: Vec<u8>,
    /// The previous block's last 32 KiB of input; empty for the first block.
    dict: Vec<u8>,
    last: bool,
    done: SyncSender<io::Result<Done>>,
}

/// A compressed block, with the CRC-32 of its input.
struct Done {
    out: Vec<u8>,
    crc: crc32fast::Hasher,
    /// The input and dictionary buffers, handed back for reuse.
    data: Vec<u8>,
    dict: Vec<u8>,
}

/// The worker threads and their job queue; spawned with the first full block.
struct Pool {
    jobs: Option<SyncSender<Job>>,
    workers: Vec<JoinHandle<()>>,
}

/// A gzip writer that compresses on several threads; see the module docs.
///
/// Call [`ParGzEncoder::finish`] to write the last block and the trailer: dropping the encoder
/// without it stops the workers and leaves an unfinished stream.
pub struct ParGzEncoder<W: Write> {
    /// `None` only once `finish` handed it back.
    inner: Option<W>,
    threads: usize,
    block: Vec<u8>,
    /// The last 32 KiB of the block sent before `block`; empty before the first.
    dict: Vec<u8>,
    header_written: bool,
    crc: crc32fast::Hasher,
    pool: Option<Pool>,
    pending: VecDeque<Receiver<io::Result<Done>>>,
    /// Emptied block and output buffers, reused for later blocks.
    spare: Vec<Vec<u8>>,
    /// Emptied dictionary buffers.
    spare_dicts: Vec<Vec<u8>>,
}

impl<W: Write> ParGzEncoder<W> {
    /// An encoder using the machine's available parallelism.
    pub fn new(inner: W) -> Self {
        let threads = std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get);
        Self::with_threads(inner, threads)
    }

    /// An encoder with `threads` compressing threads; 1 (or 0) compresses on the calling thread.
    pub fn with_threads(inner: W, threads: usize) -> Self {
        ParGzEncoder {
            inner: Some(inner),
            threads: threads.max(1),
            block: Vec::with_capacity(BUFFER),
            dict: Vec::new(),
            header_written: false,
            crc: crc32fast::Hasher::new(),
            pool: None,
            pending: VecDeque::new(),
            spare: Vec::new(),
            spare_dicts: Vec::new(),
        }
    }

    /// Compresses what is left as the last block, writes the trailer, flushes, stops the
    /// workers and returns the inner writer.
    ///
    /// # Errors
    /// A failed write of the inner writer, or a compressor failure.
    pub fn finish(mut self) -> io::Result<W> {
        self.dispatch(true)?;
        while !self.pending.is_empty() {
            self.write_next()?;
        }
        self.write_header()?;
        let size = self.crc.total_len();
        let crc = std::mem::take(&mut self.crc).finalize();
        let mut trailer = [0u8; 8];
        trailer[..4].copy_from_slice(&crc.to_le_bytes());
        // ISIZE: the input size modulo 2^32 (RFC 1952), so the truncation is the format's.
        #[allow(clippy::cast_possible_truncation)]
        trailer[4..].copy_from_slice(&(size as u32).to_le_bytes());
        let out = self.out()?;
        out.write_all(&trailer)?;
        out.flush()?;
        self.stop();
        self.inner.take().ok_or_else(finished)
    }

    fn out(&mut self) -> io::Result<&mut W> {
        self.inner.as_mut().ok_or_else(finished)
    }

    /// Sends the current block to be compressed (as the last one when `last`).
    fn dispatch(&mut self, last: bool) -> io::Result<()> {
        let fresh = self.spare.pop().unwrap_or_else(|| Vec::with_capacity(BUFFER));
        let data = std::mem::replace(&mut self.block, fresh);
        let out = self.spare.pop().unwrap_or_else(|| Vec::with_capacity(BUFFER));
        let dict = std::mem::take(&mut self.dict);
        if !last {
            let mut tail = self
                .spare_dicts
                .pop()
                .unwrap_or_else(|| Vec::with_capacity(WINDOW));
            tail.extend_from_slice(&data[data.len().saturating_sub(WINDOW)..]);
            self.dict = tail;
        }
        // One thread, or a stream that is a single block: no workers needed.
        if self.threads == 1 || (last && self.pool.is_none()) {
            let done = compress(data, dict, out, last)?;
            return self.emit(done);
        }
        while self.pending.len() >= 2 * self.threads {
            self.write_next()?;
        }
        let (done, result) = mpsc::sync_channel(1);
        let job = Job {
            data,
            out,
            dict,
            last,
            done,
        };
        self.pool()?
            .jobs
            .as_ref()
            .ok_or_else(stopped)?
            .send(job)
            .map_err(|_| stopped())?;
        self.pending.push_back(result);
        Ok(())
    }

    /// The worker pool, started on first use. Workers that cannot be started are done without;
    /// only when none starts is it an error.
    fn pool(&mut self) -> io::Result<&Pool> {
        if self.pool.is_none() {
            let (jobs, queue) = mpsc::sync_channel::<Job>(2 * self.threads);
            let queue = Arc::new(Mutex::new(queue));
            let mut workers = Vec::with_capacity(self.threads);
            let mut failure = None;
            for _ in 0..self.threads {
                let queue = Arc::clone(&queue);
                match std::thread::Builder::new()
                    .name("pgzip".into())
                    .spawn(move || work(&queue))
                {
                    Ok(worker) => workers.push(worker),
                    Err(e) => failure = Some(e),
                }
            }
            if let (true, Some(e)) = (workers.is_empty(), failure) {
                return Err(io::Error::new(
                    e.kind(),
                    format!("failed to start a gzip compression thread: {e}"),
                ));
            }
            self.pool = Some(Pool {
                jobs: Some(jobs),
                workers,
            });
        }
        self.pool.as_ref().ok_or_else(stopped)
    }

    /// Waits for the oldest block in flight and writes it.
    fn write_next(&mut self) -> io::Result<()> {
        let Some(result) = self.pending.pop_front() else {
            return Ok(());
        };
        let done = result.recv().map_err(|_| stopped())??;
        self.emit(done)
    }

    fn emit(&mut self, done: Done) -> io::Result<()> {
        self.write_header()?;
        self.out()?.write_all(&done.out)?;
        self.crc.combine(&done.crc);
        let Done {
            mut out,
            mut data,
            mut dict,
            ..
        } = done;
        for buffer in [&mut out, &mut data, &mut dict] {
            buffer.clear();
        }
        self.spare.extend([out, data]);
        self.spare_dicts.push(dict);
        Ok(())
    }

    fn write_header(&mut self) -> io::Result<()> {
        if !self.header_written {
            self.out()?.write_all(&HEADER)?;
            self.header_written = true;
        }
        Ok(())
    }

    /// Stops the workers: closes the queue and waits for them to finish their current block.
    fn stop(&mut self) {
        self.pending.clear();
        if let Some(mut pool) = self.pool.take() {
            drop(pool.jobs.take());
            for worker in pool.workers {
                // A worker that panicked has nothing left to clean up.
                let _ = worker.join();
            }
        }
    }
}

impl<W: Write> Write for ParGzEncoder<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let mut rest = buf;
        while !rest.is_empty() {
            // A full block goes out only once more input shows it is not the last one.
            if self.block.len() == BLOCK {
                self.dispatch(false)?;
            }
            let take = (BLOCK - self.block.len()).min(rest.len());
            self.block.extend_from_slice(&rest[..take]);
            rest = &rest[take..];
        }
        Ok(buf.len())
    }

    /// Writes every block sent so far and flushes the inner writer. The current partial block
    /// stays buffered: ending it early would change the bytes of the stream.
    fn flush(&mut self) -> io::Result<()> {
        while !self.pending.is_empty() {
            self.write_next()?;
        }
        self.out()?.flush()
    }
}

impl<W: Write> Drop for ParGzEncoder<W> {
    fn drop(&mut self) {
        self.stop();
    }
}

fn finished() -> io::Error {
    io::Error::other("the gzip stream is already finished")
}

fn stopped() -> io::Error {
    io::Error::other("the gzip compression threads stopped")
}

/// A worker: compresses jobs until the queue closes.
fn work(queue: &Mutex<Receiver<Job>>) {
    loop {
        let job = match queue.lock() {
            Ok(queue) => match queue.recv() {
                Ok(job) => job,
                Err(_) => return,
            },
            Err(_) => return,
        };
        let Job {
            data,
            out,
            dict,
            last,
            done,
        } = job;
        // The receiver is gone when the encoder was dropped; nothing to report then.
        let _ = done.send(compress(data, dict, out, last));
    }
}

/// Deflates one block: primed with `dict`, ended by a sync flush, or by the final block when
/// `last`.
///
/// A new compressor for every block, never a reset one: a reset keeps the previous input in the
/// window, and the match search reads a little past the end of the input, so leftovers could pick
/// another of two equally long matches. Valid output still, but bytes depending on which blocks a
/// worker compressed before (seen on the benchmark repository; a test pins it). A new
/// compressor's window starts zeroed. Its allocation (~400 KiB) costs far less than the block;
/// since it is the only allocation of a worker (`out` comes recycled), it reuses the same memory
/// block after block instead of fragmenting the heap.
fn compress(data: Vec<u8>, dict: Vec<u8>, mut out: Vec<u8>, last: bool) -> io::Result<Done> {
    let mut compressor = Compress::new(Compression::new(LEVEL), false);
    let compressor = &mut compressor;
    if !dict.is_empty() {
        compressor.set_dictionary(&dict).map_err(io::Error::other)?;
    }
    let flush = if last {
        FlushCompress::Finish
    } else {
        FlushCompress::Sync
    };
    // Deflate's worst case is a few bytes per 16 KiB over the input; more is added if needed.
    out.reserve(data.len() + data.len() / 64 + 64);
    let mut input = data.as_slice();
    loop {
        if out.capacity() - out.len() < 64 {
            out.reserve(BLOCK / 4);
        }
        let before = compressor.total_in();
        let status = compressor
            .compress_vec(input, &mut out, flush)
            .map_err(io::Error::other)?;
        let used = usize::try_from(compressor.total_in() - before).map_err(io::Error::other)?;
        input = &input[used..];
        // zlib's contract: the flush is complete once input is used up and output space is left.
        let complete = if last {
            status == Status::StreamEnd
        } else {
            input.is_empty() && out.len() < out.capacity()
        };
        if complete {
            break;
        }
    }
    let mut crc = crc32fast::Hasher::new();
    crc.update(&data);
    Ok(Done { out, crc, data, dict })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read as _;
    use std::process::{Command, Stdio};

    /// Compresses `data` with `threads` threads, handing it over in pieces of `chunk` bytes.
    fn gzip(data: &[u8], threads: usize, chunk: usize) -> Vec<u8> {
        let mut encoder = ParGzEncoder::with_threads(Vec::new(), threads);
        for piece in data.chunks(chunk.max(1)) {
            encoder.write_all(piece).unwrap();
        }
        encoder.finish().unwrap()
    }

    fn flate2_gunzip(gz: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        let mut decoder = flate2::read::GzDecoder::new(gz);
        decoder.read_to_end(&mut out).unwrap();
        // One member: nothing may follow it.
        assert_eq!(decoder.into_inner(), b"", "bytes after the gzip member");
        out
    }

    /// The system's `gzip -dc` (a test dependency, like git), which also checks CRC and size.
    fn system_gunzip(gz: &[u8]) -> Vec<u8> {
        let mut child = Command::new("gzip")
            .args(["-dc"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("gzip must be installed for these tests (Debian: apt-get install gzip)");
        let mut stdin = child.stdin.take().unwrap();
        let input = gz.to_vec();
        let feeder = std::thread::spawn(move || stdin.write_all(&input));
        let out = child.wait_with_output().unwrap();
        feeder.join().unwrap().unwrap();
        assert!(
            out.status.success(),
            "gzip -dc: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        out.stdout
    }

    /// YAML-like text: compressible, with repeats across block boundaries.
    fn text(len: usize) -> Vec<u8> {
        let mut out = Vec::with_capacity(len + 64);
        let mut i = 0u64;
        while out.len() < len {
            out.extend_from_slice(format!("  key-{}: value {}\n", i % 977, i * 7919 % 10007).as_bytes());
            i += 1;
        }
        out.truncate(len);
        out
    }

    /// YAML manifests with random tokens, like the benchmark repository's: long repeats at
    /// varying distances, the input on which a compressor's history once changed the output.
    fn manifests(len: usize) -> Vec<u8> {
        const WORDS: &[&str] = &[
            "alpha", "bravo", "delta", "gamma", "kilo", "lima", "oscar", "tango",
        ];
        let mut state = 0x9e37_79b9_u32;
        let mut next = || {
            state ^= state << 13;
            state ^= state >> 17;
            state ^= state << 5;
            state
        };
        let mut out = Vec::with_capacity(len + 4096);
        let mut index = 0;
        while out.len() < len {
            let word = WORDS[next() as usize % WORDS.len()];
            out.extend_from_slice(
                format!(
                    "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {word}-{index:05}\n  namespace: team-{:02}\ndata:\n",
                    index % 40
                )
                .as_bytes(),
            );
            for n in 0..40 {
                let (a, b) = (
                    WORDS[next() as usize % WORDS.len()],
                    WORDS[next() as usize % WORDS.len()],
                );
                out.extend_from_slice(
                    format!("    key-{n:03}: \"{a}-{b}-{:08x} {:08x}\"\n", next(), next()).as_bytes(),
                );
            }
            index += 1;
        }
        out.truncate(len);
        out
    }

    /// xorshift noise: deflate cannot shrink it, so blocks come out as stored blocks.
    fn noise(len: usize) -> Vec<u8> {
        let mut state = 0x2545_f491_u32;
        (0..len)
            .map(|_| {
                state ^= state << 13;
                state ^= state >> 17;
                state ^= state << 5;
                state.to_le_bytes()[0]
            })
            .collect()
    }

    #[test]
    fn every_size_round_trips_through_flate2_and_gzip() {
        let sizes = [
            0,
            1,
            100,
            WINDOW - 1,
            BLOCK - 1,
            BLOCK,
            BLOCK + 1,
            2 * BLOCK,
            3 * BLOCK,
            3 * BLOCK + 12_345,
            7 * BLOCK + 1,
        ];
        for size in sizes {
            for (what, data) in [("text", text(size)), ("noise", noise(size))] {
                for threads in [1, 2, 3] {
                    let gz = gzip(&data, threads, 10_000);
                    assert_eq!(gz[..10], HEADER, "{what} {size} on {threads}");
                    assert!(flate2_gunzip(&gz) == data, "{what} {size} on {threads}: flate2");
                    assert!(system_gunzip(&gz) == data, "{what} {size} on {threads}: gzip");
                }
            }
        }
    }

    #[test]
    fn the_bytes_do_not_depend_on_threads_or_write_sizes() {
        let mut data = text(5 * BLOCK + 777);
        data.extend(noise(BLOCK / 2));
        data.extend(manifests(24 * BLOCK + 3));
        let reference = gzip(&data, 1, data.len());
        for threads in [1, 2, 4, 8] {
            for chunk in [1 << 20, 4096, 513, 7] {
                assert!(
                    gzip(&data, threads, chunk) == reference,
                    "{threads} threads, {chunk}-byte writes"
                );
            }
        }
        // Blocks are primed with their predecessor's tail: repeats across a boundary still
        // compress, so the stream stays close to a single-block deflate of the same text.
        let single = {
            let mut e = flate2::write::GzEncoder::new(Vec::new(), Compression::new(LEVEL));
            e.write_all(&data).unwrap();
            e.finish().unwrap()
        };
        assert!(reference.len() < single.len() + single.len() / 50 + 64);
    }

    #[test]
    fn a_failing_writer_is_an_error_not_a_hang() {
        struct Broken;
        impl Write for Broken {
            fn write(&mut self, _: &[u8]) -> io::Result<usize> {
                Err(io::Error::new(io::ErrorKind::StorageFull, "disk full"))
            }
            fn flush(&mut self) -> io::Result<()> {
                Ok(())
            }
        }
        let data = noise(20 * BLOCK);
        let mut encoder = ParGzEncoder::with_threads(Broken, 2);
        let written = encoder.write_all(&data);
        let err = match written {
            Err(e) => e,
            Ok(()) => encoder.finish().err().expect("the writer fails"),
        };
        assert_eq!(err.kind(), io::ErrorKind::StorageFull);
    }

    #[test]
    fn dropping_an_unfinished_encoder_stops_its_workers() {
        let mut encoder = ParGzEncoder::with_threads(Vec::new(), 4);
        encoder.write_all(&text(10 * BLOCK)).unwrap();
        drop(encoder);
    }
}
