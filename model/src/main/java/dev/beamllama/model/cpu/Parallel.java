package dev.beamllama.model.cpu;

import java.util.concurrent.atomic.AtomicInteger;
import java.util.concurrent.atomic.AtomicReference;
import java.util.concurrent.locks.LockSupport;

/**
 * A fixed set of kernel threads that runs the tasks {@code 0..count-1} of a kernel on all cores,
 * the calling thread included. Each task writes its own output range, so results do not depend on
 * which thread ran it.
 *
 * <p>A decode step is about a hundred short parallel sections (one per matmul or attention), a few
 * tens of microseconds each at batch 1. Waking a parked thread costs about as much, so helpers spin
 * for a while after each section before they park, and the caller spins while the last tasks finish.
 */
public final class Parallel implements AutoCloseable {
  /** One task of a parallel kernel; {@code worker} in [0, threads) indexes per-thread scratch. */
  @FunctionalInterface
  public interface Task {
    void run(int index, int worker);
  }

  /** How long an idle helper spins for the next section before it parks. */
  private static final long SPIN_NANOS = 200_000;

  private final int threads;
  private final Helper[] helpers;
  private volatile Job current;
  private volatile boolean closed;
  /** The thread inside {@link #runSection}, so that a nested call from its own task runs inline. */
  private volatile Thread sectionOwner;

  public Parallel(int threads) {
    this.threads = Math.max(1, threads);
    this.helpers = new Helper[this.threads - 1];
    for (int h = 0; h < helpers.length; h++) {
      helpers[h] = new Helper(h + 1);
      helpers[h].start();
    }
  }

  public int threads() {
    return threads;
  }

  /**
   * Runs {@code task(0..count-1)} and returns when all have finished; rethrows the first failure.
   * A section started from inside a task runs on that task's thread alone.
   */
  public void forEach(int count, Task task) {
    if (count <= 0) {
      return;
    }
    Thread self = Thread.currentThread();
    if (count == 1 || helpers.length == 0 || self instanceof Helper || sectionOwner == self) {
      for (int i = 0; i < count; i++) {
        task.run(i, 0);
      }
      return;
    }
    synchronized (this) {
      sectionOwner = self;
      try {
        runSection(count, task);
      } finally {
        sectionOwner = null;
      }
    }
  }

  private void runSection(int count, Task task) {
    if (closed) {
      throw new IllegalStateException("kernel threads are closed");
    }
    Job job = new Job(count, task);
    current = job;
    for (Helper helper : helpers) {
      if (helper.parked) {
        LockSupport.unpark(helper);
      }
    }
    job.drain(0);
    for (int spins = 0; job.finished.get() < count; spins++) {
      if (spins < 10_000) {
        Thread.onSpinWait();
      } else {
        Thread.yield(); // a helper was descheduled mid-task: give its core back
      }
    }
    Throwable t = job.failure.get();
    if (t instanceof RuntimeException r) {
      throw r;
    }
    if (t instanceof Error err) {
      throw err;
    }
  }

  /** One parallel section: tasks are claimed in order by whichever thread is free. */
  private static final class Job {
    final int count;
    final Task task;
    final AtomicInteger next = new AtomicInteger();
    final AtomicInteger finished = new AtomicInteger();
    final AtomicReference<Throwable> failure = new AtomicReference<>();

    Job(int count, Task task) {
      this.count = count;
      this.task = task;
    }

    void drain(int worker) {
      for (int i; (i = next.getAndIncrement()) < count; ) {
        try {
          if (failure.get() == null) {
            task.run(i, worker);
          }
        } catch (Throwable t) {
          failure.compareAndSet(null, t);
        } finally {
          finished.incrementAndGet();
        }
      }
    }
  }

  private final class Helper extends Thread {
    private final int worker;
    volatile boolean parked;

    Helper(int worker) {
      super("cpu-kernel-" + worker);
      this.worker = worker;
      setDaemon(true);
    }

    @Override
    public void run() {
      Job done = null;
      while (!closed) {
        Job job = awaitNewJob(done);
        if (job != null) {
          job.drain(worker);
          done = job;
        }
      }
    }

    /** The next section after {@code done}: spins, then parks until the caller unparks it. */
    private Job awaitNewJob(Job done) {
      long spinUntil = System.nanoTime() + SPIN_NANOS;
      while (true) {
        Job job = current;
        if (job != done || closed) {
          return job == done ? null : job;
        }
        if (System.nanoTime() < spinUntil) {
          Thread.onSpinWait();
          continue;
        }
        parked = true;
        // Re-read after announcing: a caller that published before seeing parked == true is caught here.
        if (current == done && !closed) {
          LockSupport.park(this);
        }
        parked = false;
        spinUntil = System.nanoTime() + SPIN_NANOS;
      }
    }
  }

  @Override
  public void close() {
    closed = true;
    for (Helper helper : helpers) {
      LockSupport.unpark(helper);
    }
  }
}
