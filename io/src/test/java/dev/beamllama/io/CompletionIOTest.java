package dev.beamllama.io;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.fasterxml.jackson.databind.ObjectMapper;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.Map;
import java.util.stream.Stream;
import org.apache.avro.generic.GenericData;
import org.apache.avro.generic.GenericRecord;
import org.apache.beam.sdk.io.TextIO;
import org.apache.beam.sdk.io.parquet.ParquetIO;
import org.apache.beam.sdk.testing.PAssert;
import org.apache.beam.sdk.testing.TestPipeline;
import org.apache.beam.sdk.transforms.Create;
import org.apache.beam.sdk.transforms.MapElements;
import org.apache.beam.sdk.transforms.SerializableFunction;
import org.apache.beam.sdk.values.PCollection;
import org.apache.beam.sdk.values.TypeDescriptor;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * CompletionIO.write(): completions written as JSON Lines or Parquet shards under the prefix, read
 * back by Beam's own TextIO and ParquetIO as the same records; from a journal, the same files from
 * the samples' keys.
 */
class CompletionIOTest {
  private static final ObjectMapper JSON = new ObjectMapper();

  static final List<CompletionRecord> COMPLETIONS = List.of(
      new CompletionRecord("a", 0, "피보나치 수열은", "length", 31, false, 16, "demo-model", "chat", 7_000_000_000L, 0.9, 40, 0.9, 1.1, 16, 12.5),
      new CompletionRecord("a", 1, "", "stop", 31, true, 1, "demo-model", "chat", -3L, 0.0, 0, 1.0, 1.0, 16, 0.25),
      new CompletionRecord("b", 0, "line\nbreak \"quoted\"", "stop", 5, false, 3, "demo-model", "complete", 42L, 0.7, 1, 0.5, 1.3, 3, 1.0));

  @TempDir Path dir;

  /** Beam's TestPipeline without JUnit 4's rule: run() still fails when an assertion failed or never ran. */
  private final TestPipeline write = TestPipeline.create().enableAbandonedNodeEnforcement(false);
  private final TestPipeline readBack = TestPipeline.create().enableAbandonedNodeEnforcement(false);

  @Test
  void jsonLinesShardsHoldTheRecords() throws IOException {
    String prefix = dir.resolve("out/completions").toString();
    completions().apply(CompletionIO.write().to(prefix).withNumShards(2));
    write.run();

    assertEquals(List.of("completions-00000-of-00002.jsonl", "completions-00001-of-00002.jsonl"), files(dir.resolve("out"), "completions"));
    PCollection<CompletionRecord> lines = readBack.apply(TextIO.read().from(prefix + "-*.jsonl"))
        .apply(MapElements.into(TypeDescriptor.of(CompletionRecord.class)).via(parse(CompletionRecord.class)))
        .setCoder(JsonCoder.of(CompletionRecord.class));
    PAssert.that(lines).containsInAnyOrder(COMPLETIONS);
    readBack.run();
  }

  @Test
  void parquetShardsHoldTheRecordsInTheCompletionSchema() throws IOException {
    String prefix = dir.resolve("out/completions").toString();
    completions().apply(CompletionIO.write().to(prefix).withFormat(RecordFormat.PARQUET).withNumShards(1));
    write.run();

    assertEquals(List.of("completions-00000-of-00001.parquet"), files(dir.resolve("out"), "completions"));
    PAssert.that(parquetRows(prefix)).containsInAnyOrder(COMPLETIONS);
    readBack.run();
  }

  @Test
  void fromJournalWritesTheSameLinesAsTheRecordsThemselves() throws IOException {
    String journal = journalOf(COMPLETIONS);
    String direct = dir.resolve("direct/completions").toString();
    String journaled = dir.resolve("journaled/completions").toString();
    completions().apply("WriteRecords", CompletionIO.write().to(direct).withNumShards(1));
    keys().apply("WriteFromJournal", CompletionIO.write().to(journaled).withNumShards(1).fromJournal(journal));
    write.run();

    assertEquals(List.of("completions-00000-of-00001.jsonl"), files(dir.resolve("journaled"), "completions"));
    List<String> expected = Files.readAllLines(dir.resolve("direct/completions-00000-of-00001.jsonl"));
    List<String> actual = Files.readAllLines(dir.resolve("journaled/completions-00000-of-00001.jsonl"));
    assertEquals(expected.stream().sorted().toList(), actual.stream().sorted().toList());
  }

