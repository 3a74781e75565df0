package dev.beamllama.pipeline.report;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import dev.beamllama.io.CompletionIO;
import dev.beamllama.io.PromptParquet;
import dev.beamllama.model.sampling.SamplingParams;
import dev.beamllama.pipeline.JobSummary;
import dev.beamllama.transforms.JobTelemetry;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import org.apache.avro.generic.GenericData;
import org.apache.avro.generic.GenericRecord;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * The report from known shards, without running a job: the figures the files add up to, the
 * checks against the job's metrics, and a page that says which plots a run without the engine's
 * step statistics (a Flink job) cannot have.
 */
class RunReportTest {
  static final ObjectMapper JSON = new ObjectMapper();
  static final String FLINK = "the engines ran in the FlinkRunner's workers, and their step statistics stay in those JVMs";

  @TempDir Path dir;

  /** prompt, completion tokens, finish reason, latency of the three completions every test writes. */
  static final Object[][] COMPLETIONS = {{10, 5, "stop", 100.0}, {20, 8, "length", 200.0}, {30, 8, "length", 600.0}};

  private ReportSettings settings(String extension) {
    return settings(extension, 16, 512);
  }

  private ReportSettings settings(String extension, int maxNumSeqs, int maxBatchTokens) {
    return new ReportSettings("FlinkRunner", "in/*.jsonl", dir.resolve("c-?????-of-?????" + extension).toString(),
        dir.resolve("c-errors-?????-of-?????.jsonl").toString(), null, "demo-model", "/models/demo", "chat", "auto", maxNumSeqs,
        maxBatchTokens, SamplingParams.modelCard(0));
  }

  private static JobSummary summary(long completionsWritten, long deadLetters) {
    return new JobSummary(5, completionsWritten, deadLetters, 60, 45, 21, 1, 0, 0, 0, 0, new java.util.TreeMap<>(), 1, null, 2.0);
  }

  private void writeJsonlShards() throws Exception {
    List<String> lines = new ArrayList<>();
    for (int i = 0; i < COMPLETIONS.length; i++) {
      Object[] c = COMPLETIONS[i];
      lines.add(JSON.createObjectNode().put("id", "r" + i).put("sample_index", 0).put("completion", "...")
          .put("finish_reason", (String) c[2]).put("prompt_tokens", (int) c[0]).put("completion_tokens", (int) c[1])
          .put("latency_ms", (double) c[3]).toString());
    }
    Files.writeString(dir.resolve("c-00000-of-00002.jsonl"), lines.get(0) + "\n" + lines.get(1) + "\n");
    Files.writeString(dir.resolve("c-00001-of-00002.jsonl"), lines.get(2) + "\n");
    Files.writeString(dir.resolve("c-errors-00000-of-00001.jsonl"),
        "{\"source_file\":\"in/a.jsonl\",\"line\":4,\"row\":null,\"id\":null,\"kind\":\"malformed_json\",\"message\":\"x\"}\n"
            + "{\"source_file\":\"in/a.jsonl\",\"line\":5,\"row\":null,\"id\":null,\"kind\":\"missing_id\",\"message\":\"y\"}\n");
  }

  @Test
  void summaryFiguresAreWhatTheShardsHold() throws Exception {
    writeJsonlShards();
    ReportData data = RunReport.gather(settings(".jsonl"), summary(3, 2), EngineActivity.unavailable(FLINK));
    assertEquals(List.of(), data.warnings());
    RunReport.write(data, dir.resolve("c-report").toString());

    JsonNode s = JSON.readTree(dir.resolve("c-report/summary.json").toFile());
    assertEquals(5, s.get("records_read").asLong());
    assertEquals(3, s.get("completions_written").asLong());
    assertEquals(2, s.get("dead_letters").get("total").asLong());
    assertEquals(1, s.get("dead_letters").get("by_kind").get("malformed_json").asLong());
    assertEquals(1, s.get("dead_letters").get("by_kind").get("missing_id").asLong());
    assertEquals(60, s.get("tokens").get("prompt").asLong());
    assertEquals(45, s.get("tokens").get("prompt_computed").asLong(), "from the job's counter, whichever JVM ran the engine");
    assertEquals(21, s.get("tokens").get("completion").asLong());
    assertEquals(10.5, s.get("completion_tokens_per_second").asDouble(), 1e-9, "21 tokens in 2 s");
    assertEquals(1, s.get("finish_reasons").get("stop").asLong());
    assertEquals(2, s.get("finish_reasons").get("length").asLong());
    assertEquals(300.0, s.get("latency_ms").get("mean").asDouble(), 1e-9);
    assertEquals(600.0, s.get("latency_ms").get("max").asDouble(), 1e-9);
    assertEquals(5, s.get("completion_tokens_histogram").get("low").asLong());
    assertEquals("[1,0,0,2]", s.get("completion_tokens_histogram").get("counts").toString(), "5, then 8 twice, in bins of 1");
    assertEquals(0.9, s.get("sampling").get("temperature").asDouble());
    assertEquals("auto", s.get("engine").get("requested").asText());
    assertEquals(FLINK, s.get("engine_timeline").get("unavailable").asText());
  }

