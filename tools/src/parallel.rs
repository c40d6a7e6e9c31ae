//! A parallel map for studies made of many independent runs (`mc`, `sweep`): `threads` workers
//! take items in turn; results come back in item order, so a study does not depend on how many
//! threads ran it.

use anyhow::Result;
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};

/// Run `f` over `items` on `threads` workers; results in item order (the first error wins).
pub fn map<T: Sync, R: Send>(items: &[T], threads: usize, f: impl Fn(&T) -> Result<R> + Sync) -> Result<Vec<R>> {
    let next = AtomicUsize::new(0);
    let out: Mutex<Vec<Option<Result<R>>>> = Mutex::new((0..items.len()).map(|_| None).collect());
    std::thread::scope(|s| {
        for _ in 0..threads.clamp(1, items.len().max(1)) {
            s.spawn(|| {
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    let Some(item) = items.get(i) else { break };
                    let r = f(item);
                    out.lock().unwrap_or_else(|p| p.into_inner())[i] = Some(r);
                }
            });
        }
    });
    out.into_inner().unwrap_or_else(|p| p.into_inner()).into_iter().map(|r| r.expect("every item ran")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn results_keep_item_order_on_any_thread_count_and_errors_surface() {
        let items: Vec<u64> = (0..100).collect();
        for threads in [1, 2, 7] {
            let got = map(&items, threads, |&x| Ok(x * x)).unwrap();
            assert_eq!(got, items.iter().map(|x| x * x).collect::<Vec<_>>(), "{threads} threads");
        }
        let err = map(&items, 2, |&x| if x == 42 { anyhow::bail!("item {x}") } else { Ok(x) }).unwrap_err();
        assert_eq!(err.to_string(), "item 42");
        assert!(map(&[] as &[u8], 4, |_| Ok(())).unwrap().is_empty());
    }
}
