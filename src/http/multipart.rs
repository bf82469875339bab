//! A streaming `multipart/form-data` reader (RFC 7578) for the capture upload: parts are read
//! one after another and a file part is copied straight to disk, so a 256 MB upload never sits
//! in memory. Written here because the crates for it are async or unmaintained; it handles
//! what browsers, curl and HTTP libraries send.

use std::io::{Read, Write};

use memchr::memmem;

/// Largest header block of one part.
const MAX_PART_HEADERS: usize = 8 * 1024;
const CHUNK: usize = 64 * 1024;

/// Why a body could not be read as multipart.
#[derive(Debug, thiserror::Error)]
pub enum MultipartError {
    #[error("the body is not multipart/form-data: {0}")]
    Malformed(String),
    #[error("the upload is larger than the limit of {limit} bytes")]
    TooLarge { limit: u64 },
    #[error("reading the upload failed: {0}")]
    Io(#[from] std::io::Error),
}

/// The boundary from a `Content-Type: multipart/form-data; boundary=...` header.
pub fn boundary(content_type: &str) -> Option<String> {
    let (kind, params) = content_type.split_once(';')?;
    if !kind.trim().eq_ignore_ascii_case("multipart/form-data") {
        return None;
    }
    params.split(';').find_map(|p| {
        let (k, v) = p.split_once('=')?;
        k.trim()
            .eq_ignore_ascii_case("boundary")
            .then(|| v.trim().trim_matches('"').to_string())
            .filter(|b| !b.is_empty() && b.len() <= 70)
    })
}

/// One part's headers.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Part {
    pub name: String,
    pub filename: Option<String>,
}

/// Reads the parts of a multipart body.
pub struct MultipartReader<R> {
    inner: R,
    /// `\r\n--boundary`: what ends a part's content.
    delimiter: Vec<u8>,
    buf: Vec<u8>,
    start: usize,
    eof: bool,
    /// Bytes read from `inner` so far, and the most that may be.
    read: u64,
    limit: u64,
    done: bool,
}

impl<R: Read> MultipartReader<R> {
    pub fn new(inner: R, boundary: &str, limit: u64) -> Self {
        // Starting with a CRLF lets the first delimiter match like every later one.
        let mut buf = Vec::with_capacity(CHUNK * 2);
        buf.extend_from_slice(b"\r\n");
        MultipartReader {
            inner,
            delimiter: format!("\r\n--{boundary}").into_bytes(),
            buf,
            start: 0,
            eof: false,
            read: 0,
            limit,
            done: false,
        }
    }

    fn pending(&self) -> &[u8] {
        &self.buf[self.start..]
    }

