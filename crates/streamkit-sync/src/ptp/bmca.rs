//! Best master clock selection for a slave-only ordinary clock: the foreign
//! master table (qualification, announce receipt timeout) and the IEEE
//! 1588-2019 dataset comparison (9.3.4): priority1, clockClass,
//! clockAccuracy, offsetScaledLogVariance, priority2, grandmaster identity,
//! then steps removed and port identities when two announces name the same
//! grandmaster.

use std::cmp::Ordering;

use super::wire::{Announce, ClockIdentity, ClockQuality, Header, PortIdentity};

/// What an announce says about the grandmaster behind a foreign master.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MasterDataset {
    pub grandmaster_identity: ClockIdentity,
    pub priority1: u8,
    pub quality: ClockQuality,
    pub priority2: u8,
    pub steps_removed: u16,
    /// The port that sent the announce.
    pub sender: PortIdentity,
    /// Our port, which received it.
    pub receiver: PortIdentity,
    pub current_utc_offset: i16,
    pub time_source: u8,
    pub flags: u16,
}

impl MasterDataset {
    pub fn from_announce(header: &Header, announce: &Announce, receiver: PortIdentity) -> MasterDataset {
        MasterDataset {
            grandmaster_identity: announce.grandmaster_identity,
            priority1: announce.grandmaster_priority1,
            quality: announce.grandmaster_quality,
            priority2: announce.grandmaster_priority2,
            steps_removed: announce.steps_removed,
            sender: header.source,
            receiver,
            current_utc_offset: announce.current_utc_offset,
            time_source: announce.time_source,
            flags: header.flags,
        }
    }
}

/// IEEE 1588 dataset comparison: `Ordering::Less` when `a` is the better
/// master. Equal datasets (the same sender) compare `Equal`.
pub fn compare(a: &MasterDataset, b: &MasterDataset) -> Ordering {
    if a.grandmaster_identity != b.grandmaster_identity {
        // Part 1: different grandmasters — compare their quality.
        return a
            .priority1
            .cmp(&b.priority1)
            .then(a.quality.clock_class.cmp(&b.quality.clock_class))
            .then(a.quality.clock_accuracy.cmp(&b.quality.clock_accuracy))
            .then(a.quality.offset_scaled_log_variance.cmp(&b.quality.offset_scaled_log_variance))
            .then(a.priority2.cmp(&b.priority2))
            .then(a.grandmaster_identity.cmp(&b.grandmaster_identity));
    }
    // Part 2: the same grandmaster over different paths — topology.
    let (sa, sb) = (a.steps_removed as u32, b.steps_removed as u32);
    if sa > sb + 1 {
        return Ordering::Greater;
    }
    if sb > sa + 1 {
        return Ordering::Less;
    }
    if sa != sb {
        // The one with more steps is worse, whether or not it passed through
        // us (receiver vs sender only distinguishes "worse" from "worse by topology").
        return sa.cmp(&sb);
    }
    a.sender.cmp(&b.sender).then(a.receiver.port.cmp(&b.receiver.port))
}

/// One foreign master heard on the port.
#[derive(Clone, Debug)]
pub struct ForeignMaster {
    pub dataset: MasterDataset,
    /// Local times of the most recent announces (newest last), for qualification.
    announce_times: Vec<u64>,
    /// `logMessageInterval` of its announces (clamped to a sane range).
    pub log_announce_interval: i8,
    pub last_announce_ns: u64,
}

impl ForeignMaster {
    pub fn announce_interval_ns(&self) -> u64 {
        log_interval_ns(self.log_announce_interval)
    }
}

/// 2^log seconds in nanoseconds, with `log` clamped to [-7, 6] (8 ms .. 64 s)
/// so a hostile interval can neither flood timers nor disable timeouts.
pub fn log_interval_ns(log: i8) -> u64 {
    let log = log.clamp(-7, 6) as i32;
    if log >= 0 {
        1_000_000_000u64 << log
    } else {
        1_000_000_000u64 >> (-log)
    }
}

