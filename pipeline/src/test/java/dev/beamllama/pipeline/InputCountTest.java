package dev.beamllama.pipeline;

import static org.junit.jupiter.api.Assertions.assertEquals;

import com.fasterxml.jackson.databind.JsonNode;
import dev.beamllama.io.PromptIO;
import dev.beamllama.io.PromptParquet;
import dev.beamllama.io.RecordFiles;
import dev.beamllama.io.RecordFormat;
import java.io.ByteArrayOutputStream;
import java.io.OutputStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.OptionalLong;
import java.util.zip.GZIPOutputStream;
import org.apache.beam.sdk.Pipeline;
import org.apache.beam.sdk.PipelineResult;
import org.apache.beam.sdk.metrics.MetricNameFilter;
import org.apache.beam.sdk.metrics.MetricResult;
import org.apache.beam.sdk.metrics.MetricsFilter;
import org.apache.beam.sdk.options.PipelineOptionsFactory;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** The progress total: the launcher's count of the input must be the reader's records_read, whatever the files hold. */
class InputCountTest {
  static final long MAX_LINE_BYTES = 200;

  @TempDir Path dir;

  @Test
  void theCountIsWhatTheReaderCountsForAwkwardFiles() throws Exception {
    Path in = Files.createDirectories(dir.resolve("in"));
    ByteArrayOutputStream a = new ByteArrayOutputStream();
    a.write(new byte[] {(byte) 0xEF, (byte) 0xBB, (byte) 0xBF});
    a.write(("{\"id\":\"a1\",\"user\":\"hi\"}\n\n   \n{\"id\":\"a2\",\"user\":\"crlf\"}\r\n{not json}\n" + "x".repeat(500) + "\n")
        .getBytes(StandardCharsets.UTF_8));
    a.write(new byte[] {'{', '"', (byte) 0xC3, (byte) 0x28, '"', '}', '\n'});
    a.write("{\"id\":\"a3\",\"user\":\"no newline at the end\"}".getBytes(StandardCharsets.UTF_8));
    Files.write(in.resolve("a.jsonl"), a.toByteArray());
    Files.write(in.resolve("b.jsonl.gz"), gzip(lines(5)));
    byte[] truncated = gzip(lines(2000));
    Files.write(in.resolve("c.jsonl.gz"), Arrays.copyOf(truncated, truncated.length / 2));
    List<JsonNode> rows = new ArrayList<>();
    for (int i = 0; i < 4; i++) {
      rows.add(TestJob.JSON.readTree("{\"id\":\"p" + i + "\",\"user\":\"row\"}"));
    }
    PromptParquet.write(rows, in.resolve("d.parquet"));
    Files.writeString(in.resolve("notes.md"), "# not records\n\nstill read as JSONL lines\n");

    long read = recordsRead(in.toString());
    assertEquals(OptionalLong.of(read), RecordFiles.countPromptRecords(in.toString(), RecordFormat.AUTO, MAX_LINE_BYTES));
    assertEquals(OptionalLong.of(recordsRead(in.resolve("*.gz").toString())),
        RecordFiles.countPromptRecords(in.resolve("*.gz").toString(), RecordFormat.AUTO, MAX_LINE_BYTES), "a glob");
  }

  @Test
  void aRemoteInputIsNotCounted() {
    assertEquals(OptionalLong.empty(), RecordFiles.countPromptRecords("gs://bucket/prompts/*.jsonl", RecordFormat.AUTO, MAX_LINE_BYTES));
  }

  private static byte[] lines(int n) {
    StringBuilder s = new StringBuilder();
    for (int i = 0; i < n; i++) {
      s.append("{\"id\":\"g").append(i).append("\",\"user\":\"").append("word ".repeat(i % 7)).append("\"}\n");
    }
    return s.toString().getBytes(StandardCharsets.UTF_8);
  }

  private static byte[] gzip(byte[] data) throws Exception {
    ByteArrayOutputStream bytes = new ByteArrayOutputStream();
    try (OutputStream out = new GZIPOutputStream(bytes)) {
      out.write(data);
    }
    return bytes.toByteArray();
  }

  /** The reader's own records_read for {@code pattern}. */
  private static long recordsRead(String pattern) {
    Pipeline p = Pipeline.create(PipelineOptionsFactory.create());
    p.apply(PromptIO.read().from(pattern).withMaxLineBytes(MAX_LINE_BYTES));
    PipelineResult result = p.run();
    result.waitUntilFinish();
    long total = 0;
    for (MetricResult<Long> c : result.metrics().queryMetrics(MetricsFilter.builder()
        .addNameFilter(MetricNameFilter.named(PromptIO.class, PromptIO.RECORDS_READ)).build()).getCounters()) {
      total += c.getAttempted();
    }
    return total;
  }
}
