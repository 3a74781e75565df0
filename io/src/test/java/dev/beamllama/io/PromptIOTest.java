package dev.beamllama.io;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import java.io.IOException;
import java.io.OutputStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.OptionalLong;
import java.util.TreeMap;
import java.util.zip.GZIPOutputStream;
import org.apache.avro.Schema;
import org.apache.avro.generic.GenericData;
import org.apache.avro.generic.GenericRecord;
import org.apache.avro.util.Utf8;
import org.apache.beam.sdk.PipelineResult;
import org.apache.beam.sdk.metrics.MetricNameFilter;
import org.apache.beam.sdk.metrics.MetricResult;
import org.apache.beam.sdk.metrics.MetricsFilter;
import org.apache.beam.sdk.testing.PAssert;
import org.apache.beam.sdk.testing.TestPipeline;
import org.apache.beam.sdk.transforms.MapElements;
import org.apache.beam.sdk.transforms.WithFailures;
import org.apache.beam.sdk.values.PCollection;
import org.apache.beam.sdk.values.TypeDescriptors;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * PromptIO.read(): every line or row of JSONL and Parquet input becomes a record or a dead letter
 * naming its file and line or row, and {@code records_read} counts them all, as
 * {@link RecordFiles#countPromptRecords} predicts for the progress total.
 */
class PromptIOTest {
  private static final ObjectMapper JSON = new ObjectMapper();
  private static final PromptRecord.SamplingOverrides NONE = PromptRecord.SamplingOverrides.NONE;

  @TempDir Path dir;

  /** Beam's TestPipeline without JUnit 4's rule: run() still fails when an assertion failed or never ran. */
  private final TestPipeline p = TestPipeline.create().enableAbandonedNodeEnforcement(false);

  @Test
  void jsonLinesBecomeRecordsAndEveryOtherLineADeadLetter() throws IOException {
    Path file = write(dir.resolve("prompts.jsonl"),
        "{\"id\": \"a\", \"user\": \"안녕하세요\", \"max_new_tokens\": 8, \"n\": 2}",
        "",
        "{\"id\": \"b\", \"messages\": [{\"role\": \"user\", \"content\": \"hi\"}], \"temperature\": 0.5}",
        "{\"id\": broken",
        "{\"id\": \"c\", \"user\": \"x\"} {\"id\": \"d\"}",
        "[1, 2]",
        "{\"id\": 7, \"user\": \"x\"}",
        "{\"id\": \"e\", \"user\": \"x\", \"n\": 0}",
        "{\"id\": \"f\", \"id\": \"g\", \"user\": \"x\"}",
        "\f",
        " \t",
        "\u3000");
    String name = file.toString();

    WithFailures.Result<PCollection<PromptRecord>, DeadLetter> read = p.apply(PromptIO.read().from(name));

    PAssert.that(read.output()).containsInAnyOrder(
        new PromptRecord("a", null, null, "안녕하세요", null, null, null, null,
            new PromptRecord.SamplingOverrides(8, null, null, null, null, 2, null), SourcePosition.line(name, 1)),
        new PromptRecord("b", List.of(new PromptRecord.Message("user", "hi")), null, null, null, null, null, null,
            new PromptRecord.SamplingOverrides(null, 0.5, null, null, null, null, null), SourcePosition.line(name, 3)));
    PAssert.that(read.failures()).satisfies(deadLetters -> {
      Map<Long, DeadLetter> byLine = byLine(deadLetters);
      assertEquals(List.of(4L, 5L, 6L, 7L, 8L, 9L, 10L, 12L), List.copyOf(byLine.keySet()), "a line of JSON whitespace only is no record");
      assertEquals("malformed_json", byLine.get(4L).kind());
      assertTrue(byLine.get(4L).message().startsWith("not a JSON object: "), byLine.get(4L).message());
      assertEquals("malformed_json", byLine.get(5L).kind(), "one object per line: trailing tokens are refused");
      assertEquals(new DeadLetter(name, 6L, null, null, "malformed_json", "a record must be one JSON object, got array [1,2]"), byLine.get(6L));
      assertEquals(new DeadLetter(name, 7L, null, null, "invalid_id", "\"id\" must be a string, got number 7"), byLine.get(7L));
      assertEquals(new DeadLetter(name, 8L, null, "e", "invalid_value", "\"n\" must be in [1, 64], got 0"), byLine.get(8L));
      assertEquals("malformed_json", byLine.get(9L).kind(), "a key given twice is refused, never the last one taken");
      assertTrue(byLine.get(9L).message().contains("Duplicate field 'id'"), byLine.get(9L).message());
      assertEquals("malformed_json", byLine.get(10L).kind(), "a form feed is Java whitespace but not JSON's");
      assertEquals("malformed_json", byLine.get(12L).kind(), "nor is an ideographic space");
      return null;
    });

    PipelineResult result = p.run();
    assertEquals(10, recordsRead(result), "every non-blank line");
    assertEquals(OptionalLong.of(10), RecordFiles.countPromptRecords(name, RecordFormat.AUTO, PromptIO.DEFAULT_MAX_LINE_BYTES));
  }

  @Test
  void linesOverTheLimitAndNotUtf8AreRefusedOneByOneAndGzipIsRead() throws IOException {
    Path file = dir.resolve("prompts.jsonl.gz");
    try (OutputStream out = new GZIPOutputStream(Files.newOutputStream(file))) {
      out.write(new byte[] {(byte) 0xEF, (byte) 0xBB, (byte) 0xBF}); // a byte-order mark, ignored
      out.write("{\"id\": \"first\", \"user\": \"u\"}\n".getBytes(StandardCharsets.UTF_8));
      out.write(("{\"id\": \"long\", \"user\": \"" + "x".repeat(100) + "\"}\n").getBytes(StandardCharsets.UTF_8));
      out.write(new byte[] {'{', '"', 'i', 'd', '"', ':', ' ', '"', (byte) 0xC3, (byte) 0x28, '"', '}', '\n'});
      out.write("{\"id\": \"last\", \"user\": \"u\"}".getBytes(StandardCharsets.UTF_8)); // no final newline
    }
    String name = file.toString();

    WithFailures.Result<PCollection<PromptRecord>, DeadLetter> read = p.apply(PromptIO.read().from(name).withMaxLineBytes(64));

    PAssert.that(read.output()).containsInAnyOrder(
        new PromptRecord("first", null, null, "u", null, null, null, null, NONE, SourcePosition.line(name, 1)),
        new PromptRecord("last", null, null, "u", null, null, null, null, NONE, SourcePosition.line(name, 4)));
    PAssert.that(read.failures()).satisfies(deadLetters -> {
      Map<Long, DeadLetter> byLine = byLine(deadLetters);
      assertEquals(new DeadLetter(name, 2L, null, null, "line_too_long", "line of 126 bytes exceeds the limit of 64 bytes (--maxLineBytes)"),
          byLine.get(2L));
      assertEquals("invalid_utf8", byLine.get(3L).kind());
      assertEquals(2, byLine.size());
      return null;
    });

    PipelineResult result = p.run();
    assertEquals(4, recordsRead(result));
    assertEquals(OptionalLong.of(4), RecordFiles.countPromptRecords(name, RecordFormat.AUTO, 64));
  }

  @Test
  void parquetRowsBecomeTheSameRecordsAsJsonLines() throws IOException {
    List<JsonNode> rows = List.of(
        JSON.readTree("{\"id\": \"a\", \"user\": \"안녕하세요\", \"max_new_tokens\": 8, \"n\": 2, \"seed\": 5}"),
        JSON.readTree("{\"id\": \"b\", \"messages\": [{\"role\": \"user\", \"content\": \"hi\"}], \"top_p\": 0.5}"),
        JSON.readTree("{\"id\": \"c\", \"context\": \"문맥\", \"question\": \"질문\", \"temperature\": -1.0}"));
    Path parquet = dir.resolve("prompts.parquet");
    PromptParquet.write(rows, parquet);
    String name = parquet.toString();
    // The same rows with messages as pyarrow and Spark write lists (messages.list.element): the same records.
    Path standard = Files.createDirectories(dir.resolve("standard-lists")).resolve("prompts.parquet");
    PromptParquet.writeThreeLevelLists(rows, standard);

    WithFailures.Result<PCollection<PromptRecord>, DeadLetter> read = p.apply(PromptIO.read().from(name));
    PAssert.that(p.apply("ReadStandardLists", PromptIO.read().from(standard.toString())).output()
        .apply(MapElements.into(TypeDescriptors.strings()).via(r -> r.id() + " " + r.messages()))).containsInAnyOrder(
        "a null", "b " + List.of(new PromptRecord.Message("user", "hi")));

    PAssert.that(read.output()).containsInAnyOrder(
        new PromptRecord("a", null, null, "안녕하세요", null, null, null, null,
            new PromptRecord.SamplingOverrides(8, null, null, null, null, 2, 5L), SourcePosition.row(name, 1)),
        new PromptRecord("b", List.of(new PromptRecord.Message("user", "hi")), null, null, null, null, null, null,
            new PromptRecord.SamplingOverrides(null, null, null, 0.5, null, null, null), SourcePosition.row(name, 2)));
    PAssert.that(read.failures()).containsInAnyOrder(
        new DeadLetter(name, null, 3L, "c", "invalid_value", "\"temperature\" must be >= 0, got -1.0"));

    PipelineResult result = p.run();
    assertEquals(6, recordsRead(result), "both files' rows");
    assertEquals(OptionalLong.of(3), RecordFiles.countPromptRecords(name, RecordFormat.AUTO, PromptIO.DEFAULT_MAX_LINE_BYTES));
  }

  @Test
  void aLoneSurrogateEscapeInAnyTextOfARecordIsADeadLetterNeverAChangedPrompt() throws IOException {
    // Written as JSON source: the escapes reach Jackson as escapes, in lines of valid UTF-8.
    Path file = write(dir.resolve("surrogates.jsonl"),
        "{\"id\": \"pair\", \"user\": \"smile \\ud83d\\ude00 ok\"}",
        "{\"id\": \"bad-\\ud800\", \"user\": \"x\"}",
        "{\"id\": \"system\", \"system\": \"be \\ud800 brief\", \"user\": \"x\"}",
        "{\"id\": \"user\", \"user\": \"\\udc00 first\"}",
        "{\"id\": \"text\", \"text\": \"ends high \\udbff\"}",
        "{\"id\": \"context\", \"context\": \"reversed \\ude00\\ud83d pair\", \"question\": \"q\"}",
        "{\"id\": \"question\", \"context\": \"c\", \"question\": \"\\ud800\\ud800\"}",
        "{\"id\": \"prompt\", \"prompt\": \"once \\udfff\"}",
        "{\"id\": \"role\", \"messages\": [{\"role\": \"user\", \"content\": \"hi\"}, {\"role\": \"\\ud800\", \"content\": \"x\"}]}",
        "{\"id\": \"content\", \"messages\": [{\"role\": \"system\", \"content\": \"s\"}, {\"role\": \"user\", \"content\": \"a\\ud800b\"}]}");
    String name = file.toString();

    WithFailures.Result<PCollection<PromptRecord>, DeadLetter> read = p.apply(PromptIO.read().from(name));

    PAssert.that(read.output()).containsInAnyOrder(
        new PromptRecord("pair", null, null, "smile \ud83d\ude00 ok", null, null, null, null, NONE, SourcePosition.line(name, 1)));
    String pairing = " (a \\u escape of a surrogate must pair \\ud800-\\udbff with \\udc00-\\udfff)";
    PAssert.that(read.failures()).containsInAnyOrder(
        new DeadLetter(name, 2L, null, null, "invalid_id", "\"id\" is not Unicode text: a lone surrogate \\ud800 at index 4" + pairing),
        new DeadLetter(name, 3L, null, "system", "invalid_value",
            "\"system\" is not Unicode text: a lone surrogate \\ud800 at index 3" + pairing),
        new DeadLetter(name, 4L, null, "user", "invalid_value", "\"user\" is not Unicode text: a lone surrogate \\udc00 at index 0" + pairing),
        new DeadLetter(name, 5L, null, "text", "invalid_value", "\"text\" is not Unicode text: a lone surrogate \\udbff at index 10" + pairing),
        new DeadLetter(name, 6L, null, "context", "invalid_value",
            "\"context\" is not Unicode text: a lone surrogate \\ude00 at index 9" + pairing),
        new DeadLetter(name, 7L, null, "question", "invalid_value",
            "\"question\" is not Unicode text: a lone surrogate \\ud800 at index 0" + pairing),
        new DeadLetter(name, 8L, null, "prompt", "invalid_value", "\"prompt\" is not Unicode text: a lone surrogate \\udfff at index 5" + pairing),
        new DeadLetter(name, 9L, null, "role", "invalid_value",
            "\"messages[1].role\" is not Unicode text: a lone surrogate \\ud800 at index 0" + pairing),
        new DeadLetter(name, 10L, null, "content", "invalid_value",
            "\"messages[1].content\" is not Unicode text: a lone surrogate \\ud800 at index 1" + pairing));

    PipelineResult result = p.run();
    assertEquals(10, recordsRead(result));
  }

  @Test
  void aParquetStringThatIsNotUtf8IsADeadLetterNamingItsColumnNeverU_FFFD() throws IOException {
    byte[] notUtf8 = {'a', (byte) 0xC3, '(', 'b'};
    Schema schema = PromptParquet.schema();
    Schema message = schema.getField("messages").schema().getTypes().get(1).getElementType();
    GenericRecord good = new GenericData.Record(schema);
    good.put("id", "good");
    good.put("prompt", new Utf8("fine 안녕"));
    GenericRecord badPrompt = new GenericData.Record(schema);
    badPrompt.put("id", "bad-prompt");
    badPrompt.put("prompt", new Utf8(notUtf8));
    GenericRecord badContent = new GenericData.Record(schema);
    badContent.put("id", "bad-content");
    GenericRecord system = new GenericData.Record(message);
    system.put("role", "system");
    system.put("content", "s");
    GenericRecord user = new GenericData.Record(message);
    user.put("role", "user");
    user.put("content", new Utf8(notUtf8));
    badContent.put("messages", List.of(system, user));
    Path parquet = dir.resolve("not-utf8.parquet");
    PromptParquet.write(schema, List.of(good, badPrompt, badContent), parquet);
    // A writer's Avro schema that asks for Java strings, which Parquet would decode leniently.
    Schema javaStrings = new Schema.Parser().parse("{\"type\": \"record\", \"name\": \"Row\", \"fields\": ["
        + "{\"name\": \"id\", \"type\": {\"type\": \"string\", \"avro.java.string\": \"String\"}},"
        + "{\"name\": \"user\", \"type\": {\"type\": \"string\", \"avro.java.string\": \"String\"}}]}");
    GenericRecord javaString = new GenericData.Record(javaStrings);
    javaString.put("id", "java-string");
    javaString.put("user", new Utf8(notUtf8));
    Path declared = dir.resolve("java-strings.parquet");
    PromptParquet.write(javaStrings, List.of(javaString), declared);
    String name = parquet.toString();

    WithFailures.Result<PCollection<PromptRecord>, DeadLetter> read = p.apply(PromptIO.read().from(dir.resolve("*.parquet").toString()));

    PAssert.that(read.output()).containsInAnyOrder(
        new PromptRecord("good", null, null, null, null, null, null, "fine 안녕", NONE, SourcePosition.row(name, 1)));
    PAssert.that(read.failures()).containsInAnyOrder(
        new DeadLetter(name, null, 2L, null, "invalid_utf8", "\"prompt\" is not valid UTF-8 (at byte 1 of 4)"),
        new DeadLetter(name, null, 3L, null, "invalid_utf8",
            "\"messages[1].content\" is not valid UTF-8 (at byte 1 of 4)"),
        new DeadLetter(declared.toString(), null, 1L, null, "invalid_utf8", "\"user\" is not valid UTF-8 (at byte 1 of 4)"));

    PipelineResult result = p.run();
    assertEquals(4, recordsRead(result));
  }

  @Test
  void aDirectoryIsReadFileByFileEachInTheFormatItHolds() throws IOException {
    Path in = Files.createDirectories(dir.resolve("in"));
    PromptParquet.write(List.of(JSON.readTree("{\"id\": \"named\", \"user\": \"u\"}")), in.resolve("a.parquet"));
    // No extension: Parquet's magic bytes tell (as for a died job's temporary shards).
    PromptParquet.write(List.of(JSON.readTree("{\"id\": \"sniffed\", \"user\": \"u\"}")), in.resolve("b"));
    Schema person = new Schema.Parser().parse(
        "{\"type\": \"record\", \"name\": \"Person\", \"fields\": [{\"name\": \"name\", \"type\": \"string\"}]}");
    GenericRecord kim = new GenericData.Record(person);
    kim.put("name", "김철수");
    PromptParquet.write(person, List.of(kim), in.resolve("c-foreign.parquet"));
    Files.write(in.resolve("d-corrupt.parquet"), "PAR1 is not enough to be Parquet".getBytes(StandardCharsets.UTF_8));
    write(in.resolve("e.jsonl"), "{\"id\": \"lines\", \"user\": \"u\"}");

    WithFailures.Result<PCollection<PromptRecord>, DeadLetter> read = p.apply(PromptIO.read().from(in.toString()));

    PAssert.that(read.output()).containsInAnyOrder(
        new PromptRecord("named", null, null, "u", null, null, null, null, NONE, SourcePosition.row(in.resolve("a.parquet").toString(), 1)),
        new PromptRecord("sniffed", null, null, "u", null, null, null, null, NONE, SourcePosition.row(in.resolve("b").toString(), 1)),
        new PromptRecord("lines", null, null, "u", null, null, null, null, NONE, SourcePosition.line(in.resolve("e.jsonl").toString(), 1)));
    String foreign = in.resolve("c-foreign.parquet").toString();
    String corrupt = in.resolve("d-corrupt.parquet").toString();
    PAssert.that(read.failures()).satisfies(deadLetters -> {
      List<DeadLetter> all = new ArrayList<>();
      deadLetters.forEach(all::add);
      assertEquals(2, all.size(), all.toString());
      DeadLetter missingId = all.stream().filter(d -> d.sourceFile().equals(foreign)).findFirst().orElseThrow();
      assertEquals(new DeadLetter(foreign, null, 1L, null, "missing_id", "the record has no \"id\""), missingId);
      DeadLetter unreadable = all.stream().filter(d -> d.sourceFile().equals(corrupt)).findFirst().orElseThrow();
      assertEquals("corrupt_file", unreadable.kind(), "a .parquet file is read as Parquet, and it does not decode");
      assertEquals(null, unreadable.line());
      assertEquals(null, unreadable.row());
      assertTrue(unreadable.message().startsWith("cannot read " + corrupt + ": "), unreadable.message());
      return null;
    });

    PipelineResult result = p.run();
    assertEquals(5, recordsRead(result), "three records, a foreign row, and one for the file that does not decode");
    assertEquals(OptionalLong.of(5), RecordFiles.countPromptRecords(in.toString(), RecordFormat.AUTO, PromptIO.DEFAULT_MAX_LINE_BYTES));
  }

  private static Map<Long, DeadLetter> byLine(Iterable<DeadLetter> deadLetters) {
    Map<Long, DeadLetter> byLine = new TreeMap<>();
    deadLetters.forEach(d -> byLine.put(d.line(), d));
    return byLine;
  }

  private static long recordsRead(PipelineResult result) {
    long total = 0;
    for (MetricResult<Long> counter : result.metrics().queryMetrics(MetricsFilter.builder()
        .addNameFilter(MetricNameFilter.named(PromptIO.class, PromptIO.RECORDS_READ)).build()).getCounters()) {
      total += counter.getAttempted();
    }
    return total;
  }

  private static Path write(Path file, String... lines) throws IOException {
    Files.writeString(file, String.join("\n", lines) + "\n", StandardCharsets.UTF_8);
    return file;
  }
}
