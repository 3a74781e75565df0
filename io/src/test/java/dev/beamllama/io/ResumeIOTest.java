package dev.beamllama.io;

import static org.junit.jupiter.api.Assertions.assertEquals;

import java.io.IOException;
import java.io.OutputStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.stream.Stream;
import java.util.zip.GZIPOutputStream;
import org.apache.avro.Schema;
import org.apache.avro.generic.GenericRecord;
import org.apache.beam.sdk.PipelineResult;
import org.apache.beam.sdk.metrics.MetricNameFilter;
import org.apache.beam.sdk.metrics.MetricResult;
import org.apache.beam.sdk.metrics.MetricsFilter;
import org.apache.beam.sdk.testing.PAssert;
import org.apache.beam.sdk.testing.TestPipeline;
import org.apache.beam.sdk.values.PCollection;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * ResumeIO.completedSamples(): the (id, sample_index) of every completion a died run left, in
 * finished shards and in Beam's extension-less temporary files alike, JSONL (gzip too) or Parquet;
 * a cut or foreign line is counted as unreadable and never taken as done.
 */
class ResumeIOTest {
  @TempDir Path dir;

  /** Beam's TestPipeline without JUnit 4's rule: run() still fails when an assertion failed or never ran. */
  private final TestPipeline p = TestPipeline.create().enableAbandonedNodeEnforcement(false);

  @Test
  void everyWrittenSampleIsFoundWhateverTheFileAndCutLinesAreNot() throws IOException {
    Path died = Files.createDirectories(dir.resolve("died"));
    Path temp = Files.createDirectories(died.resolve(".temp-beam-0f3a"));
    Files.writeString(died.resolve("c-00000-of-00002.jsonl"), json(completion("a", 0)) + "\n" + json(completion("a", 1)) + "\n",
        StandardCharsets.UTF_8);
    String cut = json(completion("b", 1));
    Files.writeString(temp.resolve("2c6e9d1a"), json(completion("b", 0)) + "\n"
        + "{\"source_file\": \"in.jsonl\", \"line\": 3, \"kind\": \"malformed_json\"}\n"
        + cut.substring(0, cut.length() / 2), StandardCharsets.UTF_8);
    Schema schema = CompletionIO.avroSchema();
    List<GenericRecord> rows = new ArrayList<>();
    for (CompletionRecord c : List.of(completion("c", 0), completion("c", 2))) {
      rows.add(CompletionIO.toAvro(c, schema));
    }
    PromptParquet.write(schema, rows, temp.resolve("7b41e0c2"));
    try (OutputStream out = new GZIPOutputStream(Files.newOutputStream(died.resolve("c-00001-of-00002.jsonl.gz")))) {
      out.write((json(completion("d", 0)) + "\n").getBytes(StandardCharsets.UTF_8));
    }

    PCollection<CompletedSample> done = p.apply(ResumeIO.completedSamples().from(died.toString()));

    PAssert.that(done).containsInAnyOrder(Stream.of(completion("a", 0), completion("a", 1), completion("b", 0), completion("c", 0),
        completion("c", 2), completion("d", 0)).map(ResumeIOTest::written).toList());
    PipelineResult result = p.run();
    assertEquals(6, counter(result, ResumeIO.SAMPLES_FOUND));
    assertEquals(2, counter(result, ResumeIO.UNREADABLE_LINES), "the dead letter and the cut line");
  }

  @Test
  void aPatternMatchingNothingMeansNothingIsDone() {
    PAssert.that(p.apply(ResumeIO.completedSamples().from(dir.resolve("never-written/*").toString()))).empty();
    p.run();
  }

  private static CompletionRecord completion(String id, int sample) {
    return new CompletionRecord(id, sample, "생성된 글 " + id + sample, "length", 12, false, 8, "demo-model", "chat", 7L * sample, 0.9, 40,
        0.9, 1.1, 8, 3.5);
  }

  /** What ResumeIO reads back for {@code c}: its key and the settings it was written with. */
  private static CompletedSample written(CompletionRecord c) {
    return new CompletedSample(c.id(), c.sampleIndex(), CompletedSample.settings(c.model(), c.task(), c.seed(), c.temperature(), c.topK(),
        c.topP(), c.repetitionPenalty(), c.maxNewTokens()));
  }

  private static String json(CompletionRecord c) {
    return CompletionIO.toJson(c);
  }

  private static long counter(PipelineResult result, String name) {
    long total = 0;
    for (MetricResult<Long> counter : result.metrics().queryMetrics(MetricsFilter.builder()
        .addNameFilter(MetricNameFilter.named(ResumeIO.class, name)).build()).getCounters()) {
      total += counter.getAttempted();
    }
    return total;
  }
}
