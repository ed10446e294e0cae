//! [`Event`], a one-shot event on one worker thread that tasks wait for: the worker's shutdown,
//! a connection's eviction, or the end of a static file load. [`Waiters`] keeps the wakers of
//! the tasks that wait.

use std::cell::{Cell, RefCell};
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, Waker};

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

/// An event that happens once, with the wakers of the tasks that wait for it. Its owner keeps
/// it inside its own shared state and lends it through `AsRef`, so [`EventWait`] can hold the
/// owner alive without a second allocation.
#[derive(Default)]
pub struct Event {
    happened: Cell<bool>,
    waiters: Waiters,
}

impl Event {
    /// Marks the event as happened and wakes every task that waits for it.
    pub(crate) fn happen(&self) {
        self.happened.set(true);
        self.waiters.wake_all();
    }

    pub(crate) fn has_happened(&self) -> bool {
        self.happened.get()
    }
}

/// A future that completes once the event that `owner` lends has happened.
pub struct EventWait<T: AsRef<Event>> {
    owner: T,
    /// This wait's entry among the event's waiters.
    key: Option<usize>,
}

impl<T: AsRef<Event>> EventWait<T> {
    pub(crate) fn new(owner: T) -> EventWait<T> {
        EventWait { owner, key: None }
    }
}

impl<T: AsRef<Event> + Unpin> Future for EventWait<T> {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let this = self.get_mut();
        let event = this.owner.as_ref();
        if event.has_happened() {
            return Poll::Ready(());
        }
        event.waiters.register(&mut this.key, cx.waker());
        Poll::Pending
    }
}

impl<T: AsRef<Event>> Drop for EventWait<T> {
    fn drop(&mut self) {
        self.owner.as_ref().waiters.remove(self.key);
    }
}
