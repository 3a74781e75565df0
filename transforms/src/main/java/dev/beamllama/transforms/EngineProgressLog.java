package dev.beamllama.transforms;

import dev.beamllama.model.engine.EngineStats;
import dev.beamllama.model.engine.LlmEngine;
import java.lang.management.ManagementFactory;
import java.util.Locale;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * The engine's progress where the launcher cannot watch it (a remote worker): one log line per
 * interval with work, totals since the engine loaded and rates over the interval.
 */
final class EngineProgressLog implements Runnable {
  private final LlmEngine engine;
  private static final Logger LOG = LoggerFactory.getLogger(EngineProgressLog.class);
  private final String jvm = ManagementFactory.getRuntimeMXBean().getName();
  private long lastSteps;
  private long lastTokens;
  private long lastFinished;
  private long lastNanos = System.nanoTime();

  EngineProgressLog(LlmEngine engine) {
    this.engine = engine;
  }

  @Override
  public void run() {
    EngineStats stats = engine.stats();
    long steps = stats.steps();
    long tokens = stats.sampledTokens();
    long finished = stats.finishedSequences();
    long now = System.nanoTime();
    double seconds = (now - lastNanos) / 1e9;
    if (steps != lastSteps) {
      LOG.info(String.format(Locale.ROOT, "engine progress in %s: %d sequences finished, %d tokens generated since load; "
              + "last %.0f s: %.1f tokens/s, %.2f sequences/s; %.1f sequences per step on average",
          jvm, finished, tokens, seconds, (tokens - lastTokens) / seconds, (finished - lastFinished) / seconds, stats.meanBatchSize()));
    }
    lastSteps = steps;
    lastTokens = tokens;
    lastFinished = finished;
    lastNanos = now;
  }
}
