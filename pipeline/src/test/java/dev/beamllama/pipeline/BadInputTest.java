package dev.beamllama.pipeline;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.fasterxml.jackson.databind.JsonNode;
import dev.beamllama.model.ModelDirectory;
import dev.beamllama.model.tokenizer.Tokenizer;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.TreeMap;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * A file with malformed lines, invalid UTF-8, escapes of lone surrogates, a 10 MB line and an
 * overlong prompt: the job completes, those records are dead letters naming their line and kind,
 * the rest are completions, and input count = records with completions + dead letters.
 */
class BadInputTest {
  @TempDir static Path dir;
  static Path input;
  static Path model;
  /** line number to the dead-letter kind it must produce. */
  static final Map<Long, String> BAD = new TreeMap<>();
  static final List<String> GOOD = new ArrayList<>();

  @BeforeAll
  static void write() throws Exception {
    model = TestJob.demoModel();
    List<byte[]> lines = new ArrayList<>();
    addGood(lines, "{\"id\": \"good-1\", \"user\": \"안녕하세요\"}");
    addBad(lines, "{\"id\": \"broken\", \"user\": ", "malformed_json");
    addGood(lines, "{\"id\": \"good-2\", \"user\": \"서울은 어떤 도시인가요?\"}");
    addBad(lines, "[1, 2, 3]", "malformed_json");
    lines.add(concat("{\"id\": \"latin1\", \"user\": \"caf".getBytes(StandardCharsets.UTF_8), new byte[] {(byte) 0xE9},
        "\"}".getBytes(StandardCharsets.UTF_8)));
    BAD.put((long) lines.size(), "invalid_utf8");
    addBad(lines, "{\"id\": \"huge\", \"user\": \"" + "가".repeat(10 * 1024 * 1024 / 3 + 1) + "\"}", "line_too_long");
    addBad(lines, "{\"id\": \"overlong\", \"user\": \"" + "서울은 대한민국의 수도이다. ".repeat(1500) + "\"}", "prompt_too_long");
    addBad(lines, "{\"user\": \"no id\"}", "missing_id");
    addBad(lines, "{\"id\": 42, \"user\": \"numeric id\"}", "invalid_id");
    addBad(lines, "{\"id\": \"typed\", \"user\": [\"not\", \"a string\"]}", "wrong_type");
    addBad(lines, "{\"id\": \"empty\", \"user\": \"   \"}", "empty_content");
    addBad(lines, "{\"id\": \"nothing\"}", "missing_field");
    addBad(lines, "{\"id\": \"hot\", \"user\": \"hi\", \"temperature\": -1}", "invalid_value");
    addBad(lines, "{\"id\": \"good-1\", \"user\": \"again\"}", "duplicate_id");
    // Escapes of lone surrogates: valid UTF-8 and valid JSON, but no Unicode text to tokenize.
    addBad(lines, "{\"id\": \"surrogate\", \"messages\": [{\"role\": \"system\", \"content\": \"s\"},"
        + " {\"role\": \"user\", \"content\": \"반가워 \\ud83d\"}]}", "invalid_value");
    addBad(lines, "{\"id\": \"\\udc00\", \"user\": \"hi\"}", "invalid_id");
    addGood(lines, "{\"id\": \"good-pair\", \"user\": \"웃어요 \\ud83d\\ude00\"}");
    addGood(lines, "{\"id\": \"good-3\", \"messages\": [{\"role\": \"user\", \"content\": \"복리를 설명해 주세요\"}]}");
    input = dir.resolve("bad.jsonl");
    try (var out = Files.newOutputStream(input)) {
      for (byte[] line : lines) {
        out.write(line);
        out.write('\n');
      }
    }
  }

  private static void addGood(List<byte[]> lines, String json) throws Exception {
    lines.add(json.getBytes(StandardCharsets.UTF_8));
    GOOD.add(TestJob.JSON.readTree(json).get("id").asText());
  }

  private static void addBad(List<byte[]> lines, String text, String kind) {
    lines.add(text.getBytes(StandardCharsets.UTF_8));
    BAD.put((long) lines.size(), kind);
  }

  private static byte[] concat(byte[]... parts) {
    int length = 0;
    for (byte[] p : parts) {
      length += p.length;
    }
    byte[] all = new byte[length];
    int at = 0;
    for (byte[] p : parts) {
      System.arraycopy(p, 0, all, at, p.length);
      at += p.length;
    }
    return all;
  }

