//! A team of threads that runs a list of steps, each cut into chunks, where no step needs every
//! member: chunks go to whichever member claims them first, and the caller is a member too.
//!
//! Why not a fixed share per member and a barrier: on a busy machine (another process on one core,
//! a CPU quota, a laptop with a browser) a member is descheduled for a whole time slice, several
//! milliseconds, and a barrier makes every step wait for it. Here a member that is late finds its
//! steps done by the others and catches up with a few atomic loads; only a member descheduled in
//! the middle of a chunk holds a step up, and the members that wait for it spin only briefly
//! before they block, which leaves their core idle so the kernel moves the descheduled member
//! there at once (a spinning or yielding waiter keeps the core and the member waits its turn).
//!
//! Results do not depend on who computes a chunk: every chunk writes its own part of the output,
//! computed the same way whoever runs it.

use std::panic::{catch_unwind, resume_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering::SeqCst};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

/// How long a member that waits for a step spins before it blocks: longer than most steps take
/// to finish on an idle machine (tens of microseconds), much shorter than a time slice.
const SPIN: Duration = Duration::from_micros(50);

/// The work of one run: `work(member, step, chunk)`, for every chunk of every step.
pub(crate) type Work<'a> = dyn Fn(usize, usize, usize) + Sync + 'a;

/// A caller and `members - 1` helper threads.
pub(crate) struct Team {
    pool: rayon::ThreadPool,
    members: usize,
    progress: Arc<Progress>,
}

impl Team {
    /// A team of `members` threads (the caller and `members - 1` helpers), or `None` when fewer
    /// than two are asked for or the helpers cannot be started.
    pub(crate) fn new(members: usize) -> Option<Team> {
        if members < 2 {
            return None;
        }
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(members - 1)
            .thread_name(|i| format!("resnetc-cpu-{}", i + 1))
            .build()
            .ok()?;
        Some(Team {
            pool,
            members,
            progress: Arc::new(Progress::new(&[])),
        })
    }

    pub(crate) fn members(&self) -> usize {
        self.members
    }

    /// Runs `work(member, step, chunk)` for every `chunk < chunks[step]` of every step, each chunk
    /// once, by member 0 (the caller) or a helper (`1..members`). Every chunk of a step is done
    /// before any chunk of the next starts, and all are done when this returns; a panic in any
    /// chunk is raised here once no chunk is running.
    pub(crate) fn run(&mut self, chunks: &[usize], work: &Work<'_>) {
        // A helper that started too late for the last run may still hold its progress (which it
        // only reads: every chunk of it was claimed); then this run gets a fresh one.
        match Arc::get_mut(&mut self.progress) {
            Some(p) if p.steps.len() == chunks.len() => p.reset(chunks),
            _ => self.progress = Arc::new(Progress::new(chunks)),
        }
        // SAFETY: the helpers call `work` only for a chunk they claimed, and this function does not
        // return (nor unwind) before every claimed chunk is done (`Progress::finish`), so no call
        // outlives the borrow. A helper that starts after that finds nothing left to claim.
        let work: &'static Work<'static> = unsafe { std::mem::transmute(work) };
        let progress = &self.progress;
        {
            let progress = progress.clone();
            self.pool
                .spawn_broadcast(move |ctx| progress.work(ctx.index() + 1, work));
        }
        progress.work(0, work);
        progress.finish();
    }
}

struct Step {
    chunks: usize,
    /// Chunks claimed (may run past `chunks`).
    next: AtomicUsize,
    /// Chunks finished.
    done: AtomicUsize,
}

/// One run's progress, shared by the members.
struct Progress {
    steps: Vec<Step>,
    /// A chunk panicked: no member claims anything more.
    poisoned: AtomicBool,
    /// The panic, raised by the caller.
    panic: Mutex<Option<Box<dyn std::any::Any + Send>>>,
    /// Members blocked in [`Progress::wait`], and what they block on.
    sleepers: AtomicUsize,
    lock: Mutex<()>,
    wake: Condvar,
}

impl Progress {
    fn new(chunks: &[usize]) -> Progress {
        Progress {
            steps: chunks
                .iter()
                .map(|&chunks| Step {
                    chunks,
                    next: AtomicUsize::new(0),
                    done: AtomicUsize::new(0),
                })
                .collect(),
            poisoned: AtomicBool::new(false),
            panic: Mutex::new(None),
            sleepers: AtomicUsize::new(0),
            lock: Mutex::new(()),
            wake: Condvar::new(),
        }
    }

    fn reset(&mut self, chunks: &[usize]) {
        for (s, &c) in self.steps.iter_mut().zip(chunks) {
            s.chunks = c;
            *s.next.get_mut() = 0;
            *s.done.get_mut() = 0;
        }
        *self.poisoned.get_mut() = false;
    }

