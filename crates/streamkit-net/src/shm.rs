//! Same-host frames through shared memory: a raw frame crosses from a
//! [`crate::NetworkSink`] to a [`crate::NetworkSource`] on the same machine
//! with one copy (into a ring slot) instead of two socket copies and two
//! checksums, and the consumer's frame *is* the slot (no copy out).
//!
//! The TCP connection stays the control channel: the producer sends a
//! SHARED_MEMORY chunk naming its ring (`/proc/PID/fd/FD`, a `memfd`), then
//! raw FRAME chunks whose 8-byte payload names a slot. A consumer asks for
//! this in its JOIN only when it connected to a loopback address; the
//! producer agrees only for loopback peers. Opening another process's
//! `/proc/PID/fd/FD` needs the same user (the kernel's ptrace read check),
//! and a consumer in another PID namespace or container fails to open the
//! ring or finds another ring id, and falls back to plain TCP.
//!
//! ```text
//! page 0    magic "SKSHM\0\0\x01", ring id (32 bytes), slot count, slot length,
//!           then at byte 64 + 64·i the state of slot i (u32, native order):
//!           0 free, 1 filled by the producer, 2 held by a consumer frame
//! page 1…   slot i at 4096 + i · slot length (a multiple of 4096)
//! ```
//!
//! A slot goes free → filled (producer, after copying the pixels in, before
//! sending the FRAME chunk) → held (consumer, on receipt) → free (when the
//! last clone of the consumer's frame drops). The producer only writes free
//! slots; when none is free it sends the frame inline over TCP, so a
//! consumer that keeps frames never stalls the stream. Each consumer has its
//! own ring, dropped (and its memory freed by the kernel once the consumer's
//! frames are gone too) when the connection ends, whoever crashes.
//!
//! The memfd is sealed against shrinking and growing, so neither side can
//! truncate it under the other (which would be SIGBUS), and the consumer
//! opens only a file that `/proc` names as a streamkit memfd and that
//! carries those seals.
//!
//! Trust: both processes belong to one user on one machine and authenticated
//! each other over the connection (token) when told to. A producer could
//! still rewrite a slot a consumer holds, or swap the descriptor between the
//! consumer's check of its name and its open; it runs as the same user.

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;

use streamkit_core::frame::{Buffer, ExternalMemory};

use crate::wire::{SharedMemoryOffer, NONCE_LEN};

/// Slots in a consumer's ring: one being sent, one or two held downstream.
pub const RING_SLOTS: u32 = 4;
/// Most slots a ring may announce: their state words fill the control page.
pub const MAX_SLOTS: u32 = ((PAGE - STATE_AT) / STATE_STRIDE) as u32;

/// Slots start on page boundaries and are whole pages long.
pub const PAGE: usize = 4096;
/// The memfd's name, which `/proc/PID/fd/FD` shows as `/memfd:NAME (deleted)`.
const MEMFD_NAME: &str = "streamkit-frames";
const MAGIC: [u8; 8] = *b"SKSHM\0\0\x01";
const STATE_AT: usize = 64;
const STATE_STRIDE: usize = 64;
const FREE: u32 = 0;
const FILLED: u32 = 1;
const HELD: u32 = 2;

/// Whether this build can share memory with a local peer (Linux: `memfd` and `/proc`).
pub fn available() -> bool {
    cfg!(target_os = "linux")
}

/// Where slot `slot` starts in a ring of `slot_len`-byte slots.
fn slot_offset(slot: u32, slot_len: u32) -> usize {
    PAGE + slot as usize * slot_len as usize
}

/// Bytes of a ring: the control page and the slots (`None` if that does not fit memory).
fn region_len(slots: u32, slot_len: u32) -> Option<usize> {
    (slots as usize).checked_mul(slot_len as usize)?.checked_add(PAGE)
}

#[cfg(target_os = "linux")]
const SEALS: libc::c_int = libc::F_SEAL_SHRINK | libc::F_SEAL_GROW | libc::F_SEAL_SEAL;

/// A shared mapping of a whole ring.
struct Mapping {
    ptr: *mut u8,
    len: usize,
}

// SAFETY: the mapping is plain memory valid until `Drop`; the slot protocol
// (atomic states) decides who touches which bytes.
unsafe impl Send for Mapping {}
unsafe impl Sync for Mapping {}

