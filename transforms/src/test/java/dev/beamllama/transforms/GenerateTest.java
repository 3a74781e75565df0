package dev.beamllama.transforms;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.fasterxml.jackson.databind.ObjectMapper;
import dev.beamllama.io.CompletionJournal;
import dev.beamllama.io.CompletionRecord;
import dev.beamllama.io.DeadLetter;
import dev.beamllama.io.JournalIndex;
import dev.beamllama.io.JournaledSample;
import dev.beamllama.io.JsonCoder;
import dev.beamllama.io.PromptRecord;
import dev.beamllama.io.SourcePosition;
import dev.beamllama.model.Engines;
import dev.beamllama.model.ModelDirectory;
import dev.beamllama.model.engine.EngineOptions;
import dev.beamllama.model.sampling.SamplingParams;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.Set;
import java.util.TreeMap;
import java.util.TreeSet;
import java.util.UUID;
import java.util.stream.Stream;
import org.apache.beam.sdk.PipelineResult;
import org.apache.beam.sdk.metrics.MetricNameFilter;
import org.apache.beam.sdk.metrics.MetricQueryResults;
import org.apache.beam.sdk.metrics.MetricResult;
import org.apache.beam.sdk.metrics.MetricsFilter;
import org.apache.beam.sdk.testing.PAssert;
import org.apache.beam.sdk.testing.TestPipeline;
import org.apache.beam.sdk.transforms.Create;
import org.apache.beam.sdk.transforms.WithFailures;
import org.apache.beam.sdk.values.PCollection;
import org.apache.beam.sdk.values.TupleTag;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * Generate on the demo checkpoint's CPU engine, a few tokens: n completions per prompt with the
 * sample's derived seed and the record's settings, a request the engine refuses as one dead letter
 * per sample, and each record counted once as finished however it ended; with a journal, each
 * sample journaled and its key emitted; the launcher's job ending ends its DoFns.
 */
class GenerateTest {
  private static final int[] PROMPT = {128000, 9906, 1917, 0};
  private static final SamplingParams JOB = SamplingParams.modelCard(7).withMaxNewTokens(4);

  /** Beam's TestPipeline without JUnit 4's rule: run() still fails when an assertion failed or never ran. */
  private final TestPipeline p = TestPipeline.create().enableAbandonedNodeEnforcement(false);

  @Test
  void everySampleIsACompletionOrADeadLetterAndEveryRecordFinishesOnce() {
    String model = DemoModel.path();
    String modelName = new ModelDirectory(Path.of(model)).name();
    EngineSpec engine = new EngineSpec(model, Engines.Kind.CPU, EngineOptions.defaults().withKvCacheBytes(16L << 20).withThreads(2));
    List<TokenizedPrompt> prompts = List.of(
        prompt("two", PROMPT, 2, null),
        prompt("one-greedy", PROMPT, 1, 0.0),
        prompt("refused", new int[] {128000, 999_999}, 2, null));

    try (JobTelemetry telemetry = JobTelemetry.create().open()) {
      WithFailures.Result<PCollection<CompletionRecord>, DeadLetter> generated = p
          .apply(Create.of(prompts).withCoder(JsonCoder.of(TokenizedPrompt.class)))
          .apply(Generate.withEngine(engine).withSampling(JOB).withTask(Task.COMPLETE).withTelemetry(telemetry.key()));

      PAssert.that(generated.output()).satisfies(completions -> {
        Set<String> samples = new TreeSet<>();
        for (CompletionRecord c : completions) {
          samples.add(c.id() + "#" + c.sampleIndex());
          assertEquals(SampleSeeds.seed(7, c.id(), c.sampleIndex(), null), c.seed(), "the sample's derived seed");
          assertEquals(c.id().equals("one-greedy") ? 0.0 : JOB.temperature(), c.temperature(), "the record's override, else the job's");
          assertEquals(PROMPT.length, c.promptTokens());
          assertTrue(c.completionTokens() >= 1 && c.completionTokens() <= 4, c.toString());
          assertTrue(Set.of("stop", "length").contains(c.finishReason()), c.finishReason());
          assertEquals(4, c.maxNewTokens());
          assertEquals("complete", c.task());
          assertEquals(modelName, c.model());
        }
        assertEquals(Set.of("one-greedy#0", "two#0", "two#1"), samples);
        return null;
      });
      PAssert.that(generated.failures()).satisfies(deadLetters -> {
        int count = 0;
        for (DeadLetter d : deadLetters) {
          count++;
          assertEquals("refused", d.id());
          assertEquals("generation_failed", d.kind());
          assertTrue(d.message().contains("outside the model's vocabulary"), d.message());
        }
        assertEquals(2, count, "one per sample");
        return null;
      });
      p.run();

      assertEquals(3, telemetry.recordsDone(), "the refused record counts once, not once per dead letter");
    }
  }

