//! Reconcile slots, handed out first come, first served.
//!
//! kube-runtime can bound a controller's concurrency itself (`Config::concurrency`), but while
//! all of its slots are busy it parks every object that falls due in an unordered set, and when
//! a slot frees it takes the first object that set yields. Under a load the controller does not
//! keep up with, objects that are due again soon after their reconcile win that race again and
//! again while others wait forever: in `make soak` (500 KluctlDeployments, a push every 5 s)
//! 336 of them never saw a single push in 14 minutes. So the controllers run kube-runtime
//! without a bound and every reconcile first takes one of `--concurrency` slots here, from a
//! semaphore that serves waiters in the order they asked (tokio's is fair). kube-runtime still
//! guarantees one reconcile per object at a time, and an object triggered while it waits for a
//! slot is reconciled again after that run, as before.
//!
//! A slot is taken before the reconcile reads anything, and the object it gets is the newest
//! copy in the controller's store, not the one kube-runtime handed over when it fell due.

use std::future::Future;
use std::sync::Arc;

use futures::future::BoxFuture;
use kube::runtime::controller::Action;
use kube::runtime::reflector::{ObjectRef, Store};
use tokio::sync::{Semaphore, SemaphorePermit};

/// At most `n` reconciles at a time, granted in the order they asked.
#[derive(Debug)]
pub struct Slots {
    semaphore: Semaphore,
}

impl Slots {
    /// `n` slots (`--concurrency`; 0 counts as 1).
    #[must_use]
    pub fn new(n: u16) -> Self {
        Self {
            semaphore: Semaphore::new(usize::from(n.max(1))),
        }
    }

    /// Waits for a slot, given back when the permit drops; `None` once the slots are closed.
    pub async fn acquire(&self) -> Option<SemaphorePermit<'_>> {
        self.semaphore.acquire().await.ok()
    }

    /// Closes the slots for good: reconciles still waiting for one end without doing
    /// anything, running ones finish. kube-runtime's graceful shutdown waits for every
    /// reconcile it started, and here that includes the waiting ones: without this, a
    /// controller that lost its Lease or got SIGTERM would first work through its whole queue.
    pub fn close(&self) {
        self.semaphore.close();
    }

    /// Closes the slots once `shutdown` resolves or the process gets SIGTERM or SIGINT (the
    /// signals kube-runtime's `shutdown_on_signal` stops on).
    pub fn close_on(self: &Arc<Self>, shutdown: impl Future<Output = ()> + Send + 'static) {
        let slots = Arc::clone(self);
        tokio::spawn(async move {
            let terminate = async {
                match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                    Ok(mut s) => {
                        s.recv().await;
                    }
                    Err(_) => std::future::pending::<()>().await,
                }
            };
            tokio::select! {
                () = shutdown => {}
                () = terminate => {}
                _ = tokio::signal::ctrl_c() => {}
            }
            slots.close();
        });
    }

    /// Slots free now.
    #[must_use]
    pub fn available(&self) -> usize {
        self.semaphore.available_permits()
    }
}

/// kube-runtime's own bound, which the controllers leave off (see the module doc).
#[must_use]
pub fn unbounded() -> kube::runtime::controller::Config {
    kube::runtime::controller::Config::default().concurrency(0)
}

/// `reconcile` as kube-runtime calls it, run in one of `slots` on the newest copy of the object
/// in `store` (the controller's store; the handed-over copy when the store no longer has it).
/// Once the slots are closed it ends at once with [`Action::await_change`].
pub fn in_slots<K, C, E, Fut>(
    slots: Arc<Slots>,
    store: Store<K>,
    reconcile: fn(Arc<K>, Arc<C>) -> Fut,
) -> impl Fn(Arc<K>, Arc<C>) -> BoxFuture<'static, Result<Action, E>>
where
    K: kube::Resource<DynamicType = ()> + Clone + Send + Sync + 'static,
    C: Send + Sync + 'static,
    Fut: Future<Output = Result<Action, E>> + Send + 'static,
{
    move |obj, ctx| {
        let (slots, store) = (Arc::clone(&slots), store.clone());
        Box::pin(async move {
            let Some(_slot) = slots.acquire().await else {
                return Ok(Action::await_change());
            };
            let obj = store.get(&ObjectRef::from_obj(obj.as_ref())).unwrap_or(obj);
            reconcile(obj, ctx).await
        })
    }
}

#[cfg(test)]
mod tests {
    //! The composition the controllers use, kube-runtime's `Controller` without a bound plus
    //! [`Slots`], under a trigger stream that keeps every object due all the time: each object
    //! must be reconciled, none starved.
    use std::collections::BTreeMap;
    use std::sync::{Arc, Mutex};
    use std::time::Duration;

    use futures::StreamExt as _;
    use k8s_openapi::api::core::v1::ConfigMap;
    use kube::runtime::controller::{Action, Controller};
    use kube::runtime::{reflector, watcher};

