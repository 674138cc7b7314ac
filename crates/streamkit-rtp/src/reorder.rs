//! A reorder (jitter) buffer: packets in any order, out in sequence order.
//!
//! Sans-IO: the caller gives each packet with its arrival time and asks for
//! timeouts; nothing here reads a clock. A missing packet is waited for until
//! either `window` later packets are held or `max_wait_ns` has passed, then
//! it is declared lost and the packets after it are released. The
//! depacketisers see the hole as a jump in the sequence numbers.
//!
//! Sequence numbers arrive as they are on the wire (16 bits, or 32 for RFC
//! 4175) and leave extended to 64 bits, so nobody downstream thinks about
//! wrap-around. A packet far from the stream (more than [`MAX_DROPOUT`] ahead
//! or [`MAX_MISORDER`] behind, RFC 3550 appendix A.1) is not trusted at once:
//! only a second packet that follows it in sequence restarts the stream
//! there, so one stray or hostile packet cannot derail it.

use std::collections::VecDeque;

use crate::packet::extend;

/// Packets ahead of the expected one beyond which a packet is suspicious.
pub const MAX_DROPOUT: u64 = 3000;
/// Packets behind the expected one beyond which a packet is suspicious.
pub const MAX_MISORDER: u64 = 100;

/// Counters of a [`ReorderBuffer`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ReorderStats {
    /// Packets accepted.
    pub received: u64,
    /// Sequence numbers given up on (never arrived in time).
    pub lost: u64,
    /// Packets that arrived after a higher sequence number (reordered, in time).
    pub reordered: u64,
    /// Packets that arrived after their place was released (too late) and
    /// duplicates: dropped.
    pub late: u64,
    pub duplicates: u64,
    /// Packets far outside the stream, dropped pending a second one.
    pub strays: u64,
    /// Times the stream restarted at a new sequence number.
    pub restarts: u64,
}

/// See the module documentation.
#[derive(Debug)]
pub struct ReorderBuffer<T> {
    slots: Vec<Option<T>>,
    /// The next sequence number to release.
    head: Option<u64>,
    /// The highest sequence number accepted.
    newest: u64,
    held: usize,
    max_wait_ns: u64,
    /// Since when the packet at `head` has been missing while later ones wait.
    waiting_since: Option<u64>,
    /// A stray packet's successor: if it comes next, the stream restarts.
    probation: Option<u64>,
    bits: u32,
    ready: VecDeque<(u64, T)>,
    stats: ReorderStats,
}

impl<T> ReorderBuffer<T> {
    /// `bits`: width of the sequence numbers on the wire (16, or 32 for RFC 4175).
    pub fn new(window: usize, max_wait_ns: u64, bits: u32) -> ReorderBuffer<T> {
        let window = window.clamp(1, MAX_DROPOUT as usize);
        ReorderBuffer {
            slots: (0..window).map(|_| None).collect(),
            head: None,
            newest: 0,
            held: 0,
            max_wait_ns,
            waiting_since: None,
            probation: None,
            bits,
            ready: VecDeque::new(),
            stats: ReorderStats::default(),
        }
    }

    pub fn stats(&self) -> ReorderStats {
        self.stats
    }

    /// Packets waiting for a missing one.
    pub fn held(&self) -> usize {
        self.held
    }

    /// When [`ReorderBuffer::poll`] should next be called (a gap times out).
    pub fn next_deadline(&self) -> Option<u64> {
        self.waiting_since.map(|since| since + self.max_wait_ns)
    }

    /// Forgets everything (a new stream).
    pub fn reset(&mut self) {
        self.slots.iter_mut().for_each(|s| *s = None);
        self.head = None;
        self.held = 0;
        self.waiting_since = None;
        self.probation = None;
        self.ready.clear();
    }

    fn window(&self) -> u64 {
        self.slots.len() as u64
    }

    fn slot(&mut self, seq: u64) -> &mut Option<T> {
        let index = (seq % self.window()) as usize;
        &mut self.slots[index]
    }