  @Test
  void sizingLeftToEnginesInOtherJvmsIsNotReportedAsZero() throws Exception {
    writeJsonlShards();
    String page = RunReport.write(RunReport.gather(settings(".jsonl", 0, 0), summary(3, 2), EngineActivity.unavailable(FLINK)),
        dir.resolve("c-report").toString());
    JsonNode engine = JSON.readTree(dir.resolve("c-report/summary.json").toFile()).get("engine");
    assertTrue(engine.get("max_num_seqs").isNull() && engine.get("max_batch_tokens").isNull(), engine.toString());
    assertTrue(Files.readString(Path.of(page)).contains("auto, --maxNumSeqs the engine&#39;s default, --maxBatchTokens the engine&#39;s default"));
    RunReport.write(RunReport.gather(settings(".jsonl"), summary(3, 2), EngineActivity.unavailable(FLINK)), dir.resolve("given").toString());
    JsonNode given = JSON.readTree(dir.resolve("given/summary.json").toFile()).get("engine");
    assertEquals(16, given.get("max_num_seqs").asInt(), "a given flag is what the engines ran with: " + given);
  }

  @Test
  void withoutTheEnginesStepsThePageSaysWhichPlotsAreMissingAndWhy() throws Exception {
    writeJsonlShards();
    String page = RunReport.write(RunReport.gather(settings(".jsonl"), summary(3, 2), EngineActivity.unavailable(FLINK)),
        dir.resolve("c-report").toString());
    String html = Files.readString(Path.of(page), StandardCharsets.UTF_8);
    for (String missing : List.of(Plot.THROUGHPUT, Plot.OCCUPANCY)) {
      assertTrue(html.contains("data-plot-unavailable=\"" + missing + "\""), missing);
      assertFalse(html.contains("data-plot=\"" + missing + "\""), missing + " must not be drawn empty");
    }
    assertTrue(html.contains("not available for this run: the engines ran in the FlinkRunner&#39;s workers"));
    for (String drawn : List.of(Plot.PROMPT_LENGTHS, Plot.COMPLETION_LENGTHS, Plot.FINISH_REASONS)) {
      assertTrue(html.contains("data-plot=\"" + drawn + "\""), drawn);
    }
    assertFalse(html.contains("src=\"http") || html.contains("<link") || html.contains("<script"), "self-contained, no script");

    Path chromium = ReportPageCheck.chromiumOrSkip();
    Map<String, ReportPageCheck.Rendered> rendered = ReportPageCheck.render(chromium, Path.of(page), Files.createDirectories(dir.resolve("browser")));
    ReportPageCheck.assertPlotsRendered(rendered, List.of(Plot.PROMPT_LENGTHS, Plot.COMPLETION_LENGTHS, Plot.FINISH_REASONS));
  }

  @Test
  void completionsLongerThanAKilobyteAreRead() throws Exception {
    // Read with no line limit; growing the line buffer to "the limit + 1" once overflowed there.
    String line = JSON.createObjectNode().put("id", "long").put("sample_index", 0).put("completion", "가나다라".repeat(2000))
        .put("finish_reason", "length").put("prompt_tokens", 3).put("completion_tokens", 1024).put("latency_ms", 1.0).toString();
    Files.writeString(dir.resolve("c-00000-of-00001.jsonl"), line + "\n", StandardCharsets.UTF_8);
    ReportData data = RunReport.gather(settings(".jsonl"), summary(1, 0), EngineActivity.unavailable(FLINK));
    assertEquals(1, data.completions().completions());
    assertEquals(1024, data.completions().completionTokens());
  }