impl Mapping {
    /// `populate`: fault every page in now (the producer, whose copies
    /// must not page-fault; a consumer maps lazily, so that a sparse ring
    /// costs it nothing).
    #[cfg(target_os = "linux")]
    fn map(fd: std::os::fd::BorrowedFd<'_>, len: usize, populate: bool) -> std::io::Result<Mapping> {
        use std::os::fd::AsRawFd;
        let flags = libc::MAP_SHARED | if populate { libc::MAP_POPULATE } else { 0 };
        // SAFETY: a fresh shared mapping of `len` bytes of a file exactly that
        // long, sealed against shrinking.
        let ptr = unsafe {
            libc::mmap(std::ptr::null_mut(), len, libc::PROT_READ | libc::PROT_WRITE, flags, fd.as_raw_fd(), 0)
        };
        if ptr == libc::MAP_FAILED {
            return Err(std::io::Error::last_os_error());
        }
        Ok(Mapping { ptr: ptr.cast(), len })
    }

    fn header(&self) -> &[u8] {
        // SAFETY: page 0 is written once by the producer before anyone else maps it.
        unsafe { std::slice::from_raw_parts(self.ptr, STATE_AT) }
    }

    fn state(&self, slot: u32) -> &AtomicU32 {
        let at = STATE_AT + slot as usize * STATE_STRIDE;
        assert!(at + 4 <= PAGE, "slot {slot} has no state word");
        // SAFETY: in page 0, 4-byte aligned (page-aligned base), only ever used atomically.
        unsafe { &*(self.ptr.add(at) as *const AtomicU32) }
    }
}

impl Drop for Mapping {
    fn drop(&mut self) {
        #[cfg(target_os = "linux")]
        // SAFETY: unmaps exactly what `map` mapped; nothing borrows it any more.
        unsafe {
            libc::munmap(self.ptr.cast(), self.len);
        }
    }
}

/// The producer's side: a `memfd` ring it copies raw frames into.
pub struct ShmRing {
    /// Keeps the memfd open: consumers reopen it through `/proc/PID/fd/FD`.
    #[cfg(target_os = "linux")]
    _file: std::os::fd::OwnedFd,
    map: Mapping,
    offer: SharedMemoryOffer,
    next: u32,
    /// Slots filled at least once (bit i), to tell when the consumer maps the ring.
    filled_once: u64,
}

impl ShmRing {
    /// A ring of `slots` slots of at least `frame_len` bytes each.
    #[cfg(target_os = "linux")]
    pub fn create(frame_len: usize, slots: u32) -> std::io::Result<ShmRing> {
        use std::os::fd::{AsFd, AsRawFd, FromRawFd, OwnedFd};
        let invalid = |what: String| std::io::Error::new(std::io::ErrorKind::InvalidInput, what);
        if !(1..=MAX_SLOTS).contains(&slots) {
            return Err(invalid(format!("{slots} slots (1..={MAX_SLOTS})")));
        }
        let slot_len = u32::try_from(frame_len.max(1).div_ceil(PAGE) * PAGE)
            .map_err(|_| invalid(format!("a {frame_len}-byte frame is too large for a slot")))?;
        let name = std::ffi::CString::new(MEMFD_NAME).expect("no NUL in the name");
        // SAFETY: a NUL-terminated name and valid flags.
        let fd = unsafe { libc::memfd_create(name.as_ptr(), libc::MFD_CLOEXEC | libc::MFD_ALLOW_SEALING) };
        if fd < 0 {
            return Err(std::io::Error::last_os_error());
        }
        // SAFETY: a new descriptor that nothing else owns.
        let file = unsafe { OwnedFd::from_raw_fd(fd) };
        let len = region_len(slots, slot_len).ok_or_else(|| invalid(format!("{slots} slots of {slot_len} bytes")))?;
        // SAFETY: plain ftruncate and fcntl on our own descriptor.
        if unsafe { libc::ftruncate(file.as_raw_fd(), len as libc::off_t) } != 0
            || unsafe { libc::fcntl(file.as_raw_fd(), libc::F_ADD_SEALS, SEALS) } != 0
        {
            return Err(std::io::Error::last_os_error());
        }
        let map = Mapping::map(file.as_fd(), len, true)?;
        let id = crate::auth::random_nonce();
        // SAFETY: page 0 of our fresh mapping; no other process knows the ring yet.
        let header = unsafe { std::slice::from_raw_parts_mut(map.ptr, STATE_AT) };
        header[..8].copy_from_slice(&MAGIC);
        header[8..8 + NONCE_LEN].copy_from_slice(&id);
        header[40..44].copy_from_slice(&slots.to_ne_bytes());
        header[44..48].copy_from_slice(&slot_len.to_ne_bytes());
        let offer = SharedMemoryOffer { pid: std::process::id(), fd: fd as u32, slots, slot_len, id };
        Ok(ShmRing { _file: file, map, offer, next: 0, filled_once: 0 })
    }