/// Settings of the foreign master table.
#[derive(Clone, Copy, Debug)]
pub struct TableConfig {
    /// Announces needed within [`TableConfig::window_intervals`] announce
    /// intervals before a master may be selected (IEEE: 2 within 4).
    pub threshold: usize,
    pub window_intervals: u64,
    /// Announce intervals without an announce after which a master is gone (IEEE default 3).
    pub receipt_timeout: u8,
    /// Most foreign masters remembered; a flood of forged identities cannot grow memory.
    pub max_entries: usize,
}

impl Default for TableConfig {
    fn default() -> Self {
        TableConfig { threshold: 2, window_intervals: 4, receipt_timeout: 3, max_entries: 16 }
    }
}

/// The foreign master table of one port.
#[derive(Clone, Debug, Default)]
pub struct ForeignMasters {
    config: TableConfig,
    entries: Vec<ForeignMaster>,
}

/// What became of an announce offered to the table.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Admitted {
    Recorded,
    /// The table is full of masters at least as good; the announce is dropped.
    TableFull,
}

impl ForeignMasters {
    pub fn new(config: TableConfig) -> ForeignMasters {
        ForeignMasters { config, entries: Vec::new() }
    }

    pub fn config(&self) -> &TableConfig {
        &self.config
    }

    /// Records an announce received at `now`.
    pub fn record(&mut self, dataset: MasterDataset, log_interval: i8, now: u64) -> Admitted {
        let keep = self.config.threshold.max(1);
        if let Some(entry) = self.entries.iter_mut().find(|e| e.dataset.sender == dataset.sender) {
            entry.dataset = dataset;
            entry.log_announce_interval = log_interval.clamp(-7, 6);
            entry.last_announce_ns = now;
            entry.announce_times.push(now);
            let excess = entry.announce_times.len().saturating_sub(keep);
            entry.announce_times.drain(..excess);
            return Admitted::Recorded;
        }
        if self.entries.len() >= self.config.max_entries {
            // Evict the worst entry if the newcomer beats it, else drop the newcomer.
            let worst = (0..self.entries.len())
                .max_by(|&i, &j| compare(&self.entries[i].dataset, &self.entries[j].dataset))
                .expect("table is not empty");
            if compare(&dataset, &self.entries[worst].dataset) != Ordering::Less {
                return Admitted::TableFull;
            }
            self.entries.swap_remove(worst);
        }
        self.entries.push(ForeignMaster {
            dataset,
            announce_times: vec![now],
            log_announce_interval: log_interval.clamp(-7, 6),
            last_announce_ns: now,
        });
        Admitted::Recorded
    }

    /// Forgets masters whose announces stopped; returns the senders removed.
    pub fn expire(&mut self, now: u64) -> Vec<PortIdentity> {
        let timeout = self.config.receipt_timeout.max(1) as u64;
        let mut gone = Vec::new();
        self.entries.retain(|e| {
            let alive = now < e.last_announce_ns + timeout * e.announce_interval_ns();
            if !alive {
                gone.push(e.dataset.sender);
            }
            alive
        });
        gone
    }

    /// When the next entry times out.
    pub fn next_expiry(&self) -> Option<u64> {
        let timeout = self.config.receipt_timeout.max(1) as u64;
        self.entries.iter().map(|e| e.last_announce_ns + timeout * e.announce_interval_ns()).min()
    }

    fn qualified(&self, entry: &ForeignMaster, now: u64) -> bool {
        let window = self.config.window_intervals * entry.announce_interval_ns();
        let recent = entry.announce_times.iter().filter(|&&t| now.saturating_sub(t) <= window).count();
        recent >= self.config.threshold.max(1)
    }

    /// The best qualified foreign master (Erbest), if any.
    pub fn best(&self, now: u64) -> Option<&ForeignMaster> {
        self.entries.iter().filter(|e| self.qualified(e, now)).min_by(|a, b| compare(&a.dataset, &b.dataset))
    }