    /// Reads more input; false at the end of the body.
    fn fill(&mut self) -> Result<bool, MultipartError> {
        if self.eof {
            return Ok(false);
        }
        if self.start > 0 {
            self.buf.drain(..self.start);
            self.start = 0;
        }
        let old = self.buf.len();
        self.buf.resize(old + CHUNK, 0);
        let n = loop {
            match self.inner.read(&mut self.buf[old..]) {
                Ok(n) => break n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    self.buf.truncate(old);
                    return Err(e.into());
                }
            }
        };
        self.buf.truncate(old + n);
        self.read += n as u64;
        if self.read > self.limit {
            return Err(MultipartError::TooLarge { limit: self.limit });
        }
        self.eof = n == 0;
        Ok(n > 0)
    }

    /// Skips to and past the next delimiter; false if it was the closing one.
    fn skip_to_delimiter(&mut self) -> Result<bool, MultipartError> {
        self.copy_until_delimiter(&mut std::io::sink())?;
        self.after_delimiter()
    }

    /// After a delimiter: `--` closes the body, CRLF starts a part.
    fn after_delimiter(&mut self) -> Result<bool, MultipartError> {
        while self.pending().len() < 2 {
            if !self.fill()? {
                return Err(MultipartError::Malformed(
                    "the body ends after a boundary".into(),
                ));
            }
        }
        if self.pending().starts_with(b"--") {
            self.done = true;
            return Ok(false);
        }
        // Transport padding (spaces, tabs) may follow a delimiter before the CRLF.
        loop {
            match memchr::memchr(b'\n', self.pending()) {
                Some(i) => {
                    self.start += i + 1;
                    return Ok(true);
                }
                None if self.pending().len() > 256 => {
                    return Err(MultipartError::Malformed("junk after a boundary".into()));
                }
                None => {
                    if !self.fill()? {
                        return Err(MultipartError::Malformed(
                            "the body ends after a boundary".into(),
                        ));
                    }
                }
            }
        }
    }

    /// Copies content up to the next delimiter into `out` and consumes the delimiter.
    fn copy_until_delimiter(&mut self, out: &mut dyn Write) -> Result<u64, MultipartError> {
        let mut copied = 0u64;
        let finder = memmem::Finder::new(&self.delimiter).into_owned();
        loop {
            if let Some(i) = finder.find(self.pending()) {
                out.write_all(&self.pending()[..i])?;
                copied += i as u64;
                self.start += i + self.delimiter.len();
                return Ok(copied);
            }
            // Keep a tail that may be the start of a delimiter split across reads.
            let safe = self
                .pending()
                .len()
                .saturating_sub(self.delimiter.len() - 1);
            out.write_all(&self.pending()[..safe])?;
            copied += safe as u64;
            self.start += safe;
            if !self.fill()? {
                return Err(MultipartError::Malformed(
                    "the body ends inside a part (was the upload cut short?)".into(),
                ));
            }
        }
    }

    /// The next part's headers, or `None` after the last part.
    pub fn next_part(&mut self) -> Result<Option<Part>, MultipartError> {
        if self.done {
            return Ok(None);
        }
        if !self.skip_to_delimiter()? {
            return Ok(None);
        }
        let end = loop {
            if let Some(i) = memmem::find(self.pending(), b"\r\n\r\n") {
                break i;
            }
            if self.pending().len() > MAX_PART_HEADERS {
                return Err(MultipartError::Malformed(
                    "a part's headers are too long".into(),
                ));
            }
            if !self.fill()? {
                return Err(MultipartError::Malformed(
                    "the body ends inside a part's headers".into(),
                ));
            }
        };
        let headers = String::from_utf8_lossy(&self.pending()[..end]).into_owned();
        self.start += end + 4;
        let disposition = headers
            .split("\r\n")
            .find_map(|line| {
                let (name, value) = line.split_once(':')?;
                name.trim()
                    .eq_ignore_ascii_case("content-disposition")
                    .then(|| value.trim().to_string())
            })
            .ok_or_else(|| MultipartError::Malformed("a part has no Content-Disposition".into()))?;
        let param = |key: &str| {
            disposition.split(';').skip(1).find_map(|p| {
                let (k, v) = p.split_once('=')?;
                k.trim()
                    .eq_ignore_ascii_case(key)
                    .then(|| v.trim().trim_matches('"').to_string())
            })
        };
        let name =
            param("name").ok_or_else(|| MultipartError::Malformed("a part has no name".into()))?;
        Ok(Some(Part {
            name,
            filename: param("filename"),
        }))
    }

    /// Copies the current part's content into `out`. The delimiter after it is left for
    /// `next_part`, which expects to find it first.
    pub fn copy_part(&mut self, out: &mut dyn Write) -> Result<u64, MultipartError> {
        let n = self.copy_until_delimiter(out)?;
        // Put the delimiter back: `next_part` starts by skipping to one.
        self.start -= self.delimiter.len();
        Ok(n)
    }

    /// The current part's content as text, at most `max` bytes.
    pub fn read_text(&mut self, max: usize) -> Result<String, MultipartError> {
        let mut out = Vec::new();
        self.copy_part(&mut out)?;
        if out.len() > max {
            return Err(MultipartError::Malformed("a form field is too long".into()));
        }
        String::from_utf8(out)
            .map_err(|_| MultipartError::Malformed("a form field is not UTF-8".into()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn body(boundary: &str, parts: &[(&str, Option<&str>, &[u8])]) -> Vec<u8> {
        let mut b = Vec::new();
        for (name, file, content) in parts {
            b.extend_from_slice(format!("--{boundary}\r\n").as_bytes());
            match file {
                Some(f) => b.extend_from_slice(
                    format!("Content-Disposition: form-data; name=\"{name}\"; filename=\"{f}\"\r\nContent-Type: application/octet-stream\r\n\r\n").as_bytes(),
                ),
                None => b.extend_from_slice(
                    format!("Content-Disposition: form-data; name=\"{name}\"\r\n\r\n").as_bytes(),
                ),
            }
            b.extend_from_slice(content);
            b.extend_from_slice(b"\r\n");
        }
        b.extend_from_slice(format!("--{boundary}--\r\n").as_bytes());
        b
    }

    /// A reader that hands out at most `n` bytes per read, to split delimiters across reads.
    struct Trickle<'a>(&'a [u8], usize);
    impl Read for Trickle<'_> {
        fn read(&mut self, out: &mut [u8]) -> std::io::Result<usize> {
            let n = self.0.len().min(self.1).min(out.len());
            out[..n].copy_from_slice(&self.0[..n]);
            self.0 = &self.0[n..];
            Ok(n)
        }
    }

    #[test]
    fn the_boundary_comes_from_the_content_type() {
        assert_eq!(
            boundary("multipart/form-data; boundary=----abc123").as_deref(),
            Some("----abc123")
        );
        assert_eq!(
            boundary("multipart/form-data; boundary=\"q x\"").as_deref(),
            Some("q x")
        );
        assert_eq!(boundary("application/json"), None);
        assert_eq!(boundary("multipart/form-data"), None);
    }

    #[test]
    fn parts_and_file_content_come_through_byte_for_byte() {
        // Content that contains CRLFs, dashes and most of the boundary.
        let mut file: Vec<u8> = (0..200_000u32).map(|i| (i * 7 % 251) as u8).collect();
        file.extend_from_slice(b"\r\n--XyZbound\r\n--XyZboun");
        let data = body(
            "XyZboundary",
            &[("speed", None, b"2.5"), ("file", Some("a.pcap"), &file)],
        );
        for step in [1, 7, 4096, usize::MAX] {
            let mut r = MultipartReader::new(Trickle(&data, step), "XyZboundary", u64::MAX);
            let p = r.next_part().unwrap().unwrap();
            assert_eq!(
                p,
                Part {
                    name: "speed".into(),
                    filename: None
                }
            );
            assert_eq!(r.read_text(32).unwrap(), "2.5");
            let p = r.next_part().unwrap().unwrap();
            assert_eq!(p.filename.as_deref(), Some("a.pcap"));
            let mut out = Vec::new();
            r.copy_part(&mut out).unwrap();
            assert_eq!(out, file, "step {step}");
            assert_eq!(r.next_part().unwrap(), None);
        }
    }

    #[test]
    fn cut_short_oversized_and_junk_bodies_are_errors() {
        let data = body("b0", &[("file", Some("x"), &[1u8; 1000])]);
        let mut r = MultipartReader::new(&data[..600], "b0", u64::MAX);
        r.next_part().unwrap();
        assert!(matches!(
            r.copy_part(&mut Vec::new()),
            Err(MultipartError::Malformed(_))
        ));

        let mut r = MultipartReader::new(&data[..], "b0", 500);
        let err = r.next_part().and_then(|_| r.copy_part(&mut Vec::new()));
        assert!(matches!(err, Err(MultipartError::TooLarge { limit: 500 })));

        let mut r = MultipartReader::new(&b"just some bytes"[..], "b0", u64::MAX);
        assert!(r.next_part().is_err());
    }
}
