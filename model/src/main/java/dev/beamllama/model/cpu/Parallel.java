package dev.beamllama.model.cpu;

import java.util.concurrent.atomic.AtomicInteger;
import java.util.concurrent.atomic.AtomicLong;
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
  /** A claim index no section reaches: a finished section's word is closed with it. */
  private static final int CLOSED = Integer.MAX_VALUE;

  private final int threads;
  private final Helper[] helpers;
  /**
   * The running section's number (high 32 bits) and its next unclaimed task (low 32 bits). Tasks are
   * claimed by compare-and-set only while the number is still the claimer's section, so a helper that
   * wakes late can never take a task of the next one. Reusing this one word (instead of an object per
   * section) keeps a decode step's ~80 sections free of allocation.
   */
  private final AtomicLong claim = new AtomicLong();
  private final AtomicInteger finished = new AtomicInteger();
  private final AtomicReference<Throwable> failure = new AtomicReference<>();
  /** The running section's kernel and task count: written before {@link #claim} publishes it. */
  private Task task;
  private int count;
  private int section;
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
    int number = ++section;
    this.task = task;
    this.count = count;
    finished.set(0);
    failure.set(null);
    claim.set((long) number << 32);
    for (Helper helper : helpers) {
      if (helper.parked) {
        LockSupport.unpark(helper);
      }
    }
    drain(number, task, count, 0);
    for (int spins = 0; finished.get() < count; spins++) {
      if (spins < 10_000) {
        Thread.onSpinWait();
      } else {
        Thread.yield(); // a helper was descheduled mid-task: give its core back
      }
    }
    // Closed before the next section's task and count are written, so a helper still holding this
    // section's number cannot pair it with them.
    claim.set((long) number << 32 | CLOSED);
    this.task = null;
    Throwable t = failure.get();
    if (t instanceof RuntimeException r) {
      throw r;
    }
    if (t instanceof Error err) {
      throw err;
    }
  }

  /** Claims and runs tasks of section {@code number} until none is left or the section is over. */
  private void drain(int number, Task task, int count, int worker) {
    while (true) {
      long word = claim.get();
      int index = (int) word;
      if ((int) (word >>> 32) != number || index >= count) {
        return;
      }
      if (!claim.compareAndSet(word, word + 1)) {
        continue;
      }
      try {
        if (failure.get() == null) {
          task.run(index, worker);
        }
      } catch (Throwable t) {
        failure.compareAndSet(null, t);
      } finally {
        finished.incrementAndGet();
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
      int done = 0;
      while (!closed) {
        int number = awaitNewSection(done);
        if (number != done) {
          drain(number, task, count, worker);
          done = number;
        }
      }
    }

    /** The number of the next section after {@code done} (or {@code done} when closing): spins, then parks until the caller unparks it. */
    private int awaitNewSection(int done) {
      long spinUntil = System.nanoTime() + SPIN_NANOS;
      while (true) {
        int number = (int) (claim.get() >>> 32);
        if (number != done || closed) {
          return number;
        }
        if (System.nanoTime() < spinUntil) {
          Thread.onSpinWait();
          continue;
        }
        parked = true;
        // Re-read after announcing: a caller that published before seeing parked == true is caught here.
        if ((int) (claim.get() >>> 32) == done && !closed) {
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