    #[cfg(not(target_os = "linux"))]
    pub fn create(_frame_len: usize, _slots: u32) -> std::io::Result<ShmRing> {
        Err(std::io::ErrorKind::Unsupported.into())
    }

    /// What the SHARED_MEMORY chunk tells the consumer.
    pub fn offer(&self) -> &SharedMemoryOffer {
        &self.offer
    }

    /// Bytes a slot holds.
    pub fn slot_len(&self) -> usize {
        self.offer.slot_len as usize
    }

    /// Copies `data` into a free slot and marks it filled; `None` when every
    /// slot is still held by the consumer (send the frame inline instead).
    ///
    /// # Panics
    /// When `data` is longer than a slot.
    pub fn put(&mut self, data: &[u8]) -> Option<u32> {
        assert!(data.len() <= self.slot_len(), "{} bytes do not fit a {}-byte slot", data.len(), self.slot_len());
        let slots = self.offer.slots;
        let slot =
            (0..slots).map(|i| (self.next + i) % slots).find(|&s| self.map.state(s).load(Ordering::Acquire) == FREE)?;
        let at = slot_offset(slot, self.offer.slot_len);
        // SAFETY: a free slot inside the mapping: the consumer does not read it
        // until it is marked filled below and named in a FRAME chunk.
        unsafe { std::ptr::copy_nonoverlapping(data.as_ptr(), self.map.ptr.add(at), data.len()) };
        self.map.state(slot).store(FILLED, Ordering::Release);
        self.next = (slot + 1) % slots;
        self.filled_once |= 1 << slot;
        Some(slot)
    }

    /// Whether the consumer has taken a slot, so it has mapped this ring.
    pub fn mapped_by_consumer(&self) -> bool {
        (0..self.offer.slots).any(|s| {
            let state = self.map.state(s).load(Ordering::Acquire);
            state == HELD || (state == FREE && self.filled_once & (1 << s) != 0)
        })
    }
}

impl std::fmt::Debug for ShmRing {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "ShmRing({} x {} bytes)", self.offer.slots, self.offer.slot_len)
    }
}

/// The consumer's side: the producer's ring, mapped.
pub struct ShmView {
    map: Arc<Mapping>,
    offer: SharedMemoryOffer,
}

impl ShmView {
    /// Maps the ring an offer names and checks that it is that ring.
    #[cfg(target_os = "linux")]
    pub fn open(offer: &SharedMemoryOffer) -> Result<ShmView, String> {
        use std::os::fd::{AsFd, AsRawFd};
        use std::os::unix::fs::OpenOptionsExt;
        let path = format!("/proc/{}/fd/{}", offer.pid, offer.fd);
        // Open nothing but a streamkit memfd: a hostile producer must not make
        // us open a device, a FIFO or a terminal that another of our processes holds.
        let target =
            std::fs::read_link(&path).map_err(|e| format!("opening the producer's shared memory {path}: {e}"))?;
        if !target.to_string_lossy().starts_with(&format!("/memfd:{MEMFD_NAME} ")) {
            return Err(format!("{path} is {}, not a streamkit shared-memory ring", target.display()));
        }
        let file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .custom_flags(libc::O_NOCTTY | libc::O_NONBLOCK)
            .open(&path)
            .map_err(|e| format!("opening the producer's shared memory {path}: {e}"))?;
        // SAFETY: fcntl on a descriptor we own.
        let seals = unsafe { libc::fcntl(file.as_raw_fd(), libc::F_GET_SEALS) };
        if seals < 0 || seals & SEALS != SEALS {
            return Err(format!("{path} is not a sealed streamkit shared-memory ring"));
        }
        let len =
            region_len(offer.slots, offer.slot_len).ok_or_else(|| format!("{path}: the ring does not fit memory"))?;
        let actual = file.metadata().map_err(|e| format!("reading {path}: {e}"))?.len();
        if actual != len as u64 {
            return Err(format!("{path} has {actual} bytes, not the {len} the producer announced"));
        }
        let map = Mapping::map(file.as_fd(), len, false).map_err(|e| format!("mapping {path}: {e}"))?;
        let header = map.header();
        let ne32 = |at: usize| u32::from_ne_bytes(header[at..at + 4].try_into().expect("4 bytes"));
        if header[..8] != MAGIC || header[8..8 + NONCE_LEN] != offer.id {
            return Err(format!("{path} is not the ring the producer announced (another process or namespace?)"));
        }
        if (ne32(40), ne32(44)) != (offer.slots, offer.slot_len) {
            return Err(format!("{path} describes another ring layout than the producer announced"));
        }
        Ok(ShmView { map: Arc::new(map), offer: offer.clone() })
    }

