package dev.beamllama.model.cpu;

import java.util.concurrent.CountDownLatch;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.concurrent.atomic.AtomicReference;

/**
 * A fixed pool that runs the tasks {@code 0..count-1} of a kernel on all cores, the calling thread
 * included. Each task writes its own output range, so results do not depend on which thread ran it.
 */
public final class Parallel implements AutoCloseable {
  /** One task of a parallel kernel; {@code worker} in [0, threads) indexes per-thread scratch. */
  @FunctionalInterface
  public interface Task {
    void run(int index, int worker);
  }

  private final int threads;
  private final ExecutorService helpers;

  public Parallel(int threads) {
    this.threads = Math.max(1, threads);
    this.helpers = this.threads == 1 ? null : Executors.newFixedThreadPool(this.threads - 1, runnable -> {
      Thread t = new Thread(runnable, "cpu-kernel");
      t.setDaemon(true);
      return t;
    });
  }

  public int threads() {
    return threads;
  }

  public void forEach(int count, Task task) {
    if (count <= 0) {
      return;
    }
    int helpersUsed = Math.min(threads, count) - 1;
    if (helpersUsed == 0) {
      for (int i = 0; i < count; i++) {
        task.run(i, 0);
      }
      return;
    }
    AtomicInteger next = new AtomicInteger();
    AtomicReference<Throwable> failure = new AtomicReference<>();
    CountDownLatch done = new CountDownLatch(helpersUsed);
    for (int h = 1; h <= helpersUsed; h++) {
      int worker = h;
      helpers.execute(() -> {
        try {
          drain(count, task, worker, next, failure);
        } finally {
          done.countDown();
        }
      });
    }
    drain(count, task, 0, next, failure);
    try {
      done.await();
    } catch (InterruptedException e) {
      Thread.currentThread().interrupt();
      throw new IllegalStateException("interrupted while waiting for kernel threads", e);
    }
    Throwable t = failure.get();
    if (t instanceof RuntimeException r) {
      throw r;
    }
    if (t instanceof Error err) {
      throw err;
    }
  }

  private static void drain(int count, Task task, int worker, AtomicInteger next, AtomicReference<Throwable> failure) {
    try {
      for (int i; (i = next.getAndIncrement()) < count && failure.get() == null; ) {
        task.run(i, worker);
      }
    } catch (Throwable t) {
      failure.compareAndSet(null, t);
    }
  }

  @Override
  public void close() {
    if (helpers != null) {
      helpers.shutdownNow();
    }
  }
}
