//! Running a few futures at once without a general-purpose executor: at most
//! `limit` in flight, the rest waiting their turn. (`futures_util`'s
//! `buffer_unordered` and `join_all` bring a `FuturesUnordered` per future type, some
//! 10 KB of Worker code each; this is one small loop.)

use std::future::Future;
use std::pin::Pin;
use std::task::Poll;

/// A future of the batch, boxed so that one instance of [`bounded`] serves every
/// caller with the same output type.
pub type Boxed<'a, T> = Pin<Box<dyn Future<Output = T> + 'a>>;

/// Runs `futures` with at most `limit` in flight; their outputs in the order given.
/// A future starts (is first polled) only when it gets a place, so what it times
/// starts when it really goes out.
pub async fn bounded<T>(futures: Vec<Boxed<'_, T>>, limit: usize) -> Vec<T> {
    let mut waiting = futures.into_iter().enumerate();
    let mut running: Vec<(usize, Boxed<'_, T>)> = Vec::new();
    let mut done: Vec<(usize, T)> = Vec::new();
    std::future::poll_fn(|cx| {
        loop {
            while running.len() < limit.max(1) {
                match waiting.next() {
                    Some(f) => running.push(f),
                    None => break,
                }
            }
            let before = running.len();
            let mut i = 0;
            while i < running.len() {
                match running[i].1.as_mut().poll(cx) {
                    Poll::Ready(v) => {
                        let (at, _) = running.swap_remove(i);
                        done.push((at, v));
                    }
                    Poll::Pending => i += 1,
                }
            }
            if waiting.len() == 0 {
                return if running.is_empty() {
                    Poll::Ready(())
                } else {
                    Poll::Pending
                };
            }
            // Places came free: start the next ones now.
            if running.len() == before {
                return Poll::Pending;
            }
        }
    })
    .await;
    // Back in the order given, without a sort: each output goes to its place.
    let mut slots: Vec<Option<T>> = std::iter::repeat_with(|| None).take(done.len()).collect();
    for (at, v) in done {
        if let Some(slot) = slots.get_mut(at) {
            *slot = Some(v);
        }
    }
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
    fn at_most_limit_run_at_once_and_outputs_keep_their_order() {
        let (live, peak) = (Cell::new(0), Cell::new(0));
        let futures: Vec<Boxed<'_, u32>> = (0..10u32)
            .map(|i| {
                let t = Turns {
                    turns: (i * 7) % 4,
                    live: &live,
                    peak: &peak,
                    started: false,
                };
                Box::pin(async move { t.await + i }) as Boxed<'_, u32>
            })
            .collect();
        let out = block_on(bounded(futures, 3));
        assert_eq!(out, (0..10).collect::<Vec<u32>>());
        assert_eq!(peak.get(), 3);
        assert_eq!(live.get(), 0);
    }

    #[test]
    fn nothing_to_run_is_done_at_once() {
        assert!(block_on(bounded::<u8>(Vec::new(), 6)).is_empty());
    }
}