  @Test
  void parquetShardsAreReadToo() throws Exception {
    List<GenericRecord> rows = new ArrayList<>();
    for (int i = 0; i < COMPLETIONS.length; i++) {
      Object[] c = COMPLETIONS[i];
      GenericData.Record r = new GenericData.Record(CompletionIO.avroSchema());
      r.put("id", "r" + i);
      r.put("sample_index", 0);
      r.put("completion", "...");
      r.put("finish_reason", c[2]);
      r.put("prompt_tokens", c[0]);
      r.put("prompt_truncated", false);
      r.put("completion_tokens", c[1]);
      r.put("model", "demo-model");
      r.put("task", "chat");
      r.put("seed", 1L);
      r.put("temperature", 0.9);
      r.put("top_k", 40);
      r.put("top_p", 0.9);
      r.put("repetition_penalty", 1.1);
      r.put("max_new_tokens", 8);
      r.put("latency_ms", c[3]);
      rows.add(r);
    }
    PromptParquet.write(CompletionIO.avroSchema(), rows, dir.resolve("c-00000-of-00001.parquet"));
    ReportData data = RunReport.gather(settings(".parquet"), summary(3, 0), EngineActivity.unavailable(FLINK));
    assertEquals(3, data.completions().completions());
    assertEquals(60, data.completions().promptTokens());
    assertEquals(Map.of("length", 2L, "stop", 1L), data.completions().finishReasons());
  }

  @Test
  void disagreementWithTheJobsMetricsIsStatedNotHidden() throws Exception {
    writeJsonlShards();
    Files.writeString(dir.resolve("c-00001-of-00002.jsonl"), "{\"id\": \"cut by a cra\n", StandardCharsets.UTF_8);
    ReportData data = RunReport.gather(settings(".jsonl"), summary(3, 2), EngineActivity.unavailable(FLINK));
    assertEquals(2, data.completions().completions());
    assertEquals(2, data.warnings().size(), data.warnings().toString());
    assertTrue(data.warnings().get(0).startsWith("1 line(s) of "), data.warnings().get(0));
    assertTrue(data.warnings().get(1).contains("metrics count 3 completions written, the files hold 2"), data.warnings().get(1));
    String html = Files.readString(Path.of(RunReport.write(data, dir.resolve("c-report").toString())));
    assertTrue(html.contains("class=\"warning\">the job&#39;s metrics count 3 completions written"));
  }

  @Test
  void engineStepsGiveTheTimePlots() throws Exception {
    writeJsonlShards();
    JobTelemetry telemetry = JobTelemetry.create();
    telemetry.onStep(3, 30, 3, 1_000_000);
    telemetry.onStep(2, 0, 2, 1_000_000);
    ReportData data = RunReport.gather(settings(".jsonl"), summary(3, 2), EngineActivity.of(telemetry, System.nanoTime()));
    List<Plot> plots = Plot.of(data);
    assertEquals(List.of(Plot.THROUGHPUT, Plot.OCCUPANCY, Plot.PROMPT_LENGTHS, Plot.COMPLETION_LENGTHS, Plot.FINISH_REASONS),
        plots.stream().map(Plot::id).toList());
    plots.forEach(p -> assertTrue(p.png() != null && p.unavailable() == null, p.id()));
    long tokens = data.engine().buckets().stream().mapToLong(b -> b.sampledTokens()).sum();
    assertEquals(5, tokens);

    // A run shorter than a bucket still draws its level in the time plots.
    assertEquals(1, data.engine().buckets().size());
    String page = RunReport.write(data, dir.resolve("c-report").toString());
    Path chromium = ReportPageCheck.chromiumOrSkip();
    ReportPageCheck.assertPlotsRendered(ReportPageCheck.render(chromium, Path.of(page), Files.createDirectories(dir.resolve("browser"))),
        plots.stream().map(Plot::id).toList());
  }

  @Test
  void aJobWithoutCompletionsHasNoPlotsAndSaysSo() throws Exception {
    Files.writeString(dir.resolve("c-errors-00000-of-00001.jsonl"), "{\"kind\":\"malformed_json\"}\n");
    JobTelemetry telemetry = JobTelemetry.create();
    ReportData data = RunReport.gather(settings(".jsonl"), new JobSummary(1, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, new java.util.TreeMap<>(), 0, null, 1.0),
        EngineActivity.of(telemetry, System.nanoTime()));
    assertEquals(List.of(), data.warnings());
    for (Plot plot : Plot.of(data)) {
      assertTrue(plot.png() == null && plot.unavailable() != null, plot.id());
    }
    assertEquals("the engine ran no step: no record reached generation", Plot.of(data).get(0).unavailable());
    assertEquals("no completion was written", Plot.of(data).get(2).unavailable());
  }
}
