//! A STUN binding request (RFC 8489) to learn our server-reflexive address
//! before a session starts, so that a streamkit behind NAT can announce the
//! address peers outside it see. str0m has no STUN client of its own (it
//! leaves candidate gathering to the application).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::Duration;

use tokio::net::UdpSocket;

pub(crate) const MAGIC_COOKIE: u32 = 0x2112_A442;
const BINDING_REQUEST: u16 = 0x0001;
const BINDING_SUCCESS: u16 = 0x0101;
pub(crate) const XOR_MAPPED_ADDRESS: u16 = 0x0020;
const MAPPED_ADDRESS: u16 = 0x0001;

/// Asks `server` (`host:port`, port 3478 when absent) for our mapped
/// address through `socket`; `None` when it does not answer within `timeout`.
pub async fn query(socket: &UdpSocket, server: &str, timeout: Duration) -> Option<SocketAddr> {
    let server = if server.rsplit_once(':').is_some_and(|(_, p)| p.parse::<u16>().is_ok()) {
        server.to_string()
    } else {
        format!("{server}:3478")
    };
    let local_v4 = socket.local_addr().ok()?.is_ipv4();
    let server = tokio::time::timeout(timeout, tokio::net::lookup_host(&server))
        .await
        .ok()?
        .ok()?
        .find(|a| a.is_ipv4() == local_v4)?;
    let transaction: [u8; 12] =
        std::array::from_fn(|i| (streamkit_core::time::monotonic_ns() >> (i % 8 * 8)) as u8 ^ i as u8);
    let request = binding_request(&transaction);
    let exchange = async {
        let mut buf = [0u8; 1024];
        for _ in 0..3 {
            socket.send_to(&request, server).await.ok()?;
            if let Ok(Ok((n, from))) = tokio::time::timeout(timeout / 3, socket.recv_from(&mut buf)).await {
                if from == server {
                    if let Some(addr) = parse_binding_success(&buf[..n], &transaction) {
                        return Some(addr);
                    }
                }
            }
        }
        None
    };
    tokio::time::timeout(timeout, exchange).await.ok().flatten()
}

fn binding_request(transaction: &[u8; 12]) -> Vec<u8> {
    let mut msg = Vec::with_capacity(20);
    msg.extend_from_slice(&BINDING_REQUEST.to_be_bytes());
    msg.extend_from_slice(&0u16.to_be_bytes());
    msg.extend_from_slice(&MAGIC_COOKIE.to_be_bytes());
    msg.extend_from_slice(transaction);
    msg
}

/// The (XOR-)MAPPED-ADDRESS of a binding success response to `transaction`.
fn parse_binding_success(msg: &[u8], transaction: &[u8; 12]) -> Option<SocketAddr> {
    if msg.len() < 20
        || u16::from_be_bytes([msg[0], msg[1]]) != BINDING_SUCCESS
        || u32::from_be_bytes(msg[4..8].try_into().ok()?) != MAGIC_COOKIE
        || &msg[8..20] != transaction
    {
        return None;
    }
    let length = u16::from_be_bytes([msg[2], msg[3]]) as usize;
    let mut attrs = msg.get(20..20 + length)?;
    let mut plain = None;
    while attrs.len() >= 4 {
        let kind = u16::from_be_bytes([attrs[0], attrs[1]]);
        let len = u16::from_be_bytes([attrs[2], attrs[3]]) as usize;
        let value = attrs.get(4..4 + len)?;
        match kind {
            XOR_MAPPED_ADDRESS => return decode_address(value, Some(transaction)),
            MAPPED_ADDRESS => plain = decode_address(value, None),
            _ => {}
        }
        attrs = attrs.get((4 + len).next_multiple_of(4)..).unwrap_or(&[]);
    }
    plain
}

pub(crate) fn decode_address(value: &[u8], xor_with: Option<&[u8; 12]>) -> Option<SocketAddr> {
    let cookie = MAGIC_COOKIE.to_be_bytes();
    let port = u16::from_be_bytes([*value.get(2)?, *value.get(3)?]);
    let port = if xor_with.is_some() { port ^ (MAGIC_COOKIE >> 16) as u16 } else { port };
    let ip = match value.get(1)? {
        0x01 => {
            let mut b: [u8; 4] = value.get(4..8)?.try_into().ok()?;
            if xor_with.is_some() {
                b.iter_mut().zip(cookie).for_each(|(x, k)| *x ^= k);
            }
            IpAddr::V4(Ipv4Addr::from(b))
        }
        0x02 => {
            let mut b: [u8; 16] = value.get(4..20)?.try_into().ok()?;
            if let Some(t) = xor_with {
                let key: Vec<u8> = cookie.iter().chain(t.iter()).copied().collect();
                b.iter_mut().zip(key).for_each(|(x, k)| *x ^= k);
            }
            IpAddr::V6(Ipv6Addr::from(b))
        }
        _ => return None,
    };
    Some(SocketAddr::new(ip, port))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A binding success for 192.0.2.7:40000, XOR-encoded as RFC 8489 says.
    fn success(transaction: &[u8; 12]) -> Vec<u8> {
        let port = 40000u16 ^ 0x2112;
        let ip: Vec<u8> = [192u8, 0, 2, 7].iter().zip(MAGIC_COOKIE.to_be_bytes()).map(|(a, k)| a ^ k).collect();
        let mut msg = BINDING_SUCCESS.to_be_bytes().to_vec();
        msg.extend_from_slice(&12u16.to_be_bytes());
        msg.extend_from_slice(&MAGIC_COOKIE.to_be_bytes());
        msg.extend_from_slice(transaction);
        msg.extend_from_slice(&XOR_MAPPED_ADDRESS.to_be_bytes());
        msg.extend_from_slice(&8u16.to_be_bytes());
        msg.extend_from_slice(&[0, 1]);
        msg.extend_from_slice(&port.to_be_bytes());
        msg.extend_from_slice(&ip);
        msg
    }

    #[test]
    fn parses_xor_mapped_address() {
        let t = [7u8; 12];
        assert_eq!(parse_binding_success(&success(&t), &t), Some("192.0.2.7:40000".parse().unwrap()));
        assert_eq!(parse_binding_success(&success(&t), &[8u8; 12]), None, "another transaction");
        assert_eq!(parse_binding_success(&success(&t)[..25], &t), None, "truncated");
    }

    /// Against a fake STUN server on loopback.
    #[tokio::test]
    async fn queries_a_server() {
        let server = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let addr = server.local_addr().unwrap();
        tokio::spawn(async move {
            let mut buf = [0u8; 100];
            let (n, from) = server.recv_from(&mut buf).await.unwrap();
            assert_eq!(n, 20);
            let t: [u8; 12] = buf[8..20].try_into().unwrap();
            server.send_to(&success(&t), from).await.unwrap();
        });
        let client = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let mapped = query(&client, &addr.to_string(), Duration::from_secs(2)).await;
        assert_eq!(mapped, Some("192.0.2.7:40000".parse().unwrap()));
    }
}
