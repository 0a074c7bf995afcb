//! Running futures side by side without a general-purpose executor.
//! (`futures_util`'s `join_all` and `buffer_unordered` bring a `FuturesUnordered` per
//! future type, some 10 KB of Worker code each; this is one small loop.)

use std::future::Future;
use std::pin::Pin;
use std::task::Poll;

/// A future of the batch, boxed so that one instance of [`all`] serves every caller
/// with the same output type.
pub type Boxed<'a, T> = Pin<Box<dyn Future<Output = T> + 'a>>;

/// Runs `futures` side by side; their outputs in the order given.
pub async fn all<T>(futures: Vec<Boxed<'_, T>>) -> Vec<T> {
    let mut running: Vec<(usize, Boxed<'_, T>)> = futures.into_iter().enumerate().collect();
    let mut slots: Vec<Option<T>> = std::iter::repeat_with(|| None)
        .take(running.len())
        .collect();
    std::future::poll_fn(|cx| {
        let mut i = 0;
        while i < running.len() {
            match running[i].1.as_mut().poll(cx) {
                Poll::Ready(v) => {
                    let (at, _) = running.swap_remove(i);
                    if let Some(slot) = slots.get_mut(at) {
                        *slot = Some(v);
                    }
                }
                Poll::Pending => i += 1,
            }
        }
        if running.is_empty() {
            Poll::Ready(())
        } else {
            Poll::Pending
        }
    })
    .await;
    slots.into_iter().flatten().collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::block_on;
    use std::cell::Cell;

    /// A future that is pending `turns` times before it is ready.
    struct Turns<'a> {
        turns: u32,
        live: &'a Cell<usize>,
        peak: &'a Cell<usize>,
        started: bool,
    }

    impl Future for Turns<'_> {
        type Output = u32;
        fn poll(mut self: Pin<&mut Self>, cx: &mut std::task::Context<'_>) -> Poll<u32> {
            if !self.started {
                self.started = true;
                self.live.set(self.live.get() + 1);
                self.peak.set(self.peak.get().max(self.live.get()));
            }
            if self.turns == 0 {
                self.live.set(self.live.get() - 1);
                return Poll::Ready(0);
            }
            self.turns -= 1;
            cx.waker().wake_by_ref();
            Poll::Pending
        }
    }

    #[test]
    fn all_run_side_by_side_and_outputs_keep_their_order() {
        let (live, peak) = (Cell::new(0), Cell::new(0));
        let futures: Vec<Boxed<'_, u32>> = (0..10u32)
            .map(|i| {
                let t = Turns {
                    turns: (i * 7) % 4 + 1,
                    live: &live,
                    peak: &peak,
                    started: false,
                };
                Box::pin(async move { t.await + i }) as Boxed<'_, u32>
            })
            .collect();
        let out = block_on(all(futures));
        assert_eq!(out, (0..10).collect::<Vec<u32>>());
        assert_eq!(peak.get(), 10, "every one started before any finished");
        assert_eq!(live.get(), 0);
    }

    #[test]
    fn nothing_to_run_is_done_at_once() {
        assert!(block_on(all::<u8>(Vec::new())).is_empty());
    }
}
