//! Output actors: write flow records as JSON lines.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::Path;

use actix::{Actor, Context, Handler};

use crate::messages::FlowRecordsMsg;

/// Flush any buffered output (writers) and reply when done.
#[derive(actix::Message)]
#[rtype(result = "std::io::Result<u64>")]
pub struct FlushOutput;

/// Writes one JSON object per line for every record it receives.
pub struct JsonLinesWriter {
    out: BufWriter<File>,
    written: u64,
    error: Option<std::io::Error>,
}

impl JsonLinesWriter {
    pub fn create(path: &Path) -> std::io::Result<Self> {
        Ok(JsonLinesWriter {
            out: BufWriter::with_capacity(256 * 1024, File::create(path)?),
            written: 0,
            error: None,
        })
    }
}

impl Actor for JsonLinesWriter {
    type Context = Context<Self>;
}

impl Handler<FlowRecordsMsg> for JsonLinesWriter {
    type Result = ();

    fn handle(&mut self, msg: FlowRecordsMsg, _: &mut Self::Context) {
        if self.error.is_some() {
            return;
        }
        for record in msg.0.iter() {
            let line = serde_json::to_writer(&mut self.out, record)
                .map_err(std::io::Error::from)
                .and_then(|()| self.out.write_all(b"\n"));
            if let Err(e) = line {
                self.error = Some(e);
                return;
            }
            self.written += 1;
        }
    }
}

impl Handler<FlushOutput> for JsonLinesWriter {
    type Result = std::io::Result<u64>;

    fn handle(&mut self, _: FlushOutput, _: &mut Self::Context) -> Self::Result {
        if let Some(e) = self.error.take() {
            return Err(e);
        }
        self.out.flush()?;
        Ok(self.written)
    }
}
