package dev.beamllama.pipeline.progress;

import java.io.PrintStream;
import java.time.Duration;
import java.util.Locale;
import java.util.Optional;
import me.tongfei.progressbar.ConsoleProgressBarConsumer;
import me.tongfei.progressbar.ProgressBar;
import me.tongfei.progressbar.ProgressBarBuilder;

/**
 * Progress as a bar redrawn in place on a terminal: records done of the total, tokens/s and the
 * ETA. Without a total yet (still counting, or a remote input) the bar is indefinite and has no ETA.
 */
public final class BarDisplay implements ProgressReporter.Display {
  private final ProgressBar bar;
  private volatile Progress latest;

  public BarDisplay(PrintStream terminal) {
    // The ETA is the reporter's, from the recent record rate; the library's own assumes a steady
    // rate since the start, which the engine's loading time makes far too long.
    this.bar = new ProgressBarBuilder()
        .setTaskName("beam-llama")
        .setInitialMax(-1)
        .setUnit(" records", 1)
        .setUpdateIntervalMillis(1000)
        .setConsumer(new ConsoleProgressBarConsumer(terminal))
        .setEtaFunction(state -> latest == null ? Optional.empty() : latest.eta())
        .build();
  }

  @Override
  public Duration interval() {
    return Duration.ofSeconds(1);
  }

  @Override
  public void show(Progress progress) {
    latest = progress;
    long max = progress.total().orElse(-1);
    if (max != bar.getMax()) {
      bar.maxHint(max);
    }
    bar.stepTo(progress.done());
    bar.setExtraMessage(String.format(Locale.ROOT, "%.1f tokens/s", progress.tokensPerSecond()));
  }

  @Override
  public void finish(Progress progress) {
    show(progress);
    bar.close();
  }
}
