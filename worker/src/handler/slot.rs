//! The execution slot a message holds, given up while it waits.
//!
//! `RUNFLEET_CONCURRENCY` slots bound how many messages a worker pulls and
//! executes at once. A command that is not yet its turn executes nothing, so
//! it gives its slot back while it waits (the worker pulls another message in
//! its place — perhaps the very predecessor it waits for) and takes one again
//! when it is woken. Without this, commands arriving out of order could hold
//! every slot while the ones they wait for sit unpulled in the stream.

use std::sync::{Arc, Mutex};

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// One message's claim on the worker's slots.
#[derive(Debug)]
pub(crate) struct Slot {
    /// The worker's slots.
    slots: Arc<Semaphore>,
    /// The slot held, when one is.
    held: Mutex<Option<OwnedSemaphorePermit>>,
}

impl Slot {
    /// A message holding `permit`, one of `slots`.
    pub(crate) fn new(slots: Arc<Semaphore>, permit: OwnedSemaphorePermit) -> Slot {
        Slot {
            slots,
            held: Mutex::new(Some(permit)),
        }
    }

    /// Gives the slot back (nothing when none is held). True when one was.
    pub(crate) fn release(&self) -> bool {
        self.lock().take().is_some()
    }

    /// Whether a slot is held.
    pub(crate) fn is_held(&self) -> bool {
        self.lock().is_some()
    }

    /// Takes a slot again, waiting for one to be free (at once when one is
    /// already held).
    pub(crate) async fn acquire(&self) {
        if self.is_held() {
            return;
        }
        if let Ok(permit) = self.slots.clone().acquire_owned().await {
            *self.lock() = Some(permit);
        }
    }

    /// Takes a slot again when one is free right now; true when one is held.
    pub(crate) fn try_acquire(&self) -> bool {
        let mut held = self.lock();
        if held.is_none() {
            *held = self.slots.clone().try_acquire_owned().ok();
        }
        held.is_some()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Option<OwnedSemaphorePermit>> {
        self.held
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_released_slot_is_free_for_others_until_taken_again() {
        let slots = Arc::new(Semaphore::new(1));
        let slot = Slot::new(slots.clone(), slots.clone().try_acquire_owned().unwrap());
        assert_eq!(slots.available_permits(), 0);
        assert!(slot.release());
        assert!(!slot.release());
        assert_eq!(slots.available_permits(), 1);
        let other = slots.clone().try_acquire_owned().unwrap();
        assert!(!slot.try_acquire(), "taken by another message");
        drop(other);
        slot.acquire().await;
        assert!(slot.is_held());
        assert_eq!(slots.available_permits(), 0);
        drop(slot);
        assert_eq!(slots.available_permits(), 1);
    }
}
