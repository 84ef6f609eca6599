//! The gateway's idea of now. Ages, letter expiry and scheduled transitions are worked out
//! against it; outside production it can be moved (tests, the dev sandbox).

use std::sync::atomic::{AtomicI64, Ordering};

use chrono::{NaiveDate, NaiveDateTime};

#[derive(Default)]
pub struct Clock {
    /// Seconds added to the system clock.
    offset_seconds: AtomicI64,
}

impl Clock {
    pub fn now(&self) -> NaiveDateTime {
        crate::db::now() + chrono::Duration::seconds(self.offset_seconds.load(Ordering::Relaxed))
    }

    pub fn today(&self) -> NaiveDate {
        self.now().date()
    }

    /// Moves the clock by `offset` from the system time.
    pub fn set_offset(&self, offset: chrono::Duration) {
        self.offset_seconds.store(offset.num_seconds(), Ordering::Relaxed);
    }
}
