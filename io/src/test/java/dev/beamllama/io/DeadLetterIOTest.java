package dev.beamllama.io;

import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.IOException;
import java.nio.file.Path;
import java.util.List;
import org.apache.beam.sdk.io.TextIO;
import org.apache.beam.sdk.testing.PAssert;
import org.apache.beam.sdk.testing.TestPipeline;
import org.apache.beam.sdk.transforms.Create;
import org.apache.beam.sdk.transforms.MapElements;
import org.apache.beam.sdk.values.PCollection;
import org.apache.beam.sdk.values.TypeDescriptor;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * DeadLetterIO.write(): dead letters as JSON Lines under the prefix, every field written even when
 * null (a reader sees the same columns in every line), read back by TextIO as the same dead letters.
 */
class DeadLetterIOTest {
  private static final List<DeadLetter> DEAD_LETTERS = List.of(
      DeadLetter.of(SourcePosition.line("in/a.jsonl", 4), null, ErrorKind.MALFORMED_JSON, "not a JSON object: Unexpected character"),
      DeadLetter.of(SourcePosition.row("in/b.parquet", 2), "b-2", ErrorKind.PROMPT_TOO_LONG, "prompt of 5000 tokens + max_new_tokens 64"),
      DeadLetter.of(SourcePosition.file("in/c.parquet"), null, ErrorKind.CORRUPT_FILE, "cannot read in/c.parquet: 안 읽힘"));

  @TempDir Path dir;

  /** Beam's TestPipeline without JUnit 4's rule: run() still fails when an assertion failed or never ran. */
  private final TestPipeline write = TestPipeline.create().enableAbandonedNodeEnforcement(false);
  private final TestPipeline readBack = TestPipeline.create().enableAbandonedNodeEnforcement(false);

  @Test
  void deadLettersAreWrittenAsJsonLinesWithEveryField() throws IOException {
    String prefix = dir.resolve("out/c-errors").toString();
    write.apply(Create.of(DEAD_LETTERS).withCoder(JsonCoder.of(DeadLetter.class))).apply(DeadLetterIO.write().to(prefix));
    write.run();

    List<String> shards = CompletionIOTest.files(dir.resolve("out"), "c-errors");
    assertTrue(!shards.isEmpty() && shards.stream().allMatch(f -> f.matches("c-errors-\\d{5}-of-\\d{5}\\.jsonl")), shards.toString());
    PCollection<String> lines = readBack.apply(TextIO.read().from(prefix + "-*.jsonl"));
    PAssert.that(lines).satisfies(written -> {
      for (String line : written) {
        for (String field : List.of("source_file", "line", "row", "id", "kind", "message")) {
          assertTrue(line.contains("\"" + field + "\":"), field + " in " + line);
        }
      }
      return null;
    });
    PAssert.that(lines.apply(MapElements.into(TypeDescriptor.of(DeadLetter.class)).via(CompletionIOTest.parse(DeadLetter.class)))
        .setCoder(JsonCoder.of(DeadLetter.class))).containsInAnyOrder(DEAD_LETTERS);
    readBack.run();
  }
}
