//! The printing mode: each notification as one line of JSON on stdout, and nothing else there.

use std::io::Write;
use std::time::Duration;

use airudder_webhook::{Delivery, HandleNotification};

use crate::event::Relayed;

/// Prints each notification as one line of JSON on stdout, after `delay`.
#[derive(Debug, Clone)]
pub(crate) struct Printer {
    pub(crate) delay: Duration,
}

impl HandleNotification<Relayed> for Printer {
    type Error = std::io::Error;

    async fn handle(&self, delivery: Delivery<Relayed>) -> Result<(), Self::Error> {
        if !self.delay.is_zero() {
            tokio::time::sleep(self.delay).await;
        }
        let mut line = serde_json::to_vec(&delivery.notification)?;
        line.push(b'\n');
        let mut stdout = std::io::stdout().lock();
        stdout.write_all(&line)?;
        stdout.flush()
    }
}
