//! Linux sockets for PTP over UDP/IPv4 with kernel timestamps.
//!
//! * Event (319) and general (320) sockets bound to one interface, joined to
//!   224.0.1.129, multicast loop off, TTL 1.
//! * Receive timestamps from `SO_TIMESTAMPING`: hardware (the NIC's PTP
//!   hardware clock) when `ETHTOOL_GET_TS_INFO` says the NIC can and the
//!   mode allows it, else kernel software timestamps; transmit timestamps of
//!   Delay_Req come back on the socket's error queue (`OPT_ID` tells which
//!   packet). Kernels or sockets without `SO_TIMESTAMPING` fall back to
//!   `SO_TIMESTAMPNS` on receive and a user-space clock reading on send.
//!
//! Nothing here reads or changes the system clock beyond `clock_gettime`.

use std::ffi::CStr;
use std::io;
use std::mem::{size_of, zeroed};
use std::net::Ipv4Addr;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};

use streamkit_core::{Error, Result};

use super::wire::{EVENT_PORT, GENERAL_PORT, PRIMARY_MULTICAST};

/// Which timestamps to use.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum TimestampingMode {
    /// Hardware if the NIC offers it, else kernel software, else user space.
    #[default]
    Auto,
    /// The NIC's hardware clock (fails if the NIC cannot).
    Hardware,
    /// Kernel software timestamps (`SO_TIMESTAMPING`), falling back to `SO_TIMESTAMPNS`.
    Software,
    /// Clock readings in user space around recv/send (worst; for testing).
    User,
}

impl TimestampingMode {
    pub fn parse(text: &str) -> Option<TimestampingMode> {
        Some(match text {
            "auto" => TimestampingMode::Auto,
            "hardware" | "hw" => TimestampingMode::Hardware,
            "software" | "sw" => TimestampingMode::Software,
            "user" => TimestampingMode::User,
            _ => return None,
        })
    }
}

/// The timestamps actually in use on a pair of sockets.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ActiveTimestamping {
    /// NIC hardware timestamps in the timescale of `/dev/ptp{phc_index}`.
    Hardware { phc_index: u32 },
    /// Kernel software timestamps (`CLOCK_REALTIME`) on receive and transmit.
    Software,
    /// `SO_TIMESTAMPNS` on receive, user space on transmit.
    SoftwareRxOnly,
    /// User space only.
    User,
}

impl ActiveTimestamping {
    pub fn name(&self) -> &'static str {
        match self {
            ActiveTimestamping::Hardware { .. } => "hardware",
            ActiveTimestamping::Software => "software",
            ActiveTimestamping::SoftwareRxOnly => "software-rx",
            ActiveTimestamping::User => "user",
        }
    }
}

/// A network interface.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Interface {
    pub name: String,
    pub index: u32,
    pub mac: Option<[u8; 6]>,
    pub ipv4: Option<Ipv4Addr>,
}

fn io_err(context: impl Into<String>) -> Error {
    Error::io(context, io::Error::last_os_error())
}

fn ifreq_for(name: &str) -> Result<libc::ifreq> {
    if name.is_empty() || name.len() >= libc::IFNAMSIZ || name.contains('\0') {
        return Err(Error::invalid(format!("bad interface name '{name}'")));
    }
    // SAFETY: ifreq is plain data; all-zero is valid.
    let mut req: libc::ifreq = unsafe { zeroed() };
    for (dst, src) in req.ifr_name.iter_mut().zip(name.bytes()) {
        *dst = src as libc::c_char;
    }
    Ok(req)
}

fn control_socket() -> Result<OwnedFd> {
    // SAFETY: plain socket(2); the fd is owned below.
    let fd = unsafe { libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0) };
    if fd < 0 {
        return Err(io_err("creating a control socket"));
    }
    // SAFETY: just created, owned by nobody else.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// Looks an interface up by name.
