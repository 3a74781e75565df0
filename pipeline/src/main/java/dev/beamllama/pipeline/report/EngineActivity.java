package dev.beamllama.pipeline.report;

import dev.beamllama.transforms.JobTelemetry;
import dev.beamllama.transforms.StepTimeline;
import java.util.List;

/**
 * The engine's steps over the run, for the throughput and occupancy plots, or why the report has
 * none: only a launcher that shares the engine's JVM (the DirectRunner) sees its steps. {@code
 * maxNumSeqs} and {@code maxBatchTokens} are the sizing the engines chose at load, 0 where unseen.
 */
public record EngineActivity(List<StepTimeline.Bucket> buckets, List<String> engines, int maxNumSeqs, int maxBatchTokens,
    String unavailable) {

  /** What {@code telemetry} recorded up to {@code endNanos} (the job's end). */
  public static EngineActivity of(JobTelemetry telemetry, long endNanos) {
    if (telemetry.timeline().steps() == 0) {
      return new EngineActivity(List.of(), telemetry.engines(), telemetry.maxNumSeqs(), telemetry.maxBatchTokens(),
          "the engine ran no step: no record reached generation");
    }
    return new EngineActivity(telemetry.timeline().buckets(endNanos), telemetry.engines(), telemetry.maxNumSeqs(),
        telemetry.maxBatchTokens(), null);
  }

  public static EngineActivity unavailable(String reason) {
    return new EngineActivity(List.of(), List.of(), 0, 0, reason);
  }

  public boolean available() {
    return unavailable == null;
  }
}
