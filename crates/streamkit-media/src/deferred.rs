//! A source whose opening is asynchronous (it must read before it knows its
//! size), built by a synchronous registry factory: it opens on the first
//! `next_frame`, and reports its size from then on.

use std::future::Future;
use std::pin::Pin;

use async_trait::async_trait;
use streamkit_core::{Frame, Result, Source, SourceInfo};

type Opening = Pin<Box<dyn Future<Output = Result<Box<dyn Source>>> + Send>>;

pub struct Deferred {
    description: String,
    opening: Option<Opening>,
    source: Option<Box<dyn Source>>,
}

impl Deferred {
    pub fn new(
        description: impl Into<String>,
        open: impl Future<Output = Result<Box<dyn Source>>> + Send + 'static,
    ) -> Deferred {
        Deferred { description: description.into(), opening: Some(Box::pin(open)), source: None }
    }
}

#[async_trait]
impl Source for Deferred {
    fn info(&self) -> SourceInfo {
        match &self.source {
            Some(source) => source.info(),
            None => SourceInfo::new(self.description.clone()),
        }
    }

    async fn next_frame(&mut self) -> Result<Option<Frame>> {
        if let Some(opening) = self.opening.take() {
            self.source = Some(opening.await?);
        }
        match &mut self.source {
            Some(source) => source.next_frame().await,
            None => Ok(None),
        }
    }

    async fn close(&mut self) -> Result<()> {
        match &mut self.source {
            Some(source) => source.close().await,
            None => Ok(()),
        }
    }
}
