//! `POST /pcap/upload`: the gate spools the multipart body to disk and asks first whether an
//! upload may start (`upload_may_start`); the upload is then taken apart here and handed to
//! the engine, whose capture code checks and replays it.

use serde_json::{Value, json};
use tiny_http::Request;

use super::access::RequestInfo;
use super::api::Api;
use super::multipart::{self, MultipartError, MultipartReader};
use super::reply::{Reply, internal};
use super::route::ApiError;
use crate::capture::file::{self, CheckError};
use crate::engine::{GetEngineStatus, StartUpload, UploadRejected};

impl Api {
    /// Whether an upload may start: none is replaying now.
    pub(super) fn upload_may_start(&self, rt: &tokio::runtime::Runtime) -> Result<(), ApiError> {
        let status = self.ask(rt, "the engine", &self.engine, GetEngineStatus)?;
        match status.upload {
            Some(_) => Err(ApiError::new(
                409,
                "an upload is already replaying; stop it first with POST /pcap/replay/stop",
                Value::Null,
            )),
            None => Ok(()),
        }
    }

    /// Replays an upload the gate spooled to disk (the body is a multipart form).
    pub(super) fn upload(
        &self,
        rt: &tokio::runtime::Runtime,
        request: &Request,
        info: &RequestInfo,
    ) -> Result<Reply, ApiError> {
        let limit = self.config.upload_max_mb * 1024 * 1024;
        let too_large = || {
            ApiError::new(
                413,
                format!(
                    "the upload is larger than {} MiB",
                    self.config.upload_max_mb
                ),
                json!({"limit_bytes": limit}),
            )
        };
        let dir = self.config.upload_dir();
        // The gate names the spool file; only a plain name of its own shape is opened.
        let spool = info
            .spool
            .as_deref()
            .filter(|n| n.starts_with(super::gate::SPOOL_PREFIX) && !n.contains(['/', '\\']))
            .ok_or_else(|| internal("the upload was not spooled by the front door".into()))?;
        let spooled = std::fs::File::open(dir.join(spool))
            .map_err(|e| internal(format!("cannot read the spooled upload: {e}")))?;
        let content_type = request
            .headers()
            .iter()
            .find(|h| h.field.equiv("Content-Type"))
            .map(|h| h.value.as_str().to_string())
            .unwrap_or_default();
        let boundary = multipart::boundary(&content_type).ok_or_else(|| {
            ApiError::new(
                415,
                "send the capture as multipart/form-data with a `file` field",
                json!({"content_type": content_type}),
            )
        })?;
        let mut reader = MultipartReader::new(spooled, &boundary, limit + 64 * 1024);
        let mut speed = 1.0f64;
        let mut file: Option<(tempfile::NamedTempFile, String)> = None;
        let bad = |e: MultipartError| match e {
            MultipartError::TooLarge { .. } => too_large(),
            MultipartError::Io(e) => {
                ApiError::bad_request("reading the upload failed", json!(e.to_string()))
            }
            MultipartError::Malformed(m) => {
                ApiError::bad_request("malformed multipart body", json!(m))
            }
        };
        while let Some(part) = reader.next_part().map_err(bad)? {
            match part.name.as_str() {
                "file" => {
                    let mut tmp = tempfile::Builder::new()
                        .prefix(&format!(
                            "{}{}-",
                            super::gate::UPLOAD_PREFIX,
                            std::process::id()
                        ))
                        .suffix(".pcap")
                        .tempfile_in(&dir)
                        .map_err(|e| internal(format!("cannot write to {}: {e}", dir.display())))?;
                    let n = reader.copy_part(tmp.as_file_mut()).map_err(bad)?;
                    if n > limit {
                        return Err(too_large());
                    }
                    let name = part.filename.unwrap_or_else(|| "upload".into());
                    file = Some((tmp, sanitize(&name)));
                }
                "speed" => {
                    let text = reader.read_text(32).map_err(bad)?;
                    speed = match text.trim().parse::<f64>() {
                        Ok(s) if s.is_finite() && (0.0..=1000.0).contains(&s) => s,
                        _ => {
                            return Err(ApiError::bad_request(
                                "speed must be a number from 0 (as fast as possible) to 1000",
                                json!({"value": text}),
                            ));
                        }
                    };
                }
                other => {
                    return Err(ApiError::bad_request(
                        format!("unexpected form field {other:?}"),
                        json!({"allowed": ["file", "speed"]}),
                    ));
                }
            }
        }
        let Some((tmp, name)) = file else {
            return Err(ApiError::bad_request(
                "the form has no `file` field",
                Value::Null,
            ));
        };
        let capture = file::check(tmp.into_temp_path()).map_err(rejected)?;
        let frames = capture.frames;
        let describe = self
            .ask(
                rt,
                "the engine",
                &self.engine,
                StartUpload {
                    capture,
                    name,
                    speed,
                },
            )?
            .map_err(|e| match e {
                UploadRejected::Busy(_) => ApiError::new(409, e.to_string(), Value::Null),
                UploadRejected::NotACapture(_) => ApiError::new(422, e.to_string(), Value::Null),
                UploadRejected::ShuttingDown => ApiError::new(503, e.to_string(), Value::Null),
            })?;
        Reply::ok(json!({
            "success": true,
            "message": format!("replaying {describe}"),
            "frames": frames,
            "speed": speed,
        }))
    }
}

/// The answer to an upload that is not a usable capture.
fn rejected(e: CheckError) -> ApiError {
    match e {
        CheckError::NotACapture(detail) => ApiError::new(
            415,
            "the upload is not a capture file; send pcap or pcapng (optionally zstd-compressed)",
            json!(detail),
        ),
        CheckError::Damaged {
            frames_readable,
            reason,
        } => ApiError::new(
            422,
            "the capture is damaged: it is cut short or corrupt",
            json!({"frames_readable": frames_readable, "reason": reason}),
        ),
        CheckError::Empty => ApiError::new(422, "the capture holds no packets", Value::Null),
        CheckError::Unreadable(detail) => internal(detail),
    }
}

/// A file name fit for logs and `/debug`: no paths, no control characters, bounded.
fn sanitize(name: &str) -> String {
    let base = name.rsplit(['/', '\\']).next().unwrap_or(name);
    base.chars().filter(|c| !c.is_control()).take(100).collect()
}
