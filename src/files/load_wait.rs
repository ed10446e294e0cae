//! [`LoadWait`], how a request waits for the load of a file that another request on the worker
//! runs (see [`Outcome::Wait`](super::Outcome::Wait)).

use std::cell::{Cell, RefCell};
use std::future::Future;
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll, Waker};

/// The end of one load, shared by the requests that wait for it. It ends once, when the load's
/// result is stored or the load is abandoned, and wakes those requests.
#[derive(Clone, Default)]
pub struct LoadWait {
    inner: Rc<Inner>,
}

#[derive(Default)]
struct Inner {
    ended: Cell<bool>,
    /// Wakers of the pending waits, removed again when a wait is dropped.
    waiters: RefCell<slab::Slab<Waker>>,
}

impl LoadWait {
    pub(super) fn end(&self) {
        self.inner.ended.set(true);
        let waiters = std::mem::take(&mut *self.inner.waiters.borrow_mut());
        for (_, waker) in waiters {
            waker.wake();
        }
    }

    /// Completes once the load has ended.
    pub fn wait(&self) -> LoadWaitFuture {
        LoadWaitFuture { wait: self.clone(), key: None }
    }
}

impl std::fmt::Debug for LoadWait {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LoadWait").field("ended", &self.inner.ended.get()).finish()
    }
}

pub struct LoadWaitFuture {
    wait: LoadWait,
    /// This future's entry among the waiters.
    key: Option<usize>,
}

impl Future for LoadWaitFuture {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        if self.wait.inner.ended.get() {
            return Poll::Ready(());
        }
        let inner = Rc::clone(&self.wait.inner);
        let mut waiters = inner.waiters.borrow_mut();
        match self.key.and_then(|key| waiters.get_mut(key)) {
            Some(waker) => waker.clone_from(cx.waker()),
            None => self.key = Some(waiters.insert(cx.waker().clone())),
        }
        Poll::Pending
    }
}

impl Drop for LoadWaitFuture {
    fn drop(&mut self) {
        // After the end the table is empty and no entry is added again, so a stale key
        // removes nothing.
        if let Some(key) = self.key {
            self.wait.inner.waiters.borrow_mut().try_remove(key);
        }
    }
}
