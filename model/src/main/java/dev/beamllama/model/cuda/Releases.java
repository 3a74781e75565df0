package dev.beamllama.model.cuda;

import java.util.ArrayDeque;
import java.util.Deque;

/**
 * What a CUDA object holds (device memory, pinned buffers, streams, handles, modules), released
 * in the reverse order it was taken. Every release runs even when one fails; the first failure is
 * thrown with the others suppressed. A constructor that fails half way releases what it took
 * with it, so nothing leaks on the GPU, which outlives the object.
 */
final class Releases implements AutoCloseable {
  private final Deque<Runnable> pending = new ArrayDeque<>();

  /** Runs {@code release} at {@link #close()}, before everything added earlier. */
  void add(Runnable release) {
    pending.push(release);
  }

  /** Releases everything, then throws the first failure, if any. */
  @Override
  public void close() {
    RuntimeException first = null;
    while (!pending.isEmpty()) {
      try {
        pending.pop().run();
      } catch (RuntimeException e) {
        if (first == null) {
          first = e;
        } else {
          first.addSuppressed(e);
        }
      }
    }
    if (first != null) {
      throw first;
    }
  }

  /** Releases everything after {@code failure} (a constructor's), adding release failures to it as suppressed, and returns it. */
  <E extends Throwable> E closeAfter(E failure) {
    try {
      close();
    } catch (RuntimeException e) {
      failure.addSuppressed(e);
    }
    return failure;
  }
}
