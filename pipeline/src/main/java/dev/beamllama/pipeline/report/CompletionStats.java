package dev.beamllama.pipeline.report;

import com.fasterxml.jackson.databind.JsonNode;
import java.util.Map;
import java.util.TreeMap;

/**
 * What the completion records written by a job add up to, accumulated one record at a time in
 * fixed memory: totals, finish reasons, and histograms of prompt and completion lengths.
 */
public final class CompletionStats {
  static final int LENGTH_BINS = 32;

  private final Histogram promptLengths = new Histogram(LENGTH_BINS);
  private final Histogram completionLengths = new Histogram(LENGTH_BINS);
  private final Map<String, Long> finishReasons = new TreeMap<>();
  private long latencyCount;
  private double latencySum;
  private double latencyMin = Double.POSITIVE_INFINITY;
  private double latencyMax = Double.NEGATIVE_INFINITY;
  private long malformed;

  /** One completion record as written (JSONL line or Parquet row); one without its counts is only counted as malformed. */
  public void add(JsonNode record) {
    JsonNode prompt = record.get("prompt_tokens");
    JsonNode completion = record.get("completion_tokens");
    JsonNode reason = record.get("finish_reason");
    if (prompt == null || !prompt.canConvertToLong() || completion == null || !completion.canConvertToLong() || reason == null
        || !reason.isTextual()) {
      malformed++;
      return;
    }
    promptLengths.add(prompt.asLong());
    completionLengths.add(completion.asLong());
    finishReasons.merge(reason.asText(), 1L, Long::sum);
    JsonNode latency = record.get("latency_ms");
    if (latency != null && latency.isNumber()) {
      double ms = latency.asDouble();
      latencyCount++;
      latencySum += ms;
      latencyMin = Math.min(latencyMin, ms);
      latencyMax = Math.max(latencyMax, ms);
    }
  }

  /** Completion records counted (the malformed ones are not). */
  public long completions() {
    return promptLengths.total();
  }

  public long promptTokens() {
    return promptLengths.sum();
  }

  public long completionTokens() {
    return completionLengths.sum();
  }

  public Histogram promptLengths() {
    return promptLengths;
  }

  public Histogram completionLengths() {
    return completionLengths;
  }

  /** Records per finish reason ({@code stop}, {@code length}), in name order. */
  public Map<String, Long> finishReasons() {
    return new TreeMap<>(finishReasons);
  }

  /** Records without the counts a completion has. */
  public long malformed() {
    return malformed;
  }

  public long latencyCount() {
    return latencyCount;
  }

  public double latencyMeanMs() {
    return latencyCount == 0 ? 0 : latencySum / latencyCount;
  }

  public double latencyMinMs() {
    return latencyCount == 0 ? 0 : latencyMin;
  }

  public double latencyMaxMs() {
    return latencyCount == 0 ? 0 : latencyMax;
  }
}