    #[cfg(not(target_os = "linux"))]
    pub fn open(_offer: &SharedMemoryOffer) -> Result<ShmView, String> {
        Err("shared memory between processes is supported on Linux only".into())
    }

    /// The `len` bytes in `slot` as frame memory (no copy); the slot goes
    /// back to the producer when the last clone of the buffer drops.
    pub fn take(&self, slot: u32, len: u32) -> Result<Buffer, String> {
        if slot >= self.offer.slots {
            return Err(format!("slot {slot} of a {}-slot ring", self.offer.slots));
        }
        if len > self.offer.slot_len {
            return Err(format!("{len} bytes in a {}-byte slot", self.offer.slot_len));
        }
        let state = self.map.state(slot);
        if let Err(found) = state.compare_exchange(FILLED, HELD, Ordering::Acquire, Ordering::Relaxed) {
            return Err(format!("slot {slot} is not filled (state {found})"));
        }
        let offset = slot_offset(slot, self.offer.slot_len);
        debug_assert!(offset + len as usize <= self.map.len, "checked against the ring's layout");
        Ok(Buffer::from_external(Slot { map: self.map.clone(), slot, offset, len: len as usize }))
    }
}

impl std::fmt::Debug for ShmView {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "ShmView({} x {} bytes of pid {})", self.offer.slots, self.offer.slot_len, self.offer.pid)
    }
}

/// A consumer frame's memory: one held slot.
struct Slot {
    map: Arc<Mapping>,
    slot: u32,
    offset: usize,
    len: usize,
}

impl ExternalMemory for Slot {
    fn bytes(&self) -> &[u8] {
        // SAFETY: inside the mapping (checked in `take`), which this slot keeps
        // alive; the producer does not write a held slot.
        unsafe { std::slice::from_raw_parts(self.map.ptr.add(self.offset), self.len) }
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        self.map.state(self.slot).store(FREE, Ordering::Release);
    }
}

#[cfg(all(test, target_os = "linux"))]
mod tests {
    use super::*;

    #[test]
    fn a_frame_goes_through_a_slot_and_the_slot_comes_back() {
        let mut ring = ShmRing::create(10_000, 2).unwrap();
        assert_eq!(ring.slot_len(), 12_288, "rounded up to whole pages");
        let view = ShmView::open(ring.offer()).unwrap();
        let data: Vec<u8> = (0..10_000u32).map(|i| (i * 7) as u8).collect();
        let first = ring.put(&data).unwrap();
        let second = ring.put(&data[..5]).unwrap();
        assert_ne!(first, second);
        assert_eq!(ring.put(&data), None, "both slots are in use");
        let a = view.take(first, 10_000).unwrap();
        assert_eq!(a.as_slice(), &data[..]);
        let b = view.take(second, 5).unwrap();
        assert_eq!(b.as_slice(), &data[..5]);
        assert_eq!(ring.put(&data), None, "held by the consumer's frames");
        let clone = a.clone();
        drop(a);
        assert_eq!(ring.put(&data), None, "a clone still holds the first slot");
        drop(clone);
        assert_eq!(ring.put(&data[..3]), Some(first), "the freed slot is reused");
        drop(b);
    }