    /// Takes a packet with its on-the-wire sequence number, arrived at `now_ns`.
    pub fn push(&mut self, wire_sequence: u64, item: T, now_ns: u64) {
        let Some(head) = self.head else {
            let seq = extend(None, wire_sequence, self.bits);
            self.start_at(seq, item, now_ns);
            return;
        };
        let seq = extend(Some(self.newest.max(head)), wire_sequence, self.bits);
        let far_ahead = seq >= head + MAX_DROPOUT.max(self.window());
        let far_behind = seq + MAX_MISORDER < head;
        if far_ahead || far_behind {
            if self.probation == Some(wire_sequence & ((1u64 << self.bits) - 1)) {
                self.stats.restarts += 1;
                // Release what was held in order, then start over.
                self.flush();
                self.start_at(seq, item, now_ns);
            } else {
                self.stats.strays += 1;
                self.probation = Some((wire_sequence + 1) & ((1u64 << self.bits) - 1));
            }
            return;
        }
        self.probation = None;
        if seq < head {
            self.stats.late += 1;
            return;
        }
        if seq >= head + self.window() {
            self.advance_to(seq + 1 - self.window());
        }
        if self.slot(seq).is_some() {
            self.stats.duplicates += 1;
            return;
        }
        *self.slot(seq) = Some(item);
        self.held += 1;
        self.stats.received += 1;
        if seq < self.newest {
            self.stats.reordered += 1;
        }
        self.newest = self.newest.max(seq);
        self.release_in_order(now_ns);
    }

    fn start_at(&mut self, seq: u64, item: T, now_ns: u64) {
        self.head = Some(seq);
        self.newest = seq;
        self.probation = None;
        *self.slot(seq) = Some(item);
        self.held += 1;
        self.stats.received += 1;
        self.release_in_order(now_ns);
    }

    /// Gives up on gaps that have waited `max_wait_ns`.
    pub fn poll(&mut self, now_ns: u64) {
        if self.next_deadline().is_some_and(|deadline| now_ns >= deadline) {
            self.skip_gap();
            self.release_in_order(now_ns);
        }
    }

    /// Releases everything held, declaring the gaps lost (end of stream).
    pub fn flush(&mut self) {
        while self.held > 0 {
            self.skip_gap();
            self.release_in_order(0);
        }
        self.waiting_since = None;
    }

    /// The next packet in order, with its extended sequence number.
    pub fn pop(&mut self) -> Option<(u64, T)> {
        self.ready.pop_front()
    }

    /// Moves `head` forward to `target`, releasing held packets on the way
    /// and counting the holes as lost.
    fn advance_to(&mut self, target: u64) {
        while self.head.is_some_and(|h| h < target) {
            if self.held == 0 {
                let head = self.head.expect("checked");
                self.stats.lost += target - head;
                self.head = Some(target);
                break;
            }
            let head = self.head.expect("checked");
            match self.slot(head).take() {
                Some(item) => {
                    self.held -= 1;
                    self.ready.push_back((head, item));
                }
                None => self.stats.lost += 1,
            }
            self.head = Some(head + 1);
        }
        self.waiting_since = None;
    }

    /// Skips the missing packets at `head` up to the next held one.
    fn skip_gap(&mut self) {
        if self.held == 0 {
            return;
        }
        while let Some(head) = self.head {
            if self.slot(head).is_some() {
                break;
            }
            self.stats.lost += 1;
            self.head = Some(head + 1);
        }
        self.waiting_since = None;
    }

