package dev.beamllama.pipeline;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import java.io.OutputStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.Map;
import java.util.stream.Stream;
import java.util.zip.GZIPOutputStream;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** The summarize, qa and complete tasks, template overrides, and gzip, glob and directory inputs. */
class TasksAndInputsTest {
  @TempDir static Path dir;
  static Path model;

  @BeforeAll
  static void model() {
    model = TestJob.demoModel();
  }

  private static List<JsonNode> run(String task, Path input, String name, String... extra) throws Exception {
    String out = dir.resolve(name + "/c").toString();
    String[] base = {"--input=" + input, "--output=" + out, "--model=" + model, "--maxNewTokens=4", "--task=" + task};
    String[] args = java.util.stream.Stream.concat(java.util.Arrays.stream(base), java.util.Arrays.stream(extra)).toArray(String[]::new);
    TestJob.Run run = TestJob.run(args);
    assertEquals(0, run.summary().deadLetters(), run.err());
    return TestJob.shards(out, ".jsonl");
  }

  @Test
  void summarizeQaAndCompleteBuildTheirPrompts() throws Exception {
    Path summarize = TestJob.writeJsonl(dir.resolve("s.jsonl"), List.of(
        "{\"id\": \"s1\", \"text\": \"올해 3분기 수출이 지난해보다 12% 늘었다고 통계 당국이 밝혔다.\"}"));
    Path qa = TestJob.writeJsonl(dir.resolve("q.jsonl"), List.of(
        "{\"id\": \"q1\", \"context\": \"훈민정음은 1443년에 창제되었다.\", \"question\": \"훈민정음은 언제 창제되었나요?\"}"));
    Path complete = TestJob.writeJsonl(dir.resolve("c.jsonl"), List.of("{\"id\": \"c1\", \"prompt\": \"옛날 옛적에\"}"));

    JsonNode s = run("summarize", summarize, "summarize").get(0);
    JsonNode q = run("qa", qa, "qa").get(0);
    JsonNode c = run("complete", complete, "complete").get(0);
    assertEquals("summarize", s.get("task").asText());
    assertEquals("qa", q.get("task").asText());
    assertEquals("complete", c.get("task").asText());
    // The raw prompt is the bare text; chat prompts carry the template, system prompt and instruction.
    assertTrue(c.get("prompt_tokens").asInt() < 10, c.toString());
    assertTrue(s.get("prompt_tokens").asInt() > 40, s.toString());

    Path template = dir.resolve("template.txt");
    Files.writeString(template, "요약: {text}");
    JsonNode custom = run("summarize", summarize, "summarize-custom", "--promptTemplate=" + template, "--systemPrompt=").get(0);
    assertTrue(custom.get("prompt_tokens").asInt() < s.get("prompt_tokens").asInt(), "a shorter template and no system prompt");
  }

  /** Meta-Llama-3-8B and other base models: a tokenizer_config.json without chat_template. */
  @Test
  void aBaseModelRunsTheCompleteTaskAndRefusesChatAtStartup() throws Exception {
    Path base = Files.createDirectories(dir.resolve("base-model"));
    try (Stream<Path> files = Files.list(model)) {
      for (Path f : files.filter(f -> !f.getFileName().toString().equals("tokenizer_config.json")).toList()) {
        Files.createSymbolicLink(base.resolve(f.getFileName()), f.toAbsolutePath());
      }
    }
    ObjectNode config = (ObjectNode) TestJob.JSON.readTree(model.resolve("tokenizer_config.json").toFile());
    assertTrue(config.remove("chat_template") != null, "the demo checkpoint has a chat template to remove");
    TestJob.JSON.writeValue(base.resolve("tokenizer_config.json").toFile(), config);
    Path prompts = TestJob.writeJsonl(dir.resolve("base.jsonl"), List.of("{\"id\": \"b1\", \"prompt\": \"옛날 옛적에\"}"));

    String out = dir.resolve("base/c").toString();
    TestJob.Run complete = TestJob.run("--input=" + prompts, "--output=" + out, "--model=" + base, "--maxNewTokens=4", "--task=complete");
    assertEquals(0, complete.summary().deadLetters(), complete.err());
    assertEquals(4, TestJob.shards(out, ".jsonl").get(0).get("completion_tokens").asInt());

    String message = TestJob.startupError("--input=" + TestJob.root().resolve("samples/chat.jsonl"), "--output=" + dir.resolve("base-chat/c"),
        "--model=" + base);
    assertTrue(message.contains("no chat template") && message.contains("--task=complete"), message);
    assertTrue(!Files.exists(dir.resolve("base-chat")), "nothing written");
  }

