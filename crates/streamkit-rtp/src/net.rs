//! UDP sockets set up for RTP: multicast TTL, loopback and interface on the
//! sending side; group membership, address reuse and a large receive buffer
//! on the receiving side.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, ToSocketAddrs, UdpSocket};
use std::os::fd::AsRawFd;
use std::time::Duration;

use socket2::{Domain, Protocol, SockAddr, Socket, Type};
use streamkit_core::error::IoContext;
use streamkit_core::{Error, Result};

/// Resolves `host:port` (IP literals, `[v6]:port` or a host name).
pub fn resolve(authority: &str) -> Result<SocketAddr> {
    if let Ok(addr) = authority.parse() {
        return Ok(addr);
    }
    authority
        .to_socket_addrs()
        .context(|| format!("resolving '{authority}' (expected HOST:PORT, e.g. 127.0.0.1:5004)"))?
        .next()
        .ok_or_else(|| Error::invalid(format!("'{authority}' resolves to no address")))
}

fn socket_for(addr: &SocketAddr) -> Result<Socket> {
    Socket::new(Domain::for_address(*addr), Type::DGRAM, Some(Protocol::UDP))
        .context(|| format!("creating a UDP socket for {addr}"))
}

/// A socket that sends to `destination`. For a multicast destination it sets
/// the TTL (hop limit), loops packets back to local receivers, and sends
/// through `interface` when given (else the route the kernel picks).
pub fn sender_socket(destination: SocketAddr, ttl: u32, interface: Option<Ipv4Addr>) -> Result<UdpSocket> {
    let socket = socket_for(&destination)?;
    let what = || format!("setting up a UDP socket to send to {destination}");
    match destination.ip() {
        IpAddr::V4(ip) if ip.is_multicast() => {
            socket.set_multicast_ttl_v4(ttl).context(what)?;
            socket.set_multicast_loop_v4(true).context(what)?;
            if let Some(interface) = interface {
                socket.set_multicast_if_v4(&interface).context(what)?;
            }
        }
        IpAddr::V6(ip) if ip.is_multicast() => {
            socket.set_multicast_hops_v6(ttl).context(what)?;
            socket.set_multicast_loop_v6(true).context(what)?;
        }
        _ => {}
    }
    // Room for a few frames of packets: the pacer keeps bursts small, this
    // absorbs the rest. Best effort (the kernel caps it at wmem_max).
    let _ = socket.set_send_buffer_size(4 << 20);
    let local: SocketAddr = match destination {
        SocketAddr::V4(_) => (Ipv4Addr::UNSPECIFIED, 0).into(),
        SocketAddr::V6(_) => (Ipv6Addr::UNSPECIFIED, 0).into(),
    };
    socket.bind(&SockAddr::from(local)).context(what)?;
    Ok(socket.into())
}

/// A socket that receives on `address`: a local address (or 0.0.0.0) and a
/// port, or a multicast group, joined on `interface` (default: the kernel's
/// choice). Asks for `receive_buffer` bytes of socket buffer, beyond the
/// `net.core.rmem_max` cap where the process may (`SO_RCVBUFFORCE`, root),
/// and returns the size the kernel granted. Reads time out after `poll`.
pub fn receiver_socket(
    address: SocketAddr,
    interface: Option<Ipv4Addr>,
    receive_buffer: usize,
    poll: Duration,
) -> Result<(UdpSocket, usize)> {
    let socket = socket_for(&address)?;
    let what = || format!("setting up a UDP socket to receive on {address}");
    if address.ip().is_multicast() {
        // Several receivers of one group on one host.
        socket.set_reuse_address(true).context(what)?;
    }
    set_receive_buffer(&socket, receive_buffer);
    socket.bind(&SockAddr::from(address)).context(|| format!("binding UDP {address} (is the port in use?)"))?;
    match address.ip() {
        IpAddr::V4(group) if group.is_multicast() => {
            let interface = interface.unwrap_or(Ipv4Addr::UNSPECIFIED);
            socket
                .join_multicast_v4(&group, &interface)
                .context(|| format!("joining multicast group {group} on interface {interface}"))?;
        }
        IpAddr::V6(group) if group.is_multicast() => {
            socket.join_multicast_v6(&group, 0).context(|| format!("joining multicast group {group}"))?;
        }
        _ => {}
    }
    socket.set_read_timeout(Some(poll)).context(what)?;
    let granted = socket.recv_buffer_size().unwrap_or(0);
    Ok((socket.into(), granted))
}

fn set_receive_buffer(socket: &Socket, bytes: usize) {
    let _ = socket.set_recv_buffer_size(bytes);
    // Linux reports twice what was asked (bookkeeping overhead included).
    if socket.recv_buffer_size().unwrap_or(0) < bytes {
        let value = bytes.min(i32::MAX as usize) as libc::c_int;
        // SAFETY: a valid socket and a pointer to an int of the size given;
        // failure (no CAP_NET_ADMIN) leaves the buffer as it was.
        unsafe {
            libc::setsockopt(
                socket.as_raw_fd(),
                libc::SOL_SOCKET,
                libc::SO_RCVBUFFORCE,
                (&value as *const libc::c_int).cast(),
                std::mem::size_of::<libc::c_int>() as libc::socklen_t,
            );
        }
    }
}

/// Whether a read error only means "nothing arrived in time".
pub fn is_timeout(error: &std::io::Error) -> bool {
    matches!(error.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unicast_round_trip_and_a_large_receive_buffer() {
        let (rx, granted) =
            receiver_socket("127.0.0.1:0".parse().unwrap(), None, 8 << 20, Duration::from_millis(500)).unwrap();
        assert!(granted >= 200_000, "{granted}");
        let to = rx.local_addr().unwrap();
        let tx = sender_socket(to, 1, None).unwrap();
        tx.send_to(b"hello", to).unwrap();
        let mut buf = [0; 16];
        let (n, _) = rx.recv_from(&mut buf).unwrap();
        assert_eq!(&buf[..n], b"hello");
    }

    #[test]
    fn resolve_reports_bad_authorities() {
        assert_eq!(resolve("127.0.0.1:5004").unwrap().port(), 5004);
        assert_eq!(resolve("[::1]:5004").unwrap().ip(), "::1".parse::<IpAddr>().unwrap());
        assert!(resolve("127.0.0.1").unwrap_err().to_string().contains("HOST:PORT"));
    }
}
