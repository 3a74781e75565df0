package dev.beamllama.pipeline.progress;

import java.io.PrintStream;
import java.time.Duration;

/** Progress as a plain line every interval, for logs and pipes where a redrawn bar would be noise. */
public final class LogDisplay implements ProgressReporter.Display {
  public static final Duration DEFAULT_INTERVAL = Duration.ofSeconds(10);

  private final PrintStream out;
  private final Duration interval;

  public LogDisplay(PrintStream out, Duration interval) {
    this.out = out;
    this.interval = interval;
  }

  @Override
  public Duration interval() {
    return interval;
  }

  @Override
  public void show(Progress progress) {
    out.println("beam-llama: " + progress.line());
  }

  @Override
  public void finish(Progress progress) {
    out.println("beam-llama: " + progress.line());
  }
}
