//! Ports for listeners a test starts itself, shared by the library's tests and the relay's.

/// A free port on loopback for a listener the test starts later (or never, for a closed port).
///
/// Taken below the kernel's ephemeral range, so no outgoing connection's local port can be the
/// one a test is about to listen on (a port bound to 0 and let go can be, and the bind then fails
/// with `AddrInUse`); a counter keeps the tests of one binary from sharing one, and the process id
/// spreads binaries apart.
pub(crate) fn free_port() -> u16 {
    static NEXT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    let low = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|range| range.split_whitespace().next()?.parse::<u32>().ok())
        .unwrap_or(32768);
    let span = low.saturating_sub(1024).clamp(1, 10_000);
    let start = std::process::id().wrapping_mul(97) % span;
    loop {
        let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        assert!(n < span, "no free port below the ephemeral range");
        let port = (low - span + (start + n) % span) as u16;
        if std::net::TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
}
