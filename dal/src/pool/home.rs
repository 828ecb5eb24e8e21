//! Where a connection's socket lives, and so where it may be used (see the module docs of
//! [`pool`](super)).

use crate::backend::Driver;

/// Where a connection's socket is registered, which says where it may be used.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(super) enum Home {
    /// Not bound to any runtime (SQLite: its own worker thread).
    Free,
    /// The library's runtime ([`crate::blocking`]): it lives as long as the process and its
    /// worker thread always drives its I/O, so the socket works from any runtime and from
    /// blocking code.
    Library,
    /// A user's runtime: its I/O driver runs only while that runtime does (a current-thread
    /// runtime only inside `block_on`, any runtime only until it is dropped), so the socket is
    /// used on that runtime only.
    Runtime(tokio::runtime::Id),
    /// Opened outside any runtime: cannot happen for a runtime-bound driver (a socket needs a
    /// reactor), and never lent if it does.
    Unknown,
}

impl Home {
    /// The home of a connection opened here now by `driver`.
    pub(super) fn here(driver: &dyn Driver) -> Home {
        if !driver.runtime_bound() {
            return Home::Free;
        }
        match current_runtime() {
            Some(id) if Some(id) == crate::blocking::library_runtime_id() => Home::Library,
            Some(id) => Home::Runtime(id),
            None => Home::Unknown,
        }
    }

    /// True when the connection can be used by a task running on runtime `here` (`None`: no
    /// runtime).
    pub(super) fn usable_on(self, here: Option<tokio::runtime::Id>) -> bool {
        match self {
            Home::Free | Home::Library => true,
            Home::Runtime(id) => here == Some(id),
            Home::Unknown => false,
        }
    }
}

pub(super) fn current_runtime() -> Option<tokio::runtime::Id> {
    tokio::runtime::Handle::try_current().ok().map(|h| h.id())
}