    pub fn get(&self, sender: &PortIdentity) -> Option<&ForeignMaster> {
        self.entries.iter().find(|e| &e.dataset.sender == sender)
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    pub fn iter(&self) -> impl Iterator<Item = &ForeignMaster> {
        self.entries.iter()
    }

    pub fn clear(&mut self) {
        self.entries.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(n: u8) -> ClockIdentity {
        ClockIdentity([n; 8])
    }

    fn dataset(gm: u8, priority1: u8, class: u8, steps: u16, sender: u8) -> MasterDataset {
        MasterDataset {
            grandmaster_identity: id(gm),
            priority1,
            quality: ClockQuality { clock_class: class, clock_accuracy: 0xfe, offset_scaled_log_variance: 0xffff },
            priority2: 128,
            steps_removed: steps,
            sender: PortIdentity { clock: id(sender), port: 1 },
            receiver: PortIdentity { clock: id(0xee), port: 1 },
            current_utc_offset: 37,
            time_source: 0xa0,
            flags: 0,
        }
    }

    #[test]
    fn compares_in_ieee_order() {
        let base = dataset(1, 128, 248, 0, 1);
        let mut better = dataset(2, 127, 248, 0, 2);
        assert_eq!(compare(&better, &base), Ordering::Less, "priority1 first");
        better.priority1 = 128;
        better.quality.clock_class = 6;
        assert_eq!(compare(&better, &base), Ordering::Less, "then clock class");
        better.quality.clock_class = 248;
        better.quality.clock_accuracy = 0x21;
        assert_eq!(compare(&better, &base), Ordering::Less, "then accuracy");
        better.quality.clock_accuracy = 0xfe;
        better.quality.offset_scaled_log_variance = 0x4e5d;
        assert_eq!(compare(&better, &base), Ordering::Less, "then variance");
        better.quality.offset_scaled_log_variance = 0xffff;
        better.priority2 = 1;
        assert_eq!(compare(&better, &base), Ordering::Less, "then priority2");
        better.priority2 = 128;
        assert_eq!(compare(&better, &base), Ordering::Greater, "then identity: 02.. > 01..");
        // A worse class beats a better priority2 (order matters).
        let mut worse_class = dataset(3, 128, 249, 0, 3);
        worse_class.priority2 = 0;
        assert_eq!(compare(&worse_class, &base), Ordering::Greater);
    }

    #[test]
    fn same_grandmaster_prefers_fewer_steps_then_sender() {
        let near = dataset(1, 128, 248, 1, 5);
        let far = dataset(1, 128, 248, 3, 2);
        assert_eq!(compare(&near, &far), Ordering::Less);
        let one_more = dataset(1, 128, 248, 2, 2);
        assert_eq!(compare(&near, &one_more), Ordering::Less);
        let same_steps = dataset(1, 128, 248, 1, 2);
        assert_eq!(compare(&same_steps, &near), Ordering::Less, "lower sender identity");
        assert_eq!(compare(&near, &near), Ordering::Equal);
    }

    #[test]
    fn qualification_and_expiry() {
        let mut table = ForeignMasters::new(TableConfig::default());
        let a = dataset(1, 128, 248, 0, 1);
        let s = 1_000_000_000u64;
        table.record(a, 0, 0);
        assert!(table.best(0).is_none(), "one announce does not qualify");
        table.record(a, 0, s);
        assert_eq!(table.best(s).unwrap().dataset.sender, a.sender);
        // Announces 1 s apart, timeout 3 s.
        assert_eq!(table.next_expiry(), Some(4 * s));
        assert!(table.expire(4 * s - 1).is_empty());
        assert_eq!(table.expire(4 * s), vec![a.sender]);
        assert!(table.is_empty());
    }

    #[test]
    fn full_table_keeps_the_best() {
        let mut table = ForeignMasters::new(TableConfig { max_entries: 2, ..TableConfig::default() });
        table.record(dataset(10, 200, 248, 0, 10), 0, 0);
        table.record(dataset(11, 200, 248, 0, 11), 0, 0);
        assert_eq!(table.record(dataset(12, 250, 248, 0, 12), 0, 0), Admitted::TableFull);
        assert_eq!(table.record(dataset(13, 1, 248, 0, 13), 0, 0), Admitted::Recorded);
        assert_eq!(table.len(), 2);
        assert!(table.iter().any(|e| e.dataset.priority1 == 1));
    }
}
