package dev.beamllama.transforms;

import java.util.Comparator;
import java.util.PriorityQueue;
import java.util.concurrent.atomic.AtomicLong;
import java.util.concurrent.locks.Condition;
import java.util.concurrent.locks.ReentrantLock;

/**
 * The JVM's cores for CPU-bound work on elements, handed to the oldest bundle first.
 *
 * <p>A bundle's output moves on to the next step only when the bundle ends. A runner that runs many
 * bundles at once on few cores (the DirectRunner runs one per worker thread, 256 with a GPU engine)
 * would share the cores among all of them, and every bundle would end at about the same time: after
 * the whole input, with the engine idle until then. Oldest first, at most as many bundles as there
 * are cores make progress, they end one after the other, and the engine starts on the first of them.
 * A bundle takes a core for one element at a time, so a failing element never keeps one.
 */
final class OldestBundleFirst {
  /** The JVM's gate: every instance of a step that uses it shares its cores. */
  static final OldestBundleFirst CORES = new OldestBundleFirst(Runtime.getRuntime().availableProcessors());

  private record Waiter(long ticket, Condition turn) {}

  private final int cores;
  private final AtomicLong tickets = new AtomicLong();
  private final ReentrantLock lock = new ReentrantLock();
  private final PriorityQueue<Waiter> waiting = new PriorityQueue<>(Comparator.comparingLong(Waiter::ticket));
  private int busy;

  OldestBundleFirst(int cores) {
    if (cores < 1) {
      throw new IllegalArgumentException("cores must be positive, not " + cores);
    }
    this.cores = cores;
  }

  /** A bundle's place in line, taken when it starts: lower is older. */
  long ticket() {
    return tickets.incrementAndGet();
  }

  /** Runs {@code work} on a core, once every older bundle that waits for one has had it. */
  void run(long ticket, Runnable work) {
    acquire(ticket);
    try {
      work.run();
    } finally {
      release();
    }
  }

  private void acquire(long ticket) {
    lock.lock();
    try {
      // A bundle older than every waiter goes first: its previous element just gave the core back.
      if (busy < cores && (waiting.isEmpty() || waiting.peek().ticket() > ticket)) {
        busy++;
        return;
      }
      Waiter me = new Waiter(ticket, lock.newCondition());
      waiting.add(me);
      try {
        while (busy >= cores || waiting.peek() != me) {
          me.turn().await();
        }
      } catch (InterruptedException e) {
        waiting.remove(me);
        signalOldest();
        Thread.currentThread().interrupt();
        throw new IllegalStateException("interrupted while waiting for a core", e);
      }
      waiting.poll();
      busy++;
      signalOldest();
    } finally {
      lock.unlock();
    }
  }

  private void release() {
    lock.lock();
    try {
      busy--;
      signalOldest();
    } finally {
      lock.unlock();
    }
  }

  private void signalOldest() {
    Waiter oldest = waiting.peek();
    if (oldest != null && busy < cores) {
      oldest.turn().signal();
    }
  }

  /** Bundles waiting for a core (for tests). */
  int waiting() {
    lock.lock();
    try {
      return waiting.size();
    } finally {
      lock.unlock();
    }
  }
}
