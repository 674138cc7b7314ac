//! `streamkit serve DIR`: an HLS folder over HTTP with a player page.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::Args;
use streamkit_core::{Error, Result};

#[derive(Args)]
pub struct ServeArgs {
    /// The folder holding index.m3u8 (e.g. what `-o hls:out/live` writes).
    pub dir: PathBuf,
    /// Address to listen on. Stays on this machine unless you give another interface.
    #[arg(long, default_value = "127.0.0.1:8080")]
    pub addr: SocketAddr,
    /// Require this token (`?token=` or `Authorization: Bearer`).
    #[arg(long)]
    pub token: Option<String>,
}

pub async fn serve(args: ServeArgs) -> Result<()> {
    if !args.dir.is_dir() {
        return Err(Error::invalid(format!("{} is not a folder", args.dir.display())));
    }
    let server = streamkit_hls::serve(args.dir.clone(), args.addr, args.token.clone()).await?;
    let query = args.token.as_ref().map(|t| format!("?token={t}")).unwrap_or_default();
    eprintln!("serving {} — open http://{}/{query} (Ctrl-C stops)", args.dir.display(), server.local_addr());
    tokio::signal::ctrl_c().await.map_err(|e| Error::io("waiting for Ctrl-C", e))?;
    server.shutdown().await;
    Ok(())
}
