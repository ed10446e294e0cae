//! [`LoadWait`], how a request waits for the load of a file that another request on the worker
//! runs (see [`Outcome::Wait`](super::Outcome::Wait)).

use std::rc::Rc;

use crate::waiters::{Event, EventWait};

/// The end of one load, shared by the requests that wait for it. It ends once, when the load's
/// result is stored or the load is abandoned, and wakes those requests.
#[derive(Clone, Default)]
pub struct LoadWait {
    ended: Rc<Event>,
}

impl LoadWait {
    /// Ends the wait and wakes the requests that wait.
    pub(super) fn end(&self) {
        self.ended.happen();
    }

    /// Completes once the load has ended.
    pub fn wait(&self) -> EventWait<LoadWait> {
        EventWait::new(self.clone())
    }
}

impl AsRef<Event> for LoadWait {
    fn as_ref(&self) -> &Event {
        &self.ended
    }
}

impl std::fmt::Debug for LoadWait {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LoadWait").field("ended", &self.ended.has_happened()).finish()
    }
}
