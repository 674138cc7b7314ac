//! PTP (IEEE 1588-2019): an ordinary clock in the slave role, inside the
//! process.
//!
//! * [`wire`] — message parsing and building;
//! * [`bmca`] — the foreign master table and the dataset comparison;
//! * [`servo`] — the estimator behind the synchronised clock ([`TimeMap`]);
//! * [`port`] — the sans-IO state machine ([`PtpPort`]): datagrams and time
//!   in, datagrams and timeouts out;
//! * [`net`] — sockets with kernel timestamps (Linux);
//! * [`client`] — [`PtpClient`]: the port on those sockets in a tokio task,
//!   and [`PtpClock`], the synchronised clock as a [`crate::Clock`].

pub mod bmca;
pub mod client;
pub mod net;
pub mod port;
pub mod servo;
pub mod wire;

pub use client::{PtpClient, PtpClientConfig, PtpClock};
pub use net::TimestampingMode;
pub use port::{
    Channel, Input, MasterInfo, Output, PortEvent, PortState, PtpConfig, PtpPort, PtpStatus, Reject, RejectCounts,
    Transmit,
};
pub use servo::{ServoConfig, TimeMap};
pub use wire::{ClockIdentity, PortIdentity};