  @Test
  void badRecordsBecomeDeadLettersAndTheRestCompletes() throws Exception {
    String out = dir.resolve("out/completions").toString();
    TestJob.Run run = TestJob.run("--input=" + input, "--output=" + out, "--model=" + model, "--maxNewTokens=8");
    List<JsonNode> completions = TestJob.shards(out, ".jsonl");
    List<JsonNode> deadLetters = TestJob.shards(out + "-errors", ".jsonl");

    assertEquals(GOOD.stream().sorted().toList(), completions.stream().map(c -> c.get("id").asText()).sorted().toList());
    Map<Long, String> kinds = new TreeMap<>();
    for (JsonNode d : deadLetters) {
      assertEquals(input.toString(), d.get("source_file").asText());
      assertTrue(d.get("message").asText().length() > 10, "a message that says what is wrong: " + d);
      kinds.put(d.get("line").asLong(), d.get("kind").asText());
    }
    assertEquals(BAD, kinds);
    assertEquals("\"messages[1].content\" is not Unicode text: a lone surrogate \\ud83d at index 4"
        + " (a \\u escape of a surrogate must pair \\ud800-\\udbff with \\udc00-\\udfff)",
        deadLetters.stream().filter(d -> d.get("id").asText().equals("surrogate")).findFirst().orElseThrow().get("message").asText());
    assertEquals(GOOD.size() + BAD.size(), run.summary().recordsRead());
    assertEquals(run.summary().recordsRead(), completions.size() + deadLetters.size(), "input = outputs + dead letters");
    assertEquals(deadLetters.size(), run.summary().deadLetters());
  }

  @Test
  void truncationCutsTheOverlongPromptToFit() throws Exception {
    String out = dir.resolve("out-truncate/completions").toString();
    TestJob.Run run = TestJob.run("--input=" + input, "--output=" + out, "--model=" + model, "--maxNewTokens=8", "--overlong=truncate");
    List<JsonNode> completions = TestJob.shards(out, ".jsonl");
    // The cut is said, in the record and the summary, never left to be guessed from prompt_tokens.
    assertEquals(List.of("overlong"), completions.stream().filter(c -> c.get("prompt_truncated").asBoolean()).map(c -> c.get("id").asText()).toList());
    assertEquals(1, run.summary().promptsTruncated());
    assertTrue(run.out().contains("1 prompts were cut in their document's middle to fit the context"), run.out());
    JsonNode overlong = completions.stream().filter(c -> c.get("id").asText().equals("overlong")).findFirst().orElseThrow();
    int context = 4096;
    assertTrue(overlong.get("prompt_tokens").asInt() <= context - 8, "truncated prompt fits: " + overlong.get("prompt_tokens"));
    assertTrue(overlong.get("prompt_tokens").asInt() > context - 200, "and keeps most of the budget: " + overlong.get("prompt_tokens"));
    assertTrue(TestJob.shards(out + "-errors", ".jsonl").stream().noneMatch(d -> d.get("kind").asText().equals("prompt_too_long")));
  }

  /** A job-wide max_new_tokens beyond the context is said at startup; a record's own smaller one still runs. */
  @Test
  void aMaxNewTokensBeyondTheContextIsWarnedOfAtStartup() throws Exception {
    Path file = TestJob.writeJsonl(dir.resolve("budget.jsonl"), List.of(
        "{\"id\": \"own-budget\", \"user\": \"안녕하세요\", \"max_new_tokens\": 2}", "{\"id\": \"job-budget\", \"user\": \"안녕하세요\"}"));
    String out = dir.resolve("out-budget/c").toString();
    TestJob.Run run = TestJob.run("--input=" + file, "--output=" + out, "--model=" + model, "--maxNewTokens=5000");
    assertTrue(run.err().contains("--maxNewTokens=5000 leaves no room for a prompt in the engine's context of 4096 tokens"), run.err());
    assertEquals(List.of("own-budget"), TestJob.shards(out, ".jsonl").stream().map(c -> c.get("id").asText()).toList());
    assertEquals("prompt_too_long", TestJob.shards(out + "-errors", ".jsonl").getFirst().get("kind").asText());
  }

