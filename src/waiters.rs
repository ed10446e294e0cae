//! [`Waiters`], the wakers of the tasks on one worker thread that wait for a one-shot event:
//! the worker's shutdown, a connection's eviction, or the end of a static file load.

use std::cell::RefCell;
use std::task::Waker;

/// The wakers of the pending waits for one event. Each wait keeps the key of its entry and
/// removes the entry when it is dropped, so the table is as large as the number of waits.
#[derive(Default)]
pub(crate) struct Waiters {
    wakers: RefCell<slab::Slab<Waker>>,
}

impl Waiters {
    /// Records `waker` for the wait whose entry is `key`, and adds the entry on its first poll.
    pub(crate) fn register(&self, key: &mut Option<usize>, waker: &Waker) {
        let mut wakers = self.wakers.borrow_mut();
        match key.and_then(|key| wakers.get_mut(key)) {
            Some(registered) => registered.clone_from(waker),
            None => *key = Some(wakers.insert(waker.clone())),
        }
    }

    /// Removes the entry of a wait that is dropped. Once [`Waiters::wake_all`] has run, the table
    /// is empty and the event has happened, so no entry is added again and a stale key removes
    /// nothing.
    pub(crate) fn remove(&self, key: Option<usize>) {
        if let Some(key) = key {
            self.wakers.borrow_mut().try_remove(key);
        }
    }

    /// Wakes every pending wait and empties the table.
    pub(crate) fn wake_all(&self) {
        let wakers = std::mem::take(&mut *self.wakers.borrow_mut());
        for (_, waker) in wakers {
            waker.wake();
        }
    }
}