  @Test
  void int8WeightsRunTheWholeJob() throws Exception {
    Path complete = TestJob.writeJsonl(dir.resolve("int8.jsonl"), List.of("{\"id\": \"i1\", \"prompt\": \"옛날 옛적에\"}"));
    JsonNode c = run("complete", complete, "int8", "--weights=int8").get(0);
    assertEquals("i1", c.get("id").asText());
    assertEquals(4, c.get("completion_tokens").asInt(), c.toString());
    JsonNode summary = TestJob.JSON.readTree(Files.readString(dir.resolve("int8/c-report/summary.json")));
    assertTrue(summary.get("engine").get("ran_on").toString().contains("int8"), summary.get("engine").toString());
  }

  @Test
  void wrongFieldsForTheTaskAreDeadLetters() throws Exception {
    Path input = TestJob.writeJsonl(dir.resolve("wrong.jsonl"), List.of(
        "{\"id\": \"w1\", \"user\": \"hello\"}",
        "{\"id\": \"w2\", \"context\": \"문맥\"}"));
    String out = dir.resolve("wrong/c").toString();
    TestJob.Run run = TestJob.run("--input=" + input, "--output=" + out, "--model=" + model, "--maxNewTokens=4", "--task=qa");
    List<JsonNode> dead = TestJob.shards(out + "-errors", ".jsonl");
    assertEquals(2, dead.size());
    assertTrue(dead.stream().allMatch(d -> d.get("kind").asText().equals("missing_field")), dead.toString());
    assertEquals(2, run.summary().deadLetters());
  }

  /** A misspelt setting is not an error (records carry fields of their own), but the summary names every field nothing read. */
  @Test
  void fieldsNothingReadsAreNamedInTheSummary() throws Exception {
    Path input = TestJob.writeJsonl(dir.resolve("unread.jsonl"), List.of(
        "{\"id\": \"u1\", \"user\": \"hi\", \"temprature\": 0, \"max_tokens\": 1, \"source\": \"crawl-7\"}",
        "{\"id\": \"u2\", \"user\": \"hello\", \"source\": \"crawl-8\"}"));
    TestJob.Run run = TestJob.run("--input=" + input, "--output=" + dir.resolve("unread/c"), "--model=" + model, "--maxNewTokens=2");
    assertEquals(Map.of("max_tokens", 1L, "source", 2L, "temprature", 1L), run.summary().unreadFields());
    assertTrue(run.out().contains("fields no prompt or setting reads, ignored: max_tokens (1 record), source (2 records), temprature (1 record)"),
        run.out());
  }

  @Test
  void gzipGlobAndDirectoryInputs() throws Exception {
    Path folder = Files.createDirectories(dir.resolve("many"));
    TestJob.writeJsonl(folder.resolve("a.jsonl"), List.of("{\"id\": \"a\", \"user\": \"하나\"}"));
    try (OutputStream out = new GZIPOutputStream(Files.newOutputStream(folder.resolve("b.jsonl.gz")))) {
      out.write("{\"id\": \"b\", \"user\": \"둘\"}\n{\"id\": \"c\", \"user\": \"셋\"}\n".getBytes(StandardCharsets.UTF_8));
    }
    assertEquals(List.of("a", "b", "c"), ids(run("chat", folder, "directory")));
    assertEquals(List.of("b", "c"), ids(run("chat", folder.resolve("*.gz"), "glob")));
  }

  private static List<String> ids(List<JsonNode> completions) {
    return completions.stream().map(c -> c.get("id").asText()).sorted().toList();
  }
}
