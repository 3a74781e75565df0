package dev.beamllama.pipeline;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.fasterxml.jackson.databind.JsonNode;
import dev.beamllama.pipeline.report.ReportPageCheck;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.Map;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * The job on the demo checkpoint writes its progress and its report: the report's totals are the
 * output files' and the job's, the engine's own step counts agree with the tokens written, and
 * the page's plots render in a browser.
 */
class RunReportJobTest {
  @TempDir static Path dir;
  static TestJob.Run run;
  static List<JsonNode> completions;
  static JsonNode summary;

  @BeforeAll
  static void runTheJob() throws Exception {
    Path input = TestJob.writeJsonl(dir.resolve("in/prompts.jsonl"), List.of(
        "{\"id\": \"r1\", \"user\": \"서울의 인구는 얼마나 되나요?\"}",
        "{\"id\": \"r2\", \"user\": \"된장찌개 끓이는 법을 알려 주세요\", \"n\": 2}",
        "{\"id\": \"r3\", \"user\": \"짧은 시를 써 주세요\", \"max_new_tokens\": 3}",
        "{not json",
        "{\"user\": \"no id\"}",
        "{\"id\": \"r4\", \"messages\": [{\"role\": \"user\", \"content\": \"안녕하세요\"}]}"));
    run = TestJob.run("--input=" + input, "--output=" + dir.resolve("out/completions.jsonl"), "--model=" + TestJob.demoModel(),
        "--maxNewTokens=6");
    completions = TestJob.shards(dir.resolve("out/completions").toString(), ".jsonl");
    summary = TestJob.JSON.readTree(dir.resolve("out/completions-report/summary.json").toFile());
  }

  @Test
  void theSummaryHoldsTheRunsTotals() {
    assertEquals(5, completions.size(), "r2 has two samples");
    assertEquals(6, summary.get("records_read").asLong());
    assertEquals(5, summary.get("completions_written").asLong());
    assertEquals(2, summary.get("dead_letters").get("total").asLong());
    assertEquals(1, summary.get("dead_letters").get("by_kind").get("malformed_json").asLong());
    assertEquals(1, summary.get("dead_letters").get("by_kind").get("missing_id").asLong());
    long promptTokens = completions.stream().mapToLong(c -> c.get("prompt_tokens").asLong()).sum();
    long completionTokens = completions.stream().mapToLong(c -> c.get("completion_tokens").asLong()).sum();
    assertEquals(promptTokens, summary.get("tokens").get("prompt").asLong());
    assertEquals(completionTokens, summary.get("tokens").get("completion").asLong());
    assertEquals(run.summary().generatedTokens(), completionTokens);
    assertEquals(5, summary.get("finish_reasons").path("stop").asLong() + summary.get("finish_reasons").path("length").asLong());
    assertEquals(completionTokens / run.summary().wallSeconds(), summary.get("completion_tokens_per_second").asDouble(), 1e-6);
    assertEquals("DirectRunner", summary.get("runner").asText());
    assertEquals("demo-model", summary.get("model").asText());
    assertEquals(6, summary.get("sampling").get("max_new_tokens").asInt());
    assertTrue(summary.get("engine").get("ran_on").get(0).asText().startsWith("cpu"), summary.get("engine").toString());
    // No sizing flags: the report states what the CPU engine chose, and its load line why.
    assertEquals(16, summary.get("engine").get("max_num_seqs").asInt(), summary.get("engine").toString());
    assertEquals(512, summary.get("engine").get("max_batch_tokens").asInt(), summary.get("engine").toString());
    assertTrue(summary.get("engine").get("ran_on").get(0).asText().endsWith("; 16 sequences, 512 batch tokens (CPU defaults))"),
        summary.get("engine").toString());
    assertEquals(0, summary.get("warnings").size(), summary.get("warnings").toString());
  }

  @Test
  void theEnginesStepsAccountForEveryTokenWritten() {
    JsonNode buckets = summary.get("engine_timeline").get("buckets");
    assertTrue(buckets != null && buckets.size() > 0, summary.get("engine_timeline").toString());
    long generated = 0;
    double maxOccupancy = 0;
    for (JsonNode b : buckets) {
      generated += b.get("generated_tokens").asLong();
      maxOccupancy = Math.max(maxOccupancy, b.get("max_sequences_per_step").asDouble());
    }
    assertEquals(summary.get("tokens").get("completion").asLong(), generated, "tokens drawn by the engine = tokens written");
    long computed = 0;
    for (JsonNode b : buckets) {
      computed += b.get("prompt_tokens").asLong();
    }
    // The records share the system prompt's first blocks, and r2's second sample takes the first's
    // prompt: the prefix cache computes less than the prompts read.
    assertEquals(computed, summary.get("tokens").get("prompt_computed").asLong());
    assertTrue(run.out().contains("beam-llama: " + computed + " of the " + summary.get("tokens").get("prompt").asLong()
        + " prompt tokens computed"), run.out());
    assertTrue(computed > 0 && computed < summary.get("tokens").get("prompt").asLong(), summary.get("tokens").toString());
    assertTrue(maxOccupancy >= 1 && maxOccupancy <= 16, "occupancy within --maxNumSeqs: " + maxOccupancy);
  }

  @Test
  void progressCountsEveryRecordAgainstTheCountedInput() {
    List<String> lines = run.err().lines().filter(l -> l.startsWith("beam-llama: progress: ")).toList();
    assertFalse(lines.isEmpty(), run.err());
    assertTrue(lines.getLast().startsWith("beam-llama: progress: 6/6 records (100.0%)"),
        "4 generated and 2 dead letters of 6 lines: " + lines.getLast());
    assertTrue(run.out().contains("beam-llama: report: " + dir.resolve("out/completions-report/report.html")), run.out());
  }

  @Test
  void theReportPageRendersEveryPlotWithItsData() throws Exception {
    Path page = dir.resolve("out/completions-report/report.html");
    String html = Files.readString(page);
    assertFalse(html.contains("data-plot-unavailable"), "the DirectRunner run has every plot");
    Path chromium = ReportPageCheck.chromiumOrSkip();
    Map<String, ReportPageCheck.Rendered> rendered = ReportPageCheck.render(chromium, page, Files.createDirectories(dir.resolve("browser")));
    ReportPageCheck.assertPlotsRendered(rendered,
        List.of("throughput", "occupancy", "prompt-lengths", "completion-lengths", "finish-reasons"));
  }

  @Test
  void reportFalseWritesNoReport() throws Exception {
    Path input = TestJob.writeJsonl(dir.resolve("in-bad/prompts.jsonl"), List.of("{not json", "{\"id\": 5}"));
    TestJob.Run bad = TestJob.run("--input=" + input, "--output=" + dir.resolve("no-report/c.jsonl"), "--model=" + TestJob.demoModel(),
        "--report=false");
    assertEquals(2, bad.summary().deadLetters());
    assertFalse(Files.exists(dir.resolve("no-report/c-report")));
    assertFalse(bad.out().contains("report:"), bad.out());
  }
}