    #[test]
    fn the_producer_sees_when_the_consumer_mapped_its_ring() {
        let mut ring = ShmRing::create(100, 2).unwrap();
        assert!(!ring.mapped_by_consumer());
        let slot = ring.put(&[1; 100]).unwrap();
        assert!(!ring.mapped_by_consumer(), "filled, not taken");
        let view = ShmView::open(ring.offer()).unwrap();
        let frame = view.take(slot, 100).unwrap();
        assert!(ring.mapped_by_consumer(), "held");
        drop(frame);
        assert!(ring.mapped_by_consumer(), "given back");
    }

    #[test]
    fn the_largest_ring_has_a_state_word_for_every_slot() {
        assert_eq!(MAX_SLOTS, 63);
        let mut ring = ShmRing::create(1, MAX_SLOTS).unwrap();
        let view = ShmView::open(ring.offer()).unwrap();
        let slots: Vec<u32> = (0..MAX_SLOTS).map(|_| ring.put(&[7]).unwrap()).collect();
        assert_eq!(slots.last(), Some(&(MAX_SLOTS - 1)));
        assert_eq!(view.take(MAX_SLOTS - 1, 1).unwrap().as_slice(), &[7]);
        assert!(ShmRing::create(1, MAX_SLOTS + 1).is_err());
    }

    #[test]
    fn neither_side_can_resize_the_ring() {
        use std::os::fd::AsRawFd;
        let ring = ShmRing::create(100, 1).unwrap();
        let path = format!("/proc/self/fd/{}", ring.offer().fd);
        let file = std::fs::OpenOptions::new().read(true).write(true).open(path).unwrap();
        // SAFETY: ftruncate on a descriptor we own.
        assert_ne!(unsafe { libc::ftruncate(file.as_raw_fd(), 10) }, 0, "sealed against shrinking");
        assert_ne!(unsafe { libc::ftruncate(file.as_raw_fd(), 1 << 20) }, 0, "sealed against growing");
    }

    #[test]
    fn a_consumer_refuses_slots_the_producer_did_not_fill() {
        let mut ring = ShmRing::create(100, 2).unwrap();
        let view = ShmView::open(ring.offer()).unwrap();
        assert!(view.take(0, 10).unwrap_err().contains("not filled"));
        assert!(view.take(2, 10).unwrap_err().contains("slot 2 of a 2-slot ring"));
        let slot = ring.put(&[1; 100]).unwrap();
        assert!(view.take(slot, 5000).unwrap_err().contains("5000 bytes in a 4096-byte slot"));
        let held = view.take(slot, 100).unwrap();
        assert!(view.take(slot, 100).unwrap_err().contains("not filled"), "a slot is taken once");
        drop(held);
    }

    #[test]
    fn an_offer_for_another_ring_is_refused() {
        let ring = ShmRing::create(100, 1).unwrap();
        let mut wrong = ring.offer().clone();
        wrong.id[0] ^= 1;
        assert!(ShmView::open(&wrong).unwrap_err().contains("not the ring"));
        let mut missing = ring.offer().clone();
        missing.fd = 1_000_000;
        assert!(ShmView::open(&missing).unwrap_err().contains("opening the producer's shared memory"));
        // Another file this process holds open: not even opened.
        let other = std::fs::File::open("/proc/self/status").unwrap();
        let mut elsewhere = ring.offer().clone();
        elsewhere.fd = std::os::fd::AsRawFd::as_raw_fd(&other) as u32;
        let e = ShmView::open(&elsewhere).unwrap_err();
        assert!(e.contains("status, not a streamkit shared-memory ring"), "{e}");
        let mut bigger = ring.offer().clone();
        bigger.slots = 3;
        assert!(ShmView::open(&bigger).unwrap_err().contains("not the"));
    }

    #[test]
    fn the_consumers_frames_outlive_the_producers_ring() {
        let mut ring = ShmRing::create(64, 1).unwrap();
        let view = ShmView::open(ring.offer()).unwrap();
        let slot = ring.put(&[9; 64]).unwrap();
        let frame = view.take(slot, 64).unwrap();
        drop(ring);
        drop(view);
        assert_eq!(frame.as_slice(), &[9; 64]);
    }
}