pub fn interface(name: &str) -> Result<Interface> {
    let c_name = std::ffi::CString::new(name).map_err(|_| Error::invalid(format!("bad interface name '{name}'")))?;
    // SAFETY: a valid C string.
    let index = unsafe { libc::if_nametoindex(c_name.as_ptr()) };
    if index == 0 {
        let known = interface_names().join(", ");
        return Err(Error::invalid(format!("no network interface '{name}' here; known: {known}")));
    }
    let sock = control_socket()?;
    let mut req = ifreq_for(name)?;
    // SAFETY: SIOCGIFHWADDR fills ifr_hwaddr of a valid ifreq.
    let mac = (unsafe { libc::ioctl(sock.as_raw_fd(), libc::SIOCGIFHWADDR, &mut req) } == 0)
        .then(|| {
            // SAFETY: the kernel filled the hwaddr member.
            let data = unsafe { req.ifr_ifru.ifru_hwaddr.sa_data };
            let mac: [u8; 6] = std::array::from_fn(|i| data[i] as u8);
            mac
        })
        .filter(|m| m.iter().any(|&b| b != 0));
    let mut req = ifreq_for(name)?;
    // SAFETY: SIOCGIFADDR fills ifr_addr of a valid ifreq.
    let ipv4 = (unsafe { libc::ioctl(sock.as_raw_fd(), libc::SIOCGIFADDR, &mut req) } == 0).then(|| {
        // SAFETY: for AF_INET the kernel wrote a sockaddr_in into ifr_addr.
        let sin: libc::sockaddr_in =
            unsafe { std::ptr::read_unaligned(&req.ifr_ifru.ifru_addr as *const _ as *const _) };
        Ipv4Addr::from(u32::from_be(sin.sin_addr.s_addr))
    });
    Ok(Interface { name: name.to_string(), index, mac, ipv4 })
}

struct IfAddrs(*mut libc::ifaddrs);

impl Drop for IfAddrs {
    fn drop(&mut self) {
        // SAFETY: from getifaddrs, freed once.
        unsafe { libc::freeifaddrs(self.0) };
    }
}

/// (name, flags, has IPv4) of every interface address entry.
fn interface_entries() -> Vec<(String, u32, bool)> {
    let mut head = std::ptr::null_mut();
    // SAFETY: getifaddrs writes a list head we free with IfAddrs.
    if unsafe { libc::getifaddrs(&mut head) } != 0 {
        return Vec::new();
    }
    let list = IfAddrs(head);
    let mut out = Vec::new();
    let mut cur = list.0;
    while !cur.is_null() {
        // SAFETY: a node of the list getifaddrs returned.
        let entry = unsafe { &*cur };
        // SAFETY: ifa_name is a C string for every entry.
        let name = unsafe { CStr::from_ptr(entry.ifa_name) }.to_string_lossy().into_owned();
        // SAFETY: ifa_addr is null or a valid sockaddr.
        let ipv4 = !entry.ifa_addr.is_null() && unsafe { (*entry.ifa_addr).sa_family } as i32 == libc::AF_INET;
        out.push((name, entry.ifa_flags, ipv4));
        cur = entry.ifa_next;
    }
    out
}

fn interface_names() -> Vec<String> {
    let mut names: Vec<String> = interface_entries().into_iter().map(|(n, _, _)| n).collect();
    names.sort();
    names.dedup();
    names
}

/// The interface PTP would most likely run on: the first one that is up,
/// not loopback, multicast-capable and has an IPv4 address.
pub fn default_interface() -> Result<Interface> {
    let wanted = (libc::IFF_UP | libc::IFF_MULTICAST) as u32;
    let found = interface_entries()
        .into_iter()
        .find(|(_, flags, ipv4)| *ipv4 && flags & wanted == wanted && flags & libc::IFF_LOOPBACK as u32 == 0);
    match found {
        Some((name, _, _)) => interface(&name),
        None => Err(Error::invalid(format!(
            "no up, multicast, IPv4 interface to run PTP on (interfaces: {}); name one with --iface",
            interface_names().join(", ")
        ))),
    }
}

const ETHTOOL_GET_TS_INFO: u32 = 0x41;

#[repr(C)]
#[derive(Default)]
struct EthtoolTsInfo {
    cmd: u32,
    so_timestamping: u32,
    phc_index: i32,
    tx_types: u32,
    tx_reserved: [u32; 3],
    rx_filters: u32,
    rx_reserved: [u32; 3],
}

