package dev.beamllama.pipeline;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.fasterxml.jackson.databind.JsonNode;
import dev.beamllama.io.PromptParquet;
import java.io.OutputStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.Map;
import java.util.TreeMap;
import java.util.stream.Stream;
import org.apache.avro.Schema;
import org.apache.avro.generic.GenericData;
import org.apache.avro.generic.GenericRecord;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * Bad files next to good ones (a 100 MB line, read without holding it, null fields, a Parquet file of another schema, a
 * corrupt Parquet file) end as dead letters while the rest completes, and input = outputs + dead
 * letters; a broken checkpoint (truncated or bad-header safetensors, a wrong shape, a tokenizer
 * that does not fit the vocabulary) stops the job at startup with a message naming what is wrong.
 */
class BadFilesAndCheckpointsTest {
  @TempDir static Path dir;

  @Test
  void badFilesBecomeDeadLettersAndEveryRecordIsAccountedFor() throws Exception {
    Path in = Files.createDirectories(dir.resolve("in"));
    try (OutputStream out = Files.newOutputStream(in.resolve("a-huge.jsonl"))) {
      out.write("{\"id\": \"before-huge\", \"user\": \"안녕하세요\"}\n".getBytes(StandardCharsets.UTF_8));
      out.write("{\"id\": \"huge\", \"user\": \"".getBytes(StandardCharsets.UTF_8));
      byte[] chunk = "가나다라마바사아자차".repeat(3_500).getBytes(StandardCharsets.UTF_8);
      for (long written = 0; written < 100L << 20; written += chunk.length) {
        out.write(chunk);
      }
      out.write("\"}\n".getBytes(StandardCharsets.UTF_8));
      out.write("{\"id\": \"after-huge\", \"user\": \"감사합니다\"}\n".getBytes(StandardCharsets.UTF_8));
    }
    Files.writeString(in.resolve("b-nulls.jsonl"), String.join("\n",
        "{\"id\": null, \"user\": \"null id\"}",
        "{\"id\": \"null-user\", \"user\": null}",
        "{\"id\": \"null-n\", \"user\": \"좋은 하루\", \"n\": null}",
        "{\"id\": \"null-messages\", \"messages\": null}") + "\n", StandardCharsets.UTF_8);
    Schema foreign = new Schema.Parser().parse(
        "{\"type\": \"record\", \"name\": \"Person\", \"fields\": [{\"name\": \"name\", \"type\": \"string\"}, {\"name\": \"age\", \"type\": \"int\"}]}");
    GenericRecord kim = new GenericData.Record(foreign);
    kim.put("name", "김철수");
    kim.put("age", 41);
    GenericRecord lee = new GenericData.Record(foreign);
    lee.put("name", "이영희");
    lee.put("age", 37);
    PromptParquet.write(foreign, List.of(kim, lee), in.resolve("c-foreign.parquet"));
    byte[] garbage = new byte[4096];
    new java.util.Random(3).nextBytes(garbage);
    Files.write(in.resolve("d-corrupt.parquet"), garbage);

    TestJob.Run run = TestJob.run("--input=" + in, "--output=" + dir.resolve("out/c.jsonl"), "--model=" + TestJob.demoModel(),
        "--maxNewTokens=3");
    List<JsonNode> completions = TestJob.shards(dir.resolve("out/c").toString(), ".jsonl");
    List<JsonNode> dead = TestJob.shards(dir.resolve("out/c-errors").toString(), ".jsonl");
    Map<String, String> kinds = new TreeMap<>();
    for (JsonNode d : dead) {
      String file = Path.of(d.get("source_file").asText()).getFileName().toString();
      String at = d.has("line") && !d.get("line").isNull() ? ":" + d.get("line").asLong()
          : d.has("row") && !d.get("row").isNull() ? " row " + d.get("row").asLong() : "";
      kinds.put(file + at, d.get("kind").asText());
      assertTrue(!d.get("message").asText().isBlank(), "a dead letter says why: " + d);
    }
    assertEquals(Map.of(
        "a-huge.jsonl:2", "line_too_long",
        "b-nulls.jsonl:1", "missing_id",
        "b-nulls.jsonl:2", "missing_field",
        "b-nulls.jsonl:4", "missing_field",
        "c-foreign.parquet row 1", "missing_id",
        "c-foreign.parquet row 2", "missing_id",
        "d-corrupt.parquet", "corrupt_file"), kinds, "every bad record, with its kind");
    assertEquals(List.of("after-huge", "before-huge", "null-n"),
        completions.stream().map(c -> c.get("id").asText()).sorted().toList());
    assertEquals(run.summary().recordsRead(), completions.size() + dead.size(), "input = outputs + dead letters (an unreadable file counts as one)");

  }

  @Test
  void brokenCheckpointsAreStartupErrorsNamingTheProblem() throws Exception {
    Path demo = TestJob.demoModel();
    byte[] weights = Files.readAllBytes(demo.resolve("model.safetensors"));

    Path truncated = copyOfDemo("truncated");
    Files.write(truncated.resolve("model.safetensors"), java.util.Arrays.copyOf(weights, weights.length / 2));
    assertStartupError(truncated, "model.safetensors");

    Path badHeader = copyOfDemo("bad-header");
    byte[] header = weights.clone();
    header[8] = '#';
    Files.write(badHeader.resolve("model.safetensors"), header);
    assertStartupError(badHeader, "model.safetensors");

    Path wrongShape = copyOfDemo("wrong-shape");
    String config = Files.readString(demo.resolve("config.json")).replaceFirst("\"intermediate_size\"\\s*:\\s*\\d+", "\"intermediate_size\": 777");
    Files.writeString(wrongShape.resolve("config.json"), config);
    assertStartupError(wrongShape, "mlp");

    Path smallVocabulary = copyOfDemo("small-vocabulary");
    String small = Files.readString(demo.resolve("config.json")).replaceFirst("\"vocab_size\"\\s*:\\s*\\d+", "\"vocab_size\": 32000");
    Files.writeString(smallVocabulary.resolve("config.json"), small);
    assertStartupError(smallVocabulary, "vocab");
  }

  private static Path copyOfDemo(String name) throws Exception {
    Path copy = Files.createDirectories(dir.resolve("models").resolve(name));
    try (Stream<Path> files = Files.list(TestJob.demoModel())) {
      for (Path f : files.toList()) {
        Files.copy(f, copy.resolve(f.getFileName()));
      }
    }
    return copy;
  }

  private static void assertStartupError(Path model, String mentions) {
    String message = TestJob.startupError("--input=" + TestJob.root().resolve("samples/chat.jsonl"), "--output=" + dir.resolve("never/c"),
        "--model=" + model);
    assertTrue(message.contains(mentions), "the message names " + mentions + ": " + message);
    assertTrue(!Files.exists(dir.resolve("never")), "nothing written");
  }
}
