//! One generic drop guard (deadpool's `managed/dropguard.rs`): runs a closure when dropped,
//! unless it was disarmed first.
//!
//! The pool's cancellation safety rests on it. A future may be dropped at any `.await`; state
//! changed before that await (a connection counted in `size`, a caller counted as waiting, a
//! permit taken for a probe, …) is put back by a guard created right after the change and
//! disarmed once the operation has reached the point where the change is meant to last
//! (see `open_within` in `acquire.rs`: a connection is counted in `size` before it is opened,
//! and uncounted by the guard if opening fails or the future is dropped).

/// Runs `on_drop` when dropped, unless [`disarm`](Self::disarm)ed. Also runs during a panic's
/// unwinding, like any `Drop`.
#[must_use = "a guard dropped at once runs its closure at once"]
pub(crate) struct DropGuard<F: FnOnce()>(Option<F>);

impl<F: FnOnce()> DropGuard<F> {
    /// A guard that runs `on_drop` when it goes out of scope.
    pub(crate) fn new(on_drop: F) -> Self {
        DropGuard(Some(on_drop))
    }

    /// Drops the guard without running its closure (what the closure captured is dropped).
    pub(crate) fn disarm(mut self) {
        self.0 = None;
    }
}

impl<F: FnOnce()> Drop for DropGuard<F> {
    fn drop(&mut self) {
        if let Some(on_drop) = self.0.take() {
            on_drop();
        }
    }
}

#[cfg(test)]
mod tests {
    use std::cell::Cell;
    use std::future::Future;

    use super::DropGuard;

    #[test]
    fn runs_once_when_dropped_and_never_when_disarmed() {
        let runs = Cell::new(0);
        {
            let _guard = DropGuard::new(|| runs.set(runs.get() + 1));
        }
        assert_eq!(runs.get(), 1);
        DropGuard::new(|| runs.set(runs.get() + 1)).disarm();
        assert_eq!(runs.get(), 1);
    }

    #[test]
    fn runs_when_a_future_holding_it_is_dropped_mid_await() {
        let runs = Cell::new(0);
        let fut = async {
            let _guard = DropGuard::new(|| runs.set(runs.get() + 1));
            std::future::pending::<()>().await;
        };
        let mut fut = Box::pin(fut);
        let waker = std::task::Waker::noop();
        let mut cx = std::task::Context::from_waker(waker);
        assert!(fut.as_mut().poll(&mut cx).is_pending());
        assert_eq!(runs.get(), 0);
        drop(fut);
        assert_eq!(runs.get(), 1);
    }

    #[test]
    fn runs_during_unwinding() {
        let runs = Cell::new(0);
        let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            let _guard = DropGuard::new(|| runs.set(runs.get() + 1));
            panic!("boom");
        }));
        assert!(r.is_err());
        assert_eq!(runs.get(), 1);
    }
}
