//! The event loop's doorbell: a file descriptor the loop watches (`loop.add_reader`), made
//! readable from any thread without the GIL. On Linux an eventfd: ringing it is one 8-byte
//! write, with no socket buffer behind it; elsewhere a socket pair.

use std::io;
use std::os::fd::{AsRawFd, RawFd};

#[cfg(target_os = "linux")]
pub struct Wakeup {
    fd: std::os::fd::OwnedFd,
}

#[cfg(target_os = "linux")]
impl Wakeup {
    pub fn new() -> io::Result<Self> {
        use std::os::fd::FromRawFd;
        // SAFETY: eventfd has no memory arguments; a non-negative result is a new descriptor
        // that we own from here on.
        let fd = unsafe { libc::eventfd(0, libc::EFD_NONBLOCK | libc::EFD_CLOEXEC) };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: `fd` was just created and nothing else holds it.
        Ok(Self {
            fd: unsafe { std::os::fd::OwnedFd::from_raw_fd(fd) },
        })
    }

    pub fn ring(&self) {
        let one: u64 = 1;
        // SAFETY: writes 8 bytes from a live u64. A full counter (EAGAIN) is a pending ring.
        unsafe { libc::write(self.fd.as_raw_fd(), (&raw const one).cast(), 8) };
    }

    pub fn clear(&self) {
        let mut count: u64 = 0;
        // SAFETY: reads at most 8 bytes into a live u64; EAGAIN means nothing was pending.
        unsafe { libc::read(self.fd.as_raw_fd(), (&raw mut count).cast(), 8) };
    }

    pub fn fd(&self) -> RawFd {
        self.fd.as_raw_fd()
    }
}

#[cfg(not(target_os = "linux"))]
pub struct Wakeup {
    reader: std::os::unix::net::UnixStream,
    writer: std::os::unix::net::UnixStream,
}

#[cfg(not(target_os = "linux"))]
impl Wakeup {
    pub fn new() -> io::Result<Self> {
        let (reader, writer) = std::os::unix::net::UnixStream::pair()?;
        reader.set_nonblocking(true)?;
        writer.set_nonblocking(true)?;
        Ok(Self { reader, writer })
    }

    pub fn ring(&self) {
        use std::io::Write as _;
        // A full buffer means a ring is already pending.
        let _ = (&self.writer).write(&[1]);
    }

    pub fn clear(&self) {
        use std::io::Read as _;
        let mut sink = [0u8; 64];
        while matches!((&self.reader).read(&mut sink), Ok(n) if n > 0) {}
    }

    pub fn fd(&self) -> RawFd {
        self.reader.as_raw_fd()
    }
}
