package dev.beamllama.pipeline.report;

import dev.beamllama.pipeline.JobSummary;
import java.util.List;
import java.util.Map;

/**
 * Everything a run report shows: the settings, the job's metrics (records read, resumed samples,
 * wall time), what the written shards add up to, dead letters by kind, the engine's activity over
 * time, and any disagreement between those sources, stated rather than hidden.
 */
public record ReportData(
    ReportSettings settings,
    JobSummary summary,
    CompletionStats completions,
    Map<String, Long> deadLettersByKind,
    EngineActivity engine,
    List<String> warnings) {

  public long deadLetters() {
    return deadLettersByKind.values().stream().mapToLong(Long::longValue).sum();
  }

  /** Sequences per engine step: as the engines chose them where the report saw them, else the flag (0: the engine's default). */
  public int maxNumSeqs() {
    return engine.maxNumSeqs() > 0 ? engine.maxNumSeqs() : settings.maxNumSeqs();
  }

  /** Tokens per engine step, as {@link #maxNumSeqs()}. */
  public int maxBatchTokens() {
    return engine.maxBatchTokens() > 0 ? engine.maxBatchTokens() : settings.maxBatchTokens();
  }

  /** Completion tokens written per second of wall time, as the job's summary line computes it. */
  public double completionTokensPerSecond() {
    return summary.wallSeconds() > 0 ? completions.completionTokens() / summary.wallSeconds() : 0;
  }
}