  @Test
  void aPromptBeyondWhatTheKvCacheHoldsIsADeadLetterNamingTheEnginesContext() throws Exception {
    // 2 MiB of the demo checkpoint's bf16 cache holds 2048 tokens of one sequence, half its 4096 positions.
    String between = "서울은 대한민국의 수도이다. ".repeat(300);
    try (Tokenizer tokenizer = new ModelDirectory(model).tokenizer()) {
      int tokens = tokenizer.encodePlainText(between).length;
      assertTrue(tokens > 2048 && tokens < 4096 - 200, "fits the model's positions, not the cache: " + tokens);
    }
    Path file = dir.resolve("beyond-the-cache.jsonl");
    Files.writeString(file, "{\"id\": \"short\", \"user\": \"안녕하세요\"}\n{\"id\": \"long\", \"user\": \"" + between + "\"}\n");
    String out = dir.resolve("out-small-cache/completions").toString();
    TestJob.run("--input=" + file, "--output=" + out, "--model=" + model, "--maxNewTokens=8", "--kvCacheBytes=" + (2 << 20));

    assertEquals(List.of("short"), TestJob.shards(out, ".jsonl").stream().map(c -> c.get("id").asText()).toList());
    JsonNode deadLetter = TestJob.shards(out + "-errors", ".jsonl").getFirst();
    assertEquals("prompt_too_long", deadLetter.get("kind").asText());
    assertTrue(deadLetter.get("message").asText().contains(" tokens + max_new_tokens 8 exceeds the engine's context of 2048 tokens "
        + "(the KV cache's capacity for one sequence, which --kvCacheBytes raises; the model's positions: 4096)"), deadLetter.toString());
  }

  @Test
  void startupErrorsAreClear() throws Exception {
    String x = "--output=" + dir.resolve("x");
    refused("unknown --task 'translate': use chat, summarize, qa or complete", "--input=" + input, x, "--model=" + model, "--task=translate");
    refused("not a checkpoint directory", "--input=" + input, x, "--model=" + dir.resolve("no-model"));
    String id = "beam-llama-test/no-such-model-" + java.util.UUID.randomUUID();
    refused("huggingface-cli download " + id, "--input=" + input, x, "--model=" + id);
    refused("unknown --weights 'int4': use checkpoint or int8", "--input=" + input, x, "--model=" + model, "--weights=int4");
    refused("a KV cache of 1000 bytes is less than one KV cache block (16384 bytes): raise --kvCacheBytes",
        "--input=" + input, x, "--model=" + model, "--kvCacheBytes=1000");
    refused("--output", "--input=" + input, "--model=" + model);
    // A flag added to a script that already passes it (scripts/run --maxNewTokens=32): Beam's own message names neither.
    refused("--maxNewTokens is given more than once (128, 32): give it once", "--input=" + input, x, "--model=" + model, "--maxNewTokens=128",
        "--maxNewTokens=32");
    refused("--temperature=abc is not a number; --maxNewTokens=1.5 is not an integer", "--input=" + input, x, "--model=" + model,
        "--temperature=abc", "--maxNewTokens=1.5");
    refused("--numShards must be 0 (the runner's choice) or more, got -1", "--input=" + input, x, "--model=" + model, "--numShards=-1");
    refused("names the completions' own files", "--input=" + input, "--output=" + dir.resolve("x/c.jsonl"), "--model=" + model,
        "--errors=" + dir.resolve("x/c"));
    refused("--systemPrompt does not apply to --task=complete", "--input=" + input, x, "--model=" + model, "--task=complete",
        "--systemPrompt=You are a pirate");
    // Found at startup (exit 2), not after the job has run, or not at all.
    refused("matches no file", "--input=" + dir.resolve("no-such-*.jsonl"), x, "--model=" + model);
    refused("--resumeFrom=" + dir.resolve("never-written-journal") + " matches no file", "--input=" + input, x, "--model=" + model,
        "--resumeFrom=" + dir.resolve("never-written-journal"));
    Path aFile = Files.writeString(dir.resolve("a-file"), "not a directory");
    refused("is not a directory", "--input=" + input, "--output=" + aFile.resolve("c.jsonl"), "--model=" + model);
    refused("--weights=int8 is a CPU engine option", "--input=" + input, x, "--model=" + model, "--engine=cuda", "--weights=int8");
  }

  private static void refused(String mentions, String... args) {
    String message = TestJob.startupError(args);
    assertTrue(message.contains(mentions), message);
  }
}
