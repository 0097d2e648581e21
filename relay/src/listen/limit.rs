//! How many connections a listener keeps open by default: what the process' file limit leaves.

/// Files kept for everything but the main listener's connections: the admin listener's
/// connections ([`ADMIN`]), PostgreSQL's pool (16), the embedded store, the forward client's
/// connections, both listening sockets, and the runtime's own (stdio, epoll, signals).
pub(super) const RESERVE: usize = 128;

/// The admin listener's cap: an operator and a Prometheus scrape need a handful.
pub(super) const ADMIN: usize = 64;

/// The most connections kept by default however high the limit: about 15 KB each when idle, so
/// a flood holds about 120 MB at most, and a connection that sends its head within a second
/// survives any flood below 8,000 new connections a second.
pub(super) const MAX_DEFAULT: usize = 8192;

/// Assumed when `/proc/self/limits` cannot be read: the usual soft limit (systemd's and most
/// shells').
const FALLBACK: usize = 1024;

/// The soft limit on open files, and whether it was read or assumed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct FileLimit {
    pub(super) soft: usize,
    pub(super) read: bool,
}

impl FileLimit {
    /// This process' soft `RLIMIT_NOFILE`, read from `/proc/self/limits`: no `unsafe` call to
    /// `getrlimit` and no crate for it.
    pub(super) fn of_this_process() -> Self {
        std::fs::read_to_string("/proc/self/limits")
            .ok()
            .and_then(|text| soft_open_files(&text))
            .map_or(
                Self {
                    soft: FALLBACK,
                    read: false,
                },
                |soft| Self { soft, read: true },
            )
    }

    /// The main listener's default cap: the limit less [`RESERVE`] (half of a limit too small
    /// for that), at most [`MAX_DEFAULT`].
    pub(super) fn main_cap(self) -> usize {
        self.main_cap_without_ceiling().min(MAX_DEFAULT)
    }

    /// The most connections the file limit leaves room for: the limit less [`RESERVE`], half
    /// of a limit too small for that.
    pub(super) fn main_cap_without_ceiling(self) -> usize {
        if self.soft > 2 * RESERVE {
            self.soft - RESERVE
        } else {
            (self.soft / 2).max(1)
        }
    }
}

/// The soft limit of `Max open files` in the text of `/proc/<pid>/limits`; `None` for
/// `unlimited` (Linux does not allow it for files) or a line it does not know.
fn soft_open_files(limits: &str) -> Option<usize> {
    limits
        .lines()
        .find_map(|line| line.strip_prefix("Max open files"))?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIMITS: &str = "\
Limit                     Soft Limit           Hard Limit           Units     
Max processes             96363                96363                processes 
Max open files            1024                 524288               files     
Max locked memory         8388608              8388608              bytes     
";

    #[test]
    fn the_soft_limit_is_read_from_proc_limits() {
        assert_eq!(soft_open_files(LIMITS), Some(1024));
        assert_eq!(
            soft_open_files(&LIMITS.replace("1024 ", "unlimited ")),
            None
        );
        assert_eq!(soft_open_files("Max processes 1 1 processes"), None);
    }

    #[test]
    fn the_main_cap_leaves_the_reserve_and_half_of_a_small_limit() {
        let cap = |soft| FileLimit { soft, read: true }.main_cap();
        assert_eq!(cap(1024), 896);
        assert_eq!(cap(8320), 8192);
        assert_eq!(cap(65536), 8192, "at most MAX_DEFAULT");
        assert_eq!(cap(256), 128);
        assert_eq!(cap(100), 50);
        assert_eq!(cap(1), 1);
    }

    #[test]
    fn this_process_limit_is_read_on_linux() {
        let limit = FileLimit::of_this_process();
        assert_eq!(limit.read, cfg!(target_os = "linux"));
        assert!(limit.soft > 0);
    }
}