  /**
   * With a journal, Generate emits each sample's key; its completion is in the journal, where the
   * writer reads it. A sample an earlier attempt journaled is taken from there, not generated again.
   */
  @Test
  void withAJournalEverySampleIsJournaledAndItsKeyEmitted(@TempDir Path dir) throws IOException {
    String model = DemoModel.path();
    EngineSpec engine = new EngineSpec(model, Engines.Kind.CPU, EngineOptions.defaults().withKvCacheBytes(16L << 20).withThreads(2));
    Path journalDir = Files.createDirectories(dir.resolve("out-journal"));
    CompletionRecord earlier = new CompletionRecord("two", 1, "from an earlier attempt", "stop", PROMPT.length, false, 1, "demo", "complete",
        SampleSeeds.seed(7, "two", 1, null), JOB.temperature(), JOB.topK(), JOB.topP(), JOB.repetitionPenalty(), 4, 3.0);
    Files.writeString(journalDir.resolve("journal-earlier-attempt.jsonl"),
        "{\"beam_llama_journal\":1,\"job\":{}}\n" + new ObjectMapper().writeValueAsString(earlier) + "\n");
    CompletionJournal.Spec journal = new CompletionJournal.Spec(journalDir.toString(), new TreeMap<>(), 5_000, 256, UUID.randomUUID().toString());

    WithFailures.Result<PCollection<JournaledSample>, DeadLetter> generated = p
        .apply(Create.of(List.of(prompt("two", PROMPT, 2, null), prompt("one-greedy", PROMPT, 1, 0.0)))
            .withCoder(JsonCoder.of(TokenizedPrompt.class)))
        .apply(Generate.withEngine(engine).withSampling(JOB).withTask(Task.COMPLETE).withJournal(journal));
    PAssert.that(generated.output()).containsInAnyOrder(
        new JournaledSample("two", 0), new JournaledSample("two", 1), new JournaledSample("one-greedy", 0));
    PAssert.that(generated.failures()).empty();
    PipelineResult result = p.run();
    result.waitUntilFinish();

    JournalIndex index = JournalIndex.of(journalDir.toString());
    assertEquals(earlier, index.require("two", 1), "taken from the earlier attempt's journal");
    for (JournaledSample generatedNow : List.of(new JournaledSample("two", 0), new JournaledSample("one-greedy", 0))) {
      CompletionRecord c = index.require(generatedNow.id(), generatedNow.sampleIndex());
      assertEquals(SampleSeeds.seed(7, c.id(), c.sampleIndex(), null), c.seed());
      assertEquals("complete", c.task());
    }
    MetricQueryResults metrics = result.metrics().queryMetrics(MetricsFilter.builder()
        .addNameFilter(MetricNameFilter.named(Generate.class, Generate.SAMPLES_FROM_JOURNAL)).build());
    long fromJournal = 0;
    for (MetricResult<Long> counter : metrics.getCounters()) {
      fromJournal += counter.getAttempted();
    }
    assertEquals(1, fromJournal);
    IllegalStateException missing = assertThrows(IllegalStateException.class, () -> index.require("never-made", 0));
    assertTrue(missing.getMessage().contains("sample 0 of record never-made is not in the journal " + journalDir), missing.getMessage());
  }

  private static TokenizedPrompt prompt(String id, int[] ids, int n, Double temperature) {
    PromptRecord record = new PromptRecord(id, null, null, null, null, null, null, "prompt",
        new PromptRecord.SamplingOverrides(null, temperature, null, null, null, n, null), SourcePosition.line("in.jsonl", 1));
    return new TokenizedPrompt(record, ids, false);
  }

  /**
   * A DirectRunner whose job failed neither tears its DoFns down nor drops the bundles it had queued:
   * the job's end returns what its DoFns hold (the engine, the journal file), and a DoFn set up after
   * it loads no engine and opens no journal file.
   */
  @Test
  void whenTheJobEndsItsDoFnsLetGoOfTheEngineAndJournalAndLateOnesDoNothing(@TempDir Path dir) throws IOException {
    EngineSpec engine = new EngineSpec(DemoModel.path(), Engines.Kind.CPU, EngineOptions.defaults().withKvCacheBytes(8L << 20).withThreads(1));
    Path journalDir = dir.resolve("out-journal");
    CompletionJournal.Spec journal = new CompletionJournal.Spec(journalDir.toString(), new TreeMap<>(), 5_000, 256, UUID.randomUUID().toString());
    JobTelemetry telemetry = JobTelemetry.create().open();
    Generate<JournaledSample> generate = Generate.withEngine(engine).withTelemetry(telemetry.key()).withJournal(journal);
    Generate.GenerateFn<JournaledSample> fn = new Generate.GenerateFn<>(generate, new TupleTag<>());
    fn.setup();
    List<Path> journalFiles = list(journalDir);
    assertEquals(1, journalFiles.size(), "the DoFn's journal file");

    telemetry.close(); // the job failed, and the runner never tears fn down
    int loads = EngineRegistry.loads();
    Generate.GenerateFn<JournaledSample> late = new Generate.GenerateFn<>(generate, new TupleTag<>());
    assertThrows(IllegalStateException.class, late::setup, "a bundle the runner had queued");
    assertThrows(IllegalStateException.class, () -> telemetry.hold(() -> () -> {}), "nothing is held for an ended job");
    assertEquals(loads, EngineRegistry.loads(), "no engine loaded for it");
    assertEquals(journalFiles, list(journalDir), "no journal file opened for it");
    try (EngineRegistry.Lease next = EngineRegistry.acquire(engine)) {
      assertTrue(next.loadedNow(), "the job's engine was let go of at its end");
    }
    fn.teardown(); // a runner that tears down after all: what it held is returned once
  }

  private static List<Path> list(Path directory) throws IOException {
    try (Stream<Path> files = Files.list(directory)) {
      return files.sorted().toList();
    }
  }
}
