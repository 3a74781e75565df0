package dev.beamllama.transforms;

import static org.junit.jupiter.api.Assertions.assertEquals;

import dev.beamllama.io.JsonCoder;
import dev.beamllama.io.PromptRecord;
import dev.beamllama.io.SourcePosition;
import java.util.Arrays;
import java.util.List;
import java.util.Map;
import java.util.TreeMap;
import org.apache.beam.sdk.PipelineResult;
import org.apache.beam.sdk.coders.KvCoder;
import org.apache.beam.sdk.coders.StringUtf8Coder;
import org.apache.beam.sdk.coders.VarIntCoder;
import org.apache.beam.sdk.metrics.MetricNameFilter;
import org.apache.beam.sdk.metrics.MetricResult;
import org.apache.beam.sdk.metrics.MetricsFilter;
import org.apache.beam.sdk.testing.PAssert;
import org.apache.beam.sdk.testing.TestPipeline;
import org.apache.beam.sdk.transforms.Create;
import org.apache.beam.sdk.values.KV;
import org.apache.beam.sdk.values.PCollection;
import org.junit.jupiter.api.Test;

/**
 * SkipCompletedSamples: a prompt whose samples were all written is dropped (and counted as a
 * finished record), one with some written carries them, one with none passes as it was; samples
 * beyond a record's n, or of ids no longer in the input, are ignored.
 */
class SkipCompletedSamplesTest {
  /** Beam's TestPipeline without JUnit 4's rule: run() still fails when an assertion failed or never ran. */
  private final TestPipeline p = TestPipeline.create().enableAbandonedNodeEnforcement(false);

  @Test
  void onlyTheWorkLeftPassesOn() {
    List<TokenizedPrompt> prompts = List.of(prompt("all-done", 1), prompt("some-done", 3), prompt("none-done", 2), prompt("out-of-range", 1));
    PCollection<KV<String, Integer>> completed = p.apply("Completed", Create.of(
            KV.of("all-done", 0), KV.of("some-done", 0), KV.of("some-done", 2), KV.of("out-of-range", 5), KV.of("gone", 0))
        .withCoder(KvCoder.of(StringUtf8Coder.of(), VarIntCoder.of())));

    try (JobTelemetry telemetry = JobTelemetry.create().open()) {
      PCollection<TokenizedPrompt> left = p.apply("Prompts", Create.of(prompts).withCoder(JsonCoder.of(TokenizedPrompt.class)))
          .apply(SkipCompletedSamples.of(completed).withTelemetry(telemetry.key()));

      PAssert.that(left).satisfies(passed -> {
        Map<String, String> completedById = new TreeMap<>();
        passed.forEach(t -> completedById.put(t.record().id(), Arrays.toString(t.completedSamples())));
        assertEquals(Map.of("some-done", "[0, 2]", "none-done", "[]", "out-of-range", "[]"), completedById);
        passed.forEach(t -> assertEquals(List.of(128000, 9906), Arrays.stream(t.promptIds()).boxed().toList(), "the prompt is kept"));
        return null;
      });
      PipelineResult result = p.run();

      assertEquals(3, resumed(result), "all-done's one sample and some-done's two");
      assertEquals(1, telemetry.recordsDone(), "all-done finished here; the others finish in Generate");
    }
  }

  private static TokenizedPrompt prompt(String id, int n) {
    PromptRecord record = new PromptRecord(id, null, null, "hello", null, null, null, null,
        new PromptRecord.SamplingOverrides(null, null, null, null, null, n, null), SourcePosition.line("in.jsonl", 1));
    return new TokenizedPrompt(record, new int[] {128000, 9906}, false);
  }

  private static long resumed(PipelineResult result) {
    long total = 0;
    for (MetricResult<Long> counter : result.metrics().queryMetrics(MetricsFilter.builder()
        .addNameFilter(MetricNameFilter.named(SkipCompletedSamples.class, SkipCompletedSamples.SAMPLES_RESUMED)).build()).getCounters()) {
      total += counter.getAttempted();
    }
    return total;
  }
}
