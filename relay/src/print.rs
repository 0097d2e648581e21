//! The printing mode: each event as one line of JSON on stdout, and nothing else there.

use std::io::Write;
use std::time::Duration;

use airudder_webhook::{Delivery, Event, HandleNotification};

use crate::event::Relayed;

/// Prints each event whole (unknown members and values included) as one line of JSON on
/// stdout, after `delay`.
#[derive(Debug, Clone)]
pub(crate) struct Printer {
    pub(crate) delay: Duration,
}

impl<E: Event> HandleNotification<Relayed<E>> for Printer {
    type Error = std::io::Error;

    async fn handle(&self, delivery: Delivery<Relayed<E>>) -> Result<(), Self::Error> {
        if !self.delay.is_zero() {
            tokio::time::sleep(self.delay).await;
        }
        // The same JSON, with DEL, the C1 controls and the line-reordering characters written
        // `\uXXXX`: stdout is often a terminal, and serde_json leaves those raw.
        let mut line = crate::shown::json(&serde_json::to_string(&delivery.event)?);
        line.push('\n');
        let mut stdout = std::io::stdout().lock();
        stdout.write_all(line.as_bytes())?;
        stdout.flush()
    }
}
