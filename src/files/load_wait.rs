//! [`LoadWait`], how a request waits for the load of a file that another request on the worker
//! runs (see [`Outcome::Wait`](super::Outcome::Wait)).

use std::cell::Cell;
use std::future::Future;
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll};

use crate::waiters::Waiters;

/// The end of one load, shared by the requests that wait for it. It ends once, when the load's
/// result is stored or the load is abandoned, and wakes those requests.
#[derive(Clone, Default)]
pub struct LoadWait {
    inner: Rc<Inner>,
}

#[derive(Default)]
struct Inner {
    ended: Cell<bool>,
    /// Wakers of the pending waits.
    waiters: Waiters,
}

impl LoadWait {
    /// Ends the wait and wakes the requests that wait.
    pub(super) fn end(&self) {
        self.inner.ended.set(true);
        self.inner.waiters.wake_all();
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

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let this = self.get_mut();
        if this.wait.inner.ended.get() {
            return Poll::Ready(());
        }
        this.wait.inner.waiters.register(&mut this.key, cx.waker());
        Poll::Pending
    }
}

impl Drop for LoadWaitFuture {
    fn drop(&mut self) {
        self.wait.inner.waiters.remove(self.key);
    }
}