    /// One member's part: claims and runs chunks step by step, waiting for each step to finish.
    fn work(&self, member: usize, work: &Work<'_>) {
        for (i, step) in self.steps.iter().enumerate() {
            loop {
                if self.poisoned.load(SeqCst) {
                    return;
                }
                let chunk = step.next.fetch_add(1, SeqCst);
                if chunk >= step.chunks {
                    break;
                }
                if let Err(panic) = catch_unwind(AssertUnwindSafe(|| work(member, i, chunk))) {
                    self.panic
                        .lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .get_or_insert(panic);
                    self.poisoned.store(true, SeqCst);
                    // Members blocked on any step stop waiting.
                    self.wake_all();
                }
                if step.done.fetch_add(1, SeqCst) + 1 == step.chunks {
                    self.wake_all();
                }
            }
            if !self.wait(step) {
                return;
            }
        }
    }

    /// Waits until every chunk of `step` is done (true) or a chunk panicked (false): spins for
    /// [`SPIN`], then blocks.
    fn wait(&self, step: &Step) -> bool {
        let finished = || step.done.load(SeqCst) >= step.chunks || self.poisoned.load(SeqCst);
        let start = Instant::now();
        let mut spins = 0u32;
        while !finished() {
            spins += 1;
            if spins.is_multiple_of(64) && start.elapsed() > SPIN {
                let mut guard = self.lock.lock().unwrap_or_else(|e| e.into_inner());
                // Registered before the check, under the lock the waker takes: a finish either
                // happens before the check (seen) or its waker sees the registration and cannot
                // notify before this thread waits (it needs the lock).
                self.sleepers.fetch_add(1, SeqCst);
                while !finished() {
                    guard = self.wake.wait(guard).unwrap_or_else(|e| e.into_inner());
                }
                self.sleepers.fetch_sub(1, SeqCst);
                break;
            }
            std::hint::spin_loop();
        }
        !self.poisoned.load(SeqCst)
    }

    fn wake_all(&self) {
        if self.sleepers.load(SeqCst) > 0 {
            drop(self.lock.lock().unwrap_or_else(|e| e.into_inner()));
            self.wake.notify_all();
        }
    }

    /// The caller's end of a run: nothing more can be claimed, every claimed chunk is done, and a
    /// chunk's panic is raised.
    fn finish(&self) {
        if self.poisoned.load(SeqCst) {
            for step in &self.steps {
                let claimed = step.next.swap(usize::MAX / 2, SeqCst).min(step.chunks);
                while step.done.load(SeqCst) < claimed {
                    std::thread::yield_now();
                }
            }
            let panic = self.panic.lock().unwrap_or_else(|e| e.into_inner()).take();
            resume_unwind(panic.unwrap_or_else(|| Box::new("a team member panicked")));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every chunk runs once, and no chunk of a step starts before the previous step is done.
    #[test]
    fn steps_run_in_order_and_chunks_once() {
        let chunks = [1, 7, 3, 16, 1, 5];
        for members in [2, 3, 5] {
            let mut team = Team::new(members).unwrap();
            for _ in 0..50 {
                let counts: Vec<Vec<AtomicUsize>> = chunks
                    .iter()
                    .map(|&c| (0..c).map(|_| AtomicUsize::new(0)).collect())
                    .collect();
                let work = |member: usize, step: usize, chunk: usize| {
                    assert!(member < members);
                    if step > 0 {
                        for c in &counts[step - 1] {
                            assert_eq!(c.load(SeqCst), 1, "step {step} started early");
                        }
                    }
                    counts[step][chunk].fetch_add(1, SeqCst);
                };
                team.run(&chunks, &work);
                for step in &counts {
                    assert!(step.iter().all(|c| c.load(SeqCst) == 1));
                }
            }
        }
    }

    /// A panic in a helper's chunk reaches the caller, after which the team still runs.
    #[test]
    fn a_panicking_chunk_is_raised_in_the_caller() {
        let mut team = Team::new(3).unwrap();
        let chunks = [4, 64, 4];
        let caught = catch_unwind(AssertUnwindSafe(|| {
            team.run(&chunks, &|_, step, chunk| {
                if step == 1 && chunk == 33 {
                    panic!("chunk 33");
                }
                std::thread::sleep(Duration::from_micros(50));
            })
        }));
        let message = caught.unwrap_err();
        assert_eq!(message.downcast_ref::<&str>(), Some(&"chunk 33"));
        let ran = AtomicUsize::new(0);
        team.run(&chunks, &|_, _, _| {
            ran.fetch_add(1, SeqCst);
        });
        assert_eq!(ran.load(SeqCst), 72);
    }

    /// A run whose chunks all sleep past the spin still finishes (the blocking path wakes).
    #[test]
    fn members_that_block_are_woken() {
        let mut team = Team::new(4).unwrap();
        let ran = AtomicUsize::new(0);
        team.run(&[3, 1, 3], &|_, _, _| {
            std::thread::sleep(Duration::from_millis(2));
            ran.fetch_add(1, SeqCst);
        });
        assert_eq!(ran.load(SeqCst), 7);
    }
}