    fn release_in_order(&mut self, now_ns: u64) {
        while let Some(head) = self.head {
            match self.slot(head).take() {
                Some(item) => {
                    self.held -= 1;
                    self.ready.push_back((head, item));
                    self.head = Some(head + 1);
                    self.waiting_since = None;
                }
                None => break,
            }
        }
        if self.held > 0 && self.waiting_since.is_none() {
            self.waiting_since = Some(now_ns);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn drain(buffer: &mut ReorderBuffer<u16>) -> Vec<u16> {
        std::iter::from_fn(|| buffer.pop()).map(|(_, v)| v).collect()
    }

    #[test]
    fn in_order_passes_straight_through() {
        let mut b = ReorderBuffer::new(8, 1000, 16);
        for s in [65534u16, 65535, 0, 1] {
            b.push(s as u64, s, 0);
        }
        let out: Vec<(u64, u16)> = std::iter::from_fn(|| b.pop()).collect();
        assert_eq!(out.iter().map(|o| o.1).collect::<Vec<_>>(), [65534, 65535, 0, 1]);
        assert_eq!(out[3].0 - out[0].0, 3, "extended across the wrap");
        assert_eq!(b.stats().lost, 0);
    }

    #[test]
    fn reordering_within_the_window_is_repaired() {
        let mut b = ReorderBuffer::new(8, 1000, 16);
        for s in [10u16, 12, 13, 11, 14] {
            b.push(s as u64, s, 0);
        }
        assert_eq!(drain(&mut b), [10, 11, 12, 13, 14]);
        assert_eq!((b.stats().reordered, b.stats().lost), (1, 0));
    }

    #[test]
    fn a_gap_is_given_up_after_the_window_or_the_timeout() {
        let mut b = ReorderBuffer::new(4, 1000, 16);
        for s in [1u16, 3, 4, 5] {
            b.push(s as u64, s, 0);
        }
        assert_eq!(drain(&mut b), [1]);
        b.push(6, 6, 10); // the window (4) is full: 2 is lost
        assert_eq!(drain(&mut b), [3, 4, 5, 6]);
        assert_eq!(b.stats().lost, 1);

        b.push(8, 8, 100);
        assert_eq!(b.next_deadline(), Some(1100));
        b.poll(1099);
        assert!(drain(&mut b).is_empty());
        b.poll(1100);
        assert_eq!(drain(&mut b), [8]);
        assert_eq!(b.stats().lost, 2);
        b.push(7, 7, 1200);
        assert!(drain(&mut b).is_empty());
        assert_eq!(b.stats().late, 1);
    }

    #[test]
    fn duplicates_are_dropped() {
        let mut b = ReorderBuffer::new(4, 1000, 16);
        b.push(1, 1, 0);
        b.push(3, 3, 0);
        b.push(3, 3, 0);
        b.push(1, 1, 0);
        assert_eq!(b.stats().duplicates, 1);
        assert_eq!(b.stats().late, 1);
    }

    #[test]
    fn one_stray_packet_does_not_derail_the_stream_but_two_restart_it() {
        let mut b = ReorderBuffer::new(16, 1000, 16);
        b.push(100, 100, 0);
        b.push(30_000, 30_000, 0);
        b.push(101, 101, 0);
        assert_eq!(drain(&mut b), [100, 101]);
        assert_eq!(b.stats().strays, 1);
        b.push(50_000, 50_000, 0);
        b.push(50_001, 50_001, 0);
        assert_eq!(drain(&mut b), [50_001]);
        assert_eq!(b.stats().restarts, 1);
    }

    #[test]
    fn flush_releases_everything() {
        let mut b = ReorderBuffer::new(8, 1000, 16);
        for s in [1u16, 3, 5] {
            b.push(s as u64, s, 0);
        }
        b.flush();
        assert_eq!(drain(&mut b), [1, 3, 5]);
        assert_eq!(b.stats().lost, 2);
    }

    #[test]
    fn thirty_two_bit_sequences_extend() {
        let mut b = ReorderBuffer::new(8, 1000, 32);
        b.push(0xffff_ffff, 1, 0);
        b.push(0, 2, 0);
        let out: Vec<(u64, u16)> = std::iter::from_fn(|| b.pop()).collect();
        assert_eq!(out[1].0, out[0].0 + 1);
    }
}
