package dev.beamllama.pipeline.progress;

import java.time.Duration;
import java.util.Locale;
import java.util.Optional;
import java.util.OptionalLong;

/**
 * Where a job stands at one moment: records done of the total (when known), rates over the recent
 * window, and the time left at the recent record rate.
 */
public record Progress(long done, OptionalLong total, double tokensPerSecond, double recordsPerSecond, Duration elapsed) {

  /** Empty without a total, once it is reached, or while no record finished in the recent window. */
  public Optional<Duration> eta() {
    if (total.isEmpty() || done >= total.getAsLong() || recordsPerSecond <= 0) {
      return Optional.empty();
    }
    return Optional.of(Duration.ofMillis(Math.round((total.getAsLong() - done) / recordsPerSecond * 1000)));
  }

  /** The plain line logged when there is no terminal for a bar. */
  public String line() {
    StringBuilder s = new StringBuilder("progress: ");
    if (total.isPresent()) {
      long t = total.getAsLong();
      s.append(String.format(Locale.ROOT, "%d/%d records (%.1f%%)", done, t, t == 0 ? 100.0 : 100.0 * done / t));
    } else {
      s.append(done).append(" records (total unknown)");
    }
    s.append(String.format(Locale.ROOT, ", %.1f tokens/s", tokensPerSecond));
    s.append(", elapsed ").append(format(elapsed));
    eta().ifPresent(eta -> s.append(", ETA ").append(format(eta)));
    return s.toString();
  }

  /** 45s, 3m 05s, 2h 03m. */
  static String format(Duration d) {
    long seconds = Math.max(0, d.toSeconds());
    if (seconds < 60) {
      return seconds + "s";
    }
    if (seconds < 3600) {
      return String.format(Locale.ROOT, "%dm %02ds", seconds / 60, seconds % 60);
    }
    return String.format(Locale.ROOT, "%dh %02dm", seconds / 3600, seconds % 3600 / 60);
  }
}