/// What an interface can timestamp (`ETHTOOL_GET_TS_INFO`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TimestampingInfo {
    /// `SOF_TIMESTAMPING_*` capabilities.
    pub so_timestamping: u32,
    /// `/dev/ptpN` of the NIC's hardware clock.
    pub phc_index: Option<u32>,
    pub tx_types: u32,
    pub rx_filters: u32,
}

impl TimestampingInfo {
    pub fn hardware(&self) -> bool {
        let need = libc::SOF_TIMESTAMPING_TX_HARDWARE
            | libc::SOF_TIMESTAMPING_RX_HARDWARE
            | libc::SOF_TIMESTAMPING_RAW_HARDWARE;
        self.so_timestamping & need == need && self.phc_index.is_some()
    }

    pub fn software(&self) -> bool {
        let need = libc::SOF_TIMESTAMPING_TX_SOFTWARE | libc::SOF_TIMESTAMPING_RX_SOFTWARE;
        self.so_timestamping & need == need
    }
}

/// Asks the driver what `iface` can timestamp.
pub fn timestamping_info(iface: &str) -> Result<TimestampingInfo> {
    let sock = control_socket()?;
    let mut info = EthtoolTsInfo { cmd: ETHTOOL_GET_TS_INFO, ..EthtoolTsInfo::default() };
    let mut req = ifreq_for(iface)?;
    req.ifr_ifru.ifru_data = &mut info as *mut EthtoolTsInfo as *mut libc::c_char;
    // SAFETY: SIOCETHTOOL with a GET_TS_INFO buffer that outlives the call.
    if unsafe { libc::ioctl(sock.as_raw_fd(), libc::SIOCETHTOOL, &mut req) } != 0 {
        return Err(io_err(format!("asking {iface} what it can timestamp (ETHTOOL_GET_TS_INFO)")));
    }
    Ok(TimestampingInfo {
        so_timestamping: info.so_timestamping,
        phc_index: u32::try_from(info.phc_index).ok(),
        tx_types: info.tx_types,
        rx_filters: info.rx_filters,
    })
}

/// Turns on the NIC's hardware timestamping of PTP packets (what ptp4l does).
fn enable_hardware_timestamping(iface: &str) -> Result<()> {
    let sock = control_socket()?;
    for filter in [libc::HWTSTAMP_FILTER_PTP_V2_L4_EVENT, libc::HWTSTAMP_FILTER_ALL] {
        let mut config = libc::hwtstamp_config { flags: 0, tx_type: libc::HWTSTAMP_TX_ON as _, rx_filter: filter as _ };
        let mut req = ifreq_for(iface)?;
        req.ifr_ifru.ifru_data = &mut config as *mut libc::hwtstamp_config as *mut libc::c_char;
        // SAFETY: SIOCSHWTSTAMP with a hwtstamp_config that outlives the call.
        if unsafe { libc::ioctl(sock.as_raw_fd(), libc::SIOCSHWTSTAMP, &mut req) } == 0 {
            return Ok(());
        }
    }
    Err(io_err(format!("enabling hardware timestamping on {iface} (SIOCSHWTSTAMP)")))
}

