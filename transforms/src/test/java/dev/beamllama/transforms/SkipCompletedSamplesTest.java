package dev.beamllama.transforms;

import static org.junit.jupiter.api.Assertions.assertEquals;

import dev.beamllama.io.CompletedSample;
import dev.beamllama.io.JsonCoder;
import dev.beamllama.io.PromptRecord;
import dev.beamllama.io.SourcePosition;
import dev.beamllama.model.sampling.SamplingParams;
import java.util.Arrays;
import java.util.List;
import java.util.Map;
import java.util.TreeMap;
import org.apache.beam.sdk.PipelineResult;
import org.apache.beam.sdk.metrics.MetricNameFilter;
import org.apache.beam.sdk.metrics.MetricResult;
import org.apache.beam.sdk.metrics.MetricsFilter;
import org.apache.beam.sdk.testing.PAssert;
import org.apache.beam.sdk.testing.TestPipeline;
import org.apache.beam.sdk.transforms.Create;
import org.apache.beam.sdk.values.PCollection;
import org.junit.jupiter.api.Test;

/**
 * SkipCompletedSamples: a prompt whose samples were all written is dropped (and counted as a
 * finished record), one with some written carries them, one with none passes as it was; samples
 * beyond a record's n, or of ids no longer in the input, are ignored; a sample written with other
 * settings (another job's, in the same directory) is not this job's and is generated again.
 */
class SkipCompletedSamplesTest {
  /** Beam's TestPipeline without JUnit 4's rule: run() still fails when an assertion failed or never ran. */
  private final TestPipeline p = TestPipeline.create().enableAbandonedNodeEnforcement(false);

  @Test
  void onlyTheWorkLeftPassesOn() {
    List<TokenizedPrompt> prompts = List.of(prompt("all-done", 1), prompt("some-done", 3), prompt("none-done", 2), prompt("out-of-range", 1),
        prompt("other-job", 2));
    PCollection<CompletedSample> completed = p.apply("Completed", Create.of(
            written("all-done", 0, JOB), written("some-done", 0, JOB), written("some-done", 2, JOB), written("some-done", 2, JOB),
            written("out-of-range", 5, JOB), written("gone", 0, JOB),
            written("other-job", 0, JOB.withTemperature(0.5)), written("other-job", 1, JOB), otherModel("other-job", 0))
        .withCoder(JsonCoder.of(CompletedSample.class)));

    try (JobTelemetry telemetry = JobTelemetry.create().open()) {
      PCollection<TokenizedPrompt> left = p.apply("Prompts", Create.of(prompts).withCoder(JsonCoder.of(TokenizedPrompt.class)))
          .apply(SkipCompletedSamples.of(completed, MODEL, Task.CHAT, JOB).withTelemetry(telemetry.key()));

      PAssert.that(left).satisfies(passed -> {
        Map<String, String> completedById = new TreeMap<>();
        passed.forEach(t -> completedById.put(t.record().id(), Arrays.toString(t.completedSamples())));
        assertEquals(Map.of("some-done", "[0, 2]", "none-done", "[]", "out-of-range", "[]", "other-job", "[1]"), completedById);
        passed.forEach(t -> assertEquals(List.of(128000, 9906), Arrays.stream(t.promptIds()).boxed().toList(), "the prompt is kept"));
        return null;
      });
      PipelineResult result = p.run();

      assertEquals(4, counter(result, SkipCompletedSamples.SAMPLES_RESUMED), "all-done's one sample, some-done's two, other-job's second");
      assertEquals(2, counter(result, SkipCompletedSamples.SAMPLES_OF_OTHER_SETTINGS), "other-job's first, at another temperature and model");
      assertEquals(1, telemetry.recordsDone(), "all-done finished here; the others finish in Generate");
    }
  }

  private static final String MODEL = "demo-model";
  private static final SamplingParams JOB = SamplingParams.modelCard(11);

  /** Sample {@code index} of {@code id} as a run with {@code sampling} wrote it (the job's seed derivation). */
  private static CompletedSample written(String id, int index, SamplingParams sampling) {
    return new CompletedSample(id, index, CompletedSample.settings(MODEL, Task.CHAT.label(), SampleSeeds.seed(sampling.seed(), id, index, null),
        sampling.temperature(), sampling.topK(), sampling.topP(), sampling.repetitionPenalty(), sampling.maxNewTokens()));
  }

  private static CompletedSample otherModel(String id, int index) {
    CompletedSample ours = written(id, index, JOB);
    return new CompletedSample(id, index, ours.settings().replaceFirst("^" + MODEL, "another-model"));
  }

  private static TokenizedPrompt prompt(String id, int n) {
    PromptRecord record = new PromptRecord(id, null, null, "hello", null, null, null, null,
        new PromptRecord.SamplingOverrides(null, null, null, null, null, n, null), SourcePosition.line("in.jsonl", 1));
    return new TokenizedPrompt(record, new int[] {128000, 9906}, false);
  }

  private static long counter(PipelineResult result, String name) {
    long total = 0;
    for (MetricResult<Long> counter : result.metrics().queryMetrics(MetricsFilter.builder()
        .addNameFilter(MetricNameFilter.named(SkipCompletedSamples.class, name)).build()).getCounters()) {
      total += counter.getAttempted();
    }
    return total;
  }
}
