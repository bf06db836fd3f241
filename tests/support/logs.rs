//! Captures what the functions log (through `tracing`, as in Lambda), so tests can check that
//! no secret, token or personal value is written. The subscriber is global (tests run on many
//! threads), so the capture holds every test's lines: a leak anywhere fails the check.

use std::io::Write;
use std::sync::{Arc, Mutex, OnceLock};

#[derive(Clone, Default)]
pub struct Captured(Arc<Mutex<Vec<u8>>>);

impl Captured {
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned()
    }
}

struct Writer(Captured);

impl Write for Writer {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0 .0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Installs the capturing subscriber (JSON lines at INFO, as the functions log in Lambda) once,
/// and returns the capture.
pub fn capture() -> Captured {
    static CAPTURED: OnceLock<Captured> = OnceLock::new();
    CAPTURED
        .get_or_init(|| {
            let captured = Captured::default();
            let sink = captured.clone();
            let subscriber = tracing_subscriber::fmt()
                .json()
                .with_max_level(tracing::Level::INFO)
                .with_writer(move || Writer(sink.clone()))
                .finish();
            // Another test binary's subscriber cannot exist in this process.
            let _ = tracing::subscriber::set_global_default(subscriber);
            captured
        })
        .clone()
}