fn set_opt<T>(fd: RawFd, level: libc::c_int, name: libc::c_int, value: &T) -> io::Result<()> {
    // SAFETY: `value` points to a live T of the size given.
    let rc = unsafe {
        libc::setsockopt(fd, level, name, value as *const T as *const libc::c_void, size_of::<T>() as libc::socklen_t)
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// A UDP socket on `iface` for PTP multicast. With `port`, it is bound to
/// that port and joins 224.0.1.129 (a receiving socket); without, it is a
/// sending socket on an ephemeral port that receives nothing.
fn multicast_socket(iface: &Interface, port: Option<u16>) -> Result<OwnedFd> {
    let context = |what: &str| format!("PTP socket on {}:{}: {what}", iface.name, port.unwrap_or(0));
    // SAFETY: plain socket(2); the fd is owned below.
    let fd = unsafe { libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC, 0) };
    if fd < 0 {
        return Err(io_err(context("socket")));
    }
    // SAFETY: just created, owned by nobody else.
    let sock = unsafe { OwnedFd::from_raw_fd(fd) };
    let raw = sock.as_raw_fd();
    let (zero, one): (libc::c_int, libc::c_int) = (0, 1);
    // Only this interface's traffic (needs CAP_NET_RAW; without it the
    // multicast membership below still picks the interface).
    let mut device = [0u8; libc::IFNAMSIZ];
    device[..iface.name.len()].copy_from_slice(iface.name.as_bytes());
    if let Err(e) = set_opt(raw, libc::SOL_SOCKET, libc::SO_BINDTODEVICE, &device) {
        tracing::debug!("SO_BINDTODEVICE {}: {e}", iface.name);
    }
    let mreq = libc::ip_mreqn {
        imr_multiaddr: libc::in_addr { s_addr: u32::from(PRIMARY_MULTICAST).to_be() },
        imr_address: libc::in_addr { s_addr: 0 },
        imr_ifindex: iface.index as _,
    };
    // Only the groups joined on this socket (not every group of the host).
    set_opt(raw, libc::IPPROTO_IP, libc::IP_MULTICAST_ALL, &zero)
        .map_err(|e| Error::io(context("IP_MULTICAST_ALL"), e))?;
    if let Some(port) = port {
        set_opt(raw, libc::SOL_SOCKET, libc::SO_REUSEADDR, &one).map_err(|e| Error::io(context("SO_REUSEADDR"), e))?;
        let addr = libc::sockaddr_in {
            sin_family: libc::AF_INET as libc::sa_family_t,
            sin_port: port.to_be(),
            sin_addr: libc::in_addr { s_addr: 0 },
            sin_zero: [0; 8],
        };
        // SAFETY: a valid sockaddr_in of the size given.
        let rc = unsafe {
            libc::bind(
                raw,
                &addr as *const _ as *const libc::sockaddr,
                size_of::<libc::sockaddr_in>() as libc::socklen_t,
            )
        };
        if rc != 0 {
            return Err(io_err(context("bind (ports below 1024 need root or CAP_NET_BIND_SERVICE)")));
        }
        set_opt(raw, libc::IPPROTO_IP, libc::IP_ADD_MEMBERSHIP, &mreq)
            .map_err(|e| Error::io(context("joining 224.0.1.129"), e))?;
    }
    let out_if = libc::ip_mreqn { imr_multiaddr: libc::in_addr { s_addr: 0 }, ..mreq };
    set_opt(raw, libc::IPPROTO_IP, libc::IP_MULTICAST_IF, &out_if)
        .map_err(|e| Error::io(context("IP_MULTICAST_IF"), e))?;
    set_opt(raw, libc::IPPROTO_IP, libc::IP_MULTICAST_LOOP, &zero)
        .map_err(|e| Error::io(context("IP_MULTICAST_LOOP"), e))?;
    set_opt(raw, libc::IPPROTO_IP, libc::IP_MULTICAST_TTL, &one)
        .map_err(|e| Error::io(context("IP_MULTICAST_TTL"), e))?;
    Ok(sock)
}

/// The PTP sockets of one interface.
///
/// Delay_Reqs leave through their own socket, which no epoll set watches:
/// the kernel takes the software transmit timestamp *before* it wakes the
/// socket's waiters, and an epoll watcher's wake-up (about 1.2 µs measured
/// on veth) would otherwise sit between our timestamp and the packet,
/// skewing every slave-to-master delay. Its transmit timestamps are read
/// from its error queue without waiting.
#[derive(Debug)]
pub struct PtpSockets {
    pub interface: Interface,
    /// Receives event messages (319), with receive timestamps.
    pub event: OwnedFd,
    /// Receives general messages (320).
    pub general: OwnedFd,
    /// Sends event messages, with transmit timestamps.
    pub event_tx: OwnedFd,
    pub timestamping: ActiveTimestamping,
    /// What the driver said it can do (when it answered).
    pub info: Option<TimestampingInfo>,
}

impl PtpSockets {
    /// Opens the sockets on `iface` and turns on the best timestamps `mode` allows.
    pub fn open(iface: &Interface, mode: TimestampingMode) -> Result<PtpSockets> {
        let info = timestamping_info(&iface.name).ok();
        let event = multicast_socket(iface, Some(EVENT_PORT))?;
        let general = multicast_socket(iface, Some(GENERAL_PORT))?;
        let event_tx = multicast_socket(iface, None)?;
        let (rx, tx) = (event.as_raw_fd(), event_tx.as_raw_fd());
        let enable = |fd: RawFd, flags: libc::c_uint| {
            set_opt(fd, libc::SOL_SOCKET, libc::SO_TIMESTAMPING, &flags).map_err(|e| Error::io("SO_TIMESTAMPING", e))
        };
        let report = libc::SOF_TIMESTAMPING_OPT_ID | libc::SOF_TIMESTAMPING_OPT_TSONLY;
        let want_hardware = match mode {
            TimestampingMode::Hardware => {
                if !info.is_some_and(|i| i.hardware()) {
                    return Err(Error::Unsupported(format!(
                        "{} cannot timestamp in hardware (ETHTOOL_GET_TS_INFO: {info:?}); use software timestamps",
                        iface.name
                    )));
                }
                true
            }
            TimestampingMode::Auto => info.is_some_and(|i| i.hardware()),
            TimestampingMode::Software | TimestampingMode::User => false,
        };
        let mut timestamping = None;
        if want_hardware {
            let phc_index = info.and_then(|i| i.phc_index).expect("hardware() checked the PHC");
            let raw = libc::SOF_TIMESTAMPING_RAW_HARDWARE;
            let enabled = enable_hardware_timestamping(&iface.name)
                .and_then(|_| enable(rx, libc::SOF_TIMESTAMPING_RX_HARDWARE | raw))
                .and_then(|_| enable(tx, libc::SOF_TIMESTAMPING_TX_HARDWARE | raw | report));
            match (enabled, mode) {
                (Ok(()), _) => timestamping = Some(ActiveTimestamping::Hardware { phc_index }),
                (Err(e), TimestampingMode::Hardware) => return Err(e),
                (Err(e), _) => {
                    tracing::warn!("hardware timestamps on {} failed ({e}); using software timestamps", iface.name)
                }
            }
        }
        let software = libc::SOF_TIMESTAMPING_SOFTWARE;
        let timestamping = match (timestamping, mode) {
            (Some(t), _) => t,
            (None, TimestampingMode::User) => ActiveTimestamping::User,
            (None, _) => {
                let rx_ok = enable(rx, libc::SOF_TIMESTAMPING_RX_SOFTWARE | software).is_ok();
                let tx_ok = rx_ok && enable(tx, libc::SOF_TIMESTAMPING_TX_SOFTWARE | software | report).is_ok();
                if tx_ok {
                    ActiveTimestamping::Software
                } else {
                    let one: libc::c_int = 1;
                    set_opt(rx, libc::SOL_SOCKET, libc::SO_TIMESTAMPNS, &one)
                        .map_err(|e| Error::io("SO_TIMESTAMPNS", e))?;
                    ActiveTimestamping::SoftwareRxOnly
                }
            }
        };
        Ok(PtpSockets { interface: iface.clone(), event, general, event_tx, timestamping, info })
    }
}

/// Timestamps found in a message's control data.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Stamps {
    /// Kernel software timestamp (`CLOCK_REALTIME` ns).
    pub software: Option<u64>,
    /// Hardware timestamp (PHC ns).
    pub hardware: Option<u64>,
    /// `OPT_ID` of a transmit timestamp.
    pub id: Option<u32>,
}