  @Test
  void fromJournalWritesParquetRows() throws IOException {
    String journal = journalOf(COMPLETIONS);
    String prefix = dir.resolve("out/completions").toString();
    keys().apply(CompletionIO.write().to(prefix).withFormat(RecordFormat.PARQUET).fromJournal(journal));
    write.run();

    PAssert.that(parquetRows(prefix)).containsInAnyOrder(COMPLETIONS);
    readBack.run();
  }

  /** Three shards for one record: the two empty ones are written too, so every file the names promise exists. */
  @Test
  void aFixedShardCountWritesEveryShardEvenEmptyOnes() throws IOException {
    String journal = journalOf(COMPLETIONS);
    write.apply("One", Create.of(List.of(JournaledSample.of(COMPLETIONS.get(0)))).withCoder(JsonCoder.of(JournaledSample.class)))
        .apply(CompletionIO.write().to(dir.resolve("out/completions").toString()).withNumShards(3).fromJournal(journal));
    write.run();

    assertEquals(List.of("completions-00000-of-00003.jsonl", "completions-00001-of-00003.jsonl", "completions-00002-of-00003.jsonl"),
        files(dir.resolve("out"), "completions"));
  }

  @Test
  void aSampleMissingFromTheJournalFailsTheWriteNamingIt() throws IOException {
    String journal = journalOf(COMPLETIONS.subList(0, 2));
    keys().apply(CompletionIO.write().to(dir.resolve("out/completions").toString()).fromJournal(journal));
    Exception failed = assertThrows(Exception.class, write::run);
    assertTrue(String.valueOf(failed.getMessage()).contains("sample 0 of record b is not in the journal"), failed.toString());
  }

  @Test
  void theFormatMustBeChosenAndThePrefixGiven() {
    assertThrows(IllegalArgumentException.class, () -> CompletionIO.write().withFormat(RecordFormat.AUTO));
    assertThrows(IllegalArgumentException.class, () -> completions().apply(CompletionIO.write()));
  }

  private PCollection<CompletionRecord> completions() {
    return write.apply(Create.of(COMPLETIONS).withCoder(JsonCoder.of(CompletionRecord.class)));
  }

  private PCollection<JournaledSample> keys() {
    return write.apply("Keys", Create.of(COMPLETIONS.stream().map(JournaledSample::of).toList()).withCoder(JsonCoder.of(JournaledSample.class)));
  }

  /** A journal directory holding {@code records} after its header, and a last line cut by a crash. */
  private String journalOf(List<CompletionRecord> records) throws IOException {
    Path journal = Files.createDirectories(dir.resolve("journal-" + records.size()));
    StringBuilder lines = new StringBuilder(CompletionJournal.headerLine(Map.of("model", "demo-model"))).append('\n');
    for (CompletionRecord r : records) {
      lines.append(CompletionIO.toJson(r)).append('\n');
    }
    lines.append("{\"id\":\"b\",\"sample_index\":0,\"compl");
    Files.writeString(journal.resolve(CompletionJournal.fileName("worker-1")), lines);
    return journal.toString();
  }

  /** The rows of the Parquet shards under {@code prefix}, read back by Beam's ParquetIO. */
  private PCollection<CompletionRecord> parquetRows(String prefix) {
    return readBack.apply(ParquetIO.read(CompletionIO.avroSchema()).from(prefix + "-*.parquet"))
        .apply(MapElements.into(TypeDescriptor.of(CompletionRecord.class))
            .via((GenericRecord row) -> parse(CompletionRecord.class).apply(GenericData.get().toString(row))))
        .setCoder(JsonCoder.of(CompletionRecord.class));
  }

  static <T> SerializableFunction<String, T> parse(Class<T> type) {
    return text -> {
      try {
        return JSON.readValue(text, type);
      } catch (IOException e) {
        throw new UncheckedIOException(e);
      }
    };
  }

  /** The names of the files in {@code directory} that start with {@code prefix} (not the sinks' temporary directory). */
  static List<String> files(Path directory, String prefix) throws IOException {
    try (Stream<Path> files = Files.list(directory)) {
      return files.map(f -> f.getFileName().toString()).filter(f -> f.startsWith(prefix)).sorted().toList();
    }
  }
}
