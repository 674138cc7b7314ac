//! A bounded queue between two pipeline stages, with an explicit policy for
//! when the producer outruns the consumer, and counters that make the
//! backpressure visible (queue length, frames dropped).

use std::collections::VecDeque;
use std::fmt;
use std::str::FromStr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use tokio::sync::Notify;

use crate::error::Error;

/// What a full queue does with a new item.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum QueuePolicy {
    /// The producer waits: lossless (files, offline work).
    #[default]
    Block,
    /// The oldest queued item is dropped to make room.
    DropOldest,
    /// Only the newest item is kept: live outputs, lowest latency.
    LatestOnly,
}

impl QueuePolicy {
    pub fn name(self) -> &'static str {
        match self {
            QueuePolicy::Block => "block",
            QueuePolicy::DropOldest => "drop-oldest",
            QueuePolicy::LatestOnly => "latest-only",
        }
    }
}

impl fmt::Display for QueuePolicy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for QueuePolicy {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self, Error> {
        [QueuePolicy::Block, QueuePolicy::DropOldest, QueuePolicy::LatestOnly]
            .into_iter()
            .find(|p| p.name() == s || p.name().replace('-', "_") == s)
            .ok_or_else(|| {
                Error::invalid(format!("unknown queue policy '{s}'; known: block, drop-oldest, latest-only"))
            })
    }
}

struct State<T> {
    items: VecDeque<T>,
    closed: bool,
}

struct Shared<T> {
    state: Mutex<State<T>>,
    capacity: usize,
    policy: QueuePolicy,
    not_empty: Notify,
    not_full: Notify,
    dropped: AtomicU64,
}

/// The sending half. Cloning gives another producer.
pub struct Sender<T>(Arc<Shared<T>>);

/// The receiving half (one consumer).
pub struct Receiver<T>(Arc<Shared<T>>);

/// A queue of at most `capacity` items (at least 1; `LatestOnly` holds 1).
pub fn bounded<T>(capacity: usize, policy: QueuePolicy) -> (Sender<T>, Receiver<T>) {
    let capacity = if policy == QueuePolicy::LatestOnly { 1 } else { capacity.max(1) };
    let shared = Arc::new(Shared {
        state: Mutex::new(State { items: VecDeque::with_capacity(capacity), closed: false }),
        capacity,
        policy,
        not_empty: Notify::new(),
        not_full: Notify::new(),
        dropped: AtomicU64::new(0),
    });
    (Sender(shared.clone()), Receiver(shared))
}

/// Handed back when the other side is gone.
#[derive(Debug, PartialEq, Eq)]
pub struct Closed<T>(pub T);

impl<T> Sender<T> {
    /// Queues `item`, applying the policy when full. Fails only when the
    /// receiver has gone (or the queue was closed).
    pub async fn send(&self, item: T) -> Result<(), Closed<T>> {
        let mut item = Some(item);
        loop {
            let notified = self.0.not_full.notified();
            {
                let mut state = self.0.state.lock().unwrap();
                if state.closed {
                    return Err(Closed(item.take().unwrap()));
                }
                if state.items.len() >= self.0.capacity {
                    match self.0.policy {
                        QueuePolicy::Block => {}
                        QueuePolicy::DropOldest | QueuePolicy::LatestOnly => {
                            state.items.pop_front();
                            self.0.dropped.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                }
                if state.items.len() < self.0.capacity {
                    state.items.push_back(item.take().unwrap());
                    drop(state);
                    self.0.not_empty.notify_one();
                    return Ok(());
                }
            }
            notified.await;
        }
    }

    /// Items dropped by the policy so far.
    pub fn dropped(&self) -> u64 {
        self.0.dropped.load(Ordering::Relaxed)
    }

    pub fn len(&self) -> usize {
        self.0.state.lock().unwrap().items.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Ends the stream: the receiver gets what is queued, then `None`.
    pub fn close(&self) {
        self.0.state.lock().unwrap().closed = true;
        self.0.not_empty.notify_waiters();
        self.0.not_empty.notify_one();
    }
}

impl<T> Clone for Sender<T> {
    fn clone(&self) -> Self {
        Sender(self.0.clone())
    }
}

impl<T> Receiver<T> {
    /// The next item, or `None` once the queue is closed and drained.
    pub async fn recv(&self) -> Option<T> {
        loop {
            let notified = self.0.not_empty.notified();
            {
                let mut state = self.0.state.lock().unwrap();
                if let Some(item) = state.items.pop_front() {
                    drop(state);
                    self.0.not_full.notify_one();
                    return Some(item);
                }
                if state.closed {
                    return None;
                }
            }
            notified.await;
        }
    }

    pub fn dropped(&self) -> u64 {
        self.0.dropped.load(Ordering::Relaxed)
    }
}

impl<T> Drop for Receiver<T> {
    /// A consumer that goes away releases a producer blocked on it.
    fn drop(&mut self) {
        let mut state = self.0.state.lock().unwrap();
        state.closed = true;
        state.items.clear();
        drop(state);
        self.0.not_full.notify_waiters();
        self.0.not_full.notify_one();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn block_policy_is_lossless() {
        let (tx, rx) = bounded(2, QueuePolicy::Block);
        let producer = tokio::spawn(async move {
            for i in 0..100 {
                tx.send(i).await.unwrap();
            }
            tx.close();
        });
        let mut got = Vec::new();
        while let Some(i) = rx.recv().await {
            got.push(i);
        }
        producer.await.unwrap();
        assert_eq!(got, (0..100).collect::<Vec<_>>());
        assert_eq!(rx.dropped(), 0);
    }

    #[tokio::test]
    async fn drop_oldest_keeps_newest() {
        let (tx, rx) = bounded(3, QueuePolicy::DropOldest);
        for i in 0..10 {
            tx.send(i).await.unwrap();
        }
        tx.close();
        let mut got = Vec::new();
        while let Some(i) = rx.recv().await {
            got.push(i);
        }
        assert_eq!(got, vec![7, 8, 9]);
        assert_eq!(rx.dropped(), 7);
    }

    #[tokio::test]
    async fn latest_only_holds_one() {
        let (tx, rx) = bounded(8, QueuePolicy::LatestOnly);
        for i in 0..5 {
            tx.send(i).await.unwrap();
        }
        assert_eq!(rx.recv().await, Some(4));
        assert_eq!(tx.dropped(), 4);
    }

    #[tokio::test]
    async fn dropped_receiver_releases_blocked_sender() {
        let (tx, rx) = bounded(1, QueuePolicy::Block);
        tx.send(1).await.unwrap();
        let blocked = tokio::spawn(async move { tx.send(2).await });
        tokio::task::yield_now().await;
        drop(rx);
        assert_eq!(blocked.await.unwrap(), Err(Closed(2)));
    }

    #[test]
    fn policy_names_parse() {
        assert_eq!("latest-only".parse::<QueuePolicy>().unwrap(), QueuePolicy::LatestOnly);
        assert!("newest".parse::<QueuePolicy>().unwrap_err().to_string().contains("drop-oldest"));
    }
}