fn timespec_ns(ts: &libc::timespec) -> Option<u64> {
    (ts.tv_sec != 0 || ts.tv_nsec != 0).then(|| ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64)
}

/// `recvmsg` with control data; `Ok(None)` when nothing is waiting.
pub fn recv(fd: RawFd, buf: &mut [u8], error_queue: bool) -> io::Result<Option<(usize, Stamps)>> {
    let mut control = [0u64; 64];
    let mut iov = libc::iovec { iov_base: buf.as_mut_ptr() as *mut libc::c_void, iov_len: buf.len() };
    // SAFETY: msghdr is plain data; all-zero is valid.
    let mut msg: libc::msghdr = unsafe { zeroed() };
    msg.msg_iov = &mut iov;
    msg.msg_iovlen = 1;
    msg.msg_control = control.as_mut_ptr() as *mut libc::c_void;
    msg.msg_controllen = size_of::<[u64; 64]>() as _;
    let flags = libc::MSG_DONTWAIT | if error_queue { libc::MSG_ERRQUEUE } else { 0 };
    // SAFETY: msg points at live buffers of the lengths given.
    let n = unsafe { libc::recvmsg(fd, &mut msg, flags) };
    if n < 0 {
        let e = io::Error::last_os_error();
        return match e.kind() {
            io::ErrorKind::WouldBlock | io::ErrorKind::Interrupted => Ok(None),
            _ => Err(e),
        };
    }
    let mut stamps = Stamps::default();
    // SAFETY: walking the control messages the kernel wrote into `msg`.
    unsafe {
        let mut cmsg = libc::CMSG_FIRSTHDR(&msg);
        while !cmsg.is_null() {
            let (level, kind) = ((*cmsg).cmsg_level, (*cmsg).cmsg_type);
            let data = libc::CMSG_DATA(cmsg);
            if level == libc::SOL_SOCKET && kind == libc::SCM_TIMESTAMPING {
                let ts: [libc::timespec; 3] = std::ptr::read_unaligned(data as *const [libc::timespec; 3]);
                stamps.software = timespec_ns(&ts[0]);
                stamps.hardware = timespec_ns(&ts[2]);
            } else if level == libc::SOL_SOCKET && kind == libc::SCM_TIMESTAMPNS {
                let ts: libc::timespec = std::ptr::read_unaligned(data as *const libc::timespec);
                stamps.software = timespec_ns(&ts);
            } else if level == libc::SOL_IP && kind == libc::IP_RECVERR {
                let err: libc::sock_extended_err = std::ptr::read_unaligned(data as *const libc::sock_extended_err);
                if err.ee_errno == libc::ENOMSG as u32 && err.ee_origin == libc::SO_EE_ORIGIN_TIMESTAMPING {
                    stamps.id = Some(err.ee_data);
                }
            }
            cmsg = libc::CMSG_NXTHDR(&msg, cmsg);
        }
    }
    Ok(Some((n as usize, stamps)))
}