    use super::*;

    const OBJECTS: usize = 40;

    fn cm(i: usize) -> ConfigMap {
        let mut c = ConfigMap::default();
        c.metadata.name = Some(format!("cm-{i}"));
        c.metadata.namespace = Some("default".to_owned());
        c
    }

    struct Ctx {
        runs: Mutex<BTreeMap<String, usize>>,
        running: Mutex<usize>,
        max_running: Mutex<usize>,
    }

    /// Counts a running reconcile until dropped, so a reconcile future dropped mid-run (kube-runtime
    /// may drop one) is uncounted as surely as its slot is released.
    struct Running(Arc<Ctx>);

    impl Drop for Running {
        fn drop(&mut self) {
            *self.0.running.lock().unwrap() -= 1;
        }
    }

    async fn reconcile(obj: Arc<ConfigMap>, ctx: Arc<Ctx>) -> Result<Action, kube::Error> {
        let running = {
            let mut running = ctx.running.lock().unwrap();
            *running += 1;
            let mut max = ctx.max_running.lock().unwrap();
            *max = (*max).max(*running);
            Running(Arc::clone(&ctx))
        };
        tokio::time::sleep(Duration::from_millis(3)).await;
        drop(running);
        *ctx.runs
            .lock()
            .unwrap()
            .entry(obj.metadata.name.clone().unwrap())
            .or_default() += 1;
        Ok(Action::await_change())
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn every_object_gets_a_slot_while_all_stay_due() {
        let (reader, mut writer) = reflector::store();
        // A store that has seen its initial listing: the controller waits for that.
        writer.apply_watcher_event(&watcher::Event::Init);
        for i in 0..OBJECTS {
            writer.apply_watcher_event(&watcher::Event::InitApply(cm(i)));
        }
        writer.apply_watcher_event(&watcher::Event::InitDone);
        // Every object triggered again and again, far faster than 2 slots can reconcile them.
        let triggers = futures::stream::iter(0..)
            .then(|n: usize| async move {
                tokio::time::sleep(Duration::from_micros(200)).await;
                Ok::<_, watcher::Error>(cm(n % OBJECTS))
            })
            .boxed();
        let ctx = Arc::new(Ctx {
            runs: Mutex::default(),
            running: Mutex::new(0),
            max_running: Mutex::new(0),
        });
        let slots = Arc::new(Slots::new(2));
        let controller = Controller::for_stream(triggers, reader.clone())
            .with_config(unbounded())
            .run(
                in_slots(slots, reader, reconcile),
                |_, _, _| Action::await_change(),
                Arc::clone(&ctx),
            )
            .for_each(|_| std::future::ready(()));
        // Until every object ran twice (each had to wait behind all others at least once).
        let everyone_twice = async {
            loop {
                {
                    let runs = ctx.runs.lock().unwrap();
                    if runs.len() == OBJECTS && runs.values().all(|n| *n >= 2) {
                        break;
                    }
                }
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        };
        tokio::select! {
            () = controller => panic!("the controller stopped"),
            r = tokio::time::timeout(Duration::from_secs(30), everyone_twice) => {
                let runs = ctx.runs.lock().unwrap();
                let starved: Vec<_> = (0..OBJECTS)
                    .map(|i| format!("cm-{i}"))
                    .filter(|n| runs.get(n).copied().unwrap_or(0) < 2)
                    .collect();
                assert!(r.is_ok(), "objects starved of reconciles: {starved:?} (runs: {runs:?})");
            }
        }
        assert_eq!(
            *ctx.max_running.lock().unwrap(),
            2,
            "the slots bound the reconciles"
        );
    }

    #[tokio::test]
    async fn closing_ends_the_waiting_reconciles_without_running_them() {
        let (reader, mut writer) = reflector::store();
        writer.apply_watcher_event(&watcher::Event::Apply(cm(0)));
        let slots = Arc::new(Slots::new(1));
        let held = slots.acquire().await.expect("a slot");
        let ctx = Arc::new(Ctx {
            runs: Mutex::default(),
            running: Mutex::new(0),
            max_running: Mutex::new(0),
        });
        let run = in_slots(Arc::clone(&slots), reader, reconcile);
        let waiting = tokio::spawn(run(Arc::new(cm(0)), Arc::clone(&ctx)));
        slots.close();
        let action = tokio::time::timeout(Duration::from_secs(10), waiting)
            .await
            .expect("the waiting reconcile ends once the slots close")
            .expect("task")
            .expect("reconcile");
        assert_eq!(action, Action::await_change());
        assert!(ctx.runs.lock().unwrap().is_empty(), "nothing ran");
        drop(held);
        assert!(slots.acquire().await.is_none(), "closed for good");
    }

    #[test]
    fn zero_means_one() {
        assert_eq!(Slots::new(0).available(), 1);
        assert_eq!(Slots::new(4).available(), 4);
    }
}
