package dev.beamllama.pipeline.progress;

import java.io.PrintStream;
import java.time.Duration;
import java.util.ArrayDeque;
import java.util.Deque;
import java.util.OptionalLong;
import java.util.concurrent.Executors;
import java.util.concurrent.ScheduledExecutorService;
import java.util.concurrent.TimeUnit;

/**
 * Reads a job's live counters at the display's interval and shows where it stands, with rates
 * over the last minute (recent enough to follow a job that speeds up once the engine is loaded,
 * long enough not to jump with every batch), until closed.
 */
public final class ProgressReporter implements AutoCloseable {
  static final Duration RATE_WINDOW = Duration.ofSeconds(60);

  /** Shows progress: a bar on a terminal, log lines elsewhere. */
  public interface Display {
    /** How often it wants an update. */
    Duration interval();

    void show(Progress progress);

    /** The job ended: a last update, and the display lets go of the terminal. */
    void finish(Progress progress);
  }

  private record Sample(long nanos, long done, long tokens) {}

  private final ProgressSource source;
  private final Display display;
  private final PrintStream warnings;
  private final long startNanos;
  private final Deque<Sample> window = new ArrayDeque<>();
  private boolean totalOverrun;
  private ScheduledExecutorService timer;
  private boolean finished;

  ProgressReporter(ProgressSource source, Display display, PrintStream warnings, long startNanos) {
    this.source = source;
    this.display = display;
    this.warnings = warnings;
    this.startNanos = startNanos;
    window.addLast(new Sample(startNanos, 0, 0));
  }

  /** Starts showing {@code source} on {@code display}; problems with the numbers go to {@code warnings}. */
  public static ProgressReporter start(ProgressSource source, Display display, PrintStream warnings) {
    ProgressReporter reporter = new ProgressReporter(source, display, warnings, System.nanoTime());
    reporter.timer = Executors.newSingleThreadScheduledExecutor(Thread.ofPlatform().name("beam-llama-progress").daemon(true).factory());
    long every = display.interval().toMillis();
    reporter.timer.scheduleAtFixedRate(() -> reporter.display.show(reporter.sample(System.nanoTime())), every, every, TimeUnit.MILLISECONDS);
    return reporter;
  }

  /** The progress at {@code nowNanos}, which also enters the rate window. */
  synchronized Progress sample(long nowNanos) {
    long done = source.recordsDone();
    long tokens = source.tokensGenerated();
    OptionalLong total = source.totalRecords();
    if (total.isPresent() && done > total.getAsLong() && !totalOverrun) {
      // The input changed after it was counted, or a file's footer promised rows it did not hold.
      warnings.printf("beam-llama: progress: %d records finished, more than the %d the input held when counted; the total is unknown from now on%n",
          done, total.getAsLong());
      totalOverrun = true;
    }
    if (totalOverrun) {
      total = OptionalLong.empty();
    }
    window.addLast(new Sample(nowNanos, done, tokens));
    while (window.size() > 2 && nowNanos - secondOldest().nanos() >= RATE_WINDOW.toNanos()) {
      window.removeFirst();
    }
    Sample first = window.peekFirst();
    double seconds = (nowNanos - first.nanos()) / 1e9;
    double tokensPerSecond = seconds > 0 ? (tokens - first.tokens()) / seconds : 0;
    double recordsPerSecond = seconds > 0 ? (done - first.done()) / seconds : 0;
    return new Progress(done, total, tokensPerSecond, recordsPerSecond, Duration.ofNanos(nowNanos - startNanos));
  }

  private Sample secondOldest() {
    var it = window.iterator();
    it.next();
    return it.next();
  }

  /** Stops the updates and shows the final state once. */
  @Override
  public void close() {
    synchronized (this) {
      if (finished) {
        return;
      }
      finished = true;
    }
    if (timer != null) {
      timer.shutdownNow();
      try {
        timer.awaitTermination(5, TimeUnit.SECONDS);
      } catch (InterruptedException e) {
        Thread.currentThread().interrupt();
      }
    }
    display.finish(sample(System.nanoTime()));
  }
}