/// Sends `data` to the PTP multicast group on `port`.
pub fn send_multicast(fd: RawFd, data: &[u8], port: u16) -> io::Result<()> {
    let addr = libc::sockaddr_in {
        sin_family: libc::AF_INET as libc::sa_family_t,
        sin_port: port.to_be(),
        sin_addr: libc::in_addr { s_addr: u32::from(PRIMARY_MULTICAST).to_be() },
        sin_zero: [0; 8],
    };
    // SAFETY: `data` and `addr` are live for the call.
    let n = unsafe {
        libc::sendto(
            fd,
            data.as_ptr() as *const libc::c_void,
            data.len(),
            0,
            &addr as *const _ as *const libc::sockaddr,
            size_of::<libc::sockaddr_in>() as libc::socklen_t,
        )
    };
    if n < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_has_no_hardware_clock() {
        let lo = interface("lo").unwrap();
        assert!(lo.index > 0);
        assert_eq!(lo.ipv4, Some(Ipv4Addr::LOCALHOST));
        if let Ok(info) = timestamping_info("lo") {
            assert!(!info.hardware());
        }
    }

    #[test]
    fn unknown_interface_lists_known_ones() {
        let e = interface("nope0").unwrap_err().to_string();
        assert!(e.contains("nope0") && e.contains("lo"), "{e}");
        assert!(interface("").is_err());
        assert!(interface("a-very-long-interface-name").is_err());
    }

    #[test]
    fn modes_parse() {
        assert_eq!(TimestampingMode::parse("hw"), Some(TimestampingMode::Hardware));
        assert_eq!(TimestampingMode::parse("nope"), None);
    }
}
