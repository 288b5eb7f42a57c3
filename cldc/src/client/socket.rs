//! The socket a [`super::Session`] sends and receives through.

use std::future::Future;
use std::io;
use std::net::SocketAddr;

/// A bound datagram socket for [`super::Session::open_with_socket`]: tokio's `UdpSocket`, or
/// another (a deterministic simulation passes turmoil's). Both calls take `&self`, as the
/// session's task sends while a receive is pending.
pub trait ClientSocket: Send + Sync + 'static {
    /// Receives one datagram into `buf`: its length and source.
    fn recv_from(
        &self,
        buf: &mut [u8],
    ) -> impl Future<Output = io::Result<(usize, SocketAddr)>> + Send;

    /// Sends `buf` as one datagram to `to`.
    fn send_to(&self, buf: &[u8], to: SocketAddr)
    -> impl Future<Output = io::Result<usize>> + Send;
}

impl ClientSocket for tokio::net::UdpSocket {
    async fn recv_from(&self, buf: &mut [u8]) -> io::Result<(usize, SocketAddr)> {
        tokio::net::UdpSocket::recv_from(self, buf).await
    }

    async fn send_to(&self, buf: &[u8], to: SocketAddr) -> io::Result<usize> {
        tokio::net::UdpSocket::send_to(self, buf, to).await
    }
}
